"""Big multi-valued attributes (groups of thousands of members): read in ranges,
written in chunks. docs/connectors/ldap.md ("Big groups") describes it.

**Reading.** Active Directory hands out at most MaxValRange values (1,500 by default)
of an attribute of an entry in one answer: an entry with more carries
``member;range=0-1499`` and no ``member``. :class:`RangeReader` completes such entries
with base searches asking for the next range (``member;range=1500-*``, several
attributes of one entry in one search) until the server's range ends with ``*``; the
reads of the entries of one answer are pipelined, up to :data:`READ_WINDOW` in
flight, so a page of big groups costs a few round trips, not one per group and range.
The entry then holds every value under the attribute's plain name, whatever asked
for it (full import, delta re-read, an export reading values back). Samba hands out
ranges only when asked to: the ``range_size`` setting makes the connector ask for
ranges of that size (the object type's multi-valued attributes on import, every
attribute an export reads back), so Samba answers as Windows does.

**Writing.** A value list that big may not go in one request: Samba closes the
connection on a request over 16 MiB (``ldap max authenticated request size``; it takes
12,000 members in one modify, by count it refuses nothing), Windows refuses one over
its MaxReceiveBuffer (10 MiB). :class:`ValueChunks` wraps an export
flow and splits its requests: a modify into requests of at most :data:`CHUNK_VALUES`
values and :data:`CHUNK_BYTES` bytes of values, sent in order, each sent when the one
before succeeded; an add into the add of the entry with its first values and modifies
adding the others. The directory applies each request whole, never two together (no
LDAP transactions on AD), so a change cut into chunks is all-or-nothing only up to the
chunk that failed: the chunks before it stay applied and the result says so. The retry
converges: a modify that finds values already added or already gone is resent with
only what is still needed (the exporter's own rule; AD's own refusals of a member
there or gone are read as such, :func:`_value_refusal`), and an add that finds its
entry created partway (holding some of the values sent, and no other) completes it.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections import deque
from collections.abc import Callable, Generator, Iterable
from typing import TYPE_CHECKING, Any

import ldap3

from connectors.backends.ldap.pipeline import Flow, Request
from connectors.backends.ldap.transport import (
    ENTRY_ALREADY_EXISTS,
    NO_SUCH_ATTRIBUTE,
    NO_SUCH_OBJECT,
    VALUE_EXISTS,
    Response,
)
from connectors.backends.ldap.values import raw_values
from connectors.base import ObjectTypeSpec

if TYPE_CHECKING:
    from connectors.backends.ldap.session import Session
    from connectors.backends.ldap.settings import LdapSettings

#: Follow-up range reads of one answer's entries kept in flight at once.
READ_WINDOW = 32
#: Values one export request carries at most (an attribute's values beyond it go in
#: further requests). Samba takes a modify of 12,000 members, about 0.7 ms each; a
#: chunk keeps a request well under the servers' size limits and within seconds of
#: the server's time, far from the connector's ``timeout``.
CHUNK_VALUES = 5000
#: Bytes of values one export request carries at most (Samba: 16 MiB per request).
CHUNK_BYTES = 4 * 1024 * 1024
#: Set on a raw entry that could not be read whole: why (the reader makes it an import
#: error naming the entry, :mod:`connectors.backends.ldap.entries`).
UNREAD = "jim_unread"
#: AD's refusal of a member already gone (and of much else).
UNWILLING_TO_PERFORM = 53
#: The result code given to the exporter when a read-back cannot be completed
#: (``other``: permanent; the message says why).
_OTHER = 80
_RANGE = ";range="
#: Attribute lists that name no attribute (a range of them means nothing).
_SPECIAL_NAMES = frozenset({"*", "+", "1.1"})

Modifications = dict[str, list[tuple[int, list[Any]]]]


@dataclasses.dataclass(frozen=True)
class Range:
    """The range option of an attribute description, ``member;range=0-1499``."""

    name: str  # the description without the range option: ``member``
    start: int
    end: int | None  # None: ``*``, the last range


def parse_range(description: str) -> Range | None:
    """The range of ``description`` (None when it has no range option)."""
    at = description.lower().find(_RANGE)
    if at < 0:
        return None
    option, _, other_options = description[at + len(_RANGE) :].partition(";")
    start, dash, end = option.partition("-")
    if not dash or not start.isdigit() or not (end == "*" or end.isdigit()):
        raise ValueError(f"{description!r} is not a valid range")
    name = description[:at] + (f";{other_options}" if other_options else "")
    return Range(name, int(start), None if end == "*" else int(end))


def range_size(settings: LdapSettings) -> int | None:
    """The ``range_size`` setting: values to ask for per range (None: as the server
    decides)."""
    value = settings.get("range_size")
    return None if value is None or value == "" else settings.number("range_size")


def asked_range(name: str, start: int, size: int | None) -> str:
    """``name;range=start-*``, or ``start-end`` with a range size."""
    end = "*" if size is None else str(start + size - 1)
    return f"{name}{_RANGE}{start}-{end}"


def first_ranges(names: Iterable[str], size: int | None) -> list[str]:
    """The attribute list ``names`` asking for the first range of each (unchanged
    without a range size: the server ranges what it will)."""
    if size is None:
        return list(names)
    return [name if name in _SPECIAL_NAMES else asked_range(name, 0, size) for name in names]


def multivalued_ranges(spec: ObjectTypeSpec, size: int | None) -> list[str]:
    """The first ranges of ``spec``'s multi-valued attributes, to ask for beside ``*``
    (none without a range size)."""
    names = [name for name, attribute in spec.attributes.items() if attribute.multivalued]
    return first_ranges(names, size) if size is not None else []


class RangedEntry:
    """A raw entry whose ranged attributes are being completed.

    :meth:`start` moves the values of each ranged attribute under its plain name and
    notes where the next range starts; :meth:`merge` adds the values of a follow-up
    answer. A value read twice (the attribute changed between two reads and the
    ranges shifted) is kept once; the change itself makes the next delta read the entry
    again.
    """

    def __init__(self, entry: dict[str, Any]) -> None:
        self.entry = entry
        #: Where the next range of each unfinished attribute starts.
        self.next: dict[str, int] = {}
        self.problem = ""
        self._seen: dict[str, set[bytes]] = {}

    @classmethod
    def of(cls, entry: dict[str, Any]) -> RangedEntry | None:
        """A :class:`RangedEntry` when ``entry`` has a ranged attribute (None otherwise)."""
        raw = entry["raw_attributes"]
        if not any(";" in name and _RANGE in name.lower() for name in raw):
            return None
        ranged = cls(entry)
        ranged.start()
        return ranged

    @property
    def base(self) -> str:
        """Where to read the entry again: its objectGUID (found wherever the entry
        moved meanwhile), else its DN."""
        guid = raw_values(self.entry, "objectGUID")
        if guid and len(guid[0]) == 16:
            return f"<GUID={uuid.UUID(bytes_le=guid[0])}>"
        return str(self.entry["dn"])

    def asked(self, size: int | None) -> list[str]:
        """The attribute list of the next follow-up read."""
        return [asked_range(name, start, size) for name, start in self.next.items()]

    def start(self) -> None:
        raw = self.entry["raw_attributes"]
        for description in [name for name in raw if ";" in name]:
            try:
                found = parse_range(description)
            except ValueError as exc:
                self.fail(str(exc))
                return
            if found is None:
                continue
            values = raw.pop(description)
            if found.start != 0:
                self.fail(f"{description}: the first range does not start at 0")
                return
            self._add(found, values)

    def merge(self, answer: dict[str, Any]) -> None:
        """Add the values of a follow-up read of the entry."""
        asked = {name.lower(): name for name in self.next}
        got: set[str] = set()
        for description, values in answer["raw_attributes"].items():
            try:
                found = parse_range(description)
            except ValueError as exc:
                self.fail(str(exc))
                return
            if found is None or found.name.lower() not in asked:
                continue
            name = asked[found.name.lower()]
            if found.start != self.next[name]:
                self.fail(
                    f"{description}: the server returned the range from {found.start}, "
                    f"not the one asked for (from {self.next[name]})"
                )
                return
            got.add(name)
            self._add(dataclasses.replace(found, name=name), values)
        for name in asked.values():
            if name not in got:
                self.fail(f"{name}: the server returned no range from {self.next[name]}")
                return

    def _add(self, found: Range, values: list[bytes]) -> None:
        raw = self.entry["raw_attributes"]
        name = next((k for k in raw if k.lower() == found.name.lower()), found.name)
        kept = raw.setdefault(name, [])
        seen = self._seen.setdefault(name, set(kept))
        for value in values:
            if value not in seen:
                seen.add(value)
                kept.append(value)
        self.next.pop(name, None)
        if found.end is not None:
            if found.end < found.start:
                self.fail(f"{name}: the server returned the empty range {found.start}-{found.end}")
                return
            self.next[name] = found.end + 1

    def fail(self, problem: str) -> None:
        self.problem = problem
        self.next.clear()
        self.entry[UNREAD] = f"its values could not be read whole in ranges: {problem}"


class RangeReader:
    """Completes the ranged attributes of the entries a session's searches return."""

    def __init__(self, session: Session) -> None:
        self.session = session

    @property
    def size(self) -> int | None:
        return range_size(self.session.settings)

    def complete(self, entries: list[dict[str, Any]], what: str) -> None:
        """Read the rest of every ranged attribute of ``entries`` (changed in place).

        The follow-up reads are queued: up to :data:`READ_WINDOW` base searches in
        flight, an entry's next range asked for as soon as its last one arrived. An
        entry gone meanwhile, or answered with ranges that do not follow on, is marked
        :data:`UNREAD` (an import error naming it); a failed search raises as any does.
        """
        queue = deque(
            ranged for entry in entries if (ranged := RangedEntry.of(entry)) and ranged.next
        )
        size = self.size
        in_flight: deque[tuple[RangedEntry, str, int]] = deque()
        while queue or in_flight:
            while queue and len(in_flight) < READ_WINDOW:
                ranged = queue.popleft()
                base = ranged.base
                message_id = self.session.send_search(
                    base, "(objectClass=*)", ranged.asked(size), scope=ldap3.BASE, what=what
                )
                in_flight.append((ranged, base, message_id))
            ranged, base, message_id = in_flight.popleft()
            reading = f"{what}: reading the rest of the values of {ranged.entry['dn']!r}"
            response = self.session.wait(message_id, reading)
            if response.code == NO_SUCH_OBJECT or (response.ok and not response.entries):
                ranged.fail("the entry was deleted or moved out of reach while being read")
                continue
            self.session.check_search(response, base, reading)
            ranged.merge(response.entries[0])
            if ranged.next:
                queue.append(ranged)


