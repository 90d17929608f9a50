"""Links from the console to the admin's pages of objects (shared by every console page,
and by modules :mod:`console.views` itself uses)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from django.contrib import admin
from django.db.models import Model
from django.urls import reverse


def admin_change_url(model: type[Model], pk: int | None) -> str:
    """The admin change page of one object; '' when there is none to link to."""
    if pk is None or not admin.site.is_registered(model):
        return ""
    meta = model._meta
    return reverse(f"admin:{meta.app_label}_{meta.model_name}_change", args=[pk])


def admin_changelist_url(model: type[Model], **filters: Any) -> str:
    """The admin changelist of ``model`` filtered by ``filters`` (list_filter lookups)."""
    if not admin.site.is_registered(model):
        return ""
    meta = model._meta
    url = reverse(f"admin:{meta.app_label}_{meta.model_name}_changelist")
    return f"{url}?{urlencode(filters)}" if filters else url
