"""The memory and time budget of one expression evaluation.

Every evaluation of a scope, a flow expression or a DN template on an object gets a
:class:`Budget`: how much text (characters) and how many list, tuple and dict items
it may build, and a deadline. Operations that build values charge what they build
*before* building it, from the sizes of their inputs (``'x' | center(10 ** 9)``,
``'%0200000000d' % 1``, ``big_list | join``); operations whose result is no larger
than a small multiple of their input charge it once built. Charges add up over the
evaluation, so a chain of allowed operations cannot build more than the budget
either. The deadline is checked at every hook the sandbox has (calls, attributes,
items, operators, filters, tests, ``~``), and the memory bound keeps any single
operation between two hooks short, so there are no signals and no threads: a sync
running in a worker thread is bounded the same way.

The size of a value (:func:`measure`) counts a list's items and everything in them,
a text shared by many items once per item: ``[long_text] * 10000`` measures like
10,000 copies, which is what joining or comparing it costs.

Exceeding the budget raises :class:`BudgetExceeded`, naming the limit and the setting
that configures it; the expression module turns it into an ``ExpressionError``.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from functools import lru_cache
from itertools import islice
from typing import Any

from django.conf import settings
from django.core.signals import setting_changed

#: Defaults of the settings ``JIM_EXPRESSION_MAX_TEXT``, ``JIM_EXPRESSION_MAX_ITEMS``
#: and ``JIM_EXPRESSION_TIME_LIMIT_MS``.
DEFAULT_MAX_TEXT = 1_000_000
DEFAULT_MAX_ITEMS = 100_000
DEFAULT_TIME_LIMIT_MS = 1_000

#: Largest integer (in bits) that ``*`` and ``**`` may build.
MAX_NUMBER_BITS = 100_000


class BudgetExceeded(Exception):
    """An evaluation that would build more, or run longer, than its budget allows."""


@dataclass(frozen=True)
class Limits:
    """The budget of one evaluation: characters, items, milliseconds."""

    max_text: int = DEFAULT_MAX_TEXT
    max_items: int = DEFAULT_MAX_ITEMS
    time_limit_ms: int = DEFAULT_TIME_LIMIT_MS


@lru_cache(maxsize=1)
def configured_limits() -> Limits:
    """The limits of the Django settings (the defaults outside a configured project).

    Read once (an evaluation takes microseconds; reading three settings would double
    it), again after a test changes one of them.
    """
    if not settings.configured:
        return Limits()
    return Limits(
        max_text=getattr(settings, "JIM_EXPRESSION_MAX_TEXT", DEFAULT_MAX_TEXT),
        max_items=getattr(settings, "JIM_EXPRESSION_MAX_ITEMS", DEFAULT_MAX_ITEMS),
        time_limit_ms=getattr(settings, "JIM_EXPRESSION_TIME_LIMIT_MS", DEFAULT_TIME_LIMIT_MS),
    )


def _forget_limits(*, setting: str, **_: Any) -> None:
    if setting.startswith("JIM_EXPRESSION_"):
        configured_limits.cache_clear()


setting_changed.connect(_forget_limits, dispatch_uid="metaverse.expression_budget")


class Budget:
    """What is left of one evaluation's budget."""

    __slots__ = ("_deadline", "items", "limits", "text")

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.text = 0
        self.items = 0
        self._deadline = time.monotonic() + limits.time_limit_ms / 1000

    def tick(self) -> None:
        """Raise :class:`BudgetExceeded` once the deadline has passed."""
        if time.monotonic() > self._deadline:
            raise BudgetExceeded(
                f"the expression ran longer than its time limit of "
                f"{self.limits.time_limit_ms:,} ms (JIM_EXPRESSION_TIME_LIMIT_MS)"
            )

    def charge(self, text: int = 0, items: int = 0) -> None:
        """Take ``text`` characters and ``items`` items, before they are built.

        (The deadline is checked by the operations, once each, not here.)
        """
        if self.text + text > self.limits.max_text:
            raise text_exceeded(self.limits)
        if self.items + items > self.limits.max_items:
            raise items_exceeded(self.limits)
        self.text += text
        self.items += items

    def charge_value(self, value: Any) -> None:
        """Charge a value just built, by its :func:`measure`."""
        text, items = measure(value, self.limits)
        self.charge(text, items)

    def text_of(self, value: Any) -> str:
        """``str(value)``, refusing a value whose text would not fit the budget."""
        if isinstance(value, str):
            return value
        text, items = measure(value, self.limits)
        if self.text + text > self.limits.max_text or self.items + items > self.limits.max_items:
            raise text_exceeded(self.limits)
        return str(value)


