"""DRF authentication by API key: ``Authorization: Bearer jim_<prefix>_<secret>``.

A request without a Bearer header is left to the next authentication (the browser's
session). A Bearer key that does not authenticate answers 401 saying why (malformed,
not valid, expired on …, revoked on …, owner deactivated); a locked-out key prefix or
address answers 429 with the lockout message and ``Retry-After``. The request then
acts as the key's owner (``request.user``), the key in ``request.auth``.
"""

from __future__ import annotations

from typing import Any

from rest_framework import status
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.exceptions import APIException, AuthenticationFailed
from rest_framework.request import Request

from access import keys
from access.models import ApiKey
from audit.context import client_address

KEYWORD = b"bearer"


class SignInLockedOut(APIException):
    """429 with the lockout message; DRF adds ``Retry-After`` from :attr:`wait`."""

    status_code = status.HTTP_429_TOO_MANY_REQUESTS
    default_code = "locked_out"

    def __init__(self, message: str, wait: int) -> None:
        super().__init__(message)
        self.wait = wait


class ApiKeyAuthentication(BaseAuthentication):
    """Authenticates a request by the API key in its Bearer header (see the module)."""

    def authenticate(self, request: Request) -> tuple[Any, ApiKey] | None:
        words = get_authorization_header(request).split()
        if not words or words[0].lower() != KEYWORD:
            return None
        address = client_address(request._request)
        key = words[1].decode("ascii", errors="replace") if len(words) == 2 else ""
        try:
            api_key = keys.authenticate(key, address)
        except keys.KeyLockedOut as exc:
            raise SignInLockedOut(str(exc), exc.lockout.retry_after_seconds) from None
        except keys.KeyRefused as exc:
            raise AuthenticationFailed(str(exc)) from None
        return api_key.owner, api_key

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="JIM API"'
