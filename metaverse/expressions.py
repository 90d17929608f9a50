"""Jinja2 expressions of sync rules: scopes, expression flows and DN templates.

Everything runs in Jinja2's sandbox. ``cs`` and ``mv`` are views of an object's
attributes: a single-valued attribute is its value (``None`` when absent), a
multi-valued one a list. Besides Jinja2's filters, a small library of identity helpers
is available both as globals and as filters (see :data:`HELPERS` and
docs/expressions.md).

``apply`` compiles every expression (:func:`compile_expression`,
:func:`compile_dn_template`) so a file with a broken one is rejected; at run time an
evaluation error is raised as :class:`ExpressionError` for the processor to record on
that object.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from functools import lru_cache
from typing import Any

from jinja2 import StrictUndefined, TemplateError, TemplateSyntaxError
from jinja2.sandbox import SandboxedEnvironment


class ExpressionSyntaxError(ValueError):
    """An expression or template that does not parse."""


class ExpressionError(ValueError):
    """An expression that failed when evaluated on an object."""


# --------------------------------------------------------------------------- helpers


def coalesce(*values: Any) -> Any:
    """The first value that is neither None nor empty ('' or [])."""
    for value in values:
        if value is None or value == "" or value == []:
            continue
        return value
    return None


def first(value: Any) -> Any:
    """The first item of a list (None when empty); a single value as it is."""
    if isinstance(value, (list, tuple)):
        return value[0] if value else None
    return value


_RDN_SPECIAL = {",", "+", '"', "\\", "<", ">", ";", "="}


def ldap_escape(value: Any) -> str:
    """Escape a value for use as an LDAP RDN value (RFC 4514, section 2.4)."""
    text = "" if value is None else str(value)
    out: list[str] = []
    for index, char in enumerate(text):
        if char in _RDN_SPECIAL:
            out.append("\\" + char)
        elif char == "\x00":
            out.append("\\00")
        elif index == 0 and char in (" ", "#"):
            out.append("\\" + char)
        elif index == len(text) - 1 and char == " ":
            out.append("\\ ")
        else:
            out.append(char)
    return "".join(out)


def now() -> dt.datetime:
    """The current time, timezone-aware UTC."""
    return dt.datetime.now(dt.UTC)


def join_values(value: Any, separator: str = " ") -> str:
    """Join the non-empty values of a list into text."""
    if value is None:
        return ""
    if isinstance(value, (list, tuple)):
        return separator.join(str(v) for v in value if v not in (None, ""))
    return str(value)


HELPERS: dict[str, Any] = {
    "coalesce": coalesce,
    "first": first,
    "ldap_escape": ldap_escape,
    "now": now,
    "join_values": join_values,
}


# --------------------------------------------------------------------------- objects


class AttributeView(Mapping[str, Any]):
    """Read-only view of an object's attributes for expressions.

    ``multivalued`` names the attributes that are lists; the others are their single
    value. An absent attribute reads as ``None`` (``[]`` when multi-valued), so
    ``cs.status != 'Terminated'`` works on an object that has no status.
    """

    __slots__ = ("_multivalued", "_values")

    def __init__(self, values: Mapping[str, list[Any]], multivalued: Iterable[str] = ()) -> None:
        self._values = values
        self._multivalued = frozenset(multivalued)

    def __getitem__(self, name: str) -> Any:
        values = self._values.get(name) or []
        if name in self._multivalued:
            return list(values)
        return values[0] if values else None

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return self[name]

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __contains__(self, name: object) -> bool:
        return name in self._values


# --------------------------------------------------------------------------- compile


class _Environment(SandboxedEnvironment):
    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        if isinstance(obj, AttributeView):
            return not attr.startswith("_")
        return super().is_safe_attribute(obj, attr, value)


def _build_environment(finalize: Any = None) -> SandboxedEnvironment:
    env = _Environment(undefined=StrictUndefined, autoescape=False, finalize=finalize)
    env.globals.update(HELPERS)
    env.filters.update(HELPERS)
    return env


_ENV = _build_environment()
_DN_ENV = _build_environment(finalize=lambda value: ldap_escape(value))


class CompiledExpression:
    """A compiled Jinja2 expression (scope or flow)."""

    def __init__(self, source: str) -> None:
        self.source = source
        try:
            self._expr = _ENV.compile_expression(source, undefined_to_none=False)
        except TemplateSyntaxError as exc:
            raise ExpressionSyntaxError(f"{exc.message} in expression {source!r}") from None

    def evaluate(self, **context: Any) -> Any:
        """Evaluate with ``cs``/``mv`` (AttributeViews) and any other names."""
        try:
            result = self._expr(**context)
        except (TemplateError, ArithmeticError, TypeError, ValueError, LookupError) as exc:
            raise ExpressionError(f"{type(exc).__name__}: {exc}") from None
        except Exception as exc:
            raise ExpressionError(f"{type(exc).__name__}: {exc}") from None
        if hasattr(result, "_undefined_name") or type(result).__name__.endswith("Undefined"):
            return None
        return result


class CompiledTemplate:
    """A compiled DN template: placeholders are RDN-escaped before they are put in."""

    def __init__(self, source: str) -> None:
        self.source = source
        try:
            self._template = _DN_ENV.from_string(source)
        except TemplateSyntaxError as exc:
            raise ExpressionSyntaxError(f"{exc.message} in template {source!r}") from None

    def render(self, **context: Any) -> str:
        try:
            return self._template.render(**context).strip()
        except Exception as exc:
            raise ExpressionError(f"{type(exc).__name__}: {exc}") from None


@lru_cache(maxsize=1024)
def compile_expression(source: str) -> CompiledExpression:
    """Compile (and cache) an expression; :class:`ExpressionSyntaxError` if it does not parse."""
    return CompiledExpression(source)


@lru_cache(maxsize=256)
def compile_dn_template(source: str) -> CompiledTemplate:
    """Compile (and cache) a DN template; :class:`ExpressionSyntaxError` if it does not parse."""
    return CompiledTemplate(source)


def is_true(value: Any) -> bool:
    """Scope truthiness: None, False, '' and [] are out of scope."""
    return bool(value)
