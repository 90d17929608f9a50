"""Jinja2 expressions of sync rules: scopes, expression flows and DN templates.

Everything runs in Jinja2's sandbox. ``cs`` and ``mv`` are views of an object's
attributes: a single-valued attribute is its value (``None`` when absent), a
multi-valued one a list. ``cs.name`` always reads the attribute ``name`` (``cs['a-b']``
reads names that are not identifiers). Besides Jinja2's filters, a library of identity
helpers is available both as globals and as filters (see :data:`HELPERS` and
docs/expressions.md).

Two deliberate differences from plain Jinja2, so that a missing value never turns into
the text ``None`` in someone's account name:

* ``~`` (concatenation) treats ``None`` as empty text;
* the text filters ``lower``, ``upper``, ``title``, ``capitalize``, ``trim`` and
  ``replace`` keep ``None`` as ``None`` and work value by value on lists.

Every evaluation runs within a memory and a time budget (:mod:`metaverse.expression_budget`,
:mod:`metaverse.bounded_operations`): what would build more text or items than the
budget, or run past its deadline, is an :class:`ExpressionError` naming the limit.

``apply`` compiles every expression (:func:`compile_expression`,
:func:`compile_dn_template`) so a file with a broken one is rejected, and checks the
names it reads (:func:`names_read`); at run time an evaluation error is raised as
:class:`ExpressionError` — never another exception type — for the processor to record
on that object.
"""

from __future__ import annotations

import datetime as dt
import re
import types
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from jinja2 import StrictUndefined, Template, TemplateSyntaxError, Undefined, nodes
from jinja2.compiler import CodeGenerator, Frame
from jinja2.meta import find_undeclared_variables
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment

from core.dn import escape_rdn_value
from metaverse import expression_budget
from metaverse.bounded_operations import (
    BINOPS,
    REMOVED_GLOBALS,
    bound_filters,
    bound_tests,
    check_binop,
    check_method,
    formatter_for,
    join_texts,
)
from metaverse.expression_budget import (
    BudgetExceeded,
    bounded_range,
    replace_size,
    strftime_size,
)


class ExpressionSyntaxError(ValueError):
    """An expression or template that does not parse."""


class ExpressionError(ValueError):
    """An expression that failed when evaluated on an object."""


class ExpressionLimitError(ExpressionError):
    """An expression that would exceed its memory or time budget on an object."""


#: The names an expression reads objects through.
OBJECT_NAMES = ("cs", "mv")

# --------------------------------------------------------------------------- helpers


def _each(value: Any, function: Callable[[Any], Any]) -> Any:
    """Apply ``function`` to a value, to each value of a list, and keep None as None."""
    if value is None:
        return None
    if isinstance(value, (list, tuple)):
        return [None if item is None else function(item) for item in value]
    return function(value)


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


def ldap_escape(value: Any) -> str:
    """Escape a value for use as an LDAP RDN value (RFC 4514, section 2.4), as the LDAP
    connector parses DNs (:func:`core.dn.escape_rdn_value`).
    None is the empty text."""
    if value is None:
        return ""
    budget = expression_budget.current()
    if budget is None:
        return escape_rdn_value(str(value))
    text = budget.text_of(value)
    # Escaping goes character by character in Python, and may triple the text
    # ('\00' for NUL): charged as three times its length.
    budget.charge(text=3 * len(text))
    return escape_rdn_value(text)


def now() -> dt.datetime:
    """The current time, timezone-aware UTC."""
    return dt.datetime.now(dt.UTC)


def join_values(value: Any, separator: str = " ") -> str:
    """Join the non-empty values of a list into text (a single value as text)."""
    if value is None:
        return ""
    if isinstance(value, (list, tuple)):
        values = [v for v in value if v not in (None, "")]
        budget = expression_budget.current()
        if budget is not None:
            return join_texts(budget, values, separator)
        return separator.join(str(v) for v in values)
    return str(value)


def split(value: Any, separator: str | None = None) -> list[str]:
    """Split text into a list (on whitespace by default); None is ``[]``.

    Empty parts are dropped, so ``'a;;b' | split(';')`` is ``['a', 'b']``.
    """
    if value is None:
        return []
    text = str(value)
    budget = expression_budget.current()
    parts = (
        text.split(separator)
        if budget is None
        else expression_budget.bounded_split(budget, text.split, separator)
    )
    return [part.strip() for part in parts if part.strip()]


