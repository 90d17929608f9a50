"""Helpers shared by the private servers the test rig starts (PostgreSQL, slapd).

A private server lives in a temporary folder named ``jim-test-<kind>-<pid>-…`` and is
started with :func:`die_with_parent`, so the kernel stops it when the pytest process
that started it dies, however it dies (a failing test, Ctrl-C, a CI timeout's
SIGTERM, SIGKILL). :func:`remove_stale_dirs` then deletes what such a death left
on disk, at the next start.
"""

from __future__ import annotations

import os
import random
import shutil
import socket
import tempfile
from pathlib import Path

# The process helpers are shared with the demo's servers.
from jim_project.devservers import die_with_parent, file_size, port_open, tail

__all__ = [
    "die_with_parent",
    "file_size",
    "free_port",
    "make_private_dir",
    "pid_alive",
    "port_open",
    "remove_stale_dirs",
    "tail",
]


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
