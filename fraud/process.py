"""Child processes, started and stopped in one place (psutil): the children of ``fraud run``, the stream's delivery
process, the local services (``fraud.stack``) and the stream processes of the tests and benchmarks.

A child runs in a session of its own (its own process group), so a Ctrl-C at the terminal reaches only the parent,
which stops its children in order; and a kill of the group takes the child's own children (a JVM, Python workers)
with it.
"""
from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Sequence

import psutil


class Child:
    """``argv`` started now in its own process group (or, ``own_group=False``, in its parent's: a kill of the
    parent's group takes it too); output appended to ``log`` (None: the parent's), input from ``stdin`` (a file;
    None: nothing), at CPU niceness ``nice``."""

    def __init__(self, argv: Sequence[str], log: Path | None = None, *, env: dict[str, str] | None = None,
                 cwd: Path | None = None, stdin: Path | None = None, nice: int = 0, own_group: bool = True):
        self.argv, self.own_group = list(argv), own_group
        with open(log, "ab") if log else open(os.devnull, "rb") as out, open(stdin or os.devnull, "rb") as source:
            if log:
                out.write(f"\n==== {time.strftime('%Y-%m-%d %H:%M:%S')} starting: {' '.join(self.argv)}\n".encode())
                out.flush()
            self.proc = psutil.Popen(self.argv, stdout=out if log else None, stderr=subprocess.STDOUT if log else None,
                                     stdin=source, cwd=cwd, env={**os.environ, **(env or {})},
                                     start_new_session=own_group, preexec_fn=(lambda: os.nice(nice)) if nice else None)
        self.pid: int = self.proc.pid

    def poll(self) -> int | None:
        """The exit code, or None while it runs."""
        return self.proc.poll()

    @property
    def returncode(self) -> int | None:
        return self.proc.returncode

    def stop(self, sig: int = signal.SIGTERM, patience_s: float = 120.0) -> int | None:
        """Send ``sig`` (SIGTERM, or SIGINT for a Ctrl-C) to the child alone, which stops its own children; if it
        has not exited within ``patience_s``, kill its whole group. Returns the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.wait(patience_s)

    def wait(self, patience_s: float) -> int | None:
        """Wait for the child to exit; kill it (``kill``) if it has not within ``patience_s``. Returns the exit
        code."""
        try:
            self.proc.wait(patience_s)
        except subprocess.TimeoutExpired:
            self.kill()
        return self.proc.returncode

    def kill(self) -> None:
        """SIGKILL to the child's process group (to the child alone when it shares its parent's group): a crash,
        nothing is stopped cleanly. Reaps it."""
        if self.own_group:
            kill_group(self.pid, signal.SIGKILL)
        else:
            self.proc.kill()
        self.proc.wait()


def kill_group(pid: int, sig: int) -> None:
    """``sig`` to the process group led by ``pid`` (nothing when it is gone)."""
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        pass


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (exists and is not a zombie)."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def stop_group(pid: int, patience_s: float = 30.0) -> None:
    """Stop the process group led by ``pid`` (a service started by an earlier command, known by its pid file):
    SIGTERM, then SIGKILL after ``patience_s``; returns once the leader is gone."""
    kill_group(pid, signal.SIGTERM)
    try:
        leader = psutil.Process(pid)
    except psutil.NoSuchProcess:
        return
    _, running = psutil.wait_procs([leader], timeout=patience_s)
    if running and alive(pid):
        kill_group(pid, signal.SIGKILL)
        psutil.wait_procs([leader], timeout=patience_s)


def resident_memory_mb(pid: int) -> float:
    """Resident memory of ``pid`` and all its descendants, in MiB (0 when it is gone)."""
    try:
        leader = psutil.Process(pid)
        processes = [leader, *leader.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0.0
    total = 0
    for process in processes:
        try:
            total += process.memory_info().rss
        except psutil.NoSuchProcess:
            continue
    return total / 2 ** 20
