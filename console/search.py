"""Search across MVOs, CSOs and pending exports: the box in every page's header.

One query finds, each kind on its own (the page says the same, in
``templates/console/partials/search_help.html``):

- **Metaverse objects** whose display name contains the text, any case (from 3
  characters; on PostgreSQL a trigram index answers, see
  ``metaverse/migrations/0003_search_indexes.py``), or whose **join values** equal it —
  the values import join rules join on (an employee id, an account name…), kept
  normalised and indexed in ``MetaverseObjectKey``, so they match in any case.
- **Connector space objects** whose external id equals the text (as typed, in lower or
  in upper case) or whose DN (secondary id) names the same entry: DNs are compared by
  their normalised key, so case, spacing and escaping do not matter
  (``CN=Jones\\2C Heidi`` finds ``cn=Jones\\, Heidi``).
- **Pending exports** of the objects found, and those whose DN (the one an object is
  created with or renamed to) is the text, any case.

``attribute:value`` (``employeeId:1042``, ``mail:heidi``) searches one attribute, by its
name in the metaverse or in a connected system's schema: a join attribute, an external
id or a DN attribute is matched exactly (indexed, as above); any other attribute
matches when one of its values contains ``value``, any case — which reads the
attribute documents of the object types that have it (on PostgreSQL about 0.2 s per
100,000 objects; the search stops at the first :data:`RESULTS_PER_KIND` found).

What is indexed is what JIM already looks objects up by: join keys, external ids and
DNs; display names get a trigram index for "contains". Every kind is bounded to
:data:`RESULTS_PER_KIND` rows, with a link to the admin's list searched for the same
text when there are more, and the page runs a fixed number of queries however many
objects match.

A result row tells people apart: an MVO's columns are its type's join attributes and
the well-known attributes it has (:data:`WELL_KNOWN_ATTRIBUTES`: mail, department,
title…), its status and the systems it is joined to.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any

from django.db.models import Case, IntegerField, Prefetch, Q, QuerySet, Value, When
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Upper
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse

from connectors.choices import AttributeDataType
from connectors.models import (
    ConnectedSystem,
    ConnectedSystemAttribute,
    ConnectedSystemObjectType,
    ConnectorSpaceObject,
)
from console.views import admin_change_url, admin_changelist_url, console_view, page_context
from core.dn import DNError, normalise_dn
from exports.models import PendingExport
from metaverse.choices import SyncRuleDirection
from metaverse.models import MetaverseAttribute, MetaverseObject, MetaverseObjectKey, SyncRuleJoin
from metaverse.sync.disabling import disabled_text, with_delete_after_days
from metaverse.sync.keys import normalise_key

#: Rows shown per kind of result; past it, a link to the admin's list.
RESULTS_PER_KIND = 50
#: Shorter texts are not looked for inside display names (too many matches, no index).
MIN_NAME_LENGTH = 3
#: Attributes that tell people apart, looked for (any case) among an object type's
#: attributes after its join attributes, in this order.
WELL_KNOWN_ATTRIBUTES = (
    "employeeId",
    "employeeNumber",
    "accountName",
    "sAMAccountName",
    "uid",
    "userPrincipalName",
    "mail",
    "email",
    "department",
    "departmentNumber",
    "title",
    "employeeStatus",
    "employeeType",
    "location",
)
#: At most this many attribute columns per metaverse object type.
MAX_ATTRIBUTE_COLUMNS = 6

#: What a CSO result row reads (never the attribute documents, nor a system's secrets).
CSO_COLUMNS = (
    "external_id",
    "secondary_external_id",
    "status",
    "disabled_at",
    "join_type",
    "connected_system__name",
    "object_type__name",
    "metaverse_object__display_name",
    "metaverse_object__object_type__name",
)
#: What a pending export result row reads.
EXPORT_COLUMNS = (
    "change_type",
    "status",
    "approval",
    "dn",
    "error_count",
    "connected_system__name",
    "cs_object__external_id",
    "cs_object__secondary_external_id",
    "metaverse_object__display_name",
    "metaverse_object__object_type__name",
)

_ATTRIBUTE_QUERY_RE = re.compile(r"^([A-Za-z][\w.-]*):(.+)$")

VIEW_MVOS = "metaverse.view_metaverseobject"
VIEW_CSOS = "connectors.view_connectorspaceobject"
VIEW_EXPORTS = "exports.view_pendingexport"


# -- the query -----------------------------------------------------------------------


@dataclass(frozen=True)
class AttributeScope:
    """Where an ``attribute:value`` query looks: the object types that have the
    attribute, and how each kind matches it (exactly through an index, or by
    reading the attribute documents)."""

    name: str
    mv_joined: frozenset[str] = frozenset()  # join attribute names (MetaverseObjectKey)
    mv_scanned: dict[int, str] = field(default_factory=dict)  # MV type id → attribute
    cs_external_id_types: frozenset[int] = frozenset()
    cs_dn_types: frozenset[int] = frozenset()
    cs_scanned: dict[int, str] = field(default_factory=dict)  # CS type id → attribute

    @property
    def found(self) -> bool:
        return bool(
            self.mv_joined
            or self.mv_scanned
            or self.cs_external_id_types
            or self.cs_dn_types
            or self.cs_scanned
        )


@dataclass(frozen=True)
class Query:
    """What was typed: plain text, or ``attribute:value`` with the attribute's scope.

    ``unknown_attribute`` names the part before ``:`` when no attribute is so named
    (the whole text is then searched as plain text).
    """

    text: str
    value: str
    scope: AttributeScope | None = None
    unknown_attribute: str = ""

    @property
    def attribute(self) -> str:
        return self.scope.name if self.scope else ""

    @property
    def reads_documents(self) -> bool:
        """True when the attribute is matched by reading attribute documents: the
        admin's lists cannot search that way, so there is no list to send "more" to."""
        return self.scope is not None and bool(self.scope.mv_scanned or self.scope.cs_scanned)


