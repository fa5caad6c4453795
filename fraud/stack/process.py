"""A background service process: pid file, log file, port, health check (started and stopped by
``fraud.process``)."""
from __future__ import annotations

import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from fraud.process import Child, alive, stop_group


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
        if not alive(pid):
            self.pid_file.unlink(missing_ok=True)
            return None
        return pid

    def start(self, argv: Sequence[str], env: dict[str, str] | None = None, cwd: Path | None = None,
              stdin: Path | None = None) -> int:
        """Start ``argv`` (``fraud.process.Child``) and record its pid; returns it. Raises ServiceError when the
        port is already taken by a process this stack did not start."""
        if port_open(self.host, self.port):
            raise ServiceError(
                f"{self.name}: port {self.host}:{self.port} is already in use by a process this stack did not start; "
                f"stop it or choose another port (see conf/local.yaml / FRAUD_* variables)")
        self.home.mkdir(parents=True, exist_ok=True)
        pid = Child(argv, self.log_file, env=env, cwd=cwd, stdin=stdin).pid
        self.pid_file.write_text(str(pid))
        return pid

    def wait_healthy(self, timeout: float) -> None:
        """Return once the health check passes. Raises ServiceError (with the log's last lines and the hint) when
        the process exits or is not healthy within ``timeout`` seconds."""
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
        """Stop the process group (TERM, then KILL after ``timeout``); True if something was running."""
        pid = self.pid()
        if pid is None:
            return False
        stop_group(pid, timeout)
        self.pid_file.unlink(missing_ok=True)
        return True
