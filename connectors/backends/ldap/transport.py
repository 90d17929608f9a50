"""The single-threaded transport of one bound connection: requests written and answers
read without blocking, in the caller's thread, so many requests can be in flight at
once (docs/architecture.md, "The LDAP transport", says why no receiving thread is used);
and the :class:`Response` each request ends in, with the LDAP result codes the
connector acts on.
"""

from __future__ import annotations

import contextlib
import re
import selectors
import socket
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import ldap3
from ldap3.core.exceptions import LDAPException
from ldap3.core.results import RESULT_CODES

from connectors.backends.ldap import internals, wire
from connectors.base import ConnectionFailed, ConnectorError

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
#: Bytes read from, and written to, the socket at a time.
RECEIVE_SIZE = 256 * 1024
SEND_SIZE = 64 * 1024
_WRAPPED_MESSAGE_RE = re.compile(r"^\(['\"](.*)['\"],?\)$")


class Unsendable(ConnectorError):
    """A request that cannot be encoded (the change's own fault; nothing was sent)."""


class Transport:
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
        self._socket = internals.socket_of(connection)
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
        message_id = internals.next_message_id(self.connection)
        try:
            message = build(message_id)
        except (LDAPException, ValueError, TypeError) as exc:
            raise Unsendable(f"cannot send {what}: {exception_text(exc)}") from None
        self._outbox += message
        if flush:
            self._write()
            self._check(what)
        return message_id

    def wait(self, message_id: int, what: str) -> Response:
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
        return Response.of(*self._answers.pop(message_id))

    def arrived(self, message_id: int) -> Response | None:
        """The answer to ``message_id`` if it has arrived (None otherwise)."""
        answer = self._answers.pop(message_id, None)
        return Response.of(*answer) if answer else None

    def close(self) -> None:
        """Unbind (when nothing is half written) and close the socket."""
        if not self.lost and not (self._outbox or self._chunk):
            message_id = internals.next_message_id(self.connection)
            with contextlib.suppress(OSError):  # a courtesy: closing is what counts
                self._socket.send(wire.unbind_request(message_id))
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
            internals.close_socket(self.connection)

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
                self._break(exception_text(exc))
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
                self._break(exception_text(exc))
                return
            if not data:
                self._break("the server closed the connection")
                return
            self._inbox += data
            self._file_messages()

    def _file_messages(self) -> None:
        while True:
            size = internals.message_size(self._inbox)
            if size < 0 or len(self._inbox) < size:
                return
            data = bytes(self._inbox[:size])
            del self._inbox[:size]
            try:
                message_id, response = internals.decode_message(self.connection, data)
            except Exception as exc:  # any decoding failure: a garbled stream
                self._break(f"an answer could not be read ({type(exc).__name__}: {exc})")
                return
            if message_id == 0:  # an unsolicited notification: the server ends the session
                notice = response.get("message") or response.get("description") or ""
                self._break(f"the server ended the session ({notice})")
                return
            if internals.is_partial(response):
                self._parts.setdefault(message_id, []).append(response)
            else:
                self._answers[message_id] = (self._parts.pop(message_id, []), response)


@dataclass
class Response:
    """The outcome of one request: result code, name, server message, entries."""

    code: int
    message: str = ""
    entries: list[dict[str, Any]] = field(default_factory=list)
    cookie: bytes | None = None
    #: Attributes of the entry after the operation (post-read control), when asked for.
    post_read: dict[str, list[Any]] = field(default_factory=dict)

    @classmethod
    def of(cls, entries: list[dict[str, Any]] | None, result: dict[str, Any]) -> Response:
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


def exception_text(exc: Exception) -> str:
    """The message of an exception, unwrapped from ldap3's tuple-like text."""
    text = str(exc)
    # ldap3 wraps socket errors as "('socket ssl wrapping error: …',)", sometimes twice.
    while match := _WRAPPED_MESSAGE_RE.match(text):
        text = match.group(1)
    return text or type(exc).__name__
