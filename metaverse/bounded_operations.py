"""The sandbox's filters, methods, operators and formatting, bounded by the budget.

Jinja2's sandbox bounds ``range`` and nothing else: ``'x' | center(10 ** 9)``,
``'%0200000000d' % 1``, ``'{:>200000000}'.format('x')`` or joining a list of 10,000
copies of a long text allocate gigabytes. Here every filter and test, every call of a
method or global, every binary operator and every ``str.format`` field goes through
the running evaluation's :class:`~metaverse.expression_budget.Budget`: it checks the
deadline and charges what the operation will build, computed from its arguments
before it runs when the result can be larger than a small multiple of the inputs
(see :data:`_FILTER_CHECKS` and :func:`check_method`), or once built otherwise.

Filters and globals with no use in an identity expression and no cheap bound are
removed: ``lipsum``, ``pprint`` and ``urlize``.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Iterable, Mapping
from functools import wraps
from itertools import chain
from string import Formatter
from typing import Any

from jinja2 import pass_environment
from jinja2.filters import make_attrgetter
from jinja2.sandbox import SandboxedEscapeFormatter, SandboxedFormatter
from markupsafe import Markup

from metaverse.expression_budget import (
    MAX_NUMBER_BITS,
    Budget,
    BudgetExceeded,
    active,
    bounded_list,
    bounded_split,
    charging,
    depth,
    format_spec_size,
    limited,
    measure,
    printf_size,
    replace_size,
    strftime_size,
    translate_size,
)

#: Globals and filters taken out of the sandbox.
REMOVED_GLOBALS = ("lipsum",)
REMOVED_FILTERS = ("pprint", "urlize")

#: Filters that return (part of) their input rather than build something: not charged.
_SELECTING_FILTERS = frozenset(
    {
        "abs", "attr", "count", "d", "default", "first", "float", "int", "last", "length",
        "max", "min", "random", "round", "map", "select", "reject", "selectattr",
        "rejectattr", "unique", "items", "filesizeformat", "coalesce",
    }
)  # fmt: skip

# --------------------------------------------------------------------------- text


def join_texts(budget: Budget, values: Iterable[Any], separator: Any = "") -> str:
    """``separator.join(str(v) for v in values)``, charged before joining."""
    texts = [budget.text_of(value) for value in bounded_list(budget, values)]
    separator = budget.text_of(separator)
    budget.charge(text=sum(map(len, texts)) + len(separator) * max(0, len(texts) - 1))
    return separator.join(texts)


def _number_product_too_large(left: Any, right: Any) -> bool:
    if not (isinstance(left, int) and isinstance(right, int)):
        return False
    return left.bit_length() + right.bit_length() > MAX_NUMBER_BITS


def _power_too_large(base: Any, exponent: Any) -> bool:
    if not (isinstance(base, int) and isinstance(exponent, int)) or abs(base) < 2:
        return False
    return exponent > 0 and base.bit_length() * exponent > MAX_NUMBER_BITS


def _check_repeat(budget: Budget, sequence: Any, times: Any) -> bool:
    """Charge ``sequence * times`` when it is a repetition; True when it was one."""
    if not isinstance(times, int) or isinstance(sequence, int):
        return False
    if isinstance(sequence, (str, bytes)):
        budget.charge(text=len(sequence) * max(times, 0))
        return True
    if isinstance(sequence, (list, tuple)):
        text, items = measure(sequence, budget.limits)
        budget.charge(text=text * max(times, 0), items=items * max(times, 0))
        return True
    return False


def check_binop(budget: Budget, operator_: str, left: Any, right: Any) -> None:
    """Charge what ``left <operator> right`` builds, before it is built."""
    budget.tick()
    if operator_ == "*":
        if _number_product_too_large(left, right):
            raise BudgetExceeded(f"'*' would build a number larger than {MAX_NUMBER_BITS} bits")
        if not _check_repeat(budget, left, right):
            _check_repeat(budget, right, left)
    elif operator_ == "**" and _power_too_large(left, right):
        raise BudgetExceeded(f"'**' would build a number larger than {MAX_NUMBER_BITS} bits")
    elif operator_ == "+":
        if isinstance(left, (str, bytes)) and isinstance(right, (str, bytes)):
            budget.charge(text=len(left) + len(right))
        elif isinstance(left, (list, tuple)) and isinstance(right, (list, tuple)):
            budget.charge_value(left)
            budget.charge_value(right)
    elif operator_ == "%" and isinstance(left, (str, bytes)):
        budget.charge(text=printf_size(budget, left, right))


BINOPS: dict[str, Callable[[Any, Any], Any]] = {
    "+": operator.add,
    "-": operator.sub,
    "*": operator.mul,
    "/": operator.truediv,
    "//": operator.floordiv,
    "**": operator.pow,
    "%": operator.mod,
}


# --------------------------------------------------------------------------- str.format


class _BudgetFormatting:
    """``str.format`` fields charged before they are formatted."""

    def format_field(self, value: Any, format_spec: str) -> Any:
        budget = active()
        budget.tick()
        budget.charge(text=format_spec_size(budget, value, format_spec))
        return super().format_field(value, format_spec)  # type: ignore[misc]


class BudgetFormatter(_BudgetFormatting, SandboxedFormatter):
    """The sandbox's formatter, charging each field."""


