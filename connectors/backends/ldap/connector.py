"""The LDAP connector (ldap3): schema discovery, paged full import, accesslog delta
import, and export operations (add, modify, modify DN, delete).

Connection
    One connection per run, bound once with ``bind_dn``/``bind_password`` (anonymous
    when ``bind_dn`` is blank). ldap3 (SYNC strategy) connects, secures and binds it,
    in the calling thread; from then on the connector's :class:`_Transport` owns the
    socket, still in the calling thread: it writes requests and reads answers without
    blocking, so many requests can be in flight at once (docs/architecture.md, "The
    LDAP transport", says why no receiving thread is used). ``ldaps://`` speaks TLS
    from the first byte; ``start_tls: true`` upgrades ``ldap://``. The server's
    certificate is checked (``ssl.CERT_REQUIRED``, host name included) against the
    system's CAs or the PEM file in ``ca_file``.
    ``tls_verify: false`` turns the check off: the traffic is then encrypted but the
    server is not authenticated, so anyone between JIM and the directory can read
    the bind password — never use it outside a test. ``timeout`` bounds connecting,
    every wait for an answer and the server-side time of every search; no answer in
    time closes the connection (:class:`ConnectionFailed`, transient). An
    unreachable server or a failed TLS handshake is :class:`ConnectionFailed`
    (``cannot reach ldap://…: <reason>``); refused credentials are
    :class:`ConnectionFailed` naming the bind DN, not transient; a base DN or
    container that does not exist is :class:`ConnectorConfigurationError` naming it;
    an exceeded size or time limit is a :class:`ConnectorError` saying so. No ldap3
    exception leaves the connector.

Schema
    Read from the subschema entry: structural and auxiliary object classes become
    object types whose attributes are the MUST and MAY attributes of the class and
    its superclasses (plus ``entryUUID`` and ``modifyTimestamp``); each attribute's
    syntax gives its data type (DN → reference, Integer → integer, Boolean →
    boolean, Generalized/UTC Time → datetime, Octet String/JPEG/Binary/certificates →
    binary, UUID → guid, anything else text) and SINGLE-VALUE makes it single-valued.

Full import
    For each object type a subtree search ``(objectClass=<name>)`` under its container
    (default ``base_dn``) with the paged-results control: the same filter and
    attributes (all user attributes, ``entryUUID``, ``modifyTimestamp`` and declared
    operational attributes) on every page; each LDAP page is one import page, and the
    next page is requested while the processor works on the current one. Attribute
    names are the schema's (``givenName``); values are converted by data type (the
    object type's declaration first, else the schema's): integers, booleans,
    GeneralizedTime as ISO 8601 text, binary as base64 text, entryUUID as lowercase
    text, DN values (references) as the DN text. The external id is the value of the
    object type's external id attribute (``entryUUID``); the secondary external id
    is the DN as the server returned it. Password attributes (``userPassword``…) are
    not read unless the object type declares them. A value that cannot be converted
    is an import error naming the entry and the attribute.

Delta import (``delta_method``)
    ``accesslog`` (default): reads OpenLDAP's accesslog (``accesslog_base``). The
    watermark is the newest ``reqStart`` in the log, found before the first page of
    every import, full ones included, by size-limited probes that bisect the time
    range (:mod:`connectors.backends.ldap.newest`): never a paged or unlimited search,
    a number of probes that does not grow with the log. A delta reads (paged) the
    successful writes after the watermark, folds them per entry (``reqEntryUUID``) —
    several changes of one entry are one object, a delete wins over earlier changes —
    then re-reads the current state of the added, modified, renamed and moved
    entries (one search per object type and batch of entryUUIDs) and reports deletes
    with the entryUUID and DN from the log. An entry renamed or moved out of every
    selected container is a delete; one moved in is an upsert. When the log no longer
    holds the watermark's entry (purged), the delta fails and asks for a full import
    rather than miss changes. A log that cannot be read is a configuration error that
    suggests ``modify_timestamp``.
    ``modify_timestamp``: the watermark is the newest ``modifyTimestamp`` under
    ``base_dn`` when the import starts (found the same way); a delta re-reads the
    entries with ``modifyTimestamp >=`` it (the second of the watermark is read
    again: harmless). This method cannot see deletes: run full imports to detect them.
    ``none``: no delta import.

Export
    Creates are adds (object classes: the object type's class and its superclasses,
    plus any ``objectClass`` values given; the RDN's value is added when missing)
    that bring back the new entry's external id (``entryUUID``) with the post-read
    control, or read it right after where the server lacks that control (unreadable,
    it is left to the confirming import, which finds the entry by DN). An add refused
    with ``entryAlreadyExists`` reads the entry back: when it holds the values the add
    sends (compared as the directory compares them; attributes the add does not send
    are not compared), the create succeeds with that entry's external id (an earlier
    attempt got through but its answer was lost); otherwise it fails, naming each
    attribute that differs. Updates are a modify DN (rename and/or move, old RDN
    deleted) when ``new_dn`` differs, then one modify with a REPLACE per ``update``,
    an ADD per ``add``, a DELETE per ``remove`` and a REPLACE with no values per
    ``remove_all`` (which, unlike DELETE, also succeeds when the attribute is absent).
    Adding a value that is there already or removing one that is not makes the
    server refuse the whole modify; the connector then re-reads those attributes and
    sends only what is still needed, so a retried export is harmless; so is a
    rename found done already. Deleting an entry that is
    already gone succeeds. An update or delete without a DN finds the entry by its
    external id.

    Requests are pipelined: up to ``export_window`` are in flight at once, so a batch
    goes at about the server's pace rather than one round trip at a time; changes to
    the same entry, or to a container and what is in it, still reach the server in
    the order given. Each change gets its own result: failures carry the server's
    result name and message and are transient for busy/unavailable/time-limit
    results and a broken connection, permanent otherwise; one failure never stops
    the other changes. When the connection breaks, the answers that arrived before
    still count; a request sent but not answered is ``serverDown`` ("whether it was
    applied is unknown"), one not sent is ``serverDown`` ("it was not sent"), both
    transient. A connection that breaks before the server answered anything is
    :class:`ConnectionFailed`.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import datetime as dt
import re
import selectors
import socket
import ssl
import time
from collections import deque
from collections.abc import Callable, Generator, Iterable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import ldap3
from ldap3.core.exceptions import LDAPException, LDAPSchemaError
from ldap3.core.results import RESULT_CODES
from ldap3.utils.conv import escape_filter_chars

from connectors.backends.ldap import internals as ldap_internals
from connectors.backends.ldap import wire as ldap_wire
from connectors.backends.ldap.internals import (
    AttributeTypeInfo,
    ObjectClassInfo,
    post_read_control,
)
from connectors.backends.ldap.newest import MICROSECOND, SECOND, Probe, find_newest
from connectors.base import (
    AttributeSpec,
    ConnectionFailed,
    Connector,
    ConnectorConfigurationError,
    ConnectorError,
    ExportAttributeChange,
    ExportChange,
    ExportResult,
    ImportObject,
    ImportObjectError,
    ImportPage,
    ImportStream,
    ObjectTypeSpec,
    SettingSpec,
)
from core.dn import (
    DNError,
    Rdn,
    first_rdn,
    is_within,
    normalise_dn,
    parse_dn,
    split_dn,
)

#: LDAP syntax OID → JIM data type (anything else is text).
SYNTAX_DATA_TYPES = {
    "1.3.6.1.4.1.1466.115.121.1.12": "reference",  # DN
    "1.3.6.1.4.1.1466.115.121.1.27": "integer",
    "1.3.6.1.4.1.1466.115.121.1.7": "boolean",
    "1.3.6.1.4.1.1466.115.121.1.24": "datetime",  # GeneralizedTime
    "1.3.6.1.4.1.1466.115.121.1.53": "datetime",  # UTCTime
    "1.3.6.1.4.1.1466.115.121.1.40": "binary",  # Octet String
    "1.3.6.1.4.1.1466.115.121.1.28": "binary",  # JPEG
    "1.3.6.1.4.1.1466.115.121.1.5": "binary",  # Binary
    "1.3.6.1.4.1.1466.115.121.1.4": "binary",  # Audio
    "1.3.6.1.4.1.1466.115.121.1.8": "binary",  # Certificate
    "1.3.6.1.4.1.1466.115.121.1.9": "binary",  # Certificate List
    "1.3.6.1.4.1.1466.115.121.1.10": "binary",  # Certificate Pair
    "1.3.6.1.4.1.1466.115.121.1.23": "binary",  # Fax
    "1.3.6.1.4.1.1466.115.121.1.49": "binary",  # Supported Algorithm
    "1.3.6.1.1.16.1": "guid",  # UUID
}
#: Operational attributes every import asks for.
OPERATIONAL_ATTRIBUTES = ("entryUUID", "modifyTimestamp")
#: Attributes not imported unless the object type declares them.
SECRET_ATTRIBUTES = frozenset({"userpassword", "authpassword"})
#: The client-side result of a request whose answer the broken connection lost.
SERVER_DOWN = 81
#: Result codes worth retrying: the server is busy, unavailable, slow or gone.
TRANSIENT_RESULTS = frozenset({3, 11, 51, 52, 80, SERVER_DOWN})
NO_SUCH_OBJECT = 32
ENTRY_ALREADY_EXISTS = 68
NO_SUCH_ATTRIBUTE = 16
VALUE_EXISTS = 20
SIZE_LIMIT_EXCEEDED = 4
TIME_LIMIT_EXCEEDED = 3
INSUFFICIENT_ACCESS = 50
PAGED_RESULTS_OID = "1.2.840.113556.1.4.319"
POST_READ_OID = "1.3.6.1.1.13.2"
#: EntryUUIDs per ``(|(entryUUID=…)…)`` filter when re-reading changed entries.
REREAD_BATCH = 200
#: Entries a newest-value probe asks for at most (connectors/backends/ldap/newest.py):
#: below directories' size limits (OpenLDAP's default is 500), and enough that a
#: bisection meets a window it can read whole early.
NEWEST_PROBE_LIMIT = 200
#: Bytes read from, and written to, the socket at a time.
RECEIVE_SIZE = 256 * 1024
SEND_SIZE = 64 * 1024

_GENERALIZED_TIME_RE = re.compile(
    r"^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})?(\d{2})?(?:[.,](\d+))?(Z|[+-]\d{2}(?:\d{2})?)?$"
)
_UTC_TIME_RE = re.compile(r"^(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})?(Z|[+-]\d{4})$")
_WRAPPED_MESSAGE_RE = re.compile(r"^\(['\"](.*)['\"],?\)$")
_TRUE_TEXTS = frozenset({"true", "yes", "1"})
_FALSE_TEXTS = frozenset({"false", "no", "0"})


# --------------------------------------------------------------------------- values


def generalized_time_to_iso(text: str) -> str:
    """``20240131093000Z`` → ``2024-01-31T09:30:00+00:00`` (ValueError when malformed).

    Also reads UTCTime (``240131093000Z``). A time without a zone stays naive.
    """
    match = _GENERALIZED_TIME_RE.match(text)
    if match:
        year, month, day, hour, minute, second, fraction, zone = match.groups()
        try:
            return _iso(year, month, day, hour, minute, second, fraction, zone)
        except ValueError:
            pass  # perhaps a UTCTime
    utc = _UTC_TIME_RE.match(text)
    if not utc:
        raise ValueError(f"{text!r} is not a GeneralizedTime")
    short_year, month, day, hour, minute, second, zone = utc.groups()
    year = str(1900 + int(short_year) + (100 if int(short_year) < 50 else 0))
    return _iso(year, month, day, hour, minute, second, None, zone)


def _iso(
    year: str,
    month: str,
    day: str,
    hour: str,
    minute: str | None,
    second: str | None,
    fraction: str | None,
    zone: str | None,
) -> str:
    tz = None
    if zone == "Z":
        tz = dt.UTC
    elif zone:
        sign = 1 if zone[0] == "+" else -1
        tz = dt.timezone(sign * dt.timedelta(hours=int(zone[1:3]), minutes=int(zone[3:5] or 0)))
    value = dt.datetime(
        int(year),
        int(month),
        int(day),
        int(hour),
        int(minute or 0),
        int(second or 0),
        int((fraction or "0")[:6].ljust(6, "0")),
        tzinfo=tz,
    )
    return value.isoformat()


def to_generalized_time(value: Any) -> str:
    """A datetime, date or ISO 8601 text as GeneralizedTime (UTC, ``…Z``).

    GeneralizedTime text is returned as it is; ValueError otherwise.
    """
    if isinstance(value, str):
        text = value.strip()
        if _GENERALIZED_TIME_RE.match(text):
            return text
        value = dt.datetime.fromisoformat(text)
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        value = dt.datetime(value.year, value.month, value.day, tzinfo=dt.UTC)
    if not isinstance(value, dt.datetime):
        raise ValueError(f"{value!r} is not a date and time")
    if value.tzinfo is not None:
        value = value.astimezone(dt.UTC)
    fraction = f".{value.microsecond:06d}".rstrip("0") if value.microsecond else ""
    return value.strftime("%Y%m%d%H%M%S") + fraction + "Z"


def _decode_text(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError("a value is not valid UTF-8 text") from None


def _to_integer(raw: bytes) -> int:
    text = _decode_text(raw).strip()
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"{text!r} is not an integer") from None


def _to_boolean(raw: bytes) -> bool:
    text = _decode_text(raw).strip().upper()
    if text in ("TRUE", "FALSE"):
        return text == "TRUE"
    raise ValueError(f"{text!r} is not TRUE or FALSE")


def _to_datetime(raw: bytes) -> str:
    return generalized_time_to_iso(_decode_text(raw).strip())


def _to_binary(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _to_guid(raw: bytes) -> str:
    return _decode_text(raw).strip().lower()


#: data type → converter of a raw LDAP value.
IMPORT_CONVERTERS: dict[str, Callable[[bytes], Any]] = {
    "text": _decode_text,
    "reference": _decode_text,
    "integer": _to_integer,
    "boolean": _to_boolean,
    "datetime": _to_datetime,
    "binary": _to_binary,
    "guid": _to_guid,
}


def to_ldap_value(value: Any, data_type: str) -> str | bytes:
    """A JIM value as sent to the directory (ValueError when it cannot be)."""
    if isinstance(value, bytes):
        return value
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if data_type == "boolean" and isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in _TRUE_TEXTS | _FALSE_TEXTS:
            return "TRUE" if lowered in _TRUE_TEXTS else "FALSE"
        raise ValueError(f"{value!r} is not a boolean")
    if data_type == "datetime" or isinstance(value, dt.date):
        return to_generalized_time(value)
    if data_type == "binary" and isinstance(value, str):
        try:
            return base64.b64decode(value, validate=True)
        except binascii.Error:
            raise ValueError(f"{value[:40]!r} is not base64-encoded binary") from None
    return str(value)


# --------------------------------------------------------------------------- schema


@dataclass(frozen=True)
class _AttributeType:
    """An attribute type of the directory's schema, resolved along its SUP chain."""

    name: str
    data_type: str
    multivalued: bool
    writable: bool
    operational: bool
    case_insensitive: bool

    def spec(self) -> AttributeSpec:
        return AttributeSpec(
            self.name,
            data_type=self.data_type,
            multivalued=self.multivalued,
            writable=self.writable,
        )


