"""Writing the audit trail: :func:`record` one entry, :func:`diff` two states of an
object, :func:`snapshot` an object's state.

Secrets never reach the trail. A value is masked (``••••••``, or ``""`` when there
was none, so setting and clearing a secret still show) when its field is an encrypted
field (:class:`core.crypto.EncryptedJSONField`: a connected system's
``secret_settings``), or when its name — a field, or a key anywhere inside a JSON
value — looks like a secret (``password``, ``secret``, ``token``, ``api_key``…). An
encrypted dictionary is diffed key by key (``secret_settings.bind_password``), so the
trail says which secret changed and never what it is. :func:`record` masks what it
is given as well, whoever computed it.
"""

from __future__ import annotations

import datetime
import decimal
import re
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

from django.db import models

from audit.context import current
from audit.models import CONFIGURATION_ACTIONS, AuditEntry
from core.crypto import EncryptedJSONField

MASK = "••••••"
#: Names that hold secrets, wherever they appear (case-insensitive, anywhere in the name).
SECRET_NAME = re.compile(
    r"password|passwd|passphrase|secret|token|credential|api_?key|private_?key", re.I
)

Changes = dict[str, list[Any]]


def record(actor: Any, action: str, obj: models.Model | None = None, **fields: Any) -> AuditEntry:
    """Append one entry: ``actor`` (a user, a name, or None for whoever the
    :mod:`audit.context` names) did ``action`` to ``obj``; ``fields`` as :func:`entry`
    (``via`` and ``address`` default to the context; ``object_*`` name an object that
    is gone, or, with ``obj``, ``object_repr`` says what to call it)."""
    audit_entry = entry(actor, action, obj, **fields)
    audit_entry.save()
    return audit_entry


def entry(
    actor: Any,
    action: str,
    obj: models.Model | None = None,
    *,
    changes: Changes | None = None,
    via: str | None = None,
    reason: str = "",
    address: str | None = None,
    object_type: str = "",
    object_id: Any = None,
    object_repr: str = "",
) -> AuditEntry:
    """An unsaved entry, as :func:`record` writes it (for ``bulk_create``)."""
    context = current()
    user = actor if isinstance(actor, models.Model) else None
    name = user.get_username() if user is not None else (actor or context.actor_name)
    if obj is not None:
        object_type, object_id = label_of(type(obj)), obj.pk
        object_repr = object_repr or str(obj)
    secret_fields = secret_fields_of(type(obj)) if obj is not None else frozenset()
    return AuditEntry(
        actor=user,
        actor_name=str(name or "")[:200],
        via=via or context.via,
        action=action,
        object_type=object_type,
        object_id="" if object_id is None else str(object_id),
        object_repr=object_repr[:300],
        changes=mask_changes(changes or {}, secret_fields),
        reason=reason,
        address=address if address is not None else context.address,
    )


def label_of(model: type[models.Model]) -> str:
    """How entries name a model: ``app_label.model``."""
    return model._meta.label_lower


def configuration_changes_by(
    user: Any, objects: Iterable[tuple[type[models.Model], Iterable[Any]]]
) -> models.QuerySet:
    """The configuration entries (created, changed, deleted) ``user`` recorded on any of
    ``objects`` (pairs of a model and ids), newest first."""
    from django.db.models import Q

    match = Q()
    for model, ids in objects:
        wanted = [str(pk) for pk in ids]
        if wanted:
            match |= Q(object_type=label_of(model), object_id__in=wanted)
    if not match or user is None or user.pk is None:
        return AuditEntry.objects.none()
    return AuditEntry.objects.filter(match, actor=user, action__in=CONFIGURATION_ACTIONS)


# --------------------------------------------------------------------------- states


def secret_fields_of(model: type[models.Model]) -> frozenset[str]:
    """The model's encrypted fields."""
    return frozenset(
        field.name for field in model._meta.concrete_fields if isinstance(field, EncryptedJSONField)
    )


def snapshot(instance: models.Model, *, exclude: Iterable[str] = ()) -> dict[str, Any]:
    """``instance``'s fields as JSON values: a foreign key as what it names (its text),
    many-to-many as the sorted texts, timestamps JIM keeps by itself left out."""
    skipped = set(exclude)
    state: dict[str, Any] = {}
    for field in instance._meta.concrete_fields:
        if field.primary_key or field.name in skipped or _automatic(field):
            continue
        if field.is_relation:
            related = getattr(instance, field.name)
            state[field.name] = None if related is None else str(related)
        else:
            state[field.name] = json_value(field.value_from_object(instance))
    if instance.pk is not None:
        for field in instance._meta.many_to_many:
            if field.name not in skipped:
                state[field.name] = sorted(str(o) for o in getattr(instance, field.name).all())
    return state


def _automatic(field: models.Field) -> bool:
    return bool(getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False))


def json_value(value: Any) -> Any:
    """``value`` as JSON: dates and decimals as text, tuples as lists."""
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, (datetime.date, datetime.time, datetime.timedelta)):
        return str(value)
    if isinstance(value, (decimal.Decimal, uuid.UUID)):
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): json_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [json_value(v) for v in value]
    return str(value)


def diff(
    before: Mapping[str, Any],
    after: Mapping[str, Any],
    secret_fields: Iterable[str] = (),
) -> Changes:
    """``{field: [before, after]}`` for each field that differs (a field missing on one
    side is ``None`` there), secrets masked (see the module docstring)."""
    secret = set(secret_fields)
    changes: Changes = {}
    for name in sorted(set(before) | set(after), key=str):
        old, new = before.get(name), after.get(name)
        if old == new:
            continue
        if name in secret and _is_dict_or_none(old) and _is_dict_or_none(new):
            for key in sorted(set(old or {}) | set(new or {}), key=str):
                if (old or {}).get(key) != (new or {}).get(key):
                    changes[f"{name}.{key}"] = [
                        _masked((old or {}).get(key)),
                        _masked((new or {}).get(key)),
                    ]
            continue
        changes[name] = [old, new]
    return mask_changes(changes, secret)


def _is_dict_or_none(value: Any) -> bool:
    return value is None or isinstance(value, Mapping)


def mask_changes(changes: Mapping[str, Any], secret_fields: Iterable[str] = ()) -> Changes:
    """``changes`` with every secret masked (already masked values stay so)."""
    secret = set(secret_fields)
    masked: Changes = {}
    for name, pair in changes.items():
        field = name.split(".", 1)[0].split("[", 1)[0]
        if field in secret or is_secret_name(name):
            masked[name] = [_masked(value) for value in pair]
        else:
            masked[name] = [mask_value(value) for value in pair]
    return masked


def is_secret_name(name: str) -> bool:
    return bool(SECRET_NAME.search(str(name)))


def mask_value(value: Any) -> Any:
    """``value`` with the values of secret-looking keys masked, at any depth."""
    if isinstance(value, Mapping):
        return {
            key: _masked(item) if is_secret_name(key) else mask_value(item)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [mask_value(item) for item in value]
    return value


def _masked(value: Any) -> str:
    """A secret: whether there was one, never what it was."""
    return "" if value in (None, "", {}, []) else MASK