class BudgetEscapeFormatter(_BudgetFormatting, SandboxedEscapeFormatter):
    """The sandbox's formatter for ``Markup`` texts, charging each field."""


def formatter_for(environment: Any, text: str) -> Formatter:
    """The formatter of ``text.format``: Jinja2's, for plain or ``Markup`` text."""
    if isinstance(text, Markup):
        return BudgetEscapeFormatter(environment, escape=text.escape)
    return BudgetFormatter(environment)


# --------------------------------------------------------------------------- methods

#: What ``datetime.strptime`` is charged for each character of its text and format.
STRPTIME_COST = 64

_PADDING_METHODS = frozenset({"center", "ljust", "rjust", "zfill"})
_TEXT_TYPES = (str, bytes, bytearray)
#: Text methods that build a copy of the text (charged by its length first; a few
#: characters grow, 'ß'.upper() is 'SS', charged once built).
_CASE_METHODS = frozenset(
    {"upper", "lower", "title", "capitalize", "swapcase", "casefold", "strip", "lstrip"}
    | {"rstrip", "encode", "decode", "hex", "removeprefix", "removesuffix"}
)
#: What ``str.splitlines`` splits on.
_LINE_BREAKS = ("\n", "\r", "\v", "\f", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029")


def _argument(args: tuple, kwargs: dict, position: int, name: str, default: Any) -> Any:
    if len(args) > position:
        return args[position]
    return kwargs.get(name, default)


def check_method(budget: Budget, function: Any, args: tuple, kwargs: dict) -> Any:
    """Charge a method call that can build more than its inputs, before the call.

    Returns the function to call instead (``split`` bounded by the items left), or
    ``function`` itself.
    """
    owner = getattr(function, "__self__", None)
    name = getattr(function, "__name__", "")
    if isinstance(owner, _TEXT_TYPES):
        return _check_text_method(budget, owner, name, function, args, kwargs)
    if name == "strftime" and hasattr(owner, "strftime"):
        budget.charge(text=strftime_size(str(_argument(args, kwargs, 0, "format", ""))))
    elif name == "strptime" and hasattr(owner, "strptime"):
        # Parsing compiles the format into a regular expression, in Python: some
        # microseconds a character, where the text operations take nanoseconds.
        texts = [text for text in args if isinstance(text, str)]
        budget.charge(text=STRPTIME_COST * sum(map(len, texts)))
    elif name == "to_bytes" and isinstance(owner, int):
        length = _argument(args, kwargs, 0, "length", 1)
        budget.charge(text=length if isinstance(length, int) else 0)
    return function


def _check_text_method(
    budget: Budget, text: Any, name: str, function: Any, args: tuple, kwargs: dict
) -> Any:
    if name in _PADDING_METHODS:
        width = _argument(args, kwargs, 0, "width", 0)
        budget.charge(text=max(len(text), width if isinstance(width, int) else 0))
    elif name == "expandtabs":
        size = _argument(args, kwargs, 0, "tabsize", 8)
        tab = "\t" if isinstance(text, str) else b"\t"
        budget.charge(text=len(text) + text.count(tab) * (size if isinstance(size, int) else 0))
    elif name == "replace" and len(args) >= 2 and isinstance(text, str):
        old, new = args[0], args[1]
        if isinstance(old, str) and isinstance(new, str):
            count = _argument(args, kwargs, 2, "count", -1)
            budget.charge(text=replace_size(text, old, new, count))
    elif name == "replace" and len(args) >= 2:
        budget.charge(text=len(text) * (1 + len(args[1])))
    elif name == "translate" and args:
        budget.charge(text=translate_size(text, args[0]))
    elif name == "join" and args and isinstance(text, str):
        return lambda values: join_texts(budget, values, text)
    elif name == "join" and args:
        values = bounded_list(budget, args[0])
        budget.charge(text=sum(map(len, values)) + len(text) * max(0, len(values) - 1))
        return lambda _: text.join(values)
    elif name in ("split", "rsplit"):
        return lambda sep=None, maxsplit=-1: bounded_split(budget, function, sep, maxsplit)
    elif name in _CASE_METHODS:
        budget.charge(text=len(text))
    elif name == "splitlines":
        breaks = _LINE_BREAKS if isinstance(text, str) else (b"\n", b"\r")
        budget.charge(items=sum(text.count(line_break) for line_break in breaks) + 1)
    return function


# --------------------------------------------------------------------------- filters


def _join(environment: Any, value: Iterable[Any], d: Any = "", attribute: Any = None) -> str:
    budget = active()
    values = bounded_list(budget, value)
    if attribute is not None:
        values = [make_attrgetter(environment, attribute)(item) for item in values]
    return join_texts(budget, values, d)


def _center(value: Any, width: int = 80) -> str:
    budget = active()
    text = budget.text_of(value)
    budget.charge(text=max(len(text), width if isinstance(width, int) else 0))
    return text.center(width)


def _check_indent(budget: Budget, s: Any, width: Any = 4, *_: Any, **__: Any) -> None:
    text = budget.text_of(s)
    indention = len(width) if isinstance(width, str) else max(width, 0)
    lines = sum(text.count(line_break) for line_break in _LINE_BREAKS) + 2
    budget.charge(text=indention + len(text) + lines * (indention + 1))


def _check_wordwrap(budget: Budget, s: Any, width: Any = 79, *args: Any, **kwargs: Any) -> None:
    text = budget.text_of(s)
    wrapstring = _argument(args, kwargs, 1, "wrapstring", None) or "\n"
    # Every line of the result holds a character at least, or is an empty paragraph.
    budget.charge(text=len(text) + (len(text) + 1) * len(budget.text_of(wrapstring)))


def _check_format(budget: Budget, value: Any, *args: Any, **kwargs: Any) -> None:
    if isinstance(value, (str, bytes)):
        budget.charge(text=printf_size(budget, value, kwargs or args))


def _check_batch(budget: Budget, value: Any, linecount: Any = 1, fill_with: Any = None) -> None:
    if fill_with is not None and isinstance(linecount, int):
        budget.charge(items=linecount)


def _check_slice(budget: Budget, value: Any, slices: Any = 1, fill_with: Any = None) -> None:
    if isinstance(slices, int):
        budget.charge(items=slices)


def _check_tojson(budget: Budget, value: Any, indent: Any = None) -> None:
    text, items = measure(value, budget.limits)
    spaces = indent if isinstance(indent, int) else len(indent or "")
    # json makes the indent text first; then each item is a line, indented once per
    # level it is nested at.
    lines = items * (16 + spaces * depth(value, budget.limits))
    budget.charge(text=spaces + 6 * text + lines + 16)


@pass_environment
def _sum(environment: Any, iterable: Iterable[Any], attribute: Any = None, start: Any = 0) -> Any:
    """Jinja2's ``sum``; lists and tuples are concatenated once, not pairwise (pairwise
    concatenation of many lists copies quadratically)."""
    budget = active()
    values = bounded_list(budget, iterable)
    if attribute is not None:
        values = [make_attrgetter(environment, attribute)(item) for item in values]
    if isinstance(start, (list, tuple)):
        for value in values:
            if type(value) is not type(start):
                raise TypeError(f"can only concatenate {type(start).__name__} to one")
        budget.charge_value(start)
        for value in values:
            budget.charge_value(value)
        return type(start)(chain(start, *values))
    return sum(values, start)


_WORD = re.compile(r"\w+", re.UNICODE)


def _wordcount(s: Any) -> int:
    """Jinja2's ``wordcount``, counting without building the list of words."""
    budget = active()
    text = budget.text_of(s)
    budget.charge(text=len(text))  # what subn builds: the text without its words
    return _WORD.subn("", text)[1]


#: Filters checked before they run: the check charges what they will build.
_FILTER_CHECKS: dict[str, Callable[..., None]] = {
    "indent": _check_indent,
    "wordwrap": _check_wordwrap,
    "format": _check_format,
    "batch": _check_batch,
    "slice": _check_slice,
    "tojson": _check_tojson,
}

#: Filters that charge what they build themselves: the checked ones, the replaced
#: ones, and the helpers of metaverse.expressions.
_SELF_CHARGING_FILTERS = frozenset(
    {"join", "center", "sum", "wordcount", "replace", "replace_chars", "join_values", "split"}
    | {"ldap_escape"}
    | {"format_date", "indent", "wordwrap", "format", "batch", "slice", "tojson"}
)

#: Filters that make a list of their input first: given one made within the budget
#: (``long_text | list`` would otherwise build a million one-character texts).
_MATERIALISING_FILTERS = frozenset(
    {"list", "sort", "reverse", "unique", "groupby", "batch", "slice"}
)

#: Filters that go through their input item by item without making a list of it:
#: given no more items than the budget has (a value read from the object may hold more).
_ITERATING_FILTERS = frozenset(
    {"min", "max", "map", "select", "reject", "selectattr", "rejectattr"}
)

#: Filters replaced by bounded versions.
_REPLACED_FILTERS: dict[str, Callable[..., Any]] = {
    "join": pass_environment(_join),
    "center": _center,
    "sum": _sum,
    "wordcount": _wordcount,
}


def _needs_list(name: str, value: Any) -> bool:
    if isinstance(value, (list, tuple)):
        return False
    return not (name == "reverse" and isinstance(value, str))  # reversed as text


def _passes_argument(function: Any) -> bool:
    return hasattr(function, "jinja_pass_arg")


def bounded_filter(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
    """A filter that ticks, runs its check, and charges what it built."""
    check = _FILTER_CHECKS.get(name)
    proportional = name not in _SELECTING_FILTERS | _SELF_CHARGING_FILTERS
    lazy = name in ("batch", "slice")
    materialises = name in _MATERIALISING_FILTERS
    iterates = name in _ITERATING_FILTERS
    skip = 1 if _passes_argument(function) else 0

    @wraps(function)
    def bounded(*args: Any, **kwargs: Any) -> Any:
        budget = active()
        budget.tick()
        if materialises and len(args) > skip and _needs_list(name, args[skip]):
            args = (*args[:skip], bounded_list(budget, args[skip]), *args[skip + 1 :])
        elif iterates and len(args) > skip:
            args = (*args[:skip], limited(budget, args[skip]), *args[skip + 1 :])
        if check is not None:
            check(budget, *args[skip:], **kwargs)
        if not proportional:
            result = function(*args, **kwargs)
            return charging(budget, result) if lazy else result
        # Charged its input's size first: running over a value read from the object
        # (not charged when read) takes time in proportion to it.
        charged = measure(args[skip], budget.limits) if len(args) > skip else (0, 0)
        budget.charge(*charged)
        result = function(*args, **kwargs)
        text, items = measure(result, budget.limits)
        budget.charge(max(0, text - charged[0]), max(0, items - charged[1]))
        return result

    return bounded


def bounded_test(function: Callable[..., Any]) -> Callable[..., Any]:
    """A test that checks the deadline (tests build nothing)."""

    @wraps(function)
    def bounded(*args: Any, **kwargs: Any) -> Any:
        active().tick()
        return function(*args, **kwargs)

    return bounded


def bound_filters(filters: Mapping[str, Callable[..., Any]]) -> dict[str, Callable[..., Any]]:
    """Every filter bounded; the removed ones left out."""
    bounded = {}
    for name, function in filters.items():
        if name in REMOVED_FILTERS:
            continue
        bounded[name] = bounded_filter(name, _REPLACED_FILTERS.get(name, function))
    return bounded


def bound_tests(tests: Mapping[str, Callable[..., Any]]) -> dict[str, Callable[..., Any]]:
    return {name: bounded_test(function) for name, function in tests.items()}
