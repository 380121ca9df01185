"""The monitoring proxy as worker processes sharing one port, until stopped (`appliance proxy`).

The workers are forked from this process once it has imported everything they run (mitmproxy, the
appliance) and put those objects out of the garbage collector's sight (`gc.freeze`): the imported code
and data, some 60 MB, stay shared between the workers, copy-on-write, instead of each worker loading
its own copy. On a 1 GB Pi with four workers that is the difference between the services fitting
beside the nightly compile and not (docs/raspberry-pi.md).
"""

from __future__ import annotations

import gc
import logging
import os
import random
import signal
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from appliance.memory import give_freed_memory_back
from appliance.net import split_host_port
from filters.errors import ApplianceError

log = logging.getLogger("appliance.proxy")
RESTART_S = 1.0  # the wait before a worker that ended is replaced, the first time
RESTART_MAX_S = 60.0  # the longest wait, for a worker that cannot start (a damaged file, a full disk)
STEADY_S = 60.0  # a worker that served this long before it ended is replaced after RESTART_S again


def restart_delay(last_delay: float, ran_s: float) -> float:
    """How long to wait before replacing a worker that ended after running `ran_s` seconds, when the
    wait before it started was `last_delay` (0 for a worker of the first start): RESTART_S after one that
    served a while (STEADY_S), else twice the last wait, at most RESTART_MAX_S. A worker that dies as it
    starts is tried less and less often, never in a loop."""
    if ran_s >= STEADY_S or last_delay <= 0:
        return RESTART_S
    return min(RESTART_MAX_S, last_delay * 2)


@dataclass
class _Slot:
    """One worker's place: its process, when it started, the wait before it, and when to replace it."""

    process: Worker
    started: float
    delay: float = 0.0
    due: float | None = None  # (ended: when the next one starts)


def _ending(code: int) -> str:
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


def supervise(config_path: Path | None, *, listen: str | None, mode: str | None, workers: int | None) -> int:
    """Run the proxy with the policy in force under `config_path` as `workers` forked workers (None:
    proxy.workers; 0: one per core) on `listen` (None: proxy.listen) in `mode` (None: proxy.mode), each
    one that ends replaced (`restart_delay`), until SIGTERM or SIGINT; SIGHUP is passed on to the
    workers (reload). Raises ApplianceError for a mistake in the files or in `listen` before any worker
    starts."""
    # Imported here, not for every `appliance` command (the nightly compile runs the same script).
    from appliance.in_force.live import load_live
    from appliance.proxy.ca import ensure_authority, write_trust_bundle

    live = load_live(config_path)  # every file checked before any worker starts
    settings = live.config.proxy
    listen = listen or settings.listen
    try:
        split_host_port(listen, 8080)
    except ValueError as e:
        raise ApplianceError(f"--listen: {e} (write HOST:PORT, e.g. 127.0.0.1:8080)") from e
    mode = mode or str(settings.mode)
    count = workers if workers is not None else settings.workers
    count = count if count > 0 else os.cpu_count() or 1
    authority = ensure_authority(live.config.ca_dir, settings.centre)
    if settings.upstream_trusted_ca is not None:
        write_trust_bundle(settings.upstream_trusted_ca, authority.folder)
    del live
    config = str(Path(config_path).resolve()) if config_path else "-"
    argv = [config, listen, mode]
    from appliance.proxy.worker import main as worker_main

    gc.collect()
    give_freed_memory_back()
    gc.freeze()  # what the workers share is never written by a collection in them
    slots = [_Slot(Worker.fork(worker_main, argv), time.monotonic()) for _ in range(count)]
    log.info(
        "proxy (%s) on %s with %d workers; CA %s (SHA-256 %s)",
        mode,
        listen,
        count,
        authority.folder,
        authority.fingerprint,
    )
    stopping = False

    def stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    def reload(signum: int, frame: object) -> None:
        for slot in slots:
            if slot.process.poll() is None:
                slot.process.send_signal(signal.SIGHUP)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGHUP, reload)
    try:
        while not stopping:
            time.sleep(0.2)
            now = time.monotonic()
            for slot in slots:
                if stopping:
                    break
                if slot.due is None:
                    code = slot.process.poll()
                    if code is None:
                        continue
                    # A worker that died (out of memory, a crash) is replaced; the others keep serving.
                    ran = now - slot.started
                    slot.delay = restart_delay(slot.delay, ran)
                    slot.due = now + slot.delay
                    log.error(
                        "proxy worker %d ended (%s) after %.0f s; starting another in %.0f s",
                        slot.process.pid,
                        _ending(code),
                        ran,
                        slot.delay,
                    )
                elif now >= slot.due:
                    slot.process, slot.started, slot.due = Worker.fork(worker_main, argv), now, None
    finally:
        for slot in slots:
            if slot.process.poll() is None:
                slot.process.terminate()
        for slot in slots:
            try:
                slot.process.wait(30)
            except subprocess.TimeoutExpired:
                slot.process.kill()
    log.info("proxy stopped")
    return 0


_WORKER_SIGNALS = {signal.SIGTERM, signal.SIGINT, signal.SIGHUP}


class Worker:
    """A worker process forked from this one (see the module docstring), handled like a Popen."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None

    @classmethod
    def fork(cls, main: Callable[[list[str]], int], argv: list[str]) -> Worker:
        """Fork a worker running `main(argv)` (`appliance.proxy.worker.main`)."""
        sys.stdout.flush()
        sys.stderr.flush()
        # Signals wait until the worker has its own handlers: the supervisor's would only set a flag.
        signal.pthread_sigmask(signal.SIG_BLOCK, _WORKER_SIGNALS)
        pid = os.fork()
        if pid:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, _WORKER_SIGNALS)
            return cls(pid)
        code = 1
        try:
            for sig in _WORKER_SIGNALS:
                signal.signal(sig, signal.SIG_DFL)
            signal.pthread_sigmask(signal.SIG_UNBLOCK, _WORKER_SIGNALS)
            random.seed()  # not the supervisor's sequence in every worker
            code = main(argv)
        except KeyboardInterrupt:
            code = 0
        except SystemExit as e:  # as the interpreter would end: the status, or the message and 1
            if e.code is not None and not isinstance(e.code, int):
                print(e.code, file=sys.stderr)
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        except BaseException:
            traceback.print_exc()
        finally:
            # Never past this point: the supervisor's own code must not run on in a worker.
            try:
                sys.stdout.flush()
                sys.stderr.flush()
            finally:
                os._exit(code)

    def poll(self) -> int | None:
        if self.returncode is None:
            try:
                pid, status = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:
                self.returncode = 0
                return 0
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def send_signal(self, sig: int) -> None:
        if self.poll() is None:
            os.kill(self.pid, sig)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def wait(self, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        while (code := self.poll()) is None:
            if time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(f"proxy worker {self.pid}", timeout)
            time.sleep(0.05)
        return code