#: Letters that Unicode decomposition does not reduce to ASCII.
_TRANSLITERATIONS = str.maketrans(
    {
        "ß": "ss",
        "æ": "ae",
        "Æ": "AE",
        "œ": "oe",
        "Œ": "OE",
        "ø": "o",
        "Ø": "O",
        "đ": "d",
        "Đ": "D",
        "ð": "d",
        "Ð": "D",
        "þ": "th",
        "Þ": "Th",
        "ł": "l",
        "Ł": "L",
        "\u0131": "i",  # dotless i
    }
)


def _normalize_text(value: Any) -> str:
    decomposed = unicodedata.normalize("NFKD", str(value).translate(_TRANSLITERATIONS))
    return decomposed.encode("ascii", "ignore").decode("ascii")


def normalize(value: Any) -> Any:
    """Text reduced to ASCII: accents stripped (``é`` → ``e``), ``ß`` → ``ss``, ``ø`` → ``o``…

    Characters with no ASCII form are dropped. None stays None; lists value by value.
    """
    return _each(value, _normalize_text)


def replace_chars(value: Any, characters: str, replacement: str = "") -> Any:
    """Replace every one of ``characters`` by ``replacement`` (removed by default).

    ``"O'Brien-Smith" | replace_chars("' -")`` is ``OBrienSmith``.
    """
    table = str.maketrans(dict.fromkeys(characters, replacement))
    budget = expression_budget.current()

    def replace(item: Any) -> str:
        text = str(item)
        if budget is not None:
            budget.charge(text=len(text) * max(1, len(replacement)))
        return text.translate(table)

    return _each(value, replace)


def to_datetime(value: Any) -> dt.datetime | None:
    """A datetime from a datetime, a date or ISO 8601 text; naive values are taken as UTC.

    None and '' are None; text that is not a date is an error.
    """
    if value is None or value == "":
        return None
    if isinstance(value, dt.datetime):
        result = value
    elif isinstance(value, dt.date):
        result = dt.datetime(value.year, value.month, value.day)
    else:
        text = str(value).strip()
        try:
            result = dt.datetime.fromisoformat(text)
        except ValueError:
            raise ValueError(f"{text!r} is not an ISO 8601 date or time") from None
    return result if result.tzinfo else result.replace(tzinfo=dt.UTC)


def format_date(value: Any, format: str = "%Y-%m-%d") -> str | None:
    """A date or time (or ISO 8601 text) formatted with ``strftime``; None stays None."""
    moment = to_datetime(value)
    if moment is None:
        return None
    budget = expression_budget.current()
    if budget is not None:
        budget.charge(text=strftime_size(format))
    return moment.strftime(format)


#: The most numbered candidates one ``unique(...)`` may propose.
UNIQUE_MAX_NUMBERS = 10_000

_UNIQUE_FIELDS = re.compile(r"\{base\}|\{n\}")


@dataclass(frozen=True)
class UniqueRequest:
    """What ``unique(...)`` asks for: candidate values, tried in order by the sync
    (:mod:`metaverse.sync.unique`), which takes the first one not in use.

    The expression only proposes; what is in use (the target's connector space, this
    run's claims, the target itself) is known to the run, not to the expression. So
    ``unique(...)`` must be the whole expression of an export flow (``jim apply``
    checks it): used as text (``unique(x) ~ '1'``) it is an error.
    """

    bases: tuple[str, ...]
    pattern: str = "{base}{n}"
    start: int = 2
    max: int = 999
    check_target: bool = False

    def candidates(self) -> Iterator[str]:
        """The bases, then the first base numbered by the pattern, ``start`` to ``max``."""
        yield from self.bases
        first_base = self.bases[0]
        for number in range(self.start, self.max + 1):
            yield self.pattern.replace("{base}", first_base).replace("{n}", str(number))

    def __str__(self) -> str:
        raise ExpressionError(
            "unique(...) gives a value only as the whole expression of an export flow "
            "(write unique(normalize(...) | lower), not unique(...) | lower or unique(...) ~ x)"
        )


