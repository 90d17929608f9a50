"""The admin's login (the console signs in through it too), throttled: too many failed
sign-ins for a username or from an address refuse further attempts for a while, even
with the right password (:mod:`access.throttling`)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.admin.forms import AdminAuthenticationForm
from django.core.exceptions import ValidationError

from access import throttling
from access.models import SignInChannel
from audit.context import client_address


class ThrottledAuthenticationForm(AdminAuthenticationForm):
    """The admin's login form, refusing locked-out usernames and addresses before the
    password is checked, and counting the failures it sees."""

    def clean(self) -> dict[str, Any]:
        username = self.cleaned_data.get("username") or ""
        address = client_address(self.request) if self.request else None
        standing = throttling.check(SignInChannel.ADMIN, username, address)
        if standing.lockout is not None:
            raise ValidationError(standing.lockout.message, code="locked_out")
        try:
            cleaned = super().clean()
        except ValidationError:
            # A right password for a user who may not sign in here (not staff) is no
            # guess: only wrong passwords (and inactive users) count.
            if self.user_cache is None and username:
                throttling.failed(SignInChannel.ADMIN, username, address)
            raise
        if standing.account_failures:
            throttling.succeeded(SignInChannel.ADMIN, username)
        return cleaned


admin.site.login_form = ThrottledAuthenticationForm