@dataclass(frozen=True)
class _ObjectClass:
    name: str
    kind: str  # STRUCTURAL, AUXILIARY, ABSTRACT
    superiors: tuple[str, ...]
    must: tuple[str, ...]
    may: tuple[str, ...]


class _Schema:
    """The directory's object classes and attribute types, by any of their names."""

    def __init__(self, object_classes: list[str], attribute_types: list[str]) -> None:
        try:
            raw_types = AttributeTypeInfo.from_definition(attribute_types)
            raw_classes = ObjectClassInfo.from_definition(object_classes)
        except LDAPSchemaError as exc:
            raise ConnectorError(f"the directory's schema cannot be read: {exc}") from None
        infos = {id(info): info for info in raw_types.values()}
        by_name: dict[str, Any] = {}
        for info in infos.values():
            for name in [*(info.name or []), info.oid]:
                by_name[name.lower()] = info
        self._attribute_types: dict[str, _AttributeType] = {}
        for key, info in by_name.items():
            self._attribute_types[key] = self._resolve(info, by_name)
        self._classes: dict[str, _ObjectClass] = {}
        for info in {id(i): i for i in raw_classes.values()}.values():
            names = [*(info.name or []), info.oid]
            object_class = _ObjectClass(
                name=names[0],
                kind=info.kind or "STRUCTURAL",
                superiors=tuple(info.superior or ()),
                must=tuple(info.must_contain or ()),
                may=tuple(info.may_contain or ()),
            )
            for name in names:
                self._classes[name.lower()] = object_class

    @staticmethod
    def _resolve(info: Any, by_name: dict[str, Any]) -> _AttributeType:
        syntax, equality, current, seen = None, None, info, set()
        while current is not None and id(current) not in seen:
            seen.add(id(current))
            syntax = syntax or current.syntax
            equality = equality or (current.equality[0] if current.equality else None)
            superior = current.superior[0].lower() if current.superior else None
            current = by_name.get(superior) if superior else None
        operational = info.usage not in (None, "USER_APPLICATION")
        return _AttributeType(
            name=(info.name or [info.oid])[0],
            data_type=SYNTAX_DATA_TYPES.get(syntax or "", "text"),
            multivalued=not info.single_value,
            writable=not (operational or info.no_user_modification),
            operational=operational,
            case_insensitive=bool(equality)
            and ("ignore" in equality.lower() or equality.lower() == "distinguishednamematch"),
        )

    def attribute(self, name: str) -> _AttributeType | None:
        return self._attribute_types.get(name.split(";", 1)[0].lower())

    def object_class(self, name: str) -> _ObjectClass | None:
        return self._classes.get(name.lower())

    def class_chain(self, name: str) -> list[str]:
        """The class and all its superclasses, superclasses first (``top`` … ``name``)."""
        chain: list[str] = []

        def visit(class_name: str) -> None:
            object_class = self.object_class(class_name)
            if object_class is None or object_class.name in chain:
                return
            for superior in object_class.superiors:
                visit(superior)
            chain.append(object_class.name)

        visit(name)
        return chain

    def object_type_specs(self) -> list[ObjectTypeSpec]:
        """Structural and auxiliary classes as object types, by name."""
        specs = []
        for object_class in {id(c): c for c in self._classes.values()}.values():
            if object_class.kind == "ABSTRACT":
                continue
            attributes: dict[str, AttributeSpec] = {}
            for class_name in self.class_chain(object_class.name):
                member = self.object_class(class_name)
                for attribute_name in (*member.must, *member.may):
                    attribute = self.attribute(attribute_name)
                    if attribute is not None:
                        attributes.setdefault(attribute.name, attribute.spec())
            for attribute_name in OPERATIONAL_ATTRIBUTES:
                attribute = self.attribute(attribute_name)
                if attribute is not None:
                    attributes.setdefault(attribute.name, attribute.spec())
            specs.append(
                ObjectTypeSpec(
                    name=object_class.name,
                    external_id_attribute="entryUUID",
                    secondary_external_id_attribute="dn",
                    attributes=attributes,
                )
            )
        return sorted(specs, key=lambda spec: spec.name.lower())


# --------------------------------------------------------------------------- transport


class _Unsendable(ConnectorError):
    """A request that cannot be encoded (the change's own fault; nothing was sent)."""


