"""The answering side's end of the event log: what the DNS filter and the proxy call to record, without
costing the answering side anything but a few array appends per question.

The answering process (the DNS filter's event loop) records each event as four numbers: when, the key of
who asked, the key of what was answered, and the seconds taken, appended to arrays (no object per
question is made or kept). Askers and answers are sent once each, when first made. Four times a second
the arrays go, as bytes, to a writer *process* (appliance/events/writer.py) that turns them back into
rows and writes them to SQLite: a writer thread would share the interpreter lock and halve the
answering rate under load.

`hand_over` runs on the answering side's thread; `flush` and `close` may block and run elsewhere.
"""

from __future__ import annotations

import json
import logging
import os
import pickle
import queue
import subprocess
import sys
import threading
import time
import weakref
from array import array
from dataclasses import asdict
from datetime import tzinfo
from multiprocessing.connection import Connection
from pathlib import Path

from appliance.config.store import StoreSettings
from appliance.events.values import Answer, Asker, RequestRow

log = logging.getLogger(__name__)

RESTART_S = 5.0
MAX_WAITING_BATCHES = 200  # about fifty seconds of full load: beyond, batches are dropped and logged
MAX_WINDOWS = 10_000  # (device, blocked domain) pairs remembered for putting names together


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
        # Active minutes of children with a time budget (child id, category or "" for the internet, minute
        # = int(ts // 60)), filled by the answering side; the writer records them for the centre's day.
        self.activity: set[tuple[str, str, int]] = set()
        self.zone = zone
        self.restarts = 0
        self._defs: list[tuple[int, Asker | Answer]] = []
        self._dead: list[int] = []
        self._known: set[int] = set()
        self._alive: weakref.WeakValueDictionary[int, Asker | Answer] = weakref.WeakValueDictionary()
        self._started = 0.0
        self._start()
        self._outbox: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
        self._lock = threading.Lock()  # one flush at a time reads the pipe
        self._sender = threading.Thread(target=self._send_loop, name="event-sender", daemon=True)
        self._sender.start()

    def _start(self) -> None:
        # A small process of its own (`python -m appliance.events.writer`): it imports only what writing
        # needs, not the answering side's lists and libraries.
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "appliance.events.writer",
                str(self.path),
                str(self.zone),
                self._retention,
            ],
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

    def define(self, thing: Asker | Answer) -> int:
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

    def _counted_instead(self, ts: float, who: Asker, what: Answer) -> bool:
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

    def add(self, ts: float, who: Asker, what: Answer, took: float) -> None:
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
        who: Asker,
        what: Answer,
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
        if not (
            self.ts or self.counted or self.requests or self._dead or self._defs or self.seen or self.activity
        ):
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
            self.activity,
        )
        self._defs = []
        self.requests = []
        self.seen = set()
        self.activity = set()
        # New arrays rather than cleared ones: the hot path holds bound appends for a whole drain.
        self.ts, self.who, self.what, self.took = array("d"), array("Q"), array("Q"), array("f")
        self.counted = array("Q")
        if self._outbox.qsize() >= MAX_WAITING_BATCHES:
            self.dropped_batches += 1
            self._defs = list(message[1])  # its events are lost, but what they defined goes next time
            self.activity |= message[11]  # and the minutes children's budgets are counted from
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
