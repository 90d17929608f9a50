"""A spool: what a run captures, pickled to a temporary file and read back in the order
written, so that a preview of 100,000 objects keeps it on disk, not in memory."""

from __future__ import annotations

import pickle
import tempfile
from collections.abc import Iterator
from typing import IO, Any


class Spool:
    """Entries pickled to a temporary file (removed when the spool is closed)."""

    def __init__(self, prefix: str = "jim-spool-") -> None:
        self._file: IO[bytes] = tempfile.TemporaryFile(prefix=prefix)  # noqa: SIM115

    def __enter__(self) -> Spool:
        return self

    def __exit__(self, *exc: object) -> None:
        self._file.close()

    def write(self, entry: Any) -> None:
        pickle.dump(entry, self._file, protocol=pickle.HIGHEST_PROTOCOL)

    def read(self) -> Iterator[Any]:
        """Every entry written, in order (the spool can be read again)."""
        self._file.flush()
        self._file.seek(0)
        while True:
            try:
                yield pickle.load(self._file)
            except EOFError:
                return