class _Transport:
    """The socket of one bound connection, owned by the thread that uses it.

    Nothing runs in the background: requests are written and answers read by the
    caller, in :meth:`wait`. The socket is non-blocking; :meth:`_pump` waits (with
    ``selectors``) until the socket can take what is queued or has something to
    read, writes and reads what it can, and files every complete message under its
    message id as it arrives. So a window of requests can be in flight while the
    answers are read as they come, in one thread, and the socket is never used by
    two threads at once (OpenSSL forbids that) nor read after it is closed.

    Messages are framed by their BER length and decoded by ldap3's fast decoder
    (:mod:`~connectors.backends.ldap.internals`). When the connection breaks, every
    answer that arrived before is filed already: :meth:`arrived` tells which
    requests of a broken batch were answered; the others are in doubt.
    """

    def __init__(self, connection: ldap3.Connection, url: str, timeout: int) -> None:
        self.connection = connection
        self.url = url
        self.timeout = timeout
        self.lost = ""  # why the connection broke; "" while it works
        self._socket = ldap_internals.socket_of(connection)
        self._tls = isinstance(self._socket, ssl.SSLSocket)
        self._socket.setblocking(False)
        # Requests go out as soon as they are written: Nagle's algorithm would hold a
        # request back until the answer to an earlier one arrives.
        self._socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._socket, selectors.EVENT_READ)
        self._inbox = bytearray()
        self._outbox = bytearray()
        #: The bytes being written: after a TLS "want", the same bytes are retried.
        self._chunk = b""
        self._write_wants_read = False
        self._read_wants_write = False
        self._parts: dict[int, list[dict[str, Any]]] = {}
        self._answers: dict[int, tuple[list[dict[str, Any]], dict[str, Any]]] = {}

    # -- requests ----------------------------------------------------------------------

    def send(self, build: Callable[[int], bytes], what: str, *, flush: bool = True) -> int:
        """Queue the request ``build(message_id)``; its message id. With ``flush``, write
        what the socket takes now; else the queue is written at the next :meth:`wait`
        (a window of requests then goes out in a few segments rather than one each).
        :class:`ConnectionFailed` once the connection is lost."""
        self._check(what)
        message_id = ldap_internals.next_message_id(self.connection)
        try:
            message = build(message_id)
        except (LDAPException, ValueError, TypeError) as exc:
            raise _Unsendable(f"cannot send {what}: {_exception_text(exc)}") from None
        self._outbox += message
        if flush:
            self._write()
            self._check(what)
        return message_id

    def wait(self, message_id: int, what: str) -> _Response:
        """The answer to ``message_id``, waiting at most ``timeout`` seconds for it.

        An answer that arrived before the connection broke is still returned. No
        answer in time breaks the connection (what comes later cannot be trusted).
        """
        deadline = time.monotonic() + self.timeout
        self._write()  # what was queued goes out now, whether or not the answer is here
        while message_id not in self._answers:
            self._check(what)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self._break(f"no answer within {self.timeout} s")
                raise ConnectionFailed(
                    f"{self.url} did not answer within {self.timeout} s while {what}; "
                    "the connection was closed"
                )
            self._pump(remaining)
        return _Response.of(*self._answers.pop(message_id))

    def arrived(self, message_id: int) -> _Response | None:
        """The answer to ``message_id`` if it has arrived (None otherwise)."""
        answer = self._answers.pop(message_id, None)
        return _Response.of(*answer) if answer else None

    def close(self) -> None:
        """Unbind (when nothing is half written) and close the socket."""
        if not self.lost and not (self._outbox or self._chunk):
            message_id = ldap_internals.next_message_id(self.connection)
            with contextlib.suppress(OSError):  # a courtesy: closing is what counts
                self._socket.send(ldap_wire.unbind_request(message_id))
        self._break("the connection was closed")

    def _check(self, what: str) -> None:
        if self.lost:
            raise ConnectionFailed(f"lost the connection to {self.url} while {what}: {self.lost}")

    def _break(self, reason: str) -> None:
        """The connection is lost (or closed): keep why, and close the socket."""
        if self.lost:
            return
        self.lost = reason
        self._drain()
        self._selector.close()
        with contextlib.suppress(LDAPException, OSError):
            ldap_internals.close_socket(self.connection)

    def _drain(self) -> None:
        """Read, without waiting, what the server sent before the break (a failed write
        leaves the answers that arrived unread): those answers still count."""
        while True:
            try:
                data = self._socket.recv(RECEIVE_SIZE)
            except OSError:  # would block, reset, TLS wants more: nothing more to read
                return
            if not data:
                return
            self._inbox += data
            self._file_messages()

    # -- the socket ----------------------------------------------------------------------

    def _pump(self, timeout: float) -> None:
        """Wait up to ``timeout`` seconds for the socket, then write and read what it can."""
        if self._tls and self._socket.pending():  # decrypted bytes no select can see
            self._read()
            return
        events = selectors.EVENT_READ
        writing = (self._outbox or self._chunk) and not self._write_wants_read
        if writing or self._read_wants_write:
            events |= selectors.EVENT_WRITE
        self._selector.modify(self._socket, events)
        for _key, ready in self._selector.select(timeout):
            if ready & selectors.EVENT_WRITE:
                if self._read_wants_write:
                    self._read_wants_write = False
                    self._read()
                self._write()
            if ready & selectors.EVENT_READ and not self.lost:
                self._write_wants_read = False
                self._read()
                self._write()

    def _write(self) -> None:
        """Write queued bytes until the socket would block."""
        while (self._chunk or self._outbox) and not self.lost:
            if not self._chunk:
                self._chunk = bytes(self._outbox[:SEND_SIZE])
                del self._outbox[:SEND_SIZE]
            try:
                sent = self._socket.send(self._chunk)
            except (ssl.SSLWantWriteError, BlockingIOError):
                return
            except ssl.SSLWantReadError:
                self._write_wants_read = True
                return
            except OSError as exc:
                self._break(_exception_text(exc))
                return
            self._chunk = self._chunk[sent:]

    def _read(self) -> None:
        """Read until the socket would block, filing each complete message."""
        while not self.lost:
            try:
                data = self._socket.recv(RECEIVE_SIZE)
            except (ssl.SSLWantReadError, BlockingIOError):
                return
            except ssl.SSLWantWriteError:
                self._read_wants_write = True
                return
            except OSError as exc:
                self._break(_exception_text(exc))
                return
            if not data:
                self._break("the server closed the connection")
                return
            self._inbox += data
            self._file_messages()

    def _file_messages(self) -> None:
        while True:
            size = ldap_internals.message_size(self._inbox)
            if size < 0 or len(self._inbox) < size:
                return
            data = bytes(self._inbox[:size])
            del self._inbox[:size]
            try:
                message_id, response = ldap_internals.decode_message(self.connection, data)
            except Exception as exc:  # any decoding failure: a garbled stream
                self._break(f"an answer could not be read ({type(exc).__name__}: {exc})")
                return
            if message_id == 0:  # an unsolicited notification: the server ends the session
                notice = response.get("message") or response.get("description") or ""
                self._break(f"the server ended the session ({notice})")
                return
            if ldap_internals.is_partial(response):
                self._parts.setdefault(message_id, []).append(response)
            else:
                self._answers[message_id] = (self._parts.pop(message_id, []), response)


# --------------------------------------------------------------------------- responses


@dataclass
class _Response:
    """The outcome of one request: result code, name, server message, entries."""

    code: int
    message: str = ""
    entries: list[dict[str, Any]] = field(default_factory=list)
    cookie: bytes | None = None
    #: Attributes of the entry after the operation (post-read control), when asked for.
    post_read: dict[str, list[Any]] = field(default_factory=dict)

    @classmethod
    def of(cls, entries: list[dict[str, Any]] | None, result: dict[str, Any]) -> _Response:
        """The response of ldap3's ``get_response`` answer."""
        controls = result.get("controls") or {}
        paged = (controls.get(PAGED_RESULTS_OID) or {}).get("value") or {}
        post_read = (controls.get(POST_READ_OID) or {}).get("value") or {}
        return cls(
            code=result["result"],
            message=result.get("message") or "",
            entries=[e for e in entries or () if e.get("type") == "searchResEntry"],
            cookie=paged.get("cookie") or None,
            post_read=post_read.get("result") or {},
        )

    @property
    def ok(self) -> bool:
        return self.code == 0

    @property
    def name(self) -> str:
        return "serverDown" if self.code == SERVER_DOWN else RESULT_CODES.get(self.code, "")

    def describe(self) -> str:
        name = f"{self.name} ({self.code})" if self.name else f"result {self.code}"
        return name + (f": {self.message}" if self.message else "")


@dataclass
class _Request:
    """One LDAP request of an export flow."""

    kind: str  # add, modify, modify_dn, delete, read (base search), find (subtree search)
    dn: str
    attributes: dict[str, Any] = field(default_factory=dict)
    changes: dict[str, list[tuple[int, list[Any]]]] = field(default_factory=dict)
    new_rdn: str = ""
    new_superior: str | None = None
    read: list[str] = field(default_factory=list)
    search_filter: str = "(objectClass=*)"
    controls: list[tuple[str, bool, bytes]] | None = None


class _ConnectionLost(Exception):
    """The connection broke while requests were in flight (a ConnectionFailed inside)."""


#: An export flow: yields requests, is sent their responses, returns the result.
Flow = Generator[_Request, _Response, ExportResult]


# --------------------------------------------------------------------------- reading entries


class _EntryReader:
    """Turns the raw entries of one object type into import objects."""

    def __init__(self, spec: ObjectTypeSpec, schema: _Schema) -> None:
        self.spec = spec
        self.schema = schema
        self.declared = {name.lower(): attribute for name, attribute in spec.attributes.items()}
        self.id_attribute = spec.external_id_attribute
        self._converters: dict[str, Callable[[bytes], Any] | None] = {}

    def converter(self, name: str) -> Callable[[bytes], Any] | None:
        """How values of ``name`` are converted; None when the attribute is not imported."""
        lowered = name.lower()
        declared = self.declared.get(lowered) or self.declared.get(lowered.split(";", 1)[0])
        if declared is not None:
            data_type = declared.data_type
        elif lowered.split(";", 1)[0] in SECRET_ATTRIBUTES:
            data_type = None
        else:
            attribute = self.schema.attribute(name)
            data_type = attribute.data_type if attribute else "text"
        converter = IMPORT_CONVERTERS.get(data_type, _decode_text) if data_type else None
        self._converters[name] = converter
        return converter

    def read(self, entry: dict[str, Any]) -> ImportObject | ImportObjectError:
        dn = entry["dn"]
        attributes: dict[str, list[Any]] = {}
        problem = ""
        converters = self._converters
        for name, raw_values in entry["raw_attributes"].items():
            convert = converters[name] if name in converters else self.converter(name)
            if convert is None or not raw_values:
                continue
            try:
                if convert is _decode_text:  # most values: no call per value
                    attributes[name] = [raw.decode("utf-8") for raw in raw_values]
                else:
                    attributes[name] = [convert(raw) for raw in raw_values]
            except UnicodeDecodeError:
                problem = problem or f"{name}: a value is not valid UTF-8 text"
            except ValueError as exc:
                problem = problem or f"{name}: {exc}"
        external_id = self._external_id(dn, attributes)
        if problem:
            return ImportObjectError(problem, location=dn, external_id=external_id or "")
        return ImportObject(
            object_type=self.spec.name,
            attributes=attributes,
            external_id=external_id,
            secondary_external_id=dn,
            location=dn,
        )

    def _external_id(self, dn: str, attributes: dict[str, list[Any]]) -> str | None:
        if self.id_attribute.lower() == "dn":
            return dn
        values = attributes.get(self.id_attribute)
        if values is None:
            values = next(
                (v for k, v in attributes.items() if k.lower() == self.id_attribute.lower()), None
            )
        return str(values[0]) if values else None


