"""How the admin's forms fit a laptop screen and a screen reader.

A tabular inline labels its columns once, in the header row: a screen reader reaching an
input in the third row hears nothing (axe-core: "Form elements must have labels"). And
Django gives every text field of a row the 48em-wide textarea of a full form, so a sync
rule's flows were 1,857 px wide. :class:`CompactTabularInline` fixes both for every inline.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.db import models
from django.forms.models import BaseInlineFormSet
from django.utils.text import capfirst

#: The text area of an inline row: two lines, as wide as a column can afford (CSS makes it
#: fill its cell; an expression longer than that wraps or the box grows by dragging).
INLINE_TEXTAREA = forms.Textarea(attrs={"rows": 2, "cols": 28, "class": "jim-inline-text"})


class LabelledInlineFormSet(BaseInlineFormSet):
    """Inline forms whose every input carries its column's name as ``aria-label``."""

    def add_fields(self, form: forms.Form, index: Any) -> None:
        super().add_fields(form, index)
        for name, field in form.fields.items():
            field.widget.attrs.setdefault("aria-label", capfirst(str(field.label or name)))


class CompactTabularInline(admin.TabularInline):
    """A tabular inline with labelled inputs and text areas sized for a table cell."""

    formset = LabelledInlineFormSet
    formfield_overrides = {models.TextField: {"widget": INLINE_TEXTAREA}}