def text_exceeded(limits: Limits) -> BudgetExceeded:
    return BudgetExceeded(
        f"the expression would build more than {limits.max_text:,} characters of text, "
        "its memory limit (JIM_EXPRESSION_MAX_TEXT)"
    )


def items_exceeded(limits: Limits) -> BudgetExceeded:
    return BudgetExceeded(
        f"the expression would build or go through more than {limits.max_items:,} items, "
        "its memory limit (JIM_EXPRESSION_MAX_ITEMS)"
    )


_ACTIVE: ContextVar[Budget | None] = ContextVar("expression_budget", default=None)


def start(limits: Limits | None = None) -> Any:
    """Give the evaluation about to run a fresh budget; pass the token to :func:`stop`."""
    return _ACTIVE.set(Budget(limits or configured_limits()))


def stop(token: Any) -> None:
    _ACTIVE.reset(token)


def current() -> Budget | None:
    """The running evaluation's budget; None outside an evaluation (helpers called
    directly from Python are not budgeted)."""
    return _ACTIVE.get()


def active() -> Budget:
    """The running evaluation's budget.

    Outside an evaluation this raises, which also keeps Jinja2 from folding a constant
    filter call such as ``'x' | center(10 ** 9)`` at compile time, unbudgeted.
    """
    budget = _ACTIVE.get()
    if budget is None:
        raise RuntimeError("no expression evaluation is running")
    return budget


# --------------------------------------------------------------------------- sizes

_CONTAINERS = (list, tuple, set, frozenset, dict, Mapping)


def measure(value: Any, limits: Limits) -> tuple[int, int]:
    """(characters, items) of a value, counting what containers hold, item by item.

    Stops counting once either exceeds its limit, so measuring costs no more than
    the budget allows to build.
    """
    if isinstance(value, str):
        return len(value), 0
    text = items = 0
    pending = [value]
    while pending:
        current_value = pending.pop()
        if isinstance(current_value, (str, bytes, bytearray)):
            text += len(current_value)
        elif isinstance(current_value, int):
            text += current_value.bit_length() // 3
        elif isinstance(current_value, _CONTAINERS):
            items += len(current_value)
            if isinstance(current_value, Mapping):
                pending.extend(current_value.keys())
                pending.extend(current_value.values())
            else:
                pending.extend(current_value)
        if text > limits.max_text or items > limits.max_items:
            break
    return text, items


def depth(value: Any, limits: Limits) -> int:
    """How deeply containers nest in a value (0 for a text or a number); stops past
    the items limit."""
    deepest = visited = 0
    pending = [(value, 0)]
    while pending and visited <= limits.max_items:
        current_value, level = pending.pop()
        visited += 1
        if isinstance(current_value, (str, bytes, bytearray)):
            continue
        if isinstance(current_value, _CONTAINERS):
            deepest = max(deepest, level + 1)
            children = (
                [*current_value.keys(), *current_value.values()]
                if isinstance(current_value, Mapping)
                else current_value
            )
            pending.extend((child, level + 1) for child in children)
    return deepest


def number_text(value: Any) -> int:
    """An upper bound of the characters a number formats to in any base."""
    if isinstance(value, int):
        return value.bit_length() + 3
    return 330  # the longest float, '%f' % 1e308


# --------------------------------------------------------------------------- formatting

_PRINTF = re.compile(
    r"%(?:\((?P<key>[^)]*)\))?[#0\- +]*(?P<width>\*|\d+)?(?:\.(?P<precision>\*|\d*))?"
    r"[hlL]?(?P<type>.?)",
    re.DOTALL,
)
_FORMAT_SPEC = re.compile(
    r"(?:.?[<>=^])?[+\- ]?z?#?0?(?P<width>\d*)[,_]?(?:\.(?P<precision>\d+))?", re.DOTALL
)
_STRFTIME_WIDTH = re.compile(r"%[_\-0^#]*(\d+)")


def printf_size(budget: Budget, template: str | bytes, arguments: Any) -> int:
    """An upper bound of the length of ``template % arguments``, read from its widths,
    precisions and values, before formatting (``'%0200000000d' % 1``,
    ``'%*d' % (10 ** 9, 1)``)."""
    pattern = template if isinstance(template, str) else template.decode("latin-1")
    positional = list(arguments) if isinstance(arguments, tuple) else [arguments]
    index = 0

    def next_argument() -> Any:
        nonlocal index
        value = positional[index] if index < len(positional) else None
        index += 1
        return value

    size = len(pattern)
    for match in _PRINTF.finditer(pattern):
        if match["type"] == "%":
            continue
        for part in ("width", "precision"):
            spec = match[part]
            if spec == "*":
                spec = next_argument()
            size += abs(spec) if isinstance(spec, int) else int(spec or 0)
        if match["key"] is not None and isinstance(arguments, Mapping):
            value = arguments.get(match["key"])
        else:
            value = next_argument()
        size += _formatted_size(budget, value, match["type"])
        if size > budget.limits.max_text:
            break
    return size


