"""One JSON shape for every error of the API::

    {"error": {"code": "not_found", "message": "No pending export has id 7.", "details": {}}}

``code`` is stable and meant for programs; ``message`` is a sentence a person can act on;
``details`` holds what the message summarises (the fields of a 400, per field).

:func:`exception_handler` is every DRF view's exception handler
(``REST_FRAMEWORK["EXCEPTION_HANDLER"]`` in the settings names it). It maps JIM's own
refusals to HTTP: a user lacking a permission the domain checks (approval,
intervention) → 403, an act that cannot be done now (a run in the way, a sync running
while discarding) → 409. Anything else unexpected is logged with its traceback and
answered 500 in the same shape, without the exception's text (it may hold anything).
:func:`not_found` answers the ``/api/`` URLs that match no endpoint.
"""

from __future__ import annotations

import logging
from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import Http404, HttpRequest, JsonResponse
from django.urls import Resolver404, resolve
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import set_rollback

from exports.approval import ApprovalDenied
from exports.intervention import InterventionDenied, InterventionRefused
from runs.runner import AlreadyRunning
from runs.tasks import ScheduleHasNoSteps

logger = logging.getLogger(__name__)

NOT_AUTHENTICATED = (
    "Authentication is needed: send an API key as 'Authorization: Bearer jim_…' "
    "(an administrator creates keys in the admin), or sign in to the console first."
)
SERVER_ERROR = (
    "JIM met an unexpected error and logged it; nothing was changed by this request. "
    "Try again, and if it happens again give the time of the request to an administrator."
)


class Conflict(exceptions.APIException):
    """The act cannot be done in the state things are in now (409)."""

    status_code = status.HTTP_409_CONFLICT
    default_code = "conflict"
    default_detail = "The request conflicts with the current state of JIM."


def error_body(code: str, message: str, details: Any = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": details or {}}}


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response:
    """The response for ``exc``, raised by an API view: always the error shape."""
    exc = _as_api_exception(exc)
    if exc is None:
        view = context.get("view")
        logger.exception("Unexpected error in the API view %s", type(view).__name__)
        set_rollback()
        return Response(
            error_body("server_error", SERVER_ERROR), status=status.HTTP_500_INTERNAL_SERVER_ERROR
        )
    headers = {}
    if getattr(exc, "auth_header", None):
        headers["WWW-Authenticate"] = exc.auth_header
    if getattr(exc, "wait", None):
        headers["Retry-After"] = f"{exc.wait:.0f}"
    set_rollback()
    if isinstance(exc, exceptions.MethodNotAllowed) and context.get("view") is not None:
        return Response(
            _not_allowed(context["view"], context["request"]),
            status=exc.status_code,
            headers=headers,
        )
    return Response(_body(exc), status=exc.status_code, headers=headers)


def _not_allowed(view: Any, request: Any) -> dict[str, Any]:
    """ "DELETE is not allowed at …: it takes GET." — the methods the URL takes."""
    methods = [m for m in view.allowed_methods if m not in ("HEAD", "OPTIONS")]
    return error_body(
        "method_not_allowed",
        f"{request.method} is not allowed at {request.path}: it takes "
        f"{' or '.join(methods)}. The API changes JIM only through its actions "
        "(run, approve, reject, retry, discard).",
        {"allowed": methods},
    )


def _as_api_exception(exc: Exception) -> exceptions.APIException | None:
    if isinstance(exc, exceptions.APIException):
        return exc
    if isinstance(exc, Http404):
        return exceptions.NotFound(*exc.args)
    if isinstance(exc, ApprovalDenied | InterventionDenied | DjangoPermissionDenied):
        return exceptions.PermissionDenied(_sentence(str(exc)) or None)
    if isinstance(exc, InterventionRefused | AlreadyRunning | ScheduleHasNoSteps):
        return Conflict(_sentence(str(exc)))
    return None


def _body(exc: exceptions.APIException) -> dict[str, Any]:
    if isinstance(exc, exceptions.ValidationError):
        details = exc.detail if isinstance(exc.detail, dict) else {"non_field_errors": exc.detail}
        return error_body("invalid", _validation_message(details), details)
    code = exc.get_codes()
    code = code if isinstance(code, str) else exc.default_code
    if isinstance(exc, exceptions.NotAuthenticated):
        return error_body(code, NOT_AUTHENTICATED)
    if isinstance(exc, exceptions.Throttled):
        return error_body(code, str(exc.detail), {"retry_after_seconds": exc.wait})
    return error_body(code, _sentence(str(exc.detail)))


def _validation_message(details: dict[str, Any]) -> str:
    """ "The request is not valid: reason: text…" naming the first problem of each field."""
    problems = []
    for field, errors in details.items():
        first = errors[0] if isinstance(errors, list) and errors else errors
        if isinstance(first, dict):
            first = "see details"
        name = "the request" if field in ("non_field_errors", "detail") else field
        problems.append(f"{name}: {str(first).rstrip('.')}")
    return _sentence("The request is not valid — " + "; ".join(problems))


def _sentence(text: str) -> str:
    text = text.strip()
    if not text:
        return text
    text = text[0].upper() + text[1:]
    return text if text.endswith((".", "!", "?")) else text + "."


def not_found(request: HttpRequest, path: str = "") -> JsonResponse:
    """The answer to an ``/api/`` URL that matches no endpoint."""
    message = (
        f"There is no API endpoint at {request.path}: the endpoints are listed at "
        "/api/v1/ and described at /api/v1/schema/."
    )
    if not request.path.endswith("/") and _is_endpoint(request.path + "/"):
        message = (
            f"There is no API endpoint at {request.path}: its URL ends with a slash, "
            f"{request.path}/."
        )
    return JsonResponse(error_body("not_found", message), status=status.HTTP_404_NOT_FOUND)


def _is_endpoint(path: str) -> bool:
    try:
        return resolve(path).func is not not_found
    except Resolver404:
        return False