class ValueChunks:
    """Export flows wrapped so that big value lists go in several requests, and the
    values an export reads back are read whole (in ranges)."""

    def __init__(
        self,
        range_size: int | None,
        value_keys: Callable[[str, Iterable[str | bytes]], set[str | bytes]],
        *,
        chunk_values: int = CHUNK_VALUES,
        chunk_bytes: int = CHUNK_BYTES,
    ) -> None:
        self.range_size = range_size
        #: The values as the directory compares them (the exporter's rule).
        self.value_keys = value_keys
        self.chunk_values = chunk_values
        self.chunk_bytes = chunk_bytes

    def flow(self, inner: Flow) -> Flow:
        """``inner``, its adds and modifies split into chunks, its reads completed."""
        # Refusals of values already there or gone are read as such once: the exporter
        # then resends what is still needed, and the refusal of that is the answer.
        refused = False
        try:
            request = next(inner)
            while True:
                if request.kind == "modify":
                    response = yield from self._modify(request, translate=not refused)
                    refused = refused or response.code in (VALUE_EXISTS, NO_SUCH_ATTRIBUTE)
                elif request.kind == "add":
                    response = yield from self._add(request)
                elif request.kind == "read":
                    response = yield from self.read(request)
                else:
                    response = yield request
                request = inner.send(response)
        except StopIteration as stop:
            return stop.value

    def read(self, request: Request) -> Generator[Request, Response, Response]:
        """A base read whose ranged attributes are read to the end."""
        asked = dataclasses.replace(request, read=first_ranges(request.read, self.range_size))
        response = yield asked
        if not response.ok or not response.entries:
            return response
        ranged = RangedEntry.of(response.entries[0])
        while ranged is not None and ranged.next:
            follow = yield Request("read", ranged.base, read=ranged.asked(self.range_size))
            if not follow.ok:
                return follow
            if not follow.entries:
                return Response(NO_SUCH_OBJECT, f"{request.dn!r} vanished while being read")
            ranged.merge(follow.entries[0])
        if ranged is not None and ranged.problem:
            return Response(_OTHER, f"reading {request.dn!r} back: {ranged.problem}")
        return response

    def _modify(
        self, request: Request, *, translate: bool
    ) -> Generator[Request, Response, Response]:
        """The modify in chunks, in order, each sent once the one before succeeded;
        with ``translate``, AD's refusals of values there or gone read as such."""
        chunks = self.modify_chunks(request.changes)
        if len(chunks) == 1:
            response = yield request
            return _value_refusal(response, request.changes) if translate else response
        return (yield from self._send_chunks(request.dn, chunks, translate=translate, written=0))

    def _send_chunks(
        self, dn: str, chunks: list[Modifications], *, translate: bool = False, written: int
    ) -> Generator[Request, Response, Response]:
        """Send ``chunks`` one after the other; ``written`` values of the change were
        written before the first."""
        total = written + sum(_count(chunk) for chunk in chunks)
        response = Response(0)
        for chunk in chunks:
            response = yield Request("modify", dn, changes=chunk)
            if translate:
                response = _value_refusal(response, chunk)
            if not response.ok:
                return _partway(response, written, total)
            written += _count(chunk)
        return response

    def _add(self, request: Request) -> Generator[Request, Response, Response]:
        """The add with the entry's first values, then modifies adding the others."""
        first, rest = self.add_chunks(request.attributes)
        if not rest:
            return (yield request)
        dn = request.dn
        response = yield dataclasses.replace(request, attributes=first)
        if response.code == ENTRY_ALREADY_EXISTS:
            # Perhaps an earlier attempt that stopped partway: complete it when the entry
            # holds only values the add sends; either way the exporter then compares it
            # with what the add sends, as it does for any create refused so.
            missing = yield from self._missing(dn, request.attributes)
            if missing is not None:
                chunks = self.modify_chunks(missing)
                if chunks:
                    done = yield from self._send_chunks(dn, chunks, written=0)
                    if not done.ok:
                        return done
            return response
        if not response.ok:
            return response
        chunks = self.modify_chunks(rest)
        written = sum(len(values) for values in first.values())
        done = yield from self._send_chunks(dn, chunks, written=written)
        return response if done.ok else done

    def _missing(
        self, dn: str, attributes: dict[str, list[Any]]
    ) -> Generator[Request, Response, Modifications | None]:
        """The values the add sends that the entry at ``dn`` lacks, as ADD operations,
        when it holds no value the add does not send (None when it does, or cannot be
        read: then it is not an earlier attempt's, or not known to be)."""
        there = yield from self.read(Request("read", dn, read=list(attributes)))
        if not there.ok or not there.entries:
            return None
        entry = there.entries[0]
        missing: Modifications = {}
        for name, values in attributes.items():
            held = self.value_keys(name, raw_values(entry, name))
            if name.lower() == "objectclass":
                if held != self.value_keys(name, values):
                    return None
                continue
            keys = [next(iter(self.value_keys(name, [value]))) for value in values]
            if not held <= set(keys):
                return None
            lacking = [value for value, key in zip(values, keys, strict=True) if key not in held]
            if lacking:
                missing[name] = [(ldap3.MODIFY_ADD, lacking)]
        return missing

    def add_chunks(
        self, attributes: dict[str, list[Any]]
    ) -> tuple[dict[str, list[Any]], Modifications]:
        """An add's attributes split into those the add carries (the smallest
        attributes first, whole, then the first values of the others, within one chunk)
        and the ADD operations that follow it."""
        first: dict[str, list[Any]] = {}
        rest: Modifications = {}
        values_room, bytes_room = self.chunk_values, self.chunk_bytes
        for name, values in sorted(attributes.items(), key=lambda item: len(item[1])):
            taken = 0
            for value in values:
                size = _size(value)
                if taken and (values_room < 1 or bytes_room < size):
                    break
                values_room -= 1
                bytes_room -= size
                taken += 1
            first[name] = values[:taken]
            if taken < len(values):
                rest[name] = [(ldap3.MODIFY_ADD, values[taken:])]
        return {name: first[name] for name in attributes if first.get(name)}, rest

    def modify_chunks(self, changes: Modifications) -> list[Modifications]:
        """A modify's operations, in order, packed into requests of at most a chunk of
        values each; an operation too big for one is split (a REPLACE into a REPLACE
        with its first values and ADDs of the others)."""
        chunks: list[Modifications] = [{}]
        values_room, bytes_room = self.chunk_values, self.chunk_bytes
        for name, operations in changes.items():
            for operation, values in operations:
                kind = operation
                if not values:
                    chunks[-1].setdefault(name, []).append((kind, []))
                    continue
                start = 0
                while start < len(values):
                    taken = 0
                    while start + taken < len(values):
                        size = _size(values[start + taken])
                        if values_room < 1 or bytes_room < size:
                            break
                        values_room -= 1
                        bytes_room -= size
                        taken += 1
                    if not taken:
                        if any(chunks[-1].values()):
                            chunks.append({})
                            values_room, bytes_room = self.chunk_values, self.chunk_bytes
                            continue
                        taken = 1  # one value bigger than a chunk: alone in its request
                        values_room, bytes_room = 0, 0
                    part = values[start : start + taken]
                    chunks[-1].setdefault(name, []).append((kind, part))
                    start += taken
                    if kind == ldap3.MODIFY_REPLACE:
                        kind = ldap3.MODIFY_ADD  # the rest of a replace is added after it
        return [chunk for chunk in chunks if chunk]


