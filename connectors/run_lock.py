"""The lock a run holds on its activity for as long as its process lives.

A run claims its connected system by putting its activity ``in_progress`` — the
constraints ``one_running_activity_per_system`` and ``one_running_sync`` refuse a
second claim. That claim is a row, and a row outlives its process: after ``kill -9``,
an OOM kill or a reboot it would hold the system for ever. So a run also holds a lock
that is released by the database server or the kernel the moment its process (or its
session) is gone, and an ``in_progress`` activity whose lock is free is known dead —
whoever meets it records it as failed and goes on (:func:`connectors.dead_runs.fail_dead`).

The lock is taken before the activity is claimed and released after its outcome is
written, so an ``in_progress`` activity has a live holder or none.

PostgreSQL
    A session-level advisory lock, keys (:data:`NAMESPACE`, activity id), held on a
    connection of its own that the run opens and closes. Not on Django's connection,
    which Django may close and reopen (``CONN_MAX_AGE``, django-q2 calling
    ``close_old_connections``) and which the write-behind thread does not share. The
    server releases the lock when that session ends: the process died, the connection
    was terminated (``pg_terminate_backend``), the server restarted. The run checks its
    lock connection at its progress points (:meth:`RunLock.check`) and stops when it
    is gone, since another run may then take the system. The lock needs a real session:
    not a pooler in transaction mode (PgBouncer's ``pool_mode=transaction``).

SQLite (the demo)
    An exclusive ``flock`` on ``activity-<id>.lock`` in a folder beside the database
    file (``<database>.runs/``), released by the kernel when the process dies. Whoever
    holds the lock deletes the file before releasing it.

Connections of a run are named ``jim activity <id>`` (PostgreSQL's
``application_name``), so an operator sees them in ``pg_stat_activity``.
"""

from __future__ import annotations

import errno
import fcntl
import os
import tempfile
from pathlib import Path
from typing import Any, Protocol

import psycopg
from django.db import connection

#: The first key of JIM's advisory locks ("JIM\\0"); the second is the activity id.
NAMESPACE = 0x4A494D00


class AlreadyHeld(Exception):
    """Another process holds the lock of this activity (it is starting it too)."""


class LockLost(Exception):
    """The session that held the lock is gone: the lock may be someone else's now."""


class RunLock(Protocol):
    activity_id: int

    def check(self) -> None:
        """Raise :class:`LockLost` when the lock is no longer held."""

    def release(self) -> None:
        """Let go of the lock (idempotent)."""


def application_name(activity_id: int) -> str:
    """The ``application_name`` of a run's database connections."""
    return f"jim activity {activity_id}"


def hold(activity_id: int) -> RunLock:
    """Take the lock of an activity for this process; :class:`AlreadyHeld` if taken."""
    if connection.vendor == "postgresql":
        return _AdvisoryLock(activity_id)
    return _FileLock(activity_id)


def is_held(activity_id: int) -> bool:
    """Whether a live process holds the lock of this activity.

    Never true of a lock held through the caller's own Django connection — no lock is.
    """
    if connection.vendor == "postgresql":
        return _advisory_lock_held(activity_id)
    return _file_lock_held(_lock_file(activity_id))


# --------------------------------------------------------------------------- PostgreSQL


def _keys(activity_id: int) -> tuple[int, int]:
    """The two int4 keys (ids beyond 2**32 share keys with ids 2**32 lower)."""
    return NAMESPACE, (activity_id + 2**31) % 2**32 - 2**31


class _AdvisoryLock:
    def __init__(self, activity_id: int) -> None:
        self.activity_id = activity_id
        params = connection.get_connection_params()
        params["application_name"] = application_name(activity_id)
        self._session: psycopg.Connection | None = psycopg.connect(**params, autocommit=True)
        try:
            row = self._take(self._session, activity_id)
        except BaseException:
            self.release()
            raise
        if not (row and row[0]):
            self.release()
            raise AlreadyHeld(f"activity #{activity_id} is being run by another process")

    @staticmethod
    def _take(session: psycopg.Connection, activity_id: int) -> tuple[Any, ...] | None:
        if session.info.server_version >= 140000:
            # The session is idle between checks; an installation's idle_session_timeout
            # must not end it (and free the lock) under a live run.
            session.execute("SET idle_session_timeout = 0")
        # A host that vanishes (power loss, reboot, partition) sends no FIN: the server
        # probes the idle session and frees the lock within about a minute, not the
        # kernel's default two hours.
        session.execute("SET tcp_keepalives_idle = 30")
        session.execute("SET tcp_keepalives_interval = 10")
        session.execute("SET tcp_keepalives_count = 3")
        return session.execute("SELECT pg_try_advisory_lock(%s, %s)", _keys(activity_id)).fetchone()

    def check(self) -> None:
        if self._session is None:
            raise LockLost("the run lock was released")
        try:
            self._session.execute("SELECT 1")
        except psycopg.Error as exc:
            raise LockLost(first_line(exc)) from None

    def release(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            session.close()  # the server releases the session's locks


def _advisory_lock_held(activity_id: int) -> bool:
    keys = _keys(activity_id)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s, %s)", keys)
        acquired = cursor.fetchone()[0]
        if acquired:
            cursor.execute("SELECT pg_advisory_unlock(%s, %s)", keys)
    return not acquired


# --------------------------------------------------------------------------- SQLite


def lock_folder() -> Path:
    """``<database file>.runs``, beside the database (a temporary folder for an
    in-memory database, which lives in one process anyway)."""
    name = str(connection.settings_dict["NAME"])
    if name == ":memory:" or name.startswith("file:"):
        folder = Path(tempfile.gettempdir()) / f"jim-runs-{os.getpid()}"
    else:
        database = Path(name)
        folder = database.with_name(database.name + ".runs")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _lock_file(activity_id: int) -> Path:
    return lock_folder() / f"activity-{activity_id}.lock"


class _FileLock:
    def __init__(self, activity_id: int) -> None:
        self.activity_id = activity_id
        self._path = _lock_file(activity_id)
        self._fd: int | None = None
        while self._fd is None:
            fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o600)
            if not _try_flock(fd):
                os.close(fd)
                raise AlreadyHeld(f"activity #{activity_id} is being run by another process")
            if _names(self._path, fd):
                self._fd = fd
            else:  # deleted by its previous holder between our open and our lock
                os.close(fd)

    def check(self) -> None:
        if self._fd is None:
            raise LockLost("the run lock was released")

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            self._path.unlink(missing_ok=True)
            os.close(fd)


def _file_lock_held(path: Path) -> bool:
    try:
        fd = os.open(path, os.O_RDWR)
    except FileNotFoundError:
        return False  # released (or never taken)
    try:
        if not _try_flock(fd):
            return True
        if _names(path, fd):
            path.unlink(missing_ok=True)  # its holder died: the file is ours to clear away
        return False
    finally:
        os.close(fd)


def _try_flock(fd: int) -> bool:
    """``flock``, not ``lockf``: a lock per open file, so a probe from the holder's own
    process sees it held."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            return False
        raise
    return True


def _names(path: Path, fd: int) -> bool:
    """Whether ``path`` is still the file open as ``fd``."""
    try:
        return os.stat(path).st_ino == os.fstat(fd).st_ino
    except FileNotFoundError:
        return False


def first_line(exc: BaseException) -> str:
    """An exception's message on one line (a database error's first line is the cause)."""
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__
