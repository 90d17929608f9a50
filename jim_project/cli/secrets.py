"""`jim rotate-secrets`: every stored secret encrypted again under ``JIM_ENCRYPTION_KEY``.

Reads each secret with the current key or one of ``JIM_ENCRYPTION_KEY_PREVIOUS``
(:mod:`core.crypto`) and writes it back under the current key, in one transaction.
Every ``EncryptedJSONField`` of every installed model is covered. When one secret
opens with no key, the command names the object, changes nothing and exits 2; once it
has succeeded, the previous keys can be removed from the environment.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, TextIO

from django.apps import apps
from django.core.exceptions import ImproperlyConfigured
from django.db import models, transaction
from django.db.models.functions import Cast

from core.crypto import EncryptedJSONField, SecretUnreadable, current_key, reencrypt

EXIT_OK = 0
EXIT_REFUSED = 2


@dataclass(frozen=True)
class SecretColumn:
    """One encrypted field of one model."""

    model: type[models.Model]
    field: EncryptedJSONField

    def __str__(self) -> str:
        return f"{self.model._meta.label}.{self.field.name}"

    def stored(self) -> Iterator[tuple[Any, str]]:
        """``(pk, stored text)`` of every row with a secret, rows locked; the text as
        stored (a cast to text skips the field's decryption)."""
        rows = (
            self.model._default_manager.select_for_update()
            .annotate(stored=Cast(self.field.name, models.TextField()))
            .exclude(stored="")
            .order_by("pk")
            .values_list("pk", "stored")
        )
        yield from rows.iterator()

    def write(self, pk: Any, stored: str) -> None:
        self.model._default_manager.filter(pk=pk).update(
            **{self.field.name: models.Value(stored, output_field=models.TextField())}
        )

    def describe(self, pk: Any) -> str:
        """The object by its name (its secrets left unread) and its primary key."""
        instance = self.model._default_manager.defer(self.field.name).filter(pk=pk).first()
        name = f"{self.model._meta.verbose_name} {str(instance)!r}" if instance else "an object"
        return f"{name} ({self.model._meta.label} pk={pk}), field {self.field.name}"


def secret_columns() -> list[SecretColumn]:
    """Every encrypted field of every installed, managed, concrete model."""
    return [
        SecretColumn(model, field)
        for model in apps.get_models()
        if model._meta.managed and not model._meta.proxy
        for field in model._meta.local_concrete_fields
        if isinstance(field, EncryptedJSONField)
    ]


class RotateSecretsCommand:
    name = "rotate-secrets"
    help = (
        "Encrypt every stored secret again under JIM_ENCRYPTION_KEY, reading it with that "
        "key or one of JIM_ENCRYPTION_KEY_PREVIOUS; all or nothing."
    )

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        pass

    def handle(self, options: dict[str, Any], stdout: TextIO, stderr: TextIO) -> int:
        try:
            current_key()
            with transaction.atomic():
                counts = {str(column): rotate(column) for column in secret_columns()}
        except ImproperlyConfigured as error:  # a missing key, or SecretUnreadable
            stderr.write(f"jim rotate-secrets: {error}\nNothing was changed.\n")
            return EXIT_REFUSED
        for column, (total, older) in counts.items():
            stdout.write(f"{column}: {total} re-encrypted ({older} were under an older key)\n")
        total = sum(total for total, _ in counts.values())
        older = sum(older for _, older in counts.values())
        stdout.write(
            f"{total} secret(s) now under JIM_ENCRYPTION_KEY; {older} were under a previous "
            "key. The previous keys are no longer needed.\n"
        )
        return EXIT_OK


def rotate(column: SecretColumn) -> tuple[int, int]:
    """Re-encrypt every secret of ``column``; returns (secrets, those under an older key).
    Raises :class:`SecretUnreadable` naming the first object no key opens."""
    rotated: list[tuple[Any, str]] = []
    older = 0
    for pk, stored in column.stored():
        try:
            token, was_older = reencrypt(stored)
        except SecretUnreadable as error:
            raise SecretUnreadable(f"{column.describe(pk)}: {error}") from None
        rotated.append((pk, token))
        older += was_older
    for pk, token in rotated:
        column.write(pk, token)
    return len(rotated), older
