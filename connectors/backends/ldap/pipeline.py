"""The export's pipeline: export flows run with up to a window of requests in flight on
one connection, changes to related entries kept in order, and every change given its
own result when the connection breaks (answered, in doubt, or not sent).

A flow is a generator: it yields :class:`Request` s, is sent their
:class:`~connectors.backends.ldap.transport.Response` s, and returns the change's
:class:`ExportResult`; flows do no I/O themselves, so many can be under way at once.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Generator
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import ldap3

from connectors.backends.ldap import internals, wire
from connectors.backends.ldap.dn import dn_key
from connectors.backends.ldap.transport import SERVER_DOWN, Response, Transport, Unsendable
from connectors.base import ConnectionFailed, ConnectorError, ExportChange, ExportResult
from core.dn import is_within


@dataclass
class Request:
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


class ConnectionLost(Exception):
    """The connection broke while requests were in flight (a ConnectionFailed inside)."""


#: An export flow: yields requests, is sent their responses, returns the result.
Flow = Generator[Request, Response, ExportResult]


@dataclass
class Job:
    """A change on its way: its flow, the entries it touches, its request in flight."""

    change: ExportChange
    flow: Flow
    keys: tuple[str, ...]
    started: bool = False
    #: The request in flight (-1: none sent).
    message_id: int = -1
    what: str = ""


class Pipeline:
    """Runs export flows with up to ``window`` requests in flight on one connection.

    Independent changes overlap. A change that touches the same entry as an earlier
    one, or an entry above or below it (a container and what goes into it), waits
    until the earlier one is done, so the directory sees them in the order given.
    When the connection breaks, the answers that arrived still count; every other
    request is answered ``serverDown`` (transient), so each change gets its result.
    """

    def __init__(self, transport: Transport, window: int) -> None:
        self.transport = transport
        self.window = window
        self.results: dict[int, ExportResult] = {}
        self.in_flight: deque[Job] = deque()
        self.answered = False

    def run(self, flows: list[tuple[ExportChange, Flow]]) -> dict[int, ExportResult]:
        """Every change's result; raises the connection's failure when none was answered."""
        waiting = deque(Job(change, flow, self._keys(change)) for change, flow in flows)
        try:
            while waiting or self.in_flight:
                self._start(waiting)
                if not self.in_flight:
                    continue  # every started change finished without a request
                job = self.in_flight.popleft()
                try:
                    response = self.transport.wait(job.message_id, job.what)
                except ConnectorError as exc:  # lost, or no answer in time
                    self.in_flight.appendleft(job)
                    raise ConnectionLost(exc) from None
                self.answered = True
                self._advance(job, response)
        except ConnectionLost as lost:
            failure = lost.args[0]
            self._conclude_all(waiting, failure)
            if not self.answered:
                raise failure from None
        return self.results

    def _start(self, waiting: deque[Job]) -> None:
        """Start waiting jobs, in order, while the window has room and they are free."""
        held: list[Job] = []
        busy = [key for job in self.in_flight for key in job.keys]
        try:
            while waiting and len(self.in_flight) < self.window and len(held) < self.window:
                job = waiting.popleft()
                if any(related(key, other) for key in job.keys for other in busy):
                    held.append(job)
                else:
                    self._advance(job, None)
                if job.change.id not in self.results:  # held or in flight
                    busy.extend(job.keys)
        finally:
            waiting.extendleft(reversed(held))

    def _advance(self, job: Job, response: Response | None) -> None:
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
            job.message_id = self.transport.send(
                partial(request_bytes, request), job.what, flush=False
            )
        except ConnectionFailed as exc:
            raise ConnectionLost(exc) from None
        except Unsendable as exc:  # this change's own fault: it ends here
            self.in_flight.remove(job)
            job.flow.close()
            self.results[job.change.id] = ExportResult(job.change.id, ok=False, error=str(exc))

    def _conclude_all(self, waiting: deque[Job], failure: ConnectorError) -> None:
        """After a break: run every unfinished flow to its end, with the answers that
        arrived first, and ``serverDown`` for every other request: in doubt when it
        was sent (it may have been applied), not made when it was not."""
        transport = self.transport
        sent = Response(SERVER_DOWN, f"{failure}; whether it was applied is unknown")
        unsent = Response(SERVER_DOWN, f"{failure}; it was not sent")
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
        return tuple(dn_key(dn) for dn in dns if dn and dn.strip())


def related(key: str, other: str) -> bool:
    """True when two normalised DNs are the same entry or one lies beneath the other."""
    return is_within(key, other) or is_within(other, key)


def request_bytes(request: Request, message_id: int) -> bytes:
    """The LDAPMessage of an export flow's request."""
    # Adds and modifies are the bulk of an export: encoded without pyasn1 (wire).
    if request.kind == "add":
        return wire.add_message(message_id, request.dn, request.attributes, request.controls)
    if request.kind == "modify":
        return wire.encode_modify_request(message_id, request.dn, request.changes)
    if request.kind == "modify_dn":
        return internals.modify_dn_message(
            message_id, request.dn, request.new_rdn, request.new_superior
        )
    if request.kind == "delete":
        return internals.delete_message(message_id, request.dn)
    scope = ldap3.SUBTREE if request.kind == "find" else ldap3.BASE
    return internals.search_message(
        message_id, request.dn, request.search_filter, scope, request.read
    )
