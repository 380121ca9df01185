"""The servers a benchmark starts: each in its own process group of children, measured through /proc
(CPU and memory of the process and everything it started), stopped on the way out."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


class Started:
    """A server the bench started: its process and where its output goes."""

    def __init__(self, name: str, cmd: list[str], log: Path, grace_s: float = 30.0) -> None:
        self.name, self.log, self.grace_s = name, log, grace_s
        with open(log, "wb") as out:
            self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
        self.started = time.perf_counter()

    def pids(self) -> list[int]:
        return [self.proc.pid, *descendants(self.proc.pid)]

    def memory_mb(self) -> tuple[float, float]:
        """VmRSS and PSS (shared pages split between the processes mapping them) of the server and every
        process it started, summed: (rss, pss). RuntimeError if none could be read."""
        rss = pss = 0
        for pid in self.pids():
            try:
                status = Path(f"/proc/{pid}/status").read_text()
                rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
            except OSError:
                continue  # gone meanwhile
            rss += _kb(status, "VmRSS:")
            pss += _kb(rollup, "Pss:")
        if not rss:
            raise RuntimeError(f"{self.name}: no VmRSS")
        return round(rss / 1024, 1), round(pss / 1024, 1)

    def rss_mb(self) -> float:
        return self.memory_mb()[0]

    def cpu_s(self) -> float:
        """CPU seconds (user + system, all threads) used so far by the server and every process it
        started."""
        tick = os.sysconf("SC_CLK_TCK")
        total = 0
        for pid in self.pids():
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            total += int(fields[11]) + int(fields[12])  # utime, stime
        return total / tick

    def check_alive(self) -> None:
        if self.proc.poll() is not None:
            raise RuntimeError(f"{self.name} exited ({self.proc.returncode}):\n{self.tail()}")

    def stop(self) -> int | None:
        """SIGTERM, then SIGKILL after `grace_s`, then reap; the exit code (negative: the signal)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=self.grace_s)
            except subprocess.TimeoutExpired:
                print(
                    f"{self.name} still running {self.grace_s:.0f} s after SIGTERM: killed", file=sys.stderr
                )
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def _kb(text: str, key: str) -> int:
    return next((int(line.split()[1]) for line in text.splitlines() if line.startswith(key)), 0)


def descendants(pid: int) -> list[int]:
    """Every process `pid` started, and theirs, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


@contextmanager
def servers() -> Iterator[list[Started]]:
    """The servers started inside, each stopped on the way out, last started first."""
    started: list[Started] = []
    try:
        yield started
    finally:
        for server in reversed(started):
            server.stop()


def log_problems(text: str, limit: int = 20) -> int:
    """How many warning, error and traceback lines a server's log has; the first `limit` go to stderr."""
    bad = [
        line for line in text.splitlines() if " WARNING " in line or " ERROR " in line or "Traceback" in line
    ]
    for line in bad[:limit]:
        print(f"ours log: {line}", file=sys.stderr)
    return len(bad)


def free_port(host: str = "127.0.0.1") -> int:
    """A port free on `host` for both UDP and TCP (free now: another program may still take it)."""
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            tcp.bind((host, 0))
            port: int = tcp.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                try:
                    udp.bind((host, port))
                except OSError:
                    continue
        return port
    raise RuntimeError(f"no free port on {host}")