# --------------------------------------------------------------------------- delta


@dataclass
class _LoggedEntry:
    """What the accesslog says happened to one entry in the delta's window."""

    uuid: str | None
    dn: str
    deleted: bool = False
    #: Every DN the entry had in the window (a rename or move changes it).
    dns: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------- connector


class LdapConnector(Connector):
    """Imports and exports the entries of an LDAP directory (see the module doc)."""

    name = "ldap"
    label = "LDAP directory"
    settings_spec = (
        SettingSpec("url", required=True, help="ldap://host:port or ldaps://host:port"),
        SettingSpec("bind_dn", help="DN to bind as; anonymous when blank."),
        SettingSpec("bind_password", secret=True, help="Password of bind_dn."),
        SettingSpec("base_dn", required=True, help="Search base when no container is given."),
        SettingSpec("start_tls", type=bool, default=False, help="Upgrade ldap:// with StartTLS."),
        SettingSpec("ca_file", help="PEM file of the CA to trust for TLS."),
        SettingSpec(
            "tls_verify",
            type=bool,
            default=True,
            help="Check the server certificate. Turning it off is unsafe: anyone on the "
            "path can pose as the server and read the bind password.",
        ),
        SettingSpec("page_size", type=int, default=500, help="Paged-results page size."),
        SettingSpec("timeout", type=int, default=30, help="Connect/operation timeout (seconds)."),
        SettingSpec(
            "delta_method",
            default="accesslog",
            choices=("accesslog", "modify_timestamp", "none"),
            help="How delta imports find changes.",
        ),
        SettingSpec("accesslog_base", default="cn=accesslog", help="The accesslog database."),
        SettingSpec(
            "export_window",
            type=int,
            default=64,
            help="Export requests kept in flight at once (pipelining).",
        ),
    )
    supports_full_import = True
    supports_delta_import = True
    supports_export = True
    supports_paging = True
    supports_schema_discovery = True

    def __init__(self, settings: dict[str, Any], *, base_dir: Path | None = None) -> None:
        super().__init__(settings, base_dir=base_dir)
        self._transport: _Transport | None = None
        self._schema: _Schema | None = None
        self._root: dict[str, list[str]] | None = None
        self._post_read = False
        self._post_read_controls: dict[str, tuple[str, bool, bytes]] = {}

    # -- settings -----------------------------------------------------------------------

    def _text(self, name: str) -> str:
        value = self.settings.get(name)
        return "" if value is None else str(value).strip()

    def _flag(self, name: str) -> bool:
        value = self.settings.get(name)
        if isinstance(value, str):
            lowered = value.strip().lower()
            if lowered not in _TRUE_TEXTS | _FALSE_TEXTS:
                raise ConnectorConfigurationError(f"{name} must be true or false, not {value!r}.")
            return lowered in _TRUE_TEXTS
        return bool(value)

    def _number(self, name: str) -> int:
        value = self.settings.get(name)
        try:
            number = int(value)
        except (TypeError, ValueError):
            number = 0
        if number <= 0:
            raise ConnectorConfigurationError(
                f"{name} must be a positive whole number, not {value!r}."
            )
        return number

    @property
    def url(self) -> str:
        return self._text("url")

    @property
    def base_dn(self) -> str:
        return self._text("base_dn")

    @property
    def bind_dn(self) -> str:
        return self._text("bind_dn")

    @property
    def timeout(self) -> int:
        return self._number("timeout")

    def _delta_method(self) -> str:
        """The ``delta_method`` setting, checked."""
        method = self._text("delta_method") or "accesslog"
        if method not in ("accesslog", "modify_timestamp", "none"):
            raise ConnectorConfigurationError(
                f"delta_method must be accesslog, modify_timestamp or none, not {method!r}."
            )
        return method

    @property
    def accesslog_base(self) -> str:
        return self._text("accesslog_base") or "cn=accesslog"

    def _check_settings(self) -> None:
        """Raise :class:`ConnectorConfigurationError` for the first bad setting."""
        if not self.base_dn:
            raise ConnectorConfigurationError("The ldap connector needs a 'base_dn' setting.")
        if self.bind_dn and not self.settings.get("bind_password"):
            # An empty password would make a simple bind anonymous (RFC 4513 §5.1.2).
            raise ConnectorConfigurationError(
                f"bind_dn {self.bind_dn!r} is set but bind_password is empty."
            )
        for name in ("page_size", "export_window", "timeout"):
            self._number(name)
        self._delta_method()

    def _server(self) -> ldap3.Server:
        """The ldap3 Server of the ``url`` and TLS settings (configuration errors named)."""
        url = self.url
        if not url:
            raise ConnectorConfigurationError("The ldap connector needs a 'url' setting.")
        parts = urlsplit(url)
        if parts.scheme.lower() not in ("ldap", "ldaps") or not parts.hostname:
            raise ConnectorConfigurationError(
                f"url {url!r} is not an LDAP URL (ldap://host:port or ldaps://host:port)."
            )
        try:
            port = parts.port
        except ValueError:
            raise ConnectorConfigurationError(f"url {url!r} has an invalid port.") from None
        use_ssl = parts.scheme.lower() == "ldaps"
        if use_ssl and self._flag("start_tls"):
            raise ConnectorConfigurationError(
                "start_tls upgrades ldap:// connections; an ldaps:// url already uses TLS."
            )
        try:
            return ldap3.Server(
                parts.hostname,
                port=port or (636 if use_ssl else 389),
                use_ssl=use_ssl,
                tls=self._tls() if use_ssl or self._flag("start_tls") else None,
                get_info=ldap3.NONE,
                connect_timeout=self.timeout,
            )
        except LDAPException as exc:
            raise ConnectorConfigurationError(f"url {url!r}: {_exception_text(exc)}") from None

    def _tls(self) -> ldap3.Tls:
        """Certificate checking on (unless ``tls_verify`` is false), against ``ca_file``
        (relative to the configuration's folder) or the system's CAs."""
        ca_file = self._text("ca_file")
        if ca_file:
            path = Path(ca_file).expanduser()
            path = path if path.is_absolute() else self.base_dir / path
            if not path.is_file():
                raise ConnectorConfigurationError(f"ca_file {str(path)!r}: no such file.")
            ca_file = str(path)
        return ldap3.Tls(
            validate=ssl.CERT_REQUIRED if self._flag("tls_verify") else ssl.CERT_NONE,
            ca_certs_file=ca_file or None,
        )

    # -- session --------------------------------------------------------------------------

    def open(self) -> None:
        """Connect (TLS as configured), bind once, and check that ``base_dn`` exists.

        ldap3's SYNC strategy does the connecting, TLS and bind in this thread; then
        :class:`_Transport` takes the socket over for every request.
        """
        if self._transport is not None:
            return
        server = self._server()
        self._check_settings()
        connection = ldap3.Connection(
            server,
            user=self.bind_dn or None,
            password=self.settings.get("bind_password") or None,
            client_strategy=ldap3.SYNC,
            raise_exceptions=False,
            auto_referrals=False,
            return_empty_attributes=False,
            check_names=False,
            receive_timeout=self.timeout,
        )
        try:
            connection.open(read_server_info=False)
            if self._flag("start_tls") and not connection.start_tls(read_server_info=False):
                raise self._unreachable(Exception(f"StartTLS failed: {connection.last_error}"))
            bound = connection.bind(read_server_info=False)
        except LDAPException as exc:
            _quietly_close(connection)
            raise self._unreachable(exc) from None
        except ConnectionFailed:
            _quietly_close(connection)
            raise
        if not bound:
            reason = connection.last_error or "the bind was refused"
            _quietly_close(connection)
            raise ConnectionFailed(
                f"{self.url} refused the credentials of {self._who()}: {reason}", transient=False
            )
        self._transport = _Transport(connection, self.url, self.timeout)
        try:
            self._require_entry(self.base_dn, "base_dn")
        except BaseException:
            self.close()
            raise

    def _unreachable(self, exc: Exception) -> ConnectionFailed:
        reason = _exception_text(exc)
        if "CERTIFICATE_VERIFY_FAILED" in reason or "certificate" in reason.lower():
            return ConnectionFailed(
                f"cannot reach {self.url}: the server's certificate is not trusted ({reason}); "
                "set ca_file to the PEM file of the CA that signed it",
                transient=False,
            )
        return ConnectionFailed(f"cannot reach {self.url}: {reason}")

    def close(self) -> None:
        transport, self._transport = self._transport, None
        self._schema = self._root = None
        if transport is not None:
            transport.close()

    @property
    def connection(self) -> ldap3.Connection:
        """The open ldap3 connection; :class:`ConnectionFailed` once it broke."""
        transport = self._session()
        if transport.lost:
            raise ConnectionFailed(f"the connection to {self.url} was lost: {transport.lost}")
        return transport.connection

    def _session(self) -> _Transport:
        if self._transport is None:
            raise ConnectorError("The ldap connector is not open; use it as a context manager.")
        return self._transport

    # -- requests -----------------------------------------------------------------------

    def _send(self, build: Callable[[int], bytes], what: str) -> int:
        """Send the request ``build(message_id)``; its message id."""
        return self._session().send(build, what)

    def _wait(self, message_id: int, what: str) -> _Response:
        """The response to a request, waiting at most ``timeout`` seconds.

        An answer that arrived before the connection broke is still returned.
        """
        return self._session().wait(message_id, what)

    def _send_search(
        self,
        base: str,
        search_filter: str,
        attributes: Iterable[str],
        *,
        scope: str = ldap3.SUBTREE,
        page_size: int | None = None,
        cookie: bytes | None = None,
        size_limit: int = 0,
        what: str,
    ) -> int:
        attributes = list(attributes)

        def build(message_id: int) -> bytes:
            return ldap_internals.search_message(
                message_id,
                base,
                search_filter,
                scope,
                attributes,
                size_limit=size_limit,
                time_limit=self.timeout,
                paged_size=page_size,
                paged_cookie=cookie,
            )

        return self._send(build, what)

    def _search(
        self,
        base: str,
        search_filter: str,
        attributes: Iterable[str],
        *,
        scope: str = ldap3.SUBTREE,
        what: str,
        missing_ok: bool = False,
    ) -> list[dict[str, Any]]:
        """The entries of one (unpaged) search; raises on failure."""
        message_id = self._send_search(base, search_filter, attributes, scope=scope, what=what)
        response = self._wait(message_id, what)
        if missing_ok and response.code == NO_SUCH_OBJECT:
            return []
        self._check_search(response, base, what)
        return response.entries

    def _paged_search(
        self, base: str, search_filter: str, attributes: list[str], page_size: int, what: str
    ) -> Iterator[list[dict[str, Any]]]:
        """The entries of a paged subtree search, page by page.

        Every page repeats the filter and attributes; the next page is requested before
        the current one is handed over, so the directory works while the caller does.
        """
        message_id = self._send_search(
            base, search_filter, attributes, page_size=page_size, what=what
        )
        while True:
            response = self._wait(message_id, what)
            self._check_search(response, base, what)
            if response.cookie:
                message_id = self._send_search(
                    base,
                    search_filter,
                    attributes,
                    page_size=page_size,
                    cookie=response.cookie,
                    what=what,
                )
            yield response.entries
            if not response.cookie:
                return

    def _check_search(self, response: _Response, base: str, what: str) -> None:
        if response.ok:
            return
        if response.code == NO_SUCH_OBJECT:
            raise ConnectorConfigurationError(
                f"{base!r} does not exist on {self.url} (or {self._who()} cannot see it), "
                f"while {what}"
            )
        if response.code == SIZE_LIMIT_EXCEEDED:
            raise ConnectorError(
                f"{self.url} stopped {what}: its size limit was exceeded "
                f"({response.describe()}); raise the limit for {self._who()} or use paging"
            )
        if response.code == TIME_LIMIT_EXCEEDED:
            raise ConnectorError(
                f"{self.url} stopped {what}: the time limit ({self.timeout} s) was exceeded "
                f"({response.describe()})",
                transient=True,
            )
        if response.code == INSUFFICIENT_ACCESS:
            raise ConnectorConfigurationError(
                f"{self._who()} may not read {base!r} on {self.url} ({response.describe()})"
            )
        raise ConnectorError(
            f"{what} failed on {self.url}: {response.describe()}",
            transient=response.code in TRANSIENT_RESULTS,
        )

    def _who(self) -> str:
        return f"bind DN {self.bind_dn!r}" if self.bind_dn else "an anonymous bind"

    def _require_entry(self, dn: str, setting: str) -> None:
        """Raise :class:`ConnectorConfigurationError` naming ``dn`` when it does not exist."""
        try:
            parse_dn(dn)
        except DNError as exc:
            raise ConnectorConfigurationError(f"{setting}: {exc}") from None
        message_id = self._send_search(
            dn, "(objectClass=*)", ["1.1"], scope=ldap3.BASE, what=f"reading {setting} {dn!r}"
        )
        response = self._wait(message_id, f"reading {setting} {dn!r}")
        if response.code in (NO_SUCH_OBJECT, 34) or (response.ok and not response.entries):
            raise ConnectorConfigurationError(
                f"{setting} {dn!r} does not exist on {self.url} (or {self._who()} cannot see it)"
            )
        self._check_search(response, dn, f"reading {setting} {dn!r}")

    # -- schema ---------------------------------------------------------------------------

    def _root_dse(self) -> dict[str, list[str]]:
        """The root DSE's subschemaSubentry and supportedControl, read once."""
        if self._root is None:
            entries = self._search(
                "",
                "(objectClass=*)",
                ["subschemaSubentry", "supportedControl"],
                scope=ldap3.BASE,
                what="reading the root DSE",
            )
            self._root = {
                name: [v.decode("utf-8", "replace") for v in _raw(entries[0], name)]
                for name in ("subschemaSubentry", "supportedControl")
                if entries
            }
        return self._root

    def _supports_post_read(self) -> bool:
        return POST_READ_OID in self._root_dse().get("supportedControl", [])

    def directory_schema(self) -> _Schema:
        """The directory's schema, read once per connection."""
        if self._schema is None:
            subschema = (self._root_dse().get("subschemaSubentry") or ["cn=Subschema"])[0]
            entries = self._search(
                subschema,
                "(objectClass=subschema)",
                ["objectClasses", "attributeTypes"],
                scope=ldap3.BASE,
                what=f"reading the schema {subschema!r}",
            )
            if not entries:
                raise ConnectorError(f"{self.url} did not return its schema ({subschema!r})")
            self._schema = _Schema(
                [v.decode("utf-8", "replace") for v in _raw(entries[0], "objectClasses")],
                [v.decode("utf-8", "replace") for v in _raw(entries[0], "attributeTypes")],
            )
        return self._schema

    def discover_schema(self) -> list[ObjectTypeSpec]:
        """The structural and auxiliary object classes, with their attributes."""
        return self.directory_schema().object_type_specs()

    # -- identifiers ----------------------------------------------------------------------

    def secondary_id_key(self, value: str) -> str:
        """The normalised DN (see :func:`~core.dn.normalise_dn`);
        a text that is not a DN is compared lowercased."""
        try:
            return normalise_dn(value)
        except DNError:
            return value.strip().lower()

    def secondary_id_error(self, value: str) -> str:
        """Why ``value`` cannot be an entry's DN: not a DN, or an RDN without a value."""
        if not value.strip():
            return "it is empty"
        try:
            rdns = parse_dn(value)
        except DNError as exc:
            return str(exc)
        for rdn in rdns:
            for attribute_type, attribute_value in rdn:
                if not attribute_value.strip():
                    return f"{attribute_type}= has no value"
        return ""

    # -- import ---------------------------------------------------------------------------

    def import_objects(
        self,
        object_types: list[ObjectTypeSpec],
        *,
        delta: bool,
        persisted_data: dict[str, Any],
        page_size: int | None = None,
    ) -> ImportStream:
        """Start a full or delta import; the watermark is taken before the first page."""
        if not object_types:
            raise ConnectorConfigurationError("No object type was selected for import.")
        page_size = page_size or self._number("page_size")
        containers = {spec.container or self.base_dn for spec in object_types}
        for container in sorted(containers):
            self._require_entry(container, "container")
        readers = [_EntryReader(spec, self.directory_schema()) for spec in object_types]
        if not delta:
            watermark = self._watermark()
            return ImportStream(watermark=watermark, pages=self._full_pages(readers, page_size))
        method = self._delta_method()
        if method == "none":
            raise ConnectorConfigurationError(
                "delta_method is none: this connected system has no delta import; "
                "run a full import (or set delta_method to accesslog or modify_timestamp)."
            )
        if method == "accesslog":
            self._require_accesslog()
        if persisted_data.get("delta_method") != method:
            raise ConnectorError(
                f"There is no {method} watermark yet (the last full import was made "
                + (
                    f"with delta_method {persisted_data['delta_method']}"
                    if persisted_data.get("delta_method")
                    else "before any watermark was kept"
                )
                + "); run a full import first."
            )
        if method == "accesslog":
            return self._accesslog_delta(readers, persisted_data, page_size)
        return self._timestamp_delta(readers, persisted_data, page_size)

    def _attributes_to_read(self, reader: _EntryReader) -> list[str]:
        """All user attributes, entryUUID, modifyTimestamp and declared operational ones."""
        wanted = ["*", *OPERATIONAL_ATTRIBUTES]
        for name in reader.spec.attributes:
            attribute = self.directory_schema().attribute(name)
            if attribute is not None and attribute.operational and attribute.name not in wanted:
                wanted.append(attribute.name)
        return wanted

    def _full_pages(self, readers: list[_EntryReader], page_size: int) -> Iterator[ImportPage]:
        for reader in readers:
            spec = reader.spec
            base = spec.container or self.base_dn
            search_filter = f"(objectClass={escape_filter_chars(spec.name)})"
            what = f"reading {spec.name} entries under {base!r}"
            attributes = self._attributes_to_read(reader)
            for entries in self._paged_search(base, search_filter, attributes, page_size, what):
                yield _page(reader, entries)

    # -- watermarks ---------------------------------------------------------------------

    def _watermark(self) -> dict[str, Any]:
        """The watermark of an import starting now (for the next delta import)."""
        method = self._delta_method()
        if method == "accesslog":
            if not self._accesslog_readable():
                return {}
            newest = self._newest(
                self.accesslog_base,
                "(&(objectClass=auditWriteObject)(reqResult=0))",
                "reqStart",
                None,
                "the accesslog",
                precision=MICROSECOND,
            )
            return {"delta_method": method, "req_start": newest}
        if method == "modify_timestamp":
            newest = self._newest(
                self.base_dn,
                "(objectClass=*)",
                "modifyTimestamp",
                None,
                "modify times",
                precision=SECOND,
            )
            return {"delta_method": method, "modify_timestamp": newest}
        return {}

    def _accesslog_readable(self) -> bool:
        base = self.accesslog_base
        message_id = self._send_search(
            base, "(objectClass=*)", ["1.1"], scope=ldap3.BASE, what=f"reading {base!r}"
        )
        response = self._wait(message_id, f"reading the accesslog {base!r}")
        return response.ok and bool(response.entries)

    def _require_accesslog(self) -> None:
        if not self._accesslog_readable():
            raise ConnectorConfigurationError(
                f"The accesslog {self.accesslog_base!r} cannot be read on {self.url} by "
                f"{self._who()}: enable OpenLDAP's accesslog overlay and let the bind DN read "
                "it (or set accesslog_base), or set delta_method: modify_timestamp (which "
                "cannot see deletes)."
            )

    #: Probes the last search for a newest value took (the benchmark reports it).
    newest_probes = 0

    def _newest(
        self,
        base: str,
        search_filter: str,
        attribute: str,
        since: str | None,
        what: str,
        *,
        precision: int,
    ) -> str | None:
        """The greatest GeneralizedTime value of ``attribute`` under ``base``, or
        ``since`` when nothing is newer (None: nothing at all).

        Found by :func:`~connectors.backends.ldap.newest.find_newest`: searches for the
        values from a time on, each asking for at most NEWEST_PROBE_LIMIT entries, their
        number bounded whatever the size of the log — never a paged or unlimited search.
        """
        what = f"looking for the newest {attribute} in {what}"

        def probe(lower: str | None) -> Probe:
            condition = f"({attribute}>={escape_filter_chars(lower)})" if lower else ""
            message_id = self._send_search(
                base,
                f"(&{search_filter}{condition})",
                [attribute],
                size_limit=NEWEST_PROBE_LIMIT,
                what=what,
            )
            response = self._wait(message_id, what)
            complete = response.code != SIZE_LIMIT_EXCEEDED
            if complete:
                self._check_search(response, base, what)
            values = [
                raw.decode("ascii", "replace")
                for entry in response.entries
                for raw in _raw(entry, attribute)
            ]
            if not complete and not values:
                raise ConnectorError(
                    f"{self.url} stopped {what}: its size limit was exceeded before any "
                    f"entry was returned ({response.describe()}); let {self._who()} read "
                    "a few hundred entries per search"
                )
            return Probe(values, complete)

        try:
            newest = find_newest(probe, precision=precision, since=since)
        except ValueError as exc:
            raise ConnectorError(f"{self.url}: {what}: {exc}") from None
        self.newest_probes = newest.probes
        return newest.value

    # -- delta: accesslog ------------------------------------------------------------------

    def _accesslog_delta(
        self, readers: list[_EntryReader], persisted: dict[str, Any], page_size: int
    ) -> ImportStream:
        if "req_start" not in persisted:
            raise ConnectorError("There is no accesslog watermark yet; run a full import first.")
        since: str | None = persisted["req_start"]
        if since is not None:
            self._require_log_entry(since)
        log = self._read_log(since)
        newest = max((r["reqStart"] for r in log), key=_time_order, default=since)
        entries = _fold_log(log)
        watermark = {"delta_method": "accesslog", "req_start": newest}
        return ImportStream(
            watermark=watermark, pages=self._delta_pages(readers, entries, page_size)
        )

    def _require_log_entry(self, since: str) -> None:
        """Fail when the log no longer holds the watermark: changes may have been purged."""
        dn = f"reqStart={since},{self.accesslog_base}"
        if not self._search(
            dn,
            "(objectClass=*)",
            ["1.1"],
            scope=ldap3.BASE,
            what="reading the watermark's log entry",
            missing_ok=True,
        ):
            raise ConnectorError(
                f"The accesslog {self.accesslog_base!r} no longer holds the entry of the last "
                f"watermark ({since}); changes since then may have been purged from the log. "
                "Run a full import."
            )

    def _read_log(self, since: str | None) -> list[dict[str, str]]:
        """The successful writes logged after ``since``, oldest first (small dicts)."""
        condition = f"(reqStart>={since})" if since else ""
        search_filter = f"(&(objectClass=auditWriteObject)(reqResult=0){condition})"
        wanted = [
            "reqStart",
            "reqType",
            "reqDN",
            "reqEntryUUID",
            "reqNewRDN",
            "reqNewSuperior",
            "reqNewDN",
        ]
        records = []
        for entries in self._paged_search(
            self.accesslog_base,
            search_filter,
            wanted,
            self._number("page_size"),
            "reading the accesslog",
        ):
            for entry in entries:
                record = {
                    name: values[0].decode("utf-8", "replace")
                    for name in wanted
                    if (values := _raw(entry, name))
                }
                if record.get("reqStart") and record["reqStart"] != since:
                    records.append(record)
        records.sort(key=lambda r: _time_order(r["reqStart"]))
        return records

    def _delta_pages(
        self, readers: list[_EntryReader], logged: list[_LoggedEntry], page_size: int
    ) -> Iterator[ImportPage]:
        """Deletes first, then the re-read entries, then the entries that left the scope."""
        containers = [
            (normalise_dn(reader.spec.container or self.base_dn), reader) for reader in readers
        ]
        deletes: list[ImportObject] = []
        #: Changed entries that were in scope, and their delete should they have left it.
        changed: list[tuple[_LoggedEntry, ImportObject]] = []
        for entry in logged:
            delete = self._delete_object(entry, containers)
            if delete is None:
                continue  # never in a selected container
            if entry.deleted:
                deletes.append(delete)
            else:
                changed.append((entry, delete))
        yield from _pages_of(deletes, page_size)
        found: set[str] = set()
        batch_size = max(1, min(page_size, REREAD_BATCH))
        for reader in readers:
            yield from self._reread(reader, [entry for entry, _ in changed], batch_size, found)
        # Changed entries that no selected type returned: renamed or moved out of scope.
        left = [
            delete for entry, delete in changed if _entry_key(entry.uuid, entry.dn) not in found
        ]
        yield from _pages_of(left, page_size)

    def _reread(
        self, reader: _EntryReader, changed: list[_LoggedEntry], batch_size: int, found: set[str]
    ) -> Iterator[ImportPage]:
        """The current state of changed entries of one object type, batch by batch;
        adds the key of every entry read to ``found``."""
        spec = reader.spec
        base = spec.container or self.base_dn
        class_filter = f"(objectClass={escape_filter_chars(spec.name)})"
        attributes = self._attributes_to_read(reader)
        by_uuid = [e.uuid for e in changed if e.uuid]
        by_dn = [e.dn for e in changed if not e.uuid]
        for attribute, values in (("entryUUID", by_uuid), ("entryDN", by_dn)):
            for start in range(0, len(values), batch_size):
                batch = values[start : start + batch_size]
                alternatives = "".join(f"({attribute}={escape_filter_chars(v)})" for v in batch)
                entries = self._search(
                    base,
                    f"(&{class_filter}(|{alternatives}))",
                    attributes,
                    what=f"re-reading changed {spec.name} entries under {base!r}",
                )
                for entry in entries:
                    uuids = _raw(entry, "entryUUID")
                    found.add(_entry_key(uuids[0].decode() if uuids else None, entry["dn"]))
                    found.add(_entry_key(None, entry["dn"]))
                if entries:
                    yield _page(reader, entries)

    def _delete_object(
        self, entry: _LoggedEntry, containers: list[tuple[str, _EntryReader]]
    ) -> ImportObject | None:
        """A delete for an entry that was in a selected container (None otherwise)."""
        best: tuple[int, _EntryReader, str] | None = None
        for dn in entry.dns or [entry.dn]:
            try:
                key = normalise_dn(dn)
            except DNError:
                continue
            for container_key, reader in containers:
                if is_within(key, container_key) and (best is None or len(container_key) > best[0]):
                    best = (len(container_key), reader, dn)
        if best is None:
            return None
        _, reader, dn = best
        return ImportObject(
            object_type=reader.spec.name,
            attributes={},
            change="delete",
            external_id=_deleted_external_id(reader.spec, entry, dn),
            secondary_external_id=dn,
            location=f"{self.accesslog_base}: {dn}",
        )

    # -- delta: modifyTimestamp ------------------------------------------------------------

    def _timestamp_delta(
        self, readers: list[_EntryReader], persisted: dict[str, Any], page_size: int
    ) -> ImportStream:
        since = persisted.get("modify_timestamp")
        newest = self._newest(
            self.base_dn,
            "(objectClass=*)",
            "modifyTimestamp",
            since,
            "modify times",
            precision=SECOND,
        )
        watermark = {"delta_method": "modify_timestamp", "modify_timestamp": newest}
        return ImportStream(
            watermark=watermark, pages=self._timestamp_pages(readers, since, page_size)
        )

    def _timestamp_pages(
        self, readers: list[_EntryReader], since: str | None, page_size: int
    ) -> Iterator[ImportPage]:
        condition = f"(modifyTimestamp>={escape_filter_chars(since)})" if since else ""
        for reader in readers:
            spec = reader.spec
            base = spec.container or self.base_dn
            search_filter = f"(&(objectClass={escape_filter_chars(spec.name)}){condition})"
            what = f"reading changed {spec.name} entries under {base!r}"
            attributes = self._attributes_to_read(reader)
            for entries in self._paged_search(base, search_filter, attributes, page_size, what):
                yield _page(reader, entries)

    # -- export -----------------------------------------------------------------------------

    def export(self, changes: list[ExportChange]) -> list[ExportResult]:
        """Apply the changes, pipelined; one result per change, in the order given.

        Raises :class:`ConnectionFailed` only when the directory answered none of them
        (it cannot be reached); a connection lost later fails the unanswered changes
        as transient.
        """
        if not changes:
            return []
        # Read before the pipeline: the flows themselves do no I/O.
        self.directory_schema()
        self._post_read = self._supports_post_read()
        pipeline = _Pipeline(self, self._number("export_window"))
        results = pipeline.run([(change, self._flow(change)) for change in changes])
        return [results[change.id] for change in changes]

    def _flow(self, change: ExportChange) -> Flow:
        if change.change_type == "create":
            return self._create_flow(change)
        if change.change_type == "update":
            return self._update_flow(change)
        if change.change_type == "delete":
            return self._delete_flow(change)
        return _failed(change, f"unknown change type {change.change_type!r}")

    def _create_flow(self, change: ExportChange) -> Flow:
        dn = (change.dn or "").strip()
        try:
            rdns = parse_dn(dn)
            if not rdns:
                raise ValueError("no DN to create the entry at")
            attributes = self._add_attributes(change, rdns[0])
        except ValueError as exc:  # DNError included
            return (yield from _failed(change, f"cannot create {dn!r}: {exc}"))
        id_attribute = change.object_type.external_id_attribute or "entryUUID"
        by_dn = id_attribute.lower() == "dn"
        # The new entry's external id comes back with the add (post-read control), or
        # from a read right after it.
        post_read = self._post_read and not by_dn
        controls = [self._post_read_control(id_attribute)] if post_read else None
        response = yield _Request("add", dn, attributes=attributes, controls=controls)
        if response.code == ENTRY_ALREADY_EXISTS:
            # Perhaps an earlier attempt whose answer a broken connection lost: look.
            return (yield from self._created_already(change, dn, attributes, response))
        if by_dn:
            return _result_of(change, response, f"add {dn!r}", external_id=dn, dn=dn)
        if not response.ok:
            return _result_of(change, response, f"add {dn!r}")
        values = next(
            (v for k, v in response.post_read.items() if k.lower() == id_attribute.lower()), []
        )
        if not values:
            read = yield _Request("read", dn, read=[id_attribute])
            values = _values_of(read, id_attribute)
        # Unreadable, the id is left to the confirming import, which finds the entry by DN.
        external_id = _text_value(values[0]) if values else None
        if external_id and id_attribute.lower() == "entryuuid":
            external_id = external_id.lower()
        return ExportResult(change.id, ok=True, external_id=external_id, dn=dn)

    def _created_already(
        self, change: ExportChange, dn: str, attributes: dict[str, list[Any]], refused: _Response
    ) -> Generator[_Request, _Response, ExportResult]:
        """The result of a create refused with ``entryAlreadyExists``: a success when the
        entry at ``dn`` holds exactly the values the add sends (an earlier attempt got
        through), else a permanent error naming the attributes that differ."""
        id_attribute = change.object_type.external_id_attribute or "entryUUID"
        by_dn = id_attribute.lower() == "dn"
        there = yield _Request("read", dn, read=[*attributes, *([] if by_dn else [id_attribute])])
        if not there.ok or not there.entries:
            return _result_of(change, refused, f"add {dn!r}")
        entry = there.entries[0]
        differences = [
            f"{name} is {_shown(_raw(entry, name))}, the create sends {_shown(values)}"
            for name, values in attributes.items()
            if self._value_keys(name, _raw(entry, name)) != self._value_keys(name, values)
        ]
        if differences:
            return ExportResult(
                change.id,
                ok=False,
                error=f"add {dn!r} failed: {refused.describe()}; the entry there is not the "
                f"one to create: {'; '.join(differences)}",
            )
        values = [dn] if by_dn else _raw(entry, id_attribute)
        external_id = _text_value(values[0]) if values else None
        if external_id and id_attribute.lower() == "entryuuid":
            external_id = external_id.lower()
        return ExportResult(change.id, ok=True, external_id=external_id, dn=dn)

    def _value_keys(self, name: str, values: Iterable[str | bytes]) -> set[str | bytes]:
        """The values as the directory compares them; object classes with their
        superclasses (an entry of class ``inetOrgPerson`` is a ``person`` too)."""
        if name.lower() == "objectclass":
            schema = self.directory_schema()
            return {
                class_name.lower()
                for value in values
                for class_name in schema.class_chain(_text_value(value)) or [_text_value(value)]
            }
        return {self._value_key(name, value) for value in values}

    def _post_read_control(self, attribute: str) -> tuple[str, bool, bytes]:
        """The post-read control asking for ``attribute`` (built once, it never changes)."""
        if attribute not in self._post_read_controls:
            self._post_read_controls[attribute] = post_read_control([attribute])
        return self._post_read_controls[attribute]

    def _add_attributes(self, change: ExportChange, rdn: Rdn) -> dict[str, list[Any]]:
        spec = change.object_type
        attributes: dict[str, list[Any]] = {}
        for attribute_change in change.attribute_changes:
            if attribute_change.change_type not in ("add", "update"):
                continue
            values = self._ldap_values(spec, attribute_change)
            if values:
                current = attributes.setdefault(attribute_change.attribute, [])
                current.extend(v for v in values if v not in current)
        chain = self.directory_schema().class_chain(spec.name)
        if not chain:
            raise ValueError(f"the object class {spec.name!r} is not in the directory's schema")
        given = next((k for k in attributes if k.lower() == "objectclass"), None)
        extra = [v for v in attributes.pop(given, []) if v not in chain] if given else []
        for name in list(extra):
            extra.extend(
                c for c in self.directory_schema().class_chain(str(name)) if c not in chain + extra
            )
        attributes["objectClass"] = chain + extra
        for rdn_type, rdn_value in rdn:
            name = next((k for k in attributes if k.lower() == rdn_type.lower()), rdn_type)
            values = attributes.setdefault(name, [])
            if not any(str(v).lower() == rdn_value.lower() for v in values):
                values.append(rdn_value)
        return attributes

    def _ldap_values(self, spec: ObjectTypeSpec, attribute_change: ExportAttributeChange) -> list:
        declared = spec.attributes.get(attribute_change.attribute)
        if declared is not None:
            data_type = declared.data_type
        else:
            attribute = self.directory_schema().attribute(attribute_change.attribute)
            data_type = attribute.data_type if attribute else "text"
        try:
            return [
                to_ldap_value(value, data_type)
                for value in attribute_change.values
                if value is not None
            ]
        except ValueError as exc:
            raise ValueError(f"{attribute_change.attribute}: {exc}") from None

    def _update_flow(self, change: ExportChange) -> Flow:
        dn = (change.dn or "").strip()
        if not dn:
            dn = yield from self._locate(change)
            if not dn:
                return (yield from _failed(change, self._not_found(change)))
        try:
            modifications = self._modifications(change)
        except ValueError as exc:
            return (yield from _failed(change, f"cannot modify {dn!r}: {exc}"))
        renamed = None
        new_dn = (change.new_dn or "").strip()
        if new_dn and self.secondary_id_key(new_dn) != self.secondary_id_key(dn):
            problem = self.secondary_id_error(new_dn)
            if problem:
                return (
                    yield from _failed(change, f"cannot rename {dn!r} to {new_dn!r}: {problem}")
                )
            outcome = yield from self._rename(change, dn, new_dn)
            if isinstance(outcome, ExportResult):
                return outcome
            dn = renamed = new_dn
        if modifications:
            response = yield _Request("modify", dn, changes=modifications)
            if response.code in (VALUE_EXISTS, NO_SUCH_ATTRIBUTE):
                response = yield from self._modify_what_is_needed(change, dn, modifications)
            if not response.ok:
                result = _result_of(change, response, f"modify {dn!r}")
                result.dn = renamed
                return result
        return ExportResult(change.id, ok=True, external_id=change.external_id, dn=renamed)

    def _rename(
        self, change: ExportChange, dn: str, new_dn: str
    ) -> Generator[_Request, _Response, ExportResult | None]:
        """Modify DN ``dn`` → ``new_dn`` (rename and/or move); None when done."""
        try:
            new_rdn, new_parent = split_dn(new_dn)
            _, old_parent = split_dn(dn)
        except DNError as exc:
            return ExportResult(change.id, ok=False, error=f"cannot rename {dn!r}: {exc}")
        moved = self.secondary_id_key(new_parent) != self.secondary_id_key(old_parent)
        response = yield _Request(
            "modify_dn", dn, new_rdn=new_rdn, new_superior=new_parent if moved else None
        )
        if response.ok:
            return None
        if response.code == NO_SUCH_OBJECT:
            # A retry after a rename whose answer was lost: the entry is there already.
            there = yield _Request("read", new_dn, read=["entryUUID"])
            values = _values_of(there, "entryUUID")
            if values and (
                not change.external_id
                or values[0].decode("utf-8", "replace").lower() == change.external_id.lower()
            ):
                return None
        return _result_of(change, response, f"rename {dn!r} to {new_dn!r}")

    def _modifications(self, change: ExportChange) -> dict[str, list[tuple[int, list[Any]]]]:
        """The modify request's changes: REPLACE, ADD, DELETE per attribute change."""
        modifications: dict[str, list[tuple[int, list[Any]]]] = {}
        for attribute_change in change.attribute_changes:
            values = self._ldap_values(change.object_type, attribute_change)
            kind = attribute_change.change_type
            if kind == "update":
                operation = (ldap3.MODIFY_REPLACE, values)
            elif kind == "add" and values:
                operation = (ldap3.MODIFY_ADD, values)
            elif kind == "remove" and values:
                operation = (ldap3.MODIFY_DELETE, values)
            elif kind == "remove_all":
                operation = (ldap3.MODIFY_REPLACE, [])
            else:
                continue
            modifications.setdefault(attribute_change.attribute, []).append(operation)
        return modifications

    def _modify_what_is_needed(
        self, change: ExportChange, dn: str, modifications: dict[str, list[tuple[int, list[Any]]]]
    ) -> Generator[_Request, _Response, _Response]:
        """Resend a refused modify without the values already added or already gone."""
        names = list(modifications)
        current = yield _Request("read", dn, read=names)
        if not current.ok or not current.entries:
            return current
        present = {
            name.lower(): {self._value_key(name, v) for v in values}
            for name, values in current.entries[0]["raw_attributes"].items()
        }
        needed: dict[str, list[tuple[int, list[Any]]]] = {}
        for name, operations in modifications.items():
            have = set(present.get(name.lower(), set()))
            for operation, values in operations:
                keys = [self._value_key(name, v) for v in values]
                if operation == ldap3.MODIFY_ADD:
                    values = [v for v, k in zip(values, keys, strict=True) if k not in have]
                    have |= set(keys)
                elif operation == ldap3.MODIFY_DELETE:
                    values = [v for v, k in zip(values, keys, strict=True) if k in have]
                    have -= set(keys)
                else:
                    have = set(keys)
                if values or operation == ldap3.MODIFY_REPLACE:
                    needed.setdefault(name, []).append((operation, values))
        if not needed:
            return _Response(0)
        response = yield _Request("modify", dn, changes=needed)
        return response

    def _value_key(self, name: str, value: str | bytes) -> str | bytes:
        """A value as the directory compares it (DNs normalised, case-insensitive rules)."""
        attribute = self.directory_schema().attribute(name)
        if attribute is None or not attribute.case_insensitive:
            return value.encode() if isinstance(value, str) else value
        text = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
        if attribute.data_type == "reference":
            return self.secondary_id_key(text)
        return text.lower()

    def _delete_flow(self, change: ExportChange) -> Flow:
        dn = (change.dn or "").strip()
        if not dn:
            dn = yield from self._locate(change)
            if not dn:
                return ExportResult(change.id, ok=True)  # already gone
        response = yield _Request("delete", dn)
        if response.code == NO_SUCH_OBJECT:
            return ExportResult(change.id, ok=True)  # already gone: what was wanted
        return _result_of(change, response, f"delete {dn!r}")

    def _locate(self, change: ExportChange) -> Generator[_Request, _Response, str]:
        """The DN of the entry with the change's external id ("" when there is none)."""
        id_attribute = change.object_type.external_id_attribute or "entryUUID"
        if not change.external_id or id_attribute.lower() == "dn":
            return change.external_id or ""
        base = change.object_type.container or self.base_dn
        search_filter = f"({id_attribute}={escape_filter_chars(change.external_id)})"
        response = yield _Request("find", base, read=["1.1"], search_filter=search_filter)
        return response.entries[0]["dn"] if response.ok and response.entries else ""

    def _not_found(self, change: ExportChange) -> str:
        id_attribute = change.object_type.external_id_attribute or "entryUUID"
        if not change.external_id:
            return "no DN and no external id to find the entry by"
        return f"no entry with {id_attribute} {change.external_id!r} on {self.url}"


