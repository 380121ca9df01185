"""Events from the answering process to the SQLite file, without costing the answering side anything
but a few array appends per question.

The answering process (the DNS filter's event loop) records each event as four numbers: when, the key of
who asked, the key of what was answered, and the seconds taken, appended to arrays (no object per
question is made or kept). Who and what are sent once each, when first made. Four times a second the
arrays go, as bytes, to a writer *process* that turns them back into rows and writes them to SQLite: a
writer thread would share the interpreter lock and halve the answering rate under load.

`hand_over` runs on the answering side's thread; `flush` and `close` may block and run elsewhere.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import pickle
import queue
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import weakref
from array import array
from collections import deque
from dataclasses import asdict, dataclass, replace
from datetime import tzinfo
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from appliance.events import RequestRow, StoreWriter, What, Who
from appliance.store.retention import Schedule, settings_from_json
from appliance.store.schema import StoreError, disk_full
from appliance.store.settings import StoreSettings

log = logging.getLogger(__name__)

RESTART_S = 5.0
MAX_WAITING_BATCHES = 200  # about fifty seconds of full load: beyond, batches are dropped and logged
MAX_WINDOWS = 10_000  # (device, blocked domain) pairs remembered for putting names together
# The writer process's batches the store refuses for now (a full disk): tried again this often, and
# kept up to this much memory (some minutes of a busy centre's events), then the oldest events go.
RETRY_S = 2.0
MAX_HELD_BYTES = 8 << 20


class EventLog:
    """The answering side's end of the event log. Not thread-safe: one thread records and hands over."""

    def __init__(self, path: Path, zone: tzinfo, retention: StoreSettings | None = None) -> None:
        """`retention`: the store's `store:` settings, by which the writer purges old rows (the
        defaults when not given)."""
        self.path = path
        settings = retention or StoreSettings()
        self._retention = json.dumps(asdict(settings))
        self.dropped_batches = 0
        # Names under a blocked domain, put together per device: (client, subject, domain) -> until when
        # and the name kept as an event; and how many were only counted so.
        self._window_s = settings.aggregate_minutes * 60.0
        self._windows: dict[tuple[str, str, str], tuple[float, str]] = {}
        self.aggregated = 0
        self.ts = array("d")
        self.who = array("Q")
        self.what = array("Q")
        self.took = array("f")
        self.counted = array("Q")  # what's key of each answer only counted
        self.requests: list[RequestRow] = []  # web events (the proxy's), a few thousand a second at most
        self.seen: set[tuple[str, str]] = set()  # signed-in (child id, address) in use since the last batch
        self.zone = zone
        self.restarts = 0
        self._defs: list[tuple[int, Who | What]] = []
        self._dead: list[int] = []
        self._known: set[int] = set()
        self._alive: weakref.WeakValueDictionary[int, Who | What] = weakref.WeakValueDictionary()
        self._started = 0.0
        self._start()
        self._outbox: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
        self._lock = threading.Lock()  # one flush at a time reads the pipe
        self._sender = threading.Thread(target=self._send_loop, name="event-sender", daemon=True)
        self._sender.start()

    def _start(self) -> None:
        # A small process of its own (`python -m appliance.event_log`): it imports only what writing
        # needs, not the answering side's lists and libraries.
        process = subprocess.Popen(
            [sys.executable, "-m", "appliance.event_log", str(self.path), str(self.zone), self._retention],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        assert process.stdin is not None and process.stdout is not None
        # The connections own duplicates of the pipe ends; the originals are closed at once.
        self._send = Connection(os.dup(process.stdin.fileno()), readable=False)
        self._receive = Connection(os.dup(process.stdout.fileno()), writable=False)
        process.stdin.close()
        process.stdout.close()
        self._process = process
        self._started = time.monotonic()

    @property
    def pid(self) -> int:
        return self._process.pid

    def _restart_if_gone(self) -> None:
        """A writer that died (killed, out of memory) is started again, at most every RESTART_S seconds,
        and told everything still in use: the events of the gap are lost, the log goes on."""
        code = self._process.poll()
        if code is None or time.monotonic() - self._started < RESTART_S:
            return
        log.error("event log %s: the writer process ended (%s); starting it again", self.path, code)
        while True:  # batches waiting for the dead writer name keys the new one will not know
            try:
                if self._outbox.get_nowait() is not None:
                    self.dropped_batches += 1
            except queue.Empty:
                break
        self._send.close()
        self._receive.close()
        self._start()
        self.restarts += 1
        self._defs = list(self._alive.items())

    def define(self, thing: Who | What) -> int:
        """The key of `thing`, sent to the writer with the next batch if it is new."""
        key = thing.key
        if key not in self._known:
            self._known.add(key)
            self._defs.append((key, thing))
            self._alive[key] = thing
            # When the answering side forgets it, so may the writer (after the events that name it).
            weakref.finalize(thing, self._forget, key)
        return key

    def _forget(self, key: int) -> None:
        self._dead.append(key)

    def _counted_instead(self, ts: float, who: Who, what: What) -> bool:
        """Whether a block of a name under a blocked domain (`what.under`) only adds to the day's totals:
        the device had another name under that domain kept as an event less than `aggregate_minutes`
        before. (Its first is kept and opens the window; the kept name itself is kept each time.)"""
        key = (who.client, who.subject, what.under)
        window = self._windows.get(key)
        if window is not None and ts < window[0]:
            if what.host == window[1]:
                return False
            self.aggregated += 1
            return True
        if len(self._windows) >= MAX_WINDOWS:
            self._windows = {k: w for k, w in self._windows.items() if ts < w[0]}
            if len(self._windows) >= MAX_WINDOWS:
                self._windows.clear()  # (too many at once: more events, never fewer)
        self._windows[key] = (ts + self._window_s, what.host)
        return False

    def add(self, ts: float, who: Who, what: What, took: float) -> None:
        """One answer (the hot path appends to the arrays directly, with keys already defined): an event
        if `what` is kept, else one for the day's totals. Blocks of names under a blocked domain are put
        together per device (`_counted_instead`): the hot path only repeats answers made here first."""
        if what.kept and not (what.under and self._counted_instead(ts, who, what)):
            self.ts.append(ts)
            self.who.append(self.define(who))
            self.what.append(self.define(what))
            self.took.append(took)
        else:
            self.counted.append(self.define(what))

    def add_request(
        self,
        ts: float,
        who: Who,
        what: What,
        took: float,
        method: str,
        url: str,
        status: int,
        size: int,
        terms: str = "",
    ) -> None:
        """One web request or passed-through TLS connection: a `requests` row if `what` is kept, else
        one for the day's totals (and blocks of names under a blocked domain as `add` says)."""
        if what.kept and not (what.under and self._counted_instead(ts, who, what)):
            row = (ts, self.define(who), self.define(what), took, method, url, status, size, terms)
            self.requests.append(row)
        else:
            self.counted.append(self.define(what))

    def hand_over(self) -> None:
        """Send what was recorded since the last hand-over to the writer (never blocks)."""
        self._restart_if_gone()
        if not (self.ts or self.counted or self.requests or self._dead or self._defs or self.seen):
            return
        dead, self._dead = self._dead, []
        self._known.difference_update(dead)
        message = (
            "batch",
            self._defs,
            self.ts.tobytes(),
            self.who.tobytes(),
            self.what.tobytes(),
            self.took.tobytes(),
            self.counted.tobytes(),
            time.time(),
            dead,
            self.requests,
            self.seen,
        )
        self._defs = []
        self.requests = []
        self.seen = set()
        # New arrays rather than cleared ones: the hot path holds bound appends for a whole drain.
        self.ts, self.who, self.what, self.took = array("d"), array("Q"), array("Q"), array("f")
        self.counted = array("Q")
        if self._outbox.qsize() >= MAX_WAITING_BATCHES:
            self.dropped_batches += 1
            self._defs = list(message[1])  # its events are lost, but what they defined goes next time
            log.warning("event log %s: the writer fell behind; a batch of events was dropped", self.path)
            return
        self._outbox.put(pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL))

    def _send_loop(self) -> None:
        while True:
            data = self._outbox.get()
            if data is None:
                return
            try:
                self._send.send_bytes(data)
            except Exception:  # the writer is gone (or its pipe closed under us): `hand_over` starts another
                self.dropped_batches += 1

    def flush(self, timeout: float = 30.0) -> tuple[int, int]:
        """Wait until everything handed over is written; (events written, events counted) so far.
        Call `hand_over` first (on the answering thread) for the latest events."""
        with self._lock:
            self._outbox.put(pickle.dumps(("flush",)))
            if not self._receive.poll(timeout):
                raise TimeoutError(f"event log {self.path}: the writer did not answer in {timeout} s")
            reply = pickle.loads(self._receive.recv_bytes())
            return int(reply[1]), int(reply[2])

    def close(self, timeout: float = 30.0) -> None:
        """Write what was handed over and stop the writer process."""
        self._outbox.put(pickle.dumps(("stop",)))
        self._outbox.put(None)
        self._sender.join(timeout)
        try:
            self._process.wait(timeout)
        except subprocess.TimeoutExpired:
            self._process.terminate()
            self._process.wait()
        self._send.close()
        self._receive.close()


