"""Staged pages kept on disk until the whole import has been screened.

An import decides whether it may write anything only after it has read its whole
source (:mod:`connectors.importing.screening`), so what each page would write is
spooled to an anonymous temporary file and replayed afterwards. Memory stays bounded
by one page; the file has no name, so a killed run leaves nothing behind. The disk it
takes is about the size of the staged CSO documents (some hundred bytes per object).
"""

from __future__ import annotations

import pickle
import tempfile
from collections.abc import Iterator
from types import TracebackType
from typing import Generic, TypeVar

Page = TypeVar("Page")


class Spool(Generic[Page]):
    """Pages written in order, read back once in the same order."""

    def __init__(self) -> None:
        self._file = tempfile.TemporaryFile(prefix="jim-import-")  # noqa: SIM115 (closed by close())
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def add(self, page: Page) -> None:
        pickle.dump(page, self._file, protocol=pickle.HIGHEST_PROTOCOL)
        self._count += 1

    def replay(self) -> Iterator[Page]:
        """Every page added, in order (pages added while replaying are not read)."""
        self._file.flush()
        self._file.seek(0)
        for _ in range(self._count):
            yield pickle.load(self._file)

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> Spool[Page]:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
