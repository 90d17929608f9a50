"""The audit trail: one append-only row per thing a person (or JIM itself) did.

An entry is written once, in the transaction of the change it records, and never
changed or deleted afterwards — not by ``save()``, not by ``delete()``, not by a
queryset's ``update()`` or ``delete()`` (each raises :class:`AppendOnly`). Bulk
inserts are allowed: they only add. (A database superuser can still rewrite the
table; the trail protects against JIM's own code and its admin, not against the
database's owner.)

The object an entry is about is named by its model label, its id and what it was
called then (``object_repr``), not by a foreign key: the trail outlives what it
describes, and sits below every other app.
"""

from __future__ import annotations

from typing import Any, NoReturn

from django.conf import settings
from django.db import models


class AppendOnly(Exception):
    """An audit entry cannot be changed or deleted."""


def _refuse(what: str) -> NoReturn:
    raise AppendOnly(
        f"audit entries are append-only: {what} is refused (the trail keeps every entry as "
        "it was written)"
    )


class Via(models.TextChoices):
    ADMIN = "admin", "admin"
    CONSOLE = "console", "console"
    API = "api", "API"
    CLI = "cli", "jim command"
    SYSTEM = "system", "JIM itself"


class Action(models.TextChoices):
    CREATED = "created"
    CHANGED = "changed"
    DELETED = "deleted"
    APPROVED = "approved"
    REJECTED = "rejected"
    RETRIED = "retried"
    DISCARDED = "discarded"
    RUN_STARTED = "run_started", "run started"
    API_KEY_CREATED = "api_key_created", "API key created"
    API_KEY_REVOKED = "api_key_revoked", "API key revoked"
    API_KEY_USED = "api_key_used", "API key used"
    LOGIN_LOCKED = "login_locked", "login locked"
    MVO_ACTION = "mvo_action", "manual action on a metaverse object"
    EXPORT_UNDONE = "export_undone", "export run undone"


#: The actions that change configuration (what separation of duties looks at).
CONFIGURATION_ACTIONS = (Action.CREATED, Action.CHANGED, Action.DELETED)


class AuditEntryQuerySet(models.QuerySet):
    """Reads and inserts; ``update()`` and ``delete()`` raise :class:`AppendOnly`."""

    def update(self, **kwargs: Any) -> NoReturn:
        _refuse("updating them")

    def delete(self) -> NoReturn:
        _refuse("deleting them")


class AuditEntry(models.Model):
    """Who did what to which object, when, from where, and what changed."""

    at = models.DateTimeField(auto_now_add=True, db_index=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        help_text="The JIM user, when there was one (kept empty once the user is deleted).",
    )
    actor_name = models.CharField(
        max_length=200,
        blank=True,
        help_text="Who it was, as text: the user name, the OS user of a jim command, "
        "'schedule NAME'.",
    )
    via = models.CharField(max_length=10, choices=Via.choices)
    action = models.CharField(max_length=30, choices=Action.choices)
    object_type = models.CharField(
        max_length=100, blank=True, help_text="app_label.model of the object."
    )
    object_id = models.CharField(max_length=64, blank=True)
    object_repr = models.CharField(max_length=300, blank=True)
    changes = models.JSONField(
        default=dict, blank=True, help_text="{field: [before, after]}; secrets masked."
    )
    reason = models.TextField(blank=True, help_text="The reason given, or what happened.")
    address = models.GenericIPAddressField(
        null=True, blank=True, help_text="The client's address, for a web or API request."
    )

    objects = AuditEntryQuerySet.as_manager()

    class Meta:
        verbose_name = "audit entry"
        verbose_name_plural = "audit trail"
        ordering = ["-at", "-id"]
        indexes = [
            models.Index(fields=["object_type", "object_id"], name="audit_object_idx"),
            models.Index(fields=["actor", "-at"], name="audit_actor_idx"),
        ]

    def __str__(self) -> str:
        what = self.object_repr or self.object_type
        return f"{self.actor_name or 'JIM'} {self.get_action_display()} {what}".strip()

    def save(self, *args: Any, **kwargs: Any) -> None:
        if self.pk is not None or not self._state.adding:
            _refuse(f"changing entry {self.pk}")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> NoReturn:
        _refuse(f"deleting entry {self.pk}")