def _formatted_size(budget: Budget, value: Any, conversion: str) -> int:
    if isinstance(value, (int, float)):
        return number_text(value)
    text, items = measure(value, budget.limits)
    factor = 12 if conversion in ("r", "a") else 1  # repr: '\U000e0001' for one character
    return factor * text + 64 * items + 2


def format_spec_size(budget: Budget, value: Any, spec: str) -> int:
    """An upper bound of the length of ``format(value, spec)`` (``str.format`` fields,
    the ``format`` built-in): width and precision, or a date's ``strftime`` format."""
    if hasattr(value, "strftime"):
        return strftime_size(spec)
    match = _FORMAT_SPEC.match(spec)
    size = _formatted_size(budget, value, "s")
    if match:
        size = max(size, int(match["width"] or 0)) + int(match["precision"] or 0)
    return size


def strftime_size(pattern: str) -> int:
    """An upper bound of a ``strftime`` result: glibc pads ``%010Y`` to any width."""
    widths = sum(int(width) for width in _STRFTIME_WIDTH.findall(pattern))
    return 32 * len(pattern) + widths


# --------------------------------------------------------------------------- text operations


def replace_size(text: str, old: str, new: str, count: int = -1) -> int:
    """The length of ``text.replace(old, new, count)``, counted before replacing."""
    found = text.count(old) if old else len(text) + 1
    if count is not None and count >= 0:
        found = min(found, count)
    return len(text) + found * (len(new) - len(old))


def translate_size(text: str, table: Any) -> int:
    """An upper bound of ``text.translate(table)``: each character may become the
    longest replacement of the table."""
    values = table.values() if isinstance(table, Mapping) else table
    longest = 1
    if isinstance(values, (Mapping, list, tuple, type({}.values()))):
        longest = max([1, *(len(v) for v in values if isinstance(v, str))])
    return len(text) * longest


def bounded_split(budget: Budget, split: Any, separator: Any = None, maxsplit: int = -1) -> list:
    """``text.split(separator, maxsplit)`` that builds no more items than the budget
    has left: splits at most that many times and refuses when there was more."""
    left = budget.limits.max_items - budget.items
    limit = left if maxsplit is None or maxsplit < 0 else min(maxsplit, left)
    parts = split(separator, limit)
    if len(parts) > left:
        raise items_exceeded(budget.limits)
    budget.charge(items=len(parts))
    return parts


def bounded_range(*arguments: int) -> range:
    """``range`` of at most the budget's number of items (lazy: charged when a filter
    makes a list of it)."""
    numbers = range(*arguments)
    budget = active()
    if len(numbers) > budget.limits.max_items - budget.items:
        raise items_exceeded(budget.limits)
    return numbers


def bounded_list(budget: Budget, values: Iterable[Any]) -> list[Any]:
    """``list(values)``, stopping (and refusing) past the items the budget has left.

    Not charged here: the caller charges what it builds from the list.
    """
    left = budget.limits.max_items - budget.items
    if isinstance(values, list):
        if len(values) > left:  # a list read from the object, longer than the budget
            raise items_exceeded(budget.limits)
        return values
    result = list(islice(values, left + 1))
    if len(result) > left:
        raise items_exceeded(budget.limits)
    return result


def limited(budget: Budget, values: Any) -> Any:
    """``values``, refused when it holds more items than the budget has left, or (when
    it is lazy) an iterator that stops with that error: a filter that goes through a
    value item by item takes time in proportion to it, even building nothing."""
    left = budget.limits.max_items - budget.items
    if hasattr(values, "__len__"):
        if len(values) > left:
            raise items_exceeded(budget.limits)
        return values
    return _stopping_after(budget, iter(values), left)


def _stopping_after(budget: Budget, values: Iterator[Any], left: int) -> Iterator[Any]:
    for count, value in enumerate(values):
        if count >= left:
            raise items_exceeded(budget.limits)
        yield value


def charging(budget: Budget, values: Iterator[Any]) -> Iterator[Any]:
    """Yield values of a lazy filter (``batch``, ``slice``), charging each one."""
    for value in values:
        budget.tick()
        budget.charge_value(value)
        yield value
