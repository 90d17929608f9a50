"""The demo's long-running children (the web server, the django-q2 cluster): started
together, stopped together, none left behind.

Each child runs in a process group of its own, so a Ctrl-C in the terminal reaches
only the demo, which then stops the children one by one — each is asked first
(SIGINT, as a Ctrl-C would), then killed with whatever it started if it does not
stop in time. Each also gets SIGTERM from the kernel if the demo itself dies
(:func:`jim_project.devservers.die_with_parent`), so even a killed demo leaves no
server running.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from jim_project.devservers import die_with_parent

STOP_TIMEOUT_SECONDS = 15.0


@dataclass
class Child:
    name: str
    process: subprocess.Popen[bytes]

    @property
    def pid(self) -> int:
        return self.process.pid


class Supervisor:
    """Starts children and stops them all, the last started first — and, after them,
    whatever else was handed to :meth:`stop_later` (the demo's slapd)."""

    def __init__(self) -> None:
        self.children: list[Child] = []
        self._stoppers: list[Callable[[], object]] = []

    def stop_later(self, stopper: Callable[[], object]) -> None:
        """Call ``stopper`` in :meth:`stop_all`, after the children are stopped."""
        self._stoppers.append(stopper)

    def start(self, name: str, argv: Sequence[str], *, env: dict[str, str] | None = None) -> Child:
        """Start ``argv`` in a process group of its own; its output goes to ours."""
        process = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            env=env,
            process_group=0,
            preexec_fn=die_with_parent(signal.SIGTERM),
        )
        child = Child(name, process)
        self.children.append(child)
        return child

    def wait(self, poll_seconds: float = 0.5) -> Child:
        """Block until a child exits; return it."""
        while True:
            for child in self.children:
                if child.process.poll() is not None:
                    return child
            time.sleep(poll_seconds)

    def stop_all(self, timeout: float = STOP_TIMEOUT_SECONDS) -> None:
        """Stop every child (SIGINT, then SIGKILL after ``timeout``), with the processes
        it started: nothing of theirs is left running afterwards."""
        for child in reversed(self.children):
            stop(child.process, timeout=timeout)
        self.children = []
        while self._stoppers:
            self._stoppers.pop()()


def stop(process: subprocess.Popen[bytes], *, timeout: float = STOP_TIMEOUT_SECONDS) -> int:
    """Stop a child started in its own process group, and anything left in that group."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            kill_group(process.pid)
            process.wait()
    kill_group(process.pid)  # whatever it started and did not stop
    return process.returncode


def kill_group(pgid: int) -> None:
    """SIGKILL every process of a process group (none: nothing happens)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)