def _size(value: Any) -> int:
    return len(value) if isinstance(value, bytes) else len(str(value).encode("utf-8"))


def _count(changes: Modifications) -> int:
    return sum(len(values) for operations in changes.values() for _, values in operations)


def _value_refusal(response: Response, changes: Modifications) -> Response:
    """A modify's refusal of a value already there or already gone, as the exporter
    reads it (attributeOrValueExists, noSuchAttribute). AD refuses a linked value (a
    member) otherwise: one already there with entryAlreadyExists (ERROR_MEMBER_IN_GROUP;
    from a modify it can mean nothing else), one already gone with unwillingToPerform
    (ERROR_MEMBER_NOT_IN_GROUP; Samba: "already deleted"), which may have other causes:
    the exporter then reads the values and resends what is still needed, and that
    request meets any other cause again."""
    if response.code == ENTRY_ALREADY_EXISTS:
        return dataclasses.replace(response, code=VALUE_EXISTS)
    if response.code == UNWILLING_TO_PERFORM and any(
        operation == ldap3.MODIFY_DELETE and values
        for operations in changes.values()
        for operation, values in operations
    ):
        return dataclasses.replace(response, code=NO_SUCH_ATTRIBUTE)
    return response


def _partway(response: Response, written: int, total: int) -> Response:
    """A chunk's failure, saying how much of the change was written before it."""
    if not written:
        return response
    note = (
        f"{written} of the change's {total} values were written before this request failed "
        "(the directory applies each request whole, not the change: a retry sends the rest)"
    )
    message = f"{response.message}; {note}" if response.message else note
    return dataclasses.replace(response, message=message)