# --------------------------------------------------------------------------- pipeline


@dataclass
class _Job:
    """A change on its way: its flow, the entries it touches, its request in flight."""

    change: ExportChange
    flow: Flow
    keys: tuple[str, ...]
    started: bool = False
    #: The request in flight (-1: none sent).
    message_id: int = -1
    what: str = ""


class _Pipeline:
    """Runs export flows with up to ``window`` requests in flight on one connection.

    Independent changes overlap. A change that touches the same entry as an earlier
    one, or an entry above or below it (a container and what goes into it), waits
    until the earlier one is done, so the directory sees them in the order given.
    When the connection breaks, the answers that arrived still count; every other
    request is answered ``serverDown`` (transient), so each change gets its result.
    """

    def __init__(self, connector: LdapConnector, window: int) -> None:
        self.connector = connector
        self.window = window
        self.results: dict[int, ExportResult] = {}
        self.in_flight: deque[_Job] = deque()
        self.answered = False

    def run(self, flows: list[tuple[ExportChange, Flow]]) -> dict[int, ExportResult]:
        """Every change's result; raises the connection's failure when none was answered."""
        waiting = deque(_Job(change, flow, self._keys(change)) for change, flow in flows)
        try:
            while waiting or self.in_flight:
                self._start(waiting)
                if not self.in_flight:
                    continue  # every started change finished without a request
                job = self.in_flight.popleft()
                try:
                    response = self.connector._wait(job.message_id, job.what)
                except ConnectorError as exc:  # lost, or no answer in time
                    self.in_flight.appendleft(job)
                    raise _ConnectionLost(exc) from None
                self.answered = True
                self._advance(job, response)
        except _ConnectionLost as lost:
            failure = lost.args[0]
            self._conclude_all(waiting, failure)
            if not self.answered:
                raise failure from None
        return self.results

    def _start(self, waiting: deque[_Job]) -> None:
        """Start waiting jobs, in order, while the window has room and they are free."""
        held: list[_Job] = []
        busy = [key for job in self.in_flight for key in job.keys]
        try:
            while waiting and len(self.in_flight) < self.window and len(held) < self.window:
                job = waiting.popleft()
                if any(_related(key, other) for key in job.keys for other in busy):
                    held.append(job)
                else:
                    self._advance(job, None)
                if job.change.id not in self.results:  # held or in flight
                    busy.extend(job.keys)
        finally:
            waiting.extendleft(reversed(held))

    def _advance(self, job: _Job, response: _Response | None) -> None:
        """Feed a response to a job's flow; send its next request or keep its result."""
        try:
            request = job.flow.send(response) if job.started else next(job.flow)
        except StopIteration as stop:
            self.results[job.change.id] = stop.value
            return
        job.started = True
        job.message_id = -1
        job.what = f"{request.kind} {request.dn!r}"
        self.in_flight.append(job)
        try:
            job.message_id = self.connector._session().send(
                partial(_request_bytes, request), job.what, flush=False
            )
        except ConnectionFailed as exc:
            raise _ConnectionLost(exc) from None
        except _Unsendable as exc:  # this change's own fault: it ends here
            self.in_flight.remove(job)
            job.flow.close()
            self.results[job.change.id] = ExportResult(job.change.id, ok=False, error=str(exc))

    def _conclude_all(self, waiting: deque[_Job], failure: ConnectorError) -> None:
        """After a break: run every unfinished flow to its end, with the answers that
        arrived first, and ``serverDown`` for every other request: in doubt when it
        was sent (it may have been applied), not made when it was not."""
        transport = self.connector._session()
        sent = _Response(SERVER_DOWN, f"{failure}; whether it was applied is unknown")
        unsent = _Response(SERVER_DOWN, f"{failure}; it was not sent")
        for job in [*self.in_flight, *waiting]:
            arrived = transport.arrived(job.message_id) if job.message_id >= 0 else None
            reply = arrived or (sent if job.message_id >= 0 else unsent)
            self.answered = self.answered or arrived is not None
            try:
                if not job.started:
                    next(job.flow)  # its first request, never sent
                while True:
                    job.flow.send(reply)
                    reply = unsent
            except StopIteration as stop:
                self.results[job.change.id] = stop.value
        self.in_flight.clear()
        waiting.clear()

    def _keys(self, change: ExportChange) -> tuple[str, ...]:
        dns = (change.dn, change.new_dn)
        return tuple(self.connector.secondary_id_key(dn) for dn in dns if dn and dn.strip())


