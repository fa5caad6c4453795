"""A background service process: pid file, log file, port, health check."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence


class ServiceError(RuntimeError):
    """A service that would not start or stop; the message says which and why."""


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        return sock.connect_ex((host, port)) == 0


def tail(path: Path, lines: int = 25) -> str:
    if not path.exists():
        return f"(no log at {path})"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


@dataclass
class ManagedProcess:
    """One long-running process started in its own session (process group)."""

    name: str
    home: Path            # the service's state folder: data, pid file, log
    host: str
    port: int
    healthy: Callable[[], bool]
    hint: str             # printed when the service fails to start

    @property
    def pid_file(self) -> Path:
        return self.home / f"{self.name}.pid"

    @property
    def log_file(self) -> Path:
        return self.home / f"{self.name}.log"

    def pid(self) -> int | None:
        """The pid of our running process, or None (a stale pid file is removed)."""
        try:
            pid = int(self.pid_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            self.pid_file.unlink(missing_ok=True)
            return None
        if _is_zombie(pid):
            return None
        return pid

    def start(self, argv: Sequence[str], env: dict[str, str] | None = None, cwd: Path | None = None,
              stdin: Path | None = None) -> int:
        if port_open(self.host, self.port):
            raise ServiceError(
                f"{self.name}: port {self.host}:{self.port} is already in use by a process this stack did not start; "
                f"stop it or choose another port (see conf/local.yaml / FRAUD_* variables)")
        self.home.mkdir(parents=True, exist_ok=True)
        with open(self.log_file, "ab") as log, open(stdin or os.devnull, "rb") as stdin_file:
            log.write(f"\n==== {time.strftime('%Y-%m-%d %H:%M:%S')} starting: {' '.join(argv)}\n".encode())
            log.flush()
            proc = subprocess.Popen(list(argv), stdout=log, stderr=subprocess.STDOUT, stdin=stdin_file,
                                    cwd=cwd, env={**os.environ, **(env or {})}, start_new_session=True)
        self.pid_file.write_text(str(proc.pid))
        return proc.pid

    def wait_healthy(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.pid() is None:
                raise self.failure("exited during start-up")
            if self._check():
                return
            time.sleep(0.5)
        raise self.failure(f"not healthy after {timeout:.0f}s")

    def is_healthy(self) -> bool:
        return self.pid() is not None and self._check()

    def _check(self) -> bool:
        try:
            return bool(self.healthy())
        except Exception:  # a health probe that errors simply means "not yet"
            return False

    def failure(self, what: str) -> ServiceError:
        return ServiceError(f"{self.name} {what}.\n--- last lines of {self.log_file} ---\n{tail(self.log_file)}\n"
                            f"--- hint: {self.hint}")

    def stop(self, timeout: float = 30.0) -> bool:
        """Stop the process group (TERM, then KILL); True if something was running."""
        pid = self.pid()
        if pid is None:
            return False
        _signal_group(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and _alive(pid):
            time.sleep(0.2)
        if _alive(pid):
            _signal_group(pid, signal.SIGKILL)
            while _alive(pid):
                time.sleep(0.1)
        self.pid_file.unlink(missing_ok=True)
        return True


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        pass


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1].startswith("Z")
    except (FileNotFoundError, IndexError):
        return False


def _alive(pid: int) -> bool:
    """True while the process exists and is not a zombie; reaps our own children."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return not _is_zombie(pid)


def resident_memory_mb(pid: int) -> float:
    """Resident set size of ``pid`` and its children, in MiB (0 when gone)."""
    total = 0
    for candidate in [pid, *_children(pid)]:
        try:
            for line in Path(f"/proc/{candidate}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except FileNotFoundError:
            continue
    return total / 1024


def _children(pid: int) -> list[int]:
    out = []
    for task in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = task.read_text().split(") ", 1)[1].split()
        except (FileNotFoundError, IndexError):
            continue
        if int(fields[1]) == pid:
            child = int(task.parent.name)
            out += [child, *_children(child)]
    return out