def parse_query(raw: str, join_attributes: dict[int, list[str]]) -> Query:
    """The query in ``raw``: ``attribute:value`` when an attribute is so named."""
    text = raw.strip()
    match = _ATTRIBUTE_QUERY_RE.match(text)
    if not match:
        return Query(text=text, value=text)
    name, value = match.group(1), match.group(2).strip()
    scope = attribute_scope(name, join_attributes)
    if not scope.found:
        return Query(text=text, value=text, unknown_attribute=name)
    return Query(text=text, value=value, scope=scope)


def attribute_scope(name: str, join_attributes: dict[int, list[str]]) -> AttributeScope:
    """Which object types have an attribute called ``name`` (any case), and how it is
    matched in each (three queries)."""
    folded = name.casefold()
    joined = {a for names in join_attributes.values() for a in names if a.casefold() == folded}
    join_types = {t for t, names in join_attributes.items() if any(a in joined for a in names)}
    mv_scanned = {
        type_id: attribute
        for type_id, attribute in MetaverseAttribute.objects.filter(name__iexact=name)
        .exclude(data_type=AttributeDataType.REFERENCE)
        .values_list("object_type_id", "name")
        if type_id not in join_types
    }
    external: set[int] = set()
    dn: set[int] = set()
    for type_id, external_attr, dn_attr in ConnectedSystemObjectType.objects.filter(
        Q(external_id_attribute__iexact=name) | Q(secondary_external_id_attribute__iexact=name)
    ).values_list("pk", "external_id_attribute", "secondary_external_id_attribute"):
        if external_attr.casefold() == folded:
            external.add(type_id)
        if dn_attr.casefold() == folded:
            dn.add(type_id)
    cs_scanned = {
        type_id: attribute
        for type_id, attribute in ConnectedSystemAttribute.objects.filter(name__iexact=name)
        .exclude(data_type=AttributeDataType.REFERENCE)
        .values_list("object_type_id", "name")
        if type_id not in external and type_id not in dn
    }
    spelled = [*sorted(joined), *mv_scanned.values(), *cs_scanned.values()]
    return AttributeScope(
        name=spelled[0] if spelled else name,
        mv_joined=frozenset(joined),
        mv_scanned=mv_scanned,
        cs_external_id_types=frozenset(external),
        cs_dn_types=frozenset(dn),
        cs_scanned=cs_scanned,
    )


