"""Problems found in a configuration file, each naming its key path.

A key path is written the way the file nests: ``sync_rules[2].flows[0].mv``,
``metaverse.object_types.person.attributes.mail``. Every problem of a file is collected
before anything is changed, so one run of ``jim apply --check`` lists them all.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

#: A key path: mapping keys (text) and list positions (integers).
KeyPath = tuple[str | int, ...]


def render_path(path: KeyPath) -> str:
    """``("sync_rules", 2, "flows", 0, "mv")`` → ``sync_rules[2].flows[0].mv``."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the file: where (key path, line when known) and why."""

    path: KeyPath
    message: str
    line: int | None = None

    def __str__(self) -> str:
        where = render_path(self.path)
        text = f"{where}: {self.message}" if where else self.message
        return f"{text} (line {self.line})" if self.line else text


class ConfigError(Exception):
    """The file cannot be applied; ``problems`` says why, one problem per line."""

    def __init__(self, problems: Iterable[Problem | str]) -> None:
        self.problems = [p if isinstance(p, Problem) else Problem((), p) for p in problems]
        super().__init__("\n".join(str(p) for p in self.problems))


class Problems:
    """Collects problems while a file is read, with the line of each key path."""

    def __init__(self, lines: dict[KeyPath, int] | None = None) -> None:
        self.lines = lines or {}
        self.items: list[Problem] = []

    def add(self, path: KeyPath, message: str) -> None:
        self.items.append(Problem(path, message, self.line_of(path)))

    def line_of(self, path: KeyPath) -> int | None:
        """The line of ``path``, or of its nearest ancestor the file spells out."""
        for end in range(len(path), -1, -1):
            line = self.lines.get(path[:end])
            if line is not None:
                return line
        return None

    def __bool__(self) -> bool:
        return bool(self.items)

    def raise_if_any(self) -> None:
        """Raise :class:`ConfigError` with every problem, in the order of the file."""
        if self.items:
            raise ConfigError(sorted(self.items, key=lambda p: p.line or 0))