def unique(
    base: Any,
    pattern: str = "{base}{n}",
    start: int = 2,
    max: int = 999,
    check_target: bool = False,
) -> UniqueRequest | None:
    """Candidates for a value that must be unique in the target system (an account
    name): ``base`` (a value, or a list of values tried in order), then the first one
    numbered by ``pattern`` from ``start`` to ``max`` — ``jsmith``, ``jsmith2``, …

    ``check_target=true`` also asks the target system itself (see docs/configuration.md,
    "Unique values"). No base (None, '' or []) is no value.
    """
    values = base if isinstance(base, (list, tuple)) else [base]
    bases: list[str] = []
    for value in values:
        if isinstance(value, (list, tuple, dict)):
            raise ExpressionError(f"unique(): a candidate is not a single value: {value!r}")
        text = "" if value is None else str(value).strip()
        if text and text not in bases:
            bases.append(text)
    if not isinstance(pattern, str) or "{n}" not in pattern:
        raise ExpressionError(f"unique(): pattern {pattern!r} must contain {{n}}")
    if "{" in _UNIQUE_FIELDS.sub("", pattern) or "}" in _UNIQUE_FIELDS.sub("", pattern):
        raise ExpressionError(
            f"unique(): pattern {pattern!r} may use only {{base}} and {{n}} as placeholders"
        )
    if not all(isinstance(n, int) and not isinstance(n, bool) for n in (start, max)):
        raise ExpressionError(f"unique(): start and max must be whole numbers ({start!r}, {max!r})")
    if start < 0 or max < start - 1 or max - start + 1 > UNIQUE_MAX_NUMBERS:
        raise ExpressionError(
            f"unique(): start={start}, max={max}: numbers must run from 0 up, "
            f"at most {UNIQUE_MAX_NUMBERS} of them"
        )
    if not bases:
        return None
    budget = expression_budget.current()
    if budget is not None:
        budget.charge(text=sum(map(len, bases)) + len(pattern))
    return UniqueRequest(tuple(bases), pattern, start, max, bool(check_target))


HELPERS: dict[str, Any] = {
    "coalesce": coalesce,
    "first": first,
    "ldap_escape": ldap_escape,
    "now": now,
    "join_values": join_values,
    "split": split,
    "normalize": normalize,
    "replace_chars": replace_chars,
    "to_datetime": to_datetime,
    "format_date": format_date,
}


def _text_filter(method: Callable[[str], str]) -> Callable[[Any], Any]:
    return lambda value: _each(value, lambda item: method(str(item)))


def _replace(value: Any, old: str, new: str, count: int | None = None) -> Any:
    times = -1 if count is None else count
    budget = expression_budget.current()

    def replace(item: Any) -> str:
        text = str(item)
        if budget is not None:
            budget.charge(text=replace_size(text, old, new, times))
        return text.replace(old, new, times)

    return _each(value, replace)


#: Jinja2 text filters replaced by versions that keep None and work on lists.
TEXT_FILTERS: dict[str, Any] = {
    "lower": _text_filter(str.lower),
    "upper": _text_filter(str.upper),
    "title": _text_filter(str.title),
    "capitalize": _text_filter(str.capitalize),
    "trim": _text_filter(str.strip),
    "replace": _replace,
}


def join_text(values: Iterable[Any]) -> str:
    """What ``~`` does: concatenate values as text, None as empty text."""
    texts = ["" if value is None else value for value in values]
    budget = expression_budget.current()
    if budget is not None:
        budget.tick()
        return join_texts(budget, texts)
    return "".join(str(text) for text in texts)


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

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __contains__(self, name: object) -> bool:
        return name in self._values


# --------------------------------------------------------------------------- environment


