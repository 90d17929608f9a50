"""Where the code that records is running: through which door (``via``), from which
address, and for whom when no JIM user is known.

The entry points say it once — the admin's views, the ``jim`` command, the API and
the console through :class:`AuditContextMiddleware` — and every
:func:`audit.recording.record` below them (a run started, an export approved) reads
it, so the domain functions need no ``request`` to record where they were called
from. Outside any entry point (a django-q2 worker, a schedule) it is ``system``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, replace
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.urls import NoReverseMatch, reverse

from audit.models import Via


@dataclass(frozen=True)
class AuditContext:
    via: str = Via.SYSTEM
    address: str | None = None
    #: Who it is when no JIM user acts (the OS user of a ``jim`` command).
    actor_name: str = ""


# AuditContext is frozen: the shared default cannot be changed.
_current: ContextVar[AuditContext] = ContextVar("audit_context", default=AuditContext())  # noqa: B039


def current() -> AuditContext:
    return _current.get()


@contextmanager
def using(**values: Any) -> Iterator[AuditContext]:
    """Record under these values (``via``, ``address``, ``actor_name``) inside the block."""
    token = _current.set(replace(_current.get(), **values))
    try:
        yield _current.get()
    finally:
        _current.reset(token)


def client_address(request: HttpRequest) -> str | None:
    """The address the request came from (``REMOTE_ADDR``: set a trusted proxy to
    pass the client's own address there)."""
    return request.META.get("REMOTE_ADDR") or None


def from_request(request: HttpRequest, via: str) -> Any:
    """:func:`using` for a web request: its door and its client's address."""
    return using(via=via, address=client_address(request))


def via_of(path: str) -> str:
    """The door a request path goes through: the API, the admin, else the console."""
    if path.startswith("/api/"):
        return Via.API
    try:
        admin_root = reverse("admin:index")
    except NoReverseMatch:
        admin_root = "/admin/"
    return Via.ADMIN if path.startswith(admin_root) else Via.CONSOLE


class AuditContextMiddleware:
    """Every web request records with its door (:func:`via_of`) and client address."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        with from_request(request, via_of(request.path)):
            return self.get_response(request)
