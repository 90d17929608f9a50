"""Reading a configuration file: YAML with line numbers, and ``${VAR}`` from the environment.

:func:`read_source` parses the YAML (a syntax error is reported with its line and
column), refuses duplicate keys (PyYAML would silently keep the last one) and records
the line of every key path, so later problems can say where they are.

:func:`expand_environment` replaces ``${VAR}`` in every text value with the
variable's value (``$${`` is a literal ``${``). It never fails by itself: it says
which values used which variables and which of those are unset, and the reader of the
file decides (an unset variable is an error, except in a secret setting that is
already stored — see :mod:`jim_project.configuration.schema`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from jim_project.configuration.errors import ConfigError, KeyPath, Problem, Problems

_VARIABLE = re.compile(r"\$(\$)?\{([A-Za-z_][A-Za-z0-9_]*)\}")
_WHOLE_VARIABLE = re.compile(r"^\$\{([A-Za-z_][A-Za-z0-9_]*)\}$")
_MERGE_TAG = "tag:yaml.org,2002:merge"


@dataclass
class Source:
    """A parsed configuration file.

    ``base_dir`` is the folder relative paths are resolved against (the file's folder;
    the working directory for standard input). ``lines`` maps key paths to lines.
    """

    name: str
    base_dir: Path
    document: Any
    lines: dict[KeyPath, int]


def read_source(path: str) -> Source:
    """Read and parse ``path`` (``-`` for standard input); :class:`ConfigError` if it cannot."""
    if path == "-":
        import sys

        return parse_text(sys.stdin.read(), name="<stdin>", base_dir=Path.cwd())
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise ConfigError([f"{path}: no such file"]) from None
    except IsADirectoryError:
        raise ConfigError([f"{path}: is a folder, not a configuration file"]) from None
    except UnicodeDecodeError as exc:
        raise ConfigError([f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})"]) from None
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read it ({exc.strerror})"]) from None
    return parse_text(text, name=path, base_dir=file.resolve().parent)


def parse_text(text: str, *, name: str, base_dir: Path) -> Source:
    """Parse YAML text into a :class:`Source`; :class:`ConfigError` on a syntax error."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            raise ConfigError([f"{name}: the file is empty"])
        problems = Problems()
        lines: dict[KeyPath, int] = {}
        _locate(node, (), lines, problems, set())
        problems.raise_if_any()
        document = loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        raise ConfigError([_syntax_error(name, exc)]) from None
    except yaml.YAMLError as exc:
        raise ConfigError([f"{name}: YAML syntax error: {exc}"]) from None
    finally:
        loader.dispose()
    return Source(name=name, base_dir=base_dir, document=document, lines=lines)


def _syntax_error(name: str, exc: yaml.MarkedYAMLError) -> str:
    mark = exc.problem_mark or exc.context_mark
    where = f", line {mark.line + 1}, column {mark.column + 1}" if mark else ""
    what = " ".join(part for part in (exc.context, exc.problem) if part)
    return f"{name}{where}: YAML syntax error: {what}"


def _locate(
    node: yaml.Node,
    path: KeyPath,
    lines: dict[KeyPath, int],
    problems: Problems,
    ancestors: set[int],
) -> None:
    """Record the line of every key path under ``node``; report duplicate keys."""
    if id(node) in ancestors:  # a recursive alias: nothing new below
        return
    ancestors = ancestors | {id(node)}
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG or not isinstance(key_node, yaml.ScalarNode):
                continue
            key = key_node.value
            line = key_node.start_mark.line + 1
            if key in seen:
                problems.items.append(
                    Problem(
                        (*path, key),
                        f"duplicate key {key!r} (first given on line {seen[key]})",
                        line,
                    )
                )
                continue
            seen[key] = line
            lines.setdefault((*path, key), line)
            _locate(value_node, (*path, key), lines, problems, ancestors)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            lines.setdefault((*path, index), item.start_mark.line + 1)
            _locate(item, (*path, index), lines, problems, ancestors)


# --------------------------------------------------------------------------- environment


@dataclass(frozen=True)
class VariableUse:
    """How one text value used the environment.

    ``whole`` is the variable's name when the value is exactly ``${VAR}``; ``missing``
    the variables it names that are not set.
    """

    variables: tuple[str, ...]
    whole: str | None
    missing: tuple[str, ...]


@dataclass
class Expanded:
    """A document with ``${VAR}`` replaced, and which values used which variables."""

    document: Any
    uses: dict[KeyPath, VariableUse] = field(default_factory=dict)


def expand_environment(document: Any, environ: Mapping[str, str] | None = None) -> Expanded:
    """Replace ``${VAR}`` in every text value (not in keys) of ``document``.

    An unset variable is replaced by the empty text and listed in the
    :class:`VariableUse` of its value.
    """
    env = os.environ if environ is None else environ
    result = Expanded(document=None)
    result.document = _expand(document, (), env, result.uses)
    return result


def _expand(value: Any, path: KeyPath, env: Mapping[str, str], uses: dict) -> Any:
    if isinstance(value, str):
        return _expand_text(value, path, env, uses) if "${" in value else value
    if isinstance(value, dict):
        return {key: _expand(item, (*path, key), env, uses) for key, item in value.items()}
    if isinstance(value, list):
        return [_expand(item, (*path, index), env, uses) for index, item in enumerate(value)]
    return value


def _expand_text(text: str, path: KeyPath, env: Mapping[str, str], uses: dict) -> str:
    variables: list[str] = []
    missing: list[str] = []

    def replace(match: re.Match[str]) -> str:
        if match.group(1):  # $${NAME}: a literal ${NAME}
            return match.group(0)[1:]
        name = match.group(2)
        variables.append(name)
        if name not in env:
            missing.append(name)
            return ""
        return env[name]

    expanded = _VARIABLE.sub(replace, text)
    if variables:
        whole = _WHOLE_VARIABLE.match(text)
        uses[path] = VariableUse(
            variables=tuple(variables),
            whole=whole.group(1) if whole else None,
            missing=tuple(dict.fromkeys(missing)),
        )
    return expanded
