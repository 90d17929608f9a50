"""Servers JIM starts for itself on this machine — the demo's, the test rig's — and
the helpers they share.

Each runs as a child process in a folder of its own, on loopback ports, and receives a
signal when its parent dies (:func:`die_with_parent`), so none outlives the process
that started it, however that process ends. :mod:`.slapd` is a private OpenLDAP.
"""

from __future__ import annotations

import contextlib
import ctypes
import signal
import socket
import threading
from collections.abc import Callable
from pathlib import Path

_PR_SET_PDEATHSIG = 1


def die_with_parent(sig: signal.Signals) -> Callable[[], None] | None:
    """A ``preexec_fn`` that makes the child receive ``sig`` when its parent dies.

    Linux delivers the signal when the *thread* that started the child ends, so this
    is only used from the main thread; from any other thread it returns ``None`` and
    the child relies on being stopped normally.
    """
    if threading.current_thread() is not threading.main_thread():
        return None
    libc = ctypes.CDLL(None, use_errno=True)

    def preexec() -> None:
        libc.prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0)

    return preexec


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    """True when a TCP connection to ``host:port`` succeeds."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


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