def join_attributes_by_type() -> dict[int, list[str]]:
    """The MV attributes enabled import join rules join on, per MV object type, in the
    order the rules try them: the values kept in ``MetaverseObjectKey``."""
    by_type: dict[int, list[str]] = {}
    rows = (
        SyncRuleJoin.objects.filter(
            sync_rule__enabled=True, sync_rule__direction=SyncRuleDirection.IMPORT
        )
        .order_by("sync_rule__precedence", "sync_rule__name", "order")
        .values_list("sync_rule__mv_object_type_id", "mv_attribute")
    )
    for type_id, attribute in rows:
        names = by_type.setdefault(type_id, [])
        if attribute not in names:
            names.append(attribute)
    return by_type


def dn_keys(text: str) -> set[str]:
    """The forms a secondary id (a DN) may be stored under in
    ``secondary_external_id_key``: as the connector of a directory normalises it, and as
    other connectors keep it (the text itself)."""
    keys = {text, text.lower()}
    if "=" in text:
        with suppress(DNError):
            keys.add(normalise_dn(text))
    return keys


def value_contains(alias: str, value: str) -> Q:
    """One of the values of an attribute (the JSON text annotated as ``alias``)
    contains ``value``, any case.

    The JSON text escapes quotes and backslashes, and SQLite's also holds every
    non-ASCII character as ``\\uXXXX``: each form of ``value`` is looked for.
    """
    forms = {json.dumps(value, ensure_ascii=False)[1:-1], json.dumps(value)[1:-1]}
    match = Q()
    for form in sorted(forms):
        match |= Q(**{f"{alias}__icontains": form})
    return match


# -- finding ---------------------------------------------------------------------------


def mvo_key_ids(query: Query, join_attributes: dict[int, list[str]]) -> list[int]:
    """MVOs whose join values equal the query (the indexed ``MetaverseObjectKey``)."""
    if query.scope is not None:
        attributes = set(query.scope.mv_joined)
    else:
        attributes = {a for names in join_attributes.values() for a in names}
    if not attributes or not query.value:
        return []
    return list(
        MetaverseObjectKey.objects.filter(
            attribute__in=attributes, value=normalise_key(query.value)
        )
        .values_list("metaverse_object_id", flat=True)
        .distinct()[: RESULTS_PER_KIND + 1]
    )


def find_mvos(query: Query, key_ids: list[int]) -> QuerySet[MetaverseObject]:
    """The MVOs the query finds: join-value matches first, then by name."""
    match = Q(pk__in=key_ids)
    objects = MetaverseObject.objects.all()
    if query.scope is None:
        if len(query.value) >= MIN_NAME_LENGTH:
            match |= Q(display_name__icontains=query.value)
    else:
        for type_id, attribute in query.scope.mv_scanned.items():
            alias = f"_search_{type_id}"
            objects = objects.alias(**{alias: KeyTextTransform(attribute, "attributes")})
            match |= Q(object_type_id=type_id) & value_contains(alias, query.value)
    return (
        objects.filter(match)
        .select_related("object_type")
        .defer("attribute_sources")
        .order_by(
            Case(
                When(pk__in=key_ids, then=Value(0)), default=Value(1), output_field=IntegerField()
            ),
            Upper("display_name"),
            "pk",
        )
    )


def find_csos(query: Query) -> QuerySet[ConnectorSpaceObject]:
    """The CSOs the query finds by external id, DN or (``attribute:value``) attribute."""
    objects = ConnectorSpaceObject.objects.all()
    # Every index on CSOs leads with the system: naming them all keeps lookups in them.
    systems = list(ConnectedSystem.objects.values_list("pk", flat=True))
    value = query.value
    external_ids = Q(external_id__in={value, value.lower(), value.upper()})
    dns = Q(secondary_external_id_key__in=dn_keys(value))
    scope = query.scope
    if scope is None:
        match = external_ids | dns
    else:
        match = Q(pk__in=[])
        if scope.cs_external_id_types:
            match |= Q(object_type_id__in=scope.cs_external_id_types) & external_ids
        if scope.cs_dn_types:
            match |= Q(object_type_id__in=scope.cs_dn_types) & dns
        for type_id, attribute in scope.cs_scanned.items():
            alias = f"_search_{type_id}"
            objects = objects.alias(**{alias: KeyTextTransform(attribute, "attributes")})
            match |= Q(object_type_id=type_id) & value_contains(alias, value)
    return (
        with_delete_after_days(objects.filter(Q(connected_system_id__in=systems) & match))
        .select_related("connected_system", "object_type", "metaverse_object__object_type")
        .only(*CSO_COLUMNS)
        .order_by("connected_system__name", "pk")
    )


