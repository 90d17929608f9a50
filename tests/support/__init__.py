"""Helpers shared by the private servers the test rig starts (PostgreSQL, slapd).

A private server lives in a temporary folder named ``jim-test-<kind>-<pid>-…`` and is
started with :func:`die_with_parent`, so the kernel stops it when the pytest process
that started it dies, however it dies (a failing test, Ctrl-C, a CI timeout's
SIGTERM, SIGKILL). :func:`remove_stale_dirs` then deletes what such a death left
on disk, at the next start.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import random
import shutil
import signal
import socket
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path

_PR_SET_PDEATHSIG = 1


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on at the moment of asking.

    Ports come from below the kernel's ephemeral range (32768+), in a block of its own
    for each pytest-xdist worker: a server stopped by a test gets its ports back on
    restart, so no client connection and no other worker's server may take them.
    """
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw")
    index = int(worker[2:]) + 1 if worker[2:].isdigit() else 0
    start = 20000 + index * 1000
    for port in random.sample(range(start, start + 1000), 1000):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {start}-{start + 999}")


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    """True when a TCP connection to ``host:port`` succeeds."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def die_with_parent(sig: signal.Signals) -> Callable[[], None] | None:
    """A ``preexec_fn`` that makes the child receive ``sig`` when its parent dies.

    Linux delivers the signal when the *thread* that started the child ends, so this
    is only used from the main thread (where fixtures and pytest hooks run); from any
    other thread it returns ``None`` and the child relies on the normal teardown.
    The signal survives ``exec`` because the child runs no set-user-id program.
    """
    if threading.current_thread() is not threading.main_thread():
        return None
    libc = ctypes.CDLL(None, use_errno=True)

    def preexec() -> None:
        libc.prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0)

    return preexec


def make_private_dir(kind: str) -> Path:
    """Create a temporary folder for a private server, tagged with this process id."""
    remove_stale_dirs(kind)
    return Path(tempfile.mkdtemp(prefix=f"jim-test-{kind}-{os.getpid()}-"))


def remove_stale_dirs(kind: str) -> None:
    """Delete private-server folders whose pytest process no longer exists."""
    for path in Path(tempfile.gettempdir()).glob(f"jim-test-{kind}-*-*"):
        pid_text = path.name.split("-")[3]
        if pid_text.isdigit() and not pid_alive(int(pid_text)):
            shutil.rmtree(path, ignore_errors=True)


def pid_alive(pid: int) -> bool:
    """True when a process with this id exists."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def file_size(path: Path) -> int:
    """The size of a file in bytes, 0 when it does not exist."""
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def tail(path: Path, *, since: int = 0, lines: int = 60) -> str:
    """The last lines a log file got after byte offset ``since``, for error messages."""
    with contextlib.suppress(OSError), path.open("rb") as log:
        log.seek(since)
        text = log.read().decode(errors="replace")
        return "\n".join(text.splitlines()[-lines:]) or "(no output)"
    return "(no output)"