class _CodeGenerator(CodeGenerator):
    """Jinja2's code generator, with ``~`` treating None as empty text, and ``f(*x)``
    unpacking no more items than the budget has (Python unpacks before any hook)."""

    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        self.write("environment.join_text((")
        for argument in node.nodes:
            self.visit(argument, frame)
            self.write(", ")
        self.write("))")

    def signature(
        self,
        node: nodes.Call | nodes.Filter | nodes.Test,
        frame: Frame,
        extra_kwargs: Mapping[str, Any] | None = None,
    ) -> None:
        if node.dyn_args is not None:
            limit = nodes.EnvironmentAttribute("limit_arguments", lineno=node.lineno)
            node.dyn_args = nodes.Call(limit, [node.dyn_args], [], None, None, lineno=node.lineno)
        super().signature(node, frame, extra_kwargs)


class _Environment(ImmutableSandboxedEnvironment):
    """The sandbox, with attribute views read by name, lists and dicts immutable, and
    every operator, call, attribute and item read checked against the running
    evaluation's budget."""

    code_generator_class = _CodeGenerator
    intercepted_binops = frozenset(BINOPS)

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.join_text = join_text
        self.limit_arguments = limit_arguments

    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        if isinstance(obj, AttributeView):
            return not attr.startswith("_")
        return super().is_safe_attribute(obj, attr, value)

    def getattr(self, obj: Any, attribute: str) -> Any:
        expression_budget.active().tick()
        if isinstance(obj, AttributeView) and not attribute.startswith("_"):
            return obj[attribute]
        return super().getattr(obj, attribute)

    def getitem(self, obj: Any, argument: Any) -> Any:
        expression_budget.active().tick()
        return super().getitem(obj, argument)

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        check_binop(expression_budget.active(), operator, left, right)
        return BINOPS[operator](left, right)

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        """Call from sandboxed code: the deadline, then the method's check (which
        may swap in a bounded version), then what the call built is charged."""
        budget = expression_budget.active()
        budget.tick()
        text, items = budget.text, budget.items
        function = check_method(budget, __obj, args, kwargs)
        result = super().call(__context, function, *args, **kwargs)
        if not _selects(__obj):
            # What the check and the call charged already is not charged twice.
            built_text, built_items = expression_budget.measure(result, budget.limits)
            budget.charge(
                max(0, built_text - (budget.text - text)),
                max(0, built_items - (budget.items - items)),
            )
        return result

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        """``str.format`` and ``format_map`` with every field charged (Jinja2's
        wrapper, with the formatter of :mod:`metaverse.bounded_operations`)."""
        if not isinstance(value, (types.MethodType, types.BuiltinMethodType)) or (
            value.__name__ not in ("format", "format_map")
        ):
            return None
        text = value.__self__
        if not isinstance(text, str):
            return None
        formatter = formatter_for(self, text)
        is_format_map = value.__name__ == "format_map"

        def wrapper(*args: Any, **kwargs: Any) -> str:
            if is_format_map:
                if kwargs or len(args) != 1:
                    raise TypeError("format_map() takes exactly one argument")
                args, kwargs = (), args[0]
            return type(text)(formatter.vformat(text, args, kwargs))

        return wrapper


def limit_arguments(values: Any) -> Any:
    """What ``*values`` unpacks: refused past the items the budget has left."""
    return expression_budget.limited(expression_budget.active(), values)


#: Calls that return one of their inputs rather than build a value: not charged.
_SELECTING_CALLS = frozenset(
    {"get", "coalesce", "first", "cycler", "joiner", "namespace", "limit_arguments"}
)


def _selects(function: Any) -> bool:
    return getattr(function, "__name__", "") in _SELECTING_CALLS


#: Statements a DN template may use; loops, macros and blocks are not allowed.
_TEMPLATE_STATEMENTS = (nodes.Output, nodes.If, nodes.Assign, nodes.With)


def _dn_placeholder(value: Any) -> str:
    """A DN template placeholder's value, RDN-escaped (None is empty); a list is an error.

    An empty value makes an invalid DN (``uid=,ou=people…``), which the connector
    rejects before provisioning (``invalid_generated_external_id`` on that object).
    """
    if isinstance(value, (list, tuple)):
        raise ExpressionError(
            f"a DN placeholder is multi-valued ({value!r}); use first(...) to pick one value"
        )
    return ldap_escape(value)