def find_exports(query: Query, mvo_ids: list[int], cso_ids: list[int]) -> QuerySet[PendingExport]:
    """The pending exports of the MVOs and CSOs found, and those whose DN is the text."""
    match = Q(metaverse_object_id__in=mvo_ids) | Q(cs_object_id__in=cso_ids)
    if query.scope is None and "=" in query.value:
        match |= Q(dn__iexact=query.value)
    return (
        PendingExport.objects.filter(match)
        .select_related("connected_system", "cs_object", "metaverse_object__object_type")
        .only(*EXPORT_COLUMNS)
        .order_by("connected_system__name", "pk")
    )


# -- result rows -----------------------------------------------------------------------


@dataclass(frozen=True)
class Cell:
    """One attribute of a result row: its name (the column) and values."""

    label: str
    values: list[str]


@dataclass(frozen=True)
class JoinLink:
    """A connected system an MVO is joined to, linking to the CSO there."""

    system: str
    join_type: str
    url: str


@dataclass(frozen=True)
class MvoRow:
    mvo: MetaverseObject
    url: str
    cells: list[Cell]
    joins: list[JoinLink]


@dataclass(frozen=True)
class MvoTable:
    """The MVOs found of one object type, with that type's distinguishing columns."""

    object_type: str
    columns: list[str]
    rows: list[MvoRow]


@dataclass(frozen=True)
class Found:
    """One kind of result: its rows (at most :data:`RESULTS_PER_KIND`), whether
    there are more, and the admin's list to see them in."""

    rows: list[Any]
    more: bool
    more_url: str

    @property
    def count(self) -> str:
        return f"{len(self.rows)}+" if self.more else str(len(self.rows))


@dataclass(frozen=True)
class SearchResults:
    query: Query
    mvos: list[MvoTable] | None  # None: not allowed to see them
    mvo_found: Found | None
    csos: Found | None
    exports: Found | None

    @property
    def nothing(self) -> bool:
        return not any(found and found.rows for found in (self.mvo_found, self.csos, self.exports))


def attribute_columns(
    join_names: list[str], names: Iterable[str], *, limit: int = MAX_ATTRIBUTE_COLUMNS
) -> list[str]:
    """The columns that tell objects of one type apart: its join attributes, then the
    :data:`WELL_KNOWN_ATTRIBUTES` among ``names`` (its attributes), at most ``limit``."""
    by_folded = {name.casefold(): name for name in names}
    columns: list[str] = []
    for name in [*join_names, *WELL_KNOWN_ATTRIBUTES]:
        actual = name if name in join_names else by_folded.get(name.casefold())
        if actual and actual.casefold() not in {c.casefold() for c in columns}:
            columns.append(actual)
    return columns[:limit]


def text_values(values: Any) -> list[str]:
    """An attribute's values as text (a stored value is a list, but be forgiving)."""
    if values is None:
        return []
    return [str(v) for v in (values if isinstance(values, list) else [values])]


def mvo_tables(
    mvos: list[MetaverseObject], join_attributes: dict[int, list[str]]
) -> list[MvoTable]:
    """The MVOs grouped by object type, in the order found, each with its columns:
    the type's join attributes and well-known attributes that the rows found hold (one
    query for the declared attributes of the types)."""
    type_ids = {mvo.object_type_id for mvo in mvos}
    declared: dict[int, list[str]] = {}
    for type_id, name in (
        MetaverseAttribute.objects.filter(object_type_id__in=type_ids)
        .exclude(data_type=AttributeDataType.REFERENCE)
        .values_list("object_type_id", "name")
    ):
        declared.setdefault(type_id, []).append(name)
    grouped: dict[int, list[MetaverseObject]] = {}
    for mvo in mvos:
        grouped.setdefault(mvo.object_type_id, []).append(mvo)
    tables = []
    for type_id, members in grouped.items():
        # Columns come from the type's configuration, and show only what the rows hold.
        held = {name for mvo in members for name, values in mvo.attributes.items() if values}
        names = held.intersection(declared[type_id]) if type_id in declared else held
        joins = [name for name in join_attributes.get(type_id, []) if name in held]
        columns = attribute_columns(joins, names)
        tables.append(
            MvoTable(
                object_type=members[0].object_type.name,
                columns=columns,
                rows=[mvo_row(mvo, columns) for mvo in members],
            )
        )
    return tables


