"""The newest time value in a directory (``reqStart``, ``modifyTimestamp``), found with
size-limited probes whose number does not grow with the directory.

A delta import's watermark is the newest ``reqStart`` of the accesslog (or the
newest ``modifyTimestamp`` under the base DN). Reading every value — or every value of
a time window, which after a bulk export may hold a hundred thousand — is a search
whose cost grows with the log, and which a directory's size limits stop.
:func:`find_newest` asks only questions a size limit cannot spoil: a *probe* is a
search for the values at or after a time T, with a size limit of a few hundred; its
answer is either complete (every value from T on: the newest is their maximum, or
there is none) or cut short by the limit (more values than the limit from T on; the
ones that came back are a lower bound of the newest).

The probes bracket the newest value and then bisect the bracket:

1. windows "from T on", T going back from JIM's clock (the last 2 s, minute, hour,
   day, then everything — or everything since the previous watermark); the first
   complete answer with values ends the search, an empty one is an upper bound;
2. when the last seconds alone hold more than the limit, T goes forward in doubling
   steps until a window holds at most the limit;
3. then the bracket [lower, upper) is halved until a window holds at most the limit.
   ``reqStart`` values are unique (they name the log's entries) to the microsecond,
   so a window of one microsecond holds at most one: the bisection always ends with
   a complete answer. ``modifyTimestamp`` counts seconds and thousands of entries
   may share one: the bisection stops at one second and returns that second's value.

Every window is open-ended ("from T on"), so the answer never depends on JIM's clock
agreeing with the server's: a skew only costs probes. (When the server is ahead, the
values a probe cut short returned move the forward steps past the skew at once; when
it is behind, the windows going back pass it, and a skew of days widens the bracket.)
The number of probes is that of a bisection of the bracket at the value's precision,
whatever the number of values: 10 to 15 for 100,000 values written in the last
seconds, about 20 when the newest is a year old, 35 with JIM's clock a month ahead
(tests/connectors/test_ldap_watermark.py); each probe returns at most the limit's
values. The value returned is always one the directory holds, never a time made up
from the probes: a watermark can only be older than the newest change, never newer,
so no change is missed. (Were a directory to keep ``modifyTimestamp`` below the
second, the value returned could be one of the newest second's rather than the very
newest: the next delta reads that second again, which is harmless.)
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

#: Windows going back from JIM's clock (seconds), before "everything".
WINDOWS = (2, 60, 3600, 86400)
#: Precisions: one microsecond (``reqStart``) and one second (``modifyTimestamp``).
MICROSECOND = 1
SECOND = 1_000_000
#: The first step forward when the last seconds hold more than a probe's limit.
FIRST_STEP = SECOND

_EPOCH = dt.datetime(1, 1, 1, tzinfo=dt.UTC)
_TIME_RE = re.compile(
    r"^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})?(\d{2})?(?:[.,](\d+))?(Z|[+-]\d{2}(?:\d{2})?)$"
)


@dataclass(frozen=True)
class Probe:
    """A directory's answer to "the values at or after T", under a size limit."""

    #: The values returned (GeneralizedTime text, each at or after T).
    values: Sequence[str]
    #: True when they are all of them; False when the size limit cut the answer short.
    complete: bool


@dataclass(frozen=True)
class Newest:
    """The newest value (None: there is none) and how many probes found it."""

    value: str | None
    probes: int


def find_newest(
    probe: Callable[[str | None], Probe],
    *,
    precision: int,
    since: str | None = None,
    now: dt.datetime | None = None,
) -> Newest:
    """The newest value, or ``since`` when nothing is newer (None: nothing at all).

    ``probe(T)`` searches the values at or after the GeneralizedTime ``T`` (every
    value when ``T`` is None) with a size limit; an answer cut short holds at least
    one value. ``precision`` is :data:`MICROSECOND` (T is written
    ``YYYYmmddHHMMSS.ffffffZ``) or :data:`SECOND` (``YYYYmmddHHMMSSZ``); ``since`` a
    value, below which nothing is looked at; ``now`` JIM's clock (default
    :func:`utc_now`), which only says where to start looking. Raises ValueError for a
    value that is not a GeneralizedTime.
    """
    return _Search(probe, precision, since).run(now or utc_now())


def utc_now() -> dt.datetime:
    """JIM's clock."""
    return dt.datetime.now(dt.UTC)