def _related(key: str, other: str) -> bool:
    """True when two normalised DNs are the same entry or one lies beneath the other."""
    return is_within(key, other) or is_within(other, key)


# --------------------------------------------------------------------------- helpers


def _page(reader: _EntryReader, entries: list[dict[str, Any]]) -> ImportPage:
    page = ImportPage()
    for entry in entries:
        item = reader.read(entry)
        if isinstance(item, ImportObjectError):
            page.errors.append(item)
        else:
            page.objects.append(item)
    return page


def _pages_of(objects: list[ImportObject], page_size: int) -> Iterator[ImportPage]:
    for start in range(0, len(objects), page_size):
        yield ImportPage(objects=objects[start : start + page_size])


def _time_order(value: str) -> str:
    """A sortable form of a GeneralizedTime in UTC (the accesslog's and modifyTimestamp's)."""
    return value.rstrip("Z").replace(",", ".")


def _entry_key(uuid: str | None, dn: str | None) -> str:
    if uuid:
        return uuid.lower()
    try:
        return normalise_dn(dn or "")
    except DNError:
        return (dn or "").lower()


def _fold_log(records: list[dict[str, str]]) -> list[_LoggedEntry]:
    """One :class:`_LoggedEntry` per entry the log records changed, in first-seen order."""
    entries: dict[str, _LoggedEntry] = {}
    for record in records:
        dn = record.get("reqDN", "")
        uuid = (record.get("reqEntryUUID") or "").lower() or None
        key = _entry_key(uuid, dn)
        entry = entries.get(key)
        if entry is None:
            entry = entries[key] = _LoggedEntry(uuid, dn)
        entry.dns.append(dn)
        kind = record.get("reqType")
        if kind == "delete":
            entry.deleted, entry.dn = True, dn
        elif kind == "modrdn":
            new_dn = record.get("reqNewDN") or _renamed_dn(record)
            entry.dn = new_dn
            entry.dns.append(new_dn)
            if not uuid:  # followed by the new name from now on
                entries[_entry_key(None, new_dn)] = entries.pop(key)
        else:
            entry.deleted, entry.dn = False, dn
    return list(entries.values())