@dataclass(frozen=True)
class Batch:
    """One hand-over as the writer process takes it: definitions, DNS events (when, who's key, what's
    key, seconds taken), keys only counted, its wall-clock time, keys forgotten, web rows, sessions seen."""

    defs: list[tuple[int, Who | What]]
    events: tuple[array[float], array[int], array[int], array[float]]
    counted: array[int]
    when: float
    dead: list[int]
    requests: list[RequestRow]
    seen: set[tuple[str, str]]

    @property
    def size(self) -> int:
        """Events and web rows in it."""
        return len(self.events[0]) + len(self.requests)

    @property
    def cost(self) -> int:
        """Roughly the bytes it holds in memory."""
        urls = sum(len(row[5]) for row in self.requests)
        return (
            28 * len(self.events[0])
            + 8 * len(self.counted)
            + 250 * len(self.requests)
            + urls
            + 500 * len(self.defs)
        )


class Backlog:
    """The writer process's batches not yet in the store, oldest first, and the store they go to.

    A batch the store refuses for a reason that passes (the disk is full, the file is locked or cannot
    be opened) is kept, with every batch after it, and written again in order every RETRY_S (and at each
    flush): its definitions are never lost, so no later event names an asker or answer that is not
    there. The trouble is logged once when it starts and once when it ends. Past MAX_HELD_BYTES the
    oldest batches' events go (counted and logged), their definitions going on with the next batch. A
    batch refused for any other reason (a bug) is dropped whole and logged, as one bad batch must not
    stop the log."""

    def __init__(self, path: Path, zone: tzinfo) -> None:
        self.path, self.zone = path, zone
        self.store: StoreWriter | None = None
        self.held: deque[Batch] = deque()
        self.held_bytes = 0
        self.dropped = 0  # events and web rows dropped in the current trouble (memory full)
        self.trouble = ""  # what is wrong now ("" when nothing): said once
        self._retry_at = 0.0
        self._written_in_trouble = 0

    @property
    def written(self) -> int:
        return self.store.written if self.store is not None else 0

    @property
    def counted(self) -> int:
        return self.store.counted if self.store is not None else 0

    def wait(self, now: float) -> float | None:
        """Seconds until the held batches are tried again; None when none are held."""
        return max(0.0, self._retry_at - now) if self.held else None

    def add(self, batch: Batch) -> None:
        self.held.append(batch)
        self.held_bytes += batch.cost
        while self.held_bytes > MAX_HELD_BYTES and len(self.held) > 1:
            oldest = self.held.popleft()
            self.held_bytes -= oldest.cost
            nxt = self.held.popleft()
            self.held_bytes -= nxt.cost
            # Its events go; what it defined and forgot, and the sessions it saw, go on with the next.
            merged = replace(
                nxt, defs=oldest.defs + nxt.defs, dead=oldest.dead + nxt.dead, seen=oldest.seen | nxt.seen
            )
            self.held.appendleft(merged)
            self.held_bytes += merged.cost
            if not self.dropped:
                log.error(
                    "event log %s: %d MB of events waiting for the store: the oldest are dropped from now on",
                    self.path,
                    MAX_HELD_BYTES >> 20,
                )
            self.dropped += oldest.size

    def write(self, now: float, *, now_or_never: bool = False) -> None:
        """Write what is held, oldest first, until all is written or the store refuses a batch. Between
        refusals, only every RETRY_S (at once with `now_or_never`)."""
        if not self.held or (now < self._retry_at and not now_or_never):
            return
        store = self.open(now)
        if store is None:
            return
        while self.held:
            batch = self.held[0]
            try:
                store.write(batch.defs, batch.events, batch.counted, batch.when, batch.requests, batch.seen)
            except sqlite3.OperationalError as e:  # full, locked, an I/O error: it passes; keep the batch
                self._refused(e, now)
                return
            except Exception as e:  # one bad batch must not stop the log
                log.error("event log %s: a batch of events could not be written: %s", self.path, e)
            self.held.popleft()
            self.held_bytes -= batch.cost
            store.forget(batch.dead)
            if self.trouble:
                self._written_in_trouble += batch.size
        if self.trouble:
            lost = f", {self.dropped} dropped for want of memory" if self.dropped else ""
            log.warning(
                "event log %s: writing again: %d events kept while it could not were written%s",
                self.path,
                self._written_in_trouble,
                lost,
            )
            self.trouble, self.dropped, self._written_in_trouble = "", 0, 0
        self._retry_at = 0.0

    def open(self, now: float) -> StoreWriter | None:
        """The store, opened if it is not yet; None (and the trouble said) when it cannot be now."""
        if self.store is None:
            try:
                self.store = StoreWriter(self.path, self.zone)
            except StoreError as e:  # a full disk cannot even reserve ids: tried again later
                self._refused(e, now)
        return self.store

    def _refused(self, error: Exception, now: float) -> None:
        self._retry_at = now + RETRY_S
        trouble = "disk full" if disk_full(error, self.path.parent) else str(error)
        if trouble == self.trouble:
            return
        self.trouble = trouble
        if trouble == "disk full":
            log.error(
                "event log %s: the disk is full (%s free): events are kept in memory (up to %d MB) and"
                " written when there is room again; free some space (docs/raspberry-pi.md#troubleshooting)",
                self.path,
                _free(self.path),
                MAX_HELD_BYTES >> 20,
            )
        else:
            log.error(
                "event log %s: the store refuses writes (%s): events are kept in memory (up to %d MB) and"
                " tried again every %.0f s",
                self.path,
                error,
                MAX_HELD_BYTES >> 20,
                RETRY_S,
            )

    def close(self) -> None:
        if self.held:
            log.error(
                "event log %s: stopping with %d events the store would not take (%s): they are lost",
                self.path,
                sum(b.size for b in self.held),
                self.trouble or "refused",
            )
        if self.store is not None:
            self.store.close()


