"""The policy and lists change under a running server without a lost query; what is logged of each
query follows the profile's privacy setting."""

from __future__ import annotations

import socket
import sqlite3
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import dns.message

from appliance.config import load_config
from appliance.lists import compile_lists
from tests.appliance.dns.conftest import KIDS, PROFILES, STAFF, STRICT, TEENS, FakeUpstream, Running, answers


def _wait_for(check, seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.1)
    return False


def test_a_changed_profile_applies_without_a_restart(make_dns, upstream: FakeUpstream, tmp_path: Path):
    upstream.add("www.roblox.com", "A", "198.51.100.20")
    running = make_dns()
    assert answers(running.query("www.roblox.com", source=TEENS)) == [
        ("www.roblox.com", "A", "198.51.100.20")
    ]
    profiles = tmp_path / "profiles.yaml"
    changed = PROFILES.replace(
        "    blocked_answer: zero\n", "    blocked_answer: zero\n    block: [roblox.com]\n"
    )
    profiles.write_text(changed, encoding="utf-8")
    # The server watches its files: the change is picked up by itself.
    assert _wait_for(
        lambda: answers(running.query("www.roblox.com", source=TEENS)) == [("www.roblox.com", "A", "0.0.0.0")]
    )
    assert running.server.counters.reloads == 1


def test_a_broken_profile_file_is_refused_and_the_running_policy_stays(make_dns, tmp_path: Path):
    running = make_dns()
    profiles = tmp_path / "profiles.yaml"
    profiles.write_text(PROFILES.replace("blocked_categories: [adult]\n", "blocked_categories: [adlt]\n", 1))
    assert running.call(running.server.reload()) is False
    error = running.server.counters.reload_errors[-1]
    assert str(profiles) in error and "adlt" in error
    assert answers(running.query("www.pornhub.com", source=TEENS)) == [("www.pornhub.com", "A", "0.0.0.0")]


def test_recompiled_lists_apply_without_a_lost_query(make_dns, upstream: FakeUpstream, tmp_path: Path):
    """A thread asks all the time while the lists are recompiled and reloaded three times: every
    question gets its answer, and the newly listed name ends up blocked."""
    upstream.add("newly-bad.example", "A", "198.51.100.31")
    running = make_dns()
    config_path = tmp_path / "appliance.yaml"
    extra_list = tmp_path / "extra.domains"
    extra_list.write_text("# added by head office\n", encoding="utf-8")
    text = config_path.read_text(encoding="utf-8")
    source = f"    - name: extra\n      format: domains\n      category: adult\n      path: {extra_list}\n"
    config_path.write_text(text.replace("  sources:\n", "  sources:\n" + source, 1), encoding="utf-8")
    stop, asked, lost = threading.Event(), [0], []

    def ask() -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind((KIDS, 0))
        sock.settimeout(2.0)
        while not stop.is_set():
            name = ("en.wikipedia.org", "www.pornhub.com", "newly-bad.example")[asked[0] % 3]
            q = dns.message.make_query(name, "A")
            sock.sendto(q.to_wire(), ("127.0.0.1", running.port))
            try:
                while dns.message.from_wire(sock.recv(4096)).id != q.id:
                    pass
            except TimeoutError:
                lost.append(name)
            asked[0] += 1
        sock.close()

    thread = threading.Thread(target=ask)
    thread.start()
    try:
        for i in range(3):
            extra_list.write_text(f"newly-bad.example\nother{i}.example\n", encoding="utf-8")
            compile_lists(load_config(config_path), now=datetime.now(UTC))
            assert running.call(running.server.reload()) is True
            time.sleep(0.3)
    finally:
        stop.set()
        thread.join(10)
    assert lost == []
    assert asked[0] > 100
    assert answers(running.query("newly-bad.example", source=KIDS)) == [
        ("newly-bad.example", "A", "192.168.50.1")
    ]


def _rows(db: Path, sql: str) -> list[tuple]:
    with sqlite3.connect(db) as conn:
        return conn.execute(sql).fetchall()


def test_blocks_are_logged_as_events_and_allowed_browsing_only_counted(make_dns, tmp_path: Path):
    running = make_dns()
    running.query("www.pornhub.com", source=KIDS)
    running.query("en.wikipedia.org", source=KIDS)
    running.query("en.wikipedia.org", source=KIDS)
    running.query("www.childline.org.uk", source=KIDS)  # a help service: never logged at all
    running.flush_log()
    db = tmp_path / "var" / "appliance.sqlite"
    events = _rows(
        db, "SELECT channel, client, subject, via, profile, host, detail, action, category FROM event_log"
    )
    assert events == [
        ("dns", KIDS, "device:kids-tablet", "device-ip", "kids", "www.pornhub.com", "A", "block", "adult")
    ]
    counts = _rows(db, "SELECT profile, action, count FROM daily_counts WHERE action = 'allow'")
    assert counts == [("kids", "allow", 2)]
    everything = _rows(db, "SELECT host FROM event_log") + _rows(db, "SELECT * FROM daily_counts")
    assert "childline" not in str(everything)
    reasons = _rows(db, "SELECT reasons, severity FROM event_log")[0]
    assert '"source": "demo-adult"' in reasons[0] and reasons[1] == "high"


