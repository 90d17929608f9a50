"""Access models: API keys of integrations, and failed sign-ins (for throttling)."""

from __future__ import annotations

from datetime import datetime

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone


class ApiKeyStatus(models.TextChoices):
    ACTIVE = "active", "active"
    EXPIRED = "expired", "expired"
    REVOKED = "revoked", "revoked"


class ApiKey(models.Model):
    """A key an integration sends as ``Authorization: Bearer jim_<prefix>_<secret>``.

    It acts as its owner, with the owner's roles, while the owner is active. Only the
    prefix is kept in clear (to find the key and recognise it in lists); the key
    itself is kept as its SHA-256, so the database never holds a usable key. A key is
    never deleted: revoking it keeps who made it, who revoked it and its last use.
    """

    name = models.CharField(max_length=100, help_text="What the key is for (the integration).")
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        related_name="api_keys",
        help_text="The key acts as this user, with this user's roles.",
    )
    prefix = models.CharField(max_length=16, unique=True, editable=False)
    secret_hash = models.CharField(max_length=64, editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        on_delete=models.SET_NULL,
        related_name="+",
        editable=False,
    )
    expires_at = models.DateTimeField()
    revoked_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        editable=False,
    )
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_used_address = models.GenericIPAddressField(null=True, blank=True, editable=False)

    class Meta:
        verbose_name = "API key"
        ordering = ("-created_at", "-pk")
        constraints = [
            models.CheckConstraint(
                condition=Q(expires_at__gt=models.F("created_at")),
                name="api_key_expires_after_creation",
            ),
            models.CheckConstraint(
                condition=Q(revoked_by__isnull=True) | Q(revoked_at__isnull=False),
                name="api_key_revoked_by_only_when_revoked",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.prefix} ({self.name})"

    def status(self, now: datetime | None = None) -> str:
        """Active, expired (at ``now``, default the present) or revoked."""
        if self.revoked_at is not None:
            return ApiKeyStatus.REVOKED
        if self.expires_at <= (now or timezone.now()):
            return ApiKeyStatus.EXPIRED
        return ApiKeyStatus.ACTIVE


class SignInChannel(models.TextChoices):
    ADMIN = "admin", "admin sign-in"
    API_KEY = "api_key", "API key"


class FailedSignIn(models.Model):
    """One failed sign-in: a wrong password for ``account`` (a username) at the admin's
    login, or an unknown or wrong API key (``account`` its prefix). Counted per account
    and per address within the lockout window (:mod:`access.throttling`)."""

    channel = models.CharField(max_length=16, choices=SignInChannel.choices)
    account = models.CharField(max_length=150, blank=True)
    address = models.GenericIPAddressField(null=True, blank=True)
    attempted_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name = "failed sign-in"
        ordering = ("-attempted_at", "-pk")
        indexes = [
            models.Index(
                fields=["channel", "account", "attempted_at"], name="failed_sign_in_account"
            ),
            models.Index(fields=["address", "attempted_at"], name="failed_sign_in_address"),
            models.Index(fields=["attempted_at"], name="failed_sign_in_time"),
        ]

    def __str__(self) -> str:
        who = self.account or "(no account)"
        where = self.address or "an unknown address"
        return f"{who} from {where} at {self.attempted_at:%Y-%m-%d %H:%M:%S}"
