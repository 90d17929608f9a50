"""The columns that tell MVOs apart in the admin's list of metaverse objects.

Three people called "Heidi Jones" are three identical rows unless the list shows what
differs. Which attributes those are comes from the configuration, not from names known
here: first the attributes import rules join on (they identify: an employee id, an
account name), then the metaverse types' other single-valued text attributes in the
types' order (a department, a status), leaving out those an expression computes (a
display name, already shown). The values are read in the page's one query, as
annotations on the rows (the attribute documents stay deferred).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import Any

from django.db.models import QuerySet
from django.db.models.fields.json import KT
from django.http import HttpRequest

from connectors.choices import AttributeDataType
from console.admin.helpers import LeanChangeList
from metaverse.choices import FlowKind, SyncRuleDirection
from metaverse.models import MetaverseAttribute, MetaverseObject, SyncRuleFlow, SyncRuleJoin

#: At most this many attribute columns: what fits 1,280 px beside the list's own columns.
MAX_COLUMNS = 4
#: The prefix of the annotations that carry the columns' values.
PREFIX = "jim_attribute_"


def telling_attributes() -> list[str]:
    """The attribute names to show, join attributes first (see the module's docstring)."""
    joins = (
        SyncRuleJoin.objects.filter(sync_rule__direction=SyncRuleDirection.IMPORT)
        .order_by("sync_rule__precedence", "sync_rule__pk", "order")
        .values_list("mv_attribute", flat=True)
    )
    computed = SyncRuleFlow.objects.filter(kind=FlowKind.EXPRESSION).values("target")
    others = (
        MetaverseAttribute.objects.filter(multivalued=False, data_type=AttributeDataType.TEXT)
        .exclude(name__in=computed)
        .values_list("name", flat=True)
    )
    names = [name for name in dict.fromkeys([*joins, *others]) if "__" not in name]
    return names[:MAX_COLUMNS]


def with_attribute_values(queryset: QuerySet[MetaverseObject], names: list[str]) -> QuerySet:
    """``queryset`` annotated with the first value of each attribute in ``names``."""
    return queryset.annotate(
        **{f"{PREFIX}{index}": KT(f"attributes__{name}__0") for index, name in enumerate(names)}
    )


def attribute_columns(names: list[str]) -> list[Callable[[MetaverseObject], str]]:
    """``list_display`` entries showing the annotations of :func:`with_attribute_values`."""
    return [_column(index, name) for index, name in enumerate(names)]


@cache
def _column(index: int, name: str) -> Callable[[MetaverseObject], str]:
    """One column function per attribute: the admin tells which columns sort by
    identity (``sortable_by`` is a second call of ``get_list_display``)."""
    field = f"{PREFIX}{index}"

    def column(mvo: MetaverseObject) -> str:
        return getattr(mvo, field, None) or "-"

    column.jim_attribute = name  # type: ignore[attr-defined]
    column.short_description = name  # type: ignore[attr-defined]
    column.admin_order_field = field  # type: ignore[attr-defined]
    column.__name__ = field
    return column


class AttributeColumnsChangeList(LeanChangeList):
    """A changelist whose rows carry the values of its attribute columns."""

    def get_queryset(self, request: HttpRequest, exclude_parameters: Any = None) -> QuerySet:
        if not self._shaped:
            names = [getattr(column, "jim_attribute", None) for column in self.list_display]
            self.root_queryset = with_attribute_values(self.root_queryset, [n for n in names if n])
        return super().get_queryset(request, exclude_parameters)