def _build_environment(finalize: Callable[[Any], Any] | None = None) -> _Environment:
    env = _Environment(undefined=StrictUndefined, autoescape=False, finalize=finalize)
    for name in REMOVED_GLOBALS:
        del env.globals[name]
    env.globals["range"] = bounded_range
    env.globals.update(HELPERS)
    env.filters = bound_filters({**env.filters, **HELPERS, **TEXT_FILTERS})
    env.tests = bound_tests(env.tests)
    return env


_ENV = _build_environment()
# Expressions only (DN templates cannot use it), and a global only: as a filter it
# would hide Jinja2's own ``unique`` filter.
_ENV.globals["unique"] = unique
_DN_ENV = _build_environment(finalize=_dn_placeholder)


def _failure(exc: BaseException) -> ExpressionError:
    if isinstance(exc, ExpressionError):
        return exc
    if isinstance(exc, BudgetExceeded):
        return ExpressionLimitError(str(exc))
    return ExpressionError(f"{type(exc).__name__}: {exc}")


# --------------------------------------------------------------------------- compile


class _Runner:
    """Runs a compiled template's code with a context built for the call.

    Jinja2 builds each call's context by copying the template's globals out of a
    ChainMap (the helper library: dozens of names) into a new dict and a new set;
    for a one-line flow run on every object of a sync that costs more than the
    expression itself. The globals are fixed once the environment is built, so they
    are copied once here, and the context gets no globals set: it is only ever used
    to run the template, never to export names from it.
    """

    __slots__ = ("_environment", "_globals", "_name", "render")

    def __init__(self, template: Template) -> None:
        self._environment = template.environment
        self._globals = dict(template.globals)
        self._name = template.name
        self.render = template.root_render_func

    def context(self, names: dict[str, Any]) -> Context:
        return Context(self._environment, {**self._globals, **names}, self._name, {})


def _syntax_error(exc: Exception, kind: str, source: str) -> ExpressionSyntaxError:
    """A parse failure as :class:`ExpressionSyntaxError`; an expression nested so deeply
    that parsing it exhausts Python's stack is one too (``((((…1))))``)."""
    if isinstance(exc, TemplateSyntaxError):
        return ExpressionSyntaxError(f"{exc.message} in {kind} {source!r}")
    return ExpressionSyntaxError(f"nested too deeply in {kind} {source[:80]!r}…")


class CompiledExpression:
    """A compiled Jinja2 expression (scope or flow)."""

    def __init__(self, source: str) -> None:
        self.source = source
        try:
            expression = _ENV.compile_expression(source, undefined_to_none=False)
        except (TemplateSyntaxError, RecursionError) as exc:
            raise _syntax_error(exc, "expression", source) from None
        self._run = _Runner(expression._template)

    def evaluate(self, **context: Any) -> Any:
        """Evaluate with ``cs``/``mv`` (AttributeViews) and any other names.

        Raises :class:`ExpressionError` whatever goes wrong, including reading a name
        that is not defined.
        """
        budget = expression_budget.start()
        try:
            names = self._run.context(context)
            for _ in self._run.render(names):
                pass
            result = names.vars["result"]
            if isinstance(result, Undefined):
                result._fail_with_undefined_error()
            if isinstance(result, Iterator):
                # A lazy filter's result (``cs.groups | map('lower')``) is run now,
                # within the budget, not after it.
                result = expression_budget.bounded_list(expression_budget.active(), result)
        except Exception as exc:
            raise _failure(exc) from None
        finally:
            expression_budget.stop(budget)
        return result


class CompiledTemplate:
    """A compiled DN template: placeholders are RDN-escaped before they are put in.

    Whitespace around the template is ignored; None renders as empty text (the
    connector then rejects the DN); a multi-valued placeholder is an
    :class:`ExpressionError`.
    """

    def __init__(self, source: str) -> None:
        self.source = source
        try:
            tree = _DN_ENV.parse(source.strip())
            for statement in tree.find_all(nodes.Stmt):
                if not isinstance(statement, _TEMPLATE_STATEMENTS):
                    raise ExpressionSyntaxError(
                        f"a DN template may use {{{{ … }}}}, {{% if %}} and {{% set %}} only, "
                        f"not {type(statement).__name__.lower()} in template {source!r}"
                    )
            self._run = _Runner(_DN_ENV.from_string(tree))
        except (TemplateSyntaxError, RecursionError) as exc:
            raise _syntax_error(exc, "template", source) from None

    def render(self, **context: Any) -> str:
        budget = expression_budget.start()
        try:
            return _DN_ENV.concat(self._chunks(context))
        except Exception as exc:
            raise _failure(exc) from None
        finally:
            expression_budget.stop(budget)

    def _chunks(self, context: dict[str, Any]) -> Iterator[str]:
        budget = expression_budget.active()
        for chunk in self._run.render(self._run.context(context)):
            budget.tick()
            budget.charge(text=len(chunk))
            yield chunk


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