def _free(path: Path) -> str:
    """The free space on the disk of `path` (or of its nearest parent there is), in words."""
    while not path.exists() and path != path.parent:
        path = path.parent
    try:
        n = shutil.disk_usage(path).free
    except OSError:
        return "unknown space"
    return f"{n / 1e6:.1f} MB" if n >= 1e5 else f"{n / 1e3:.0f} kB"


def _writer_main(path: str, zone_name: str, settings: str = "") -> None:
    """The writer process: batches in on stdin, rows out, until told to stop or the pipe closes; and the
    store's retention, by `settings` (the `store:` section as JSON, from
    EventLog; the defaults of StoreSettings when empty)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # A Ctrl-C's SIGINT, or systemd's SIGTERM to the whole group, reaches this process too: the parent
    # says when to stop (or its end closes the pipe), so the last batches are written first.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    receive, conn = Connection(0, writable=False), Connection(1, readable=False)
    zone = ZoneInfo(zone_name)
    backlog = Backlog(Path(path), zone)
    backlog.open(time.monotonic())
    retention: Schedule | None = None
    try:
        while True:
            if retention is None and backlog.store is not None:
                with contextlib.suppress(StoreError):  # (tried again with the next batch)
                    retention = Schedule(Path(path), settings_from_json(settings), zone)
                    retention.run()
            wait = backlog.wait(time.monotonic())
            if wait is not None and not receive.poll(wait):
                backlog.write(time.monotonic())  # held batches, tried again
                continue
            try:
                message = pickle.loads(receive.recv_bytes())
            except EOFError:
                backlog.write(time.monotonic(), now_or_never=True)
                return
            kind = message[0]
            if kind == "flush":
                backlog.write(time.monotonic(), now_or_never=True)
                conn.send_bytes(pickle.dumps(("flushed", backlog.written, backlog.counted)))
            elif kind == "stop":
                backlog.write(time.monotonic(), now_or_never=True)
                return
            else:
                _, defs, ts, who, what, took, counted, when, dead, requests, seen = message
                events = (_array("d", ts), _array("Q", who), _array("Q", what), _array("f", took))
                backlog.add(Batch(defs, events, _array("Q", counted), when, dead, requests, seen))
                backlog.write(time.monotonic())
                if retention is not None and not backlog.held:
                    retention.run()
    finally:
        if retention is not None:
            retention.close()
        backlog.close()


def _array(kind: str, data: bytes) -> array[Any]:
    values = array(kind)
    values.frombytes(data)
    return values


if __name__ == "__main__":
    _writer_main(sys.argv[1], sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else "")
