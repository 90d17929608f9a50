"""Write-behind: each page (or batch) of a run written in its own transaction —
behind the reader when it can.

On PostgreSQL, outside a transaction (``jim run``, a worker), a page's writes run in
a background thread with its own database connection while the run reads and
stages the next page: the server works on page N while Python works on page N+1,
both cores busy. At most one page is in flight. Inside a transaction (tests) or on
another database, each page is written in place, before the next is read.

Either way each page is one transaction, pages are committed in order, and a page's
``then`` step runs in the calling thread once its writes are committed. A failed
write is raised in the calling thread at the next :meth:`PageWriter.submit`,
:meth:`PageWriter.finish` or at :meth:`PageWriter.close`; the pages after it are
never written.

Reading one page ahead means the reader may not see the previous page's writes yet:
each user says what it does about that (the import: an external id twice in a row
is caught in memory, a reference to an object of the previous page resolves after
the last page; the sync writes only its RPEIs behind, nothing it reads, and calls
:meth:`PageWriter.finish` before deleting objects they may name).
The write step runs in another thread, so it must only use data that the calling
thread no longer changes (rows taken beforehand, not live model instances).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AbstractContextManager
from types import TracebackType
from typing import Any

from django.db import connection, connections, transaction

logger = logging.getLogger(__name__)

Step = Callable[[], object]


class PageWriter:
    """Runs page writes in order, each in a transaction, possibly in the background."""

    def __init__(
        self,
        *,
        background: bool | None = None,
        atomic: Callable[[], AbstractContextManager[Any]] = transaction.atomic,
    ) -> None:
        if background is None:
            background = connection.vendor == "postgresql" and not connection.in_atomic_block
        self._executor = (
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="jim-import-writer")
            if background
            else None
        )
        self._pending: tuple[Future[None], Step] | None = None
        self._atomic = atomic

    @property
    def background(self) -> bool:
        return self._executor is not None

    def submit(self, write: Step, then: Step) -> None:
        """Write a page (``write`` in a transaction), then run ``then`` here."""
        self.finish()
        if self._executor is None:
            self._in_transaction(write)
            then()
        else:
            self._pending = (self._executor.submit(self._in_transaction, write), then)

    def finish(self) -> None:
        """Wait for the page in flight, if any, and run its ``then``."""
        if self._pending is not None:
            future, then = self._pending
            self._pending = None
            future.result()
            then()

    def close(self) -> None:
        """Finish the page in flight and stop the background thread."""
        try:
            self.finish()
        finally:
            self._stop()

    def _stop(self) -> None:
        if self._executor is None:
            return
        executor, self._executor = self._executor, None
        executor.submit(connections.close_all).result()
        executor.shutdown()

    def __enter__(self) -> PageWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is None:
            self.close()
            return
        # The run is failing already: still record the page whose writes committed,
        # but let the original error be the one raised (and reported). The page's own
        # failure is most often the same cause (the database connection lost): one
        # line, no traceback.
        try:
            self.finish()
        except Exception as page_error:
            logger.warning("Writing the page in flight failed as the run stopped: %s", page_error)
        finally:
            self._stop()

    def _in_transaction(self, write: Step) -> None:
        with self._atomic():
            write()