def mvo_row(mvo: MetaverseObject, columns: list[str]) -> MvoRow:
    return MvoRow(
        mvo=mvo,
        url=reverse("console:mvo", args=[mvo.pk]),
        cells=[Cell(name, text_values(mvo.attributes.get(name))) for name in columns],
        joins=[
            JoinLink(
                cso.connected_system.name,
                cso.get_join_type_display(),
                admin_change_url(ConnectorSpaceObject, cso.pk),
            )
            for cso in mvo.cs_objects.all()
        ],
    )


def annotate_links(rows: list[Any], model: type) -> list[Any]:
    """Give each row its admin change page (``admin_url``), and its MVO's console page
    (``mvo_url``) when it has one."""
    for row in rows:
        row.admin_url = admin_change_url(model, row.pk)
        mvo_id = row.metaverse_object_id
        row.mvo_url = reverse("console:mvo", args=[mvo_id]) if mvo_id else ""
    return rows


def bounded(queryset: QuerySet) -> tuple[list[Any], bool]:
    """The first :data:`RESULTS_PER_KIND` rows, and whether there are more."""
    rows = list(queryset[: RESULTS_PER_KIND + 1])
    return rows[:RESULTS_PER_KIND], len(rows) > RESULTS_PER_KIND


def search(query: Query, join_attributes: dict[int, list[str]], user: Any) -> SearchResults:
    """Every kind of result the user may see, a fixed number of queries in all."""

    def more_url(model: type) -> str:
        return "" if query.reads_documents else admin_changelist_url(model, q=query.value)

    mvos: list[MetaverseObject] = []
    tables = mvo_found = csos = exports = None
    if user.has_perm(VIEW_MVOS):
        found = find_mvos(query, mvo_key_ids(query, join_attributes)).prefetch_related(
            Prefetch(
                "cs_objects",
                queryset=ConnectorSpaceObject.objects.select_related("connected_system")
                .only("join_type", "metaverse_object_id", "connected_system__name")
                .order_by("connected_system__name", "pk"),
            )
        )
        mvos, more = bounded(found)
        tables = mvo_tables(mvos, join_attributes)
        mvo_found = Found(mvos, more, more_url(MetaverseObject))
    cso_rows: list[ConnectorSpaceObject] = []
    if user.has_perm(VIEW_CSOS):
        cso_rows, more = bounded(find_csos(query))
        for cso in cso_rows:
            cso.disabled_text = disabled_text(cso)
        csos = Found(
            annotate_links(cso_rows, ConnectorSpaceObject),
            more,
            more_url(ConnectorSpaceObject),
        )
    if user.has_perm(VIEW_EXPORTS):
        rows, more = bounded(find_exports(query, [m.pk for m in mvos], [c.pk for c in cso_rows]))
        exports = Found(annotate_links(rows, PendingExport), more, more_url(PendingExport))
    return SearchResults(query, tables, mvo_found, csos, exports)


# -- the page --------------------------------------------------------------------------


@console_view()
def search_page(request: HttpRequest) -> HttpResponse:
    """The results of the header's search box (``?q=``), or how to search."""
    raw = request.GET.get("q", "").strip()
    results = None
    if raw:
        join_attributes = join_attributes_by_type()
        results = search(parse_query(raw, join_attributes), join_attributes, request.user)
    title = f"Search: {raw}" if raw else "Search"
    context = page_context(
        request,
        title,
        search_query=raw,
        results=results,
        min_name_length=MIN_NAME_LENGTH,
        results_per_kind=RESULTS_PER_KIND,
    )
    return render(request, "console/search.html", context)