def _renamed_dn(record: dict[str, str]) -> str:
    """The DN after a modrdn, from ``reqNewRDN`` and ``reqNewSuperior`` (older servers)."""
    try:
        _, parent = split_dn(record["reqDN"])
    except (DNError, KeyError):
        parent = ""
    parent = record.get("reqNewSuperior") or parent
    rdn = record.get("reqNewRDN", "")
    return f"{rdn},{parent}" if parent else rdn


def _deleted_external_id(spec: ObjectTypeSpec, entry: _LoggedEntry, dn: str) -> str | None:
    """The external id of a deleted entry: its entryUUID, its DN, or its RDN's value
    when the external id attribute names the entry; None when the log cannot say."""
    id_attribute = spec.external_id_attribute.lower()
    if id_attribute == "entryuuid":
        return entry.uuid
    if id_attribute == "dn":
        return dn
    try:
        rdn = first_rdn(dn)
    except DNError:
        return None
    return next((value for kind, value in rdn if kind.lower() == id_attribute), None)


def _request_bytes(request: _Request, message_id: int) -> bytes:
    """The LDAPMessage of an export flow's request."""
    # Adds and modifies are the bulk of an export: encoded without pyasn1 (ldap_wire).
    if request.kind == "add":
        return ldap_wire.add_message(message_id, request.dn, request.attributes, request.controls)
    if request.kind == "modify":
        return ldap_wire.encode_modify_request(message_id, request.dn, request.changes)
    if request.kind == "modify_dn":
        return ldap_internals.modify_dn_message(
            message_id, request.dn, request.new_rdn, request.new_superior
        )
    if request.kind == "delete":
        return ldap_internals.delete_message(message_id, request.dn)
    scope = ldap3.SUBTREE if request.kind == "find" else ldap3.BASE
    return ldap_internals.search_message(
        message_id, request.dn, request.search_filter, scope, request.read
    )