def test_a_profile_that_keeps_allowed_browsing_gets_every_query_as_an_event(make_dns, tmp_path: Path):
    running = make_dns()
    for name in ("en.wikipedia.org", "www.google.com"):
        running.query(name, source=TEENS)
    running.query("en.wikipedia.org", source=STAFF)
    running.flush_log()
    rows = _rows(
        tmp_path / "var" / "appliance.sqlite", "SELECT subject, host, action FROM event_log ORDER BY ts"
    )
    assert rows == [
        ("device:teen-laptop", "en.wikipedia.org", "allow"),
        ("device:teen-laptop", "www.google.com", "rewrite"),
    ]


def test_the_query_log_survives_a_restart(make_dns, tmp_path: Path):
    running = make_dns()
    running.query("www.pornhub.com", source=KIDS)
    running.close()
    again = Running(tmp_path / "appliance.yaml")
    try:
        again.query("www.pornhub.com", source=KIDS)
        again.flush_log()
    finally:
        again.close()
    # One visit (docs/store.md#visits) of both attempts: the new writer found it in the store.
    assert _rows(tmp_path / "var" / "appliance.sqlite", "SELECT count(*), sum(attempts) FROM events") == [
        (1, 2)
    ]
    assert _rows(tmp_path / "var" / "appliance.sqlite", "PRAGMA integrity_check") == [("ok",)]


def test_a_killed_log_writer_is_started_again_and_the_file_stays_sound(make_dns, tmp_path: Path, monkeypatch):
    """kill -9 of the query log's writer in the middle of writing: questions are answered all along, a
    new writer takes over within seconds, and the SQLite file passes its integrity check."""
    import os
    import signal

    from appliance.events import recording

    monkeypatch.setattr(recording, "RESTART_S", 0.5)
    running = make_dns()
    events = running.server.events
    first = events.pid
    for _ in range(200):
        running.query("www.pornhub.com", source=KIDS)
    os.kill(first, signal.SIGKILL)
    answered = [running.query("www.pornhub.com", source=KIDS) for _ in range(50)]
    assert all(answers(r) == [("www.pornhub.com", "A", "192.168.50.1")] for r in answered)
    assert _wait_for(lambda: events.pid != first and events.restarts == 1)
    running.query("www.pornhub.com", source=TEENS)  # a new device after the restart
    running.query("www.pornhub.com", source=KIDS)  # and one the new writer learnt of at its start
    running.flush_log()
    db = tmp_path / "var" / "appliance.sqlite"
    assert _rows(db, "PRAGMA integrity_check") == [("ok",)]
    subjects = {s for (s,) in _rows(db, "SELECT subject FROM event_log")}
    assert subjects == {"device:kids-tablet", "device:teen-laptop"}


def test_random_names_under_a_blocked_domain_are_one_event_per_device(make_dns, tmp_path: Path):
    """`a1.pornhub.com`, `b2.pornhub.com`, ...: 50 names from one device are one event in the staff's
    feed and 49 blocks counted for the day; another device's are its own event; names under another
    blocked domain another."""
    running = make_dns()
    for i in range(50):
        running.query(f"r{i}x{i * 7919 % 1000}.pornhub.com", source=KIDS)
    for i in range(10):
        running.query(f"t{i}.pornhub.com", source=STRICT)
    running.query("q1.xvideos.com", source=KIDS)
    running.query("q2.xvideos.com", source=KIDS)
    running.flush_log()
    db = tmp_path / "var" / "appliance.sqlite"
    events = _rows(db, "SELECT subject, host, action, notable FROM event_log ORDER BY ts")
    assert events == [
        ("device:kids-tablet", "r0x0.pornhub.com", "block", 1),
        ("device:strict-pc", "t0.pornhub.com", "block", 1),
        ("device:kids-tablet", "q1.xvideos.com", "block", 1),
    ]
    counted = _rows(db, "SELECT profile, action, category, count FROM daily_counts ORDER BY profile")
    assert counted == [("kids", "block", "adult", 49 + 1), ("strict", "block", "adult", 9)]
    assert _rows(db, "SELECT count(*) FROM answers") == [(3,)]


def test_an_exact_blocked_name_asked_again_is_an_event_each_time(make_dns, tmp_path: Path):
    running = make_dns()
    for tcp in (False, True):  # over UDP the remembered answer (the fast path), over TCP the slow path
        for _ in range(5):
            running.query("www.pornhub.com", source=KIDS, tcp=tcp)
    running.flush_log()
    db = tmp_path / "var" / "appliance.sqlite"
    # Each time an attempt, of one visit (docs/store.md#visits).
    assert _rows(db, "SELECT host, sum(attempts), sum(notable) FROM event_log GROUP BY host") == [
        ("www.pornhub.com", 10, 1)
    ]