# --------------------------------------------------------------------------- inspection


@dataclass(frozen=True)
class NamesRead:
    """What an expression reads, found without evaluating it.

    ``unknown`` are the names it reads that are neither objects (``cs``, ``mv``) nor
    helpers or Jinja2 globals — typos such as ``sc.status``. ``attributes`` maps
    ``cs``/``mv`` to the attribute names read as ``cs.name`` or ``cs['name']``.
    ``objects`` are the object names (``cs``, ``mv``) it reads at all.
    """

    unknown: frozenset[str]
    objects: frozenset[str]
    attributes: Mapping[str, frozenset[str]]


def names_read(source: str, *, template: bool = False) -> NamesRead:
    """The names and attributes an expression (or a DN template) reads.

    Raises :class:`ExpressionSyntaxError` when it does not parse.
    """
    env = _DN_ENV if template else _ENV
    text = source.strip() if template else "{{ " + source + " }}"
    try:
        tree = env.parse(text)
        variables = find_undeclared_variables(tree)
    except (TemplateSyntaxError, RecursionError) as exc:
        raise _syntax_error(exc, "template" if template else "expression", source) from None
    attributes: dict[str, set[str]] = {name: set() for name in OBJECT_NAMES}
    for node in tree.find_all((nodes.Getattr, nodes.Getitem)):
        target = node.node
        if not (isinstance(target, nodes.Name) and target.name in attributes):
            continue
        if isinstance(node, nodes.Getattr):
            attributes[target.name].add(node.attr)
        elif isinstance(node.arg, nodes.Const) and isinstance(node.arg.value, str):
            attributes[target.name].add(node.arg.value)
    return NamesRead(
        unknown=frozenset(variables - set(OBJECT_NAMES) - set(env.globals)),
        objects=frozenset(variables & set(OBJECT_NAMES)),
        attributes={name: frozenset(found) for name, found in attributes.items()},
    )


#: The keyword arguments of ``unique(...)``.
UNIQUE_OPTIONS = frozenset({"pattern", "start", "max", "check_target"})


def unique_problem(source: str, *, export_flow: bool) -> str:
    """Why ``unique(...)`` is misused in an expression ("" when it is not).

    It must be the whole expression of an export flow — its candidates are resolved
    by the sync against what is in use in the target — and used once there.
    Raises :class:`ExpressionSyntaxError` when the expression does not parse.
    """
    try:
        tree = _ENV.parse("{{ " + source + " }}")
    except (TemplateSyntaxError, RecursionError) as exc:
        raise _syntax_error(exc, "expression", source) from None
    calls = [
        call
        for call in tree.find_all(nodes.Call)
        if isinstance(call.node, nodes.Name) and call.node.name == "unique"
    ]
    if not calls:
        return ""
    if not export_flow:
        return "unique(...) can only be used in the expression of an export flow"
    output = tree.body[0]
    whole = isinstance(output, nodes.Output) and len(output.nodes) == 1 and output.nodes[0]
    if len(calls) > 1 or whole is not calls[0]:
        return (
            "unique(...) must be the whole expression of the flow, used once "
            "(unique(normalize(mv.givenName[:1] ~ mv.sn) | lower), not unique(...) | lower)"
        )
    unknown = sorted({keyword.key for keyword in calls[0].kwargs} - UNIQUE_OPTIONS)
    if unknown:
        return (
            f"unique(...) has no option {', '.join(unknown)} "
            f"(options: {', '.join(sorted(UNIQUE_OPTIONS))})"
        )
    return ""