def _values_of(response: _Response, attribute: str) -> list[bytes]:
    if not response.ok or not response.entries:
        return []
    return _raw(response.entries[0], attribute)


def _raw(entry: dict[str, Any], attribute: str) -> list[bytes]:
    """The raw values of an entry's attribute, whatever the case of its name."""
    raw = entry["raw_attributes"]
    values = raw.get(attribute)
    if values is None:
        lowered = attribute.lower()
        values = next((v for k, v in raw.items() if k.lower() == lowered), None)
    return values or []


def _shown(values: list[Any], most: int = 3) -> str:
    """A few values, for a message: text cut at 40 characters, binary by its size."""
    if not values:
        return "absent"
    shown = [
        f"<{len(v)} bytes>" if isinstance(v, bytes) and not _is_text(v) else _text_value(v)[:40]
        for v in values[:most]
    ]
    return repr(shown) if len(values) <= most else f"{shown!r} and {len(values) - most} more"


def _is_text(value: bytes) -> bool:
    try:
        return value.decode("utf-8").isprintable()
    except UnicodeDecodeError:
        return False


def _text_value(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _result_of(
    change: ExportChange,
    response: _Response,
    what: str,
    *,
    external_id: str | None = None,
    dn: str | None = None,
) -> ExportResult:
    if response.ok:
        return ExportResult(
            change.id, ok=True, external_id=external_id or change.external_id, dn=dn
        )
    return ExportResult(
        change.id,
        ok=False,
        error=f"{what} failed: {response.describe()}",
        transient=response.code in TRANSIENT_RESULTS,
    )


def _failed(change: ExportChange, error: str) -> Flow:
    """A flow that sends nothing and fails permanently."""
    return ExportResult(change.id, ok=False, error=error)
    yield  # pragma: no cover - makes this a generator


def _exception_text(exc: Exception) -> str:
    text = str(exc)
    # ldap3 wraps socket errors as "('socket ssl wrapping error: …',)", sometimes twice.
    while match := _WRAPPED_MESSAGE_RE.match(text):
        text = match.group(1)
    return text or type(exc).__name__


def _quietly_close(connection: ldap3.Connection) -> None:
    with contextlib.suppress(LDAPException, OSError):
        connection.unbind()