def parse_time(value: str) -> int:
    """A GeneralizedTime as microseconds since 0001-01-01 UTC (ValueError when malformed)."""
    match = _TIME_RE.match(value.strip())
    if not match:
        raise ValueError(f"{value!r} is not a GeneralizedTime")
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    moment = dt.datetime(
        int(year), int(month), int(day), int(hour), int(minute or 0), int(second or 0)
    )
    offset = dt.timedelta(0)
    if zone != "Z":
        sign = -1 if zone[0] == "-" else 1
        offset = sign * dt.timedelta(hours=int(zone[1:3]), minutes=int(zone[3:5] or 0))
    micros = int((fraction or "0")[:6].ljust(6, "0"))
    return _micros(moment.replace(tzinfo=dt.UTC) - offset) + micros


def _micros(moment: dt.datetime) -> int:
    delta = moment - _EPOCH
    return (delta.days * 86400 + delta.seconds) * SECOND + delta.microseconds


#: No value is this late: the upper bound when every probe forward is over the limit.
_END = _micros(dt.datetime(9999, 12, 31, 23, 59, 59, tzinfo=dt.UTC))


class _Search:
    def __init__(
        self, probe: Callable[[str | None], Probe], precision: int, since: str | None
    ) -> None:
        self._probe = probe
        self._precision = precision
        self._since = since
        self._since_time = None if since is None else parse_time(since)
        self._fraction = precision < SECOND
        self.probes = 0
        #: The greatest lower bound known (a value's time, down to the precision) and
        #: the values at or after it that the probe setting it returned.
        self._lower = 0
        self._lower_values: list[str] = []

    def run(self, now: dt.datetime) -> Newest:
        start = self._floor(_micros(now.astimezone(dt.UTC)))
        upper = None
        for time in self._going_back(start):
            answer = self._ask(time)
            if answer.complete:
                if answer.values:
                    return self._found(answer.values)
                if time is None or time == self._since_time:
                    return Newest(self._since, self.probes)  # nothing at all, or newer
                upper = time
                continue
            self._raise_lower(answer.values)
            break
        if upper is None:  # the last seconds hold more than a probe's limit
            found = self._going_forward(start)
            if isinstance(found, Newest):
                return found
            upper = found
        return self._bisect(upper)

    def _going_back(self, start: int) -> list[int | None]:
        """The windows' starts, newest first, down to ``since`` (or everything: None)."""
        times: list[int | None] = []
        for seconds in WINDOWS:
            time = self._floor(start - seconds * SECOND)
            if self._since_time is not None and time <= self._since_time:
                break
            times.append(time)
        times.append(self._since_time)
        return times

    def _going_forward(self, start: int) -> Newest | int:
        """Forward from ``start`` in doubling steps until a window holds at most the
        limit: the newest value then, or the upper bound of the bracket."""
        step = FIRST_STEP
        while True:
            time = self._floor(max(start, self._lower) + step)
            if time >= _END:
                return _END
            answer = self._ask(time)
            if answer.complete:
                return self._found(answer.values) if answer.values else time
            self._raise_lower(answer.values)
            step *= 2

    def _bisect(self, upper: int) -> Newest:
        """Halve [lower, upper) until a window holds at most the limit."""
        while upper - self._lower > self._precision:
            middle = self._lower + (upper - self._lower) // self._precision // 2 * self._precision
            answer = self._ask(middle)
            if answer.complete:
                if answer.values:
                    return self._found(answer.values)
                upper = middle
            else:
                self._raise_lower(answer.values)
        # Every value at or after the lower bound is within one unit of precision.
        return self._found(self._lower_values)

    def _ask(self, time: int | None) -> Probe:
        self.probes += 1
        if time is None:
            return self._probe(None)
        if time == self._since_time:
            return self._probe(self._since)
        return self._probe(_generalized_time(time, fraction=self._fraction))

    def _raise_lower(self, values: Sequence[str]) -> None:
        """An answer cut short: its newest value is a lower bound of the newest."""
        times = {value: parse_time(value) for value in values}
        newest = max(times.values())
        lower = self._floor(newest)
        if lower >= self._lower:
            self._lower = lower
            self._lower_values = [value for value, time in times.items() if time >= lower]

    def _found(self, values: Sequence[str]) -> Newest:
        return Newest(max(values, key=parse_time), self.probes)

    def _floor(self, time: int) -> int:
        return time - time % self._precision


def _generalized_time(time: int, *, fraction: bool) -> str:
    """``YYYYmmddHHMMSS.ffffffZ`` (``fraction``) or ``YYYYmmddHHMMSSZ``."""
    m = _EPOCH + dt.timedelta(microseconds=time)
    text = f"{m.year:04d}{m.month:02d}{m.day:02d}{m.hour:02d}{m.minute:02d}{m.second:02d}"
    return f"{text}.{m.microsecond:06d}Z" if fraction else f"{text}Z"
