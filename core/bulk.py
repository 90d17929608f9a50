"""Fast bulk reads and writes for the processors' hot paths (100,000 objects per run).

Django's ``bulk_create`` sends PostgreSQL arrays (``UNNEST``) and ``bulk_update`` a
``CASE`` per column; both spend most of their time in Python escaping values (JSON
documents especially), and building a model instance per row costs as much again:
about 2,000 objects a second on this project's hardware. Here rows travel the
cheapest way into the server:

* inserts with ``COPY``, primary keys drawn from the table's sequence beforehand
  (:func:`insert_rows` for plain rows, :func:`insert_instances` for model instances);
* updates as one JSON document per batch that the server expands with
  ``jsonb_to_recordset`` — one parameter, no escaping (:func:`update_rows`,
  :func:`update_instances`);
* lookups by many values with one array parameter (:func:`one_of`).

On other databases (SQLite, the demo's) Django's own methods do the same work.

Like ``bulk_create``: no ``save()``, no signals; defaults and ``auto_now`` /
``auto_now_add`` are filled in.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

from django.db import connection, transaction
from django.db.models import BooleanField, DateTimeField, Field, JSONField, Model, Q
from django.db.models.expressions import RawSQL
from django.utils import timezone

BATCH_SIZE = 1000

Row = Mapping[str, Any]
ModelT = TypeVar("ModelT", bound=Model)


# --------------------------------------------------------------------------- inserts


def insert_rows(model: type[Model], rows: Sequence[Row], *, returning: bool = True) -> list[int]:
    """Insert rows (column name → value, the same columns in every row); columns not
    given get their defaults, and rows that hold their ``id`` keep it. Returns the new
    pks, in order, when ``returning``.

    On PostgreSQL the rows are sent with ``COPY`` (the server's cheapest way in), with
    primary keys drawn from the table's sequence beforehand when they are wanted.
    """
    if not rows:
        return []
    if connection.vendor != "postgresql":
        objs = model.objects.bulk_create([model(**row) for row in rows], batch_size=BATCH_SIZE)
        return [obj.pk for obj in objs] if returning else []
    meta = model._meta
    given = list(rows[0])
    by_column = {f.column: f for f in meta.concrete_fields}
    json_indexes = [n for n, c in enumerate(given) if isinstance(by_column[c], JSONField)]
    now = timezone.now()
    constants = {
        f.column: now if _stamped(f) else f.get_default()
        for f in meta.concrete_fields
        if not f.primary_key and f.column not in given
    }
    for column, value in constants.items():
        if isinstance(by_column[column], JSONField):
            constants[column] = _json(value)
    columns = [*given, *constants]
    if returning:
        columns.insert(0, meta.pk.column)
    table = connection.ops.quote_name(meta.db_table)
    copy = f"COPY {table} ({', '.join(map(connection.ops.quote_name, columns))}) FROM STDIN"
    trailer = tuple(constants.values())
    pks: list[int] = []
    with connection.cursor() as cursor:
        for start in range(0, len(rows), BATCH_SIZE):
            batch = rows[start : start + BATCH_SIZE]
            ids = _next_ids(cursor, meta, len(batch)) if returning else []
            with cursor.cursor.copy(copy) as stream:
                for n, row in enumerate(batch):
                    values = [row[column] for column in given]
                    for index in json_indexes:
                        values[index] = _json(values[index])
                    lead = (ids[n],) if returning else ()
                    stream.write_row((*lead, *values, *trailer))
            pks.extend(ids)
    return pks


def insert_instances(objs: Sequence[Model]) -> None:
    """Insert unsaved model instances of one model and set their primary keys.

    Instances that already hold a primary key (from :func:`assign_ids`) keep it.
    """
    if not objs:
        return
    model = type(objs[0])
    if connection.vendor != "postgresql":
        model.objects.bulk_create(objs, batch_size=BATCH_SIZE)
        return
    meta = model._meta
    missing = [obj for obj in objs if obj.pk is None]
    for obj, pk in zip(missing, allocate_ids(model, len(missing)), strict=True):
        obj.pk = pk
    now = timezone.now()
    fields = [f for f in meta.concrete_fields if not f.primary_key]
    for field in fields:
        if getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False):
            for obj in objs:
                setattr(obj, field.attname, now)
    names = [(f.column, f.attname) for f in [meta.pk, *fields]]
    rows = [{column: getattr(obj, attname) for column, attname in names} for obj in objs]
    for obj in objs:
        obj._state.adding = False
        obj._state.db = connection.alias
    insert_rows(model, rows, returning=False)


def new_instance(model: type[ModelT], **values: Any) -> ModelT:
    """A new, unsaved instance from field values by attname (``…_id`` for foreign keys).

    Django's keyword ``__init__`` looks every field up by name and costs as much as
    the sync work on an object; the positional one it uses for rows read from the
    database is several times cheaper. Fields not given get their defaults.
    """
    fields = _instance_fields.get(model)
    if fields is None:
        fields = _instance_fields[model] = [
            (
                f.attname,
                f.get_default if f.has_default() and callable(f.default) else None,
                f.get_default(),
            )
            for f in model._meta.concrete_fields
        ]
    args = []
    for attname, factory, default in fields:
        if attname in values:
            args.append(values.pop(attname))
        elif factory is not None:
            args.append(factory())
        else:
            args.append(default)
    if values:
        raise TypeError(f"{model.__name__} has no field(s) {', '.join(values)}")
    return model(*args)


#: model → (attname, default factory, default) of each concrete field, in order
_instance_fields: dict[type[Model], list[tuple[str, Any, Any]]] = {}


def assign_ids(objs: Sequence[Model]) -> bool:
    """Give unsaved instances their primary keys now, to insert them later.

    True when the keys were drawn from the table's sequence (PostgreSQL): the caller
    inserts the instances later with :func:`insert_instances`. On databases without
    sequences the instances are inserted now to get their keys, and False is returned.
    """
    if not objs:
        return True
    if connection.vendor != "postgresql":
        insert_instances(objs)
        return False
    for obj, pk in zip(objs, allocate_ids(type(objs[0]), len(objs)), strict=True):
        obj.pk = pk
    return True


def allocate_ids(model: type[Model], count: int) -> list[int]:
    """``count`` new primary keys from the table's sequence, in increasing order
    (PostgreSQL). Rows inserted with them later keep them."""
    if not count:
        return []
    with connection.cursor() as cursor:
        return _next_ids(cursor, model._meta, count)


def _next_ids(cursor: Any, meta: Any, count: int) -> list[int]:
    sequence = _sequences.get(meta.db_table)
    if sequence is None:
        cursor.execute("SELECT pg_get_serial_sequence(%s, %s)", [meta.db_table, meta.pk.column])
        sequence = _sequences[meta.db_table] = cursor.fetchone()[0]
    cursor.execute("SELECT nextval(%s::regclass) FROM generate_series(1, %s)", [sequence, count])
    return [pk for (pk,) in cursor.fetchall()]


#: table → its primary key's sequence (looked up once per process)
_sequences: dict[str, str] = {}


# --------------------------------------------------------------------------- updates


def update_rows(
    model: type[Model],
    rows: Sequence[Row],
    columns: Sequence[str],
    *,
    merge: Sequence[str] = (),
    unless_changed: str | None = None,
) -> int:
    """Write ``columns`` of existing rows; each row holds ``id`` and those columns.
    Returns the number of rows written.

    Columns in ``merge`` (JSON objects) are merged into the current value — only the
    keys given change — instead of replacing it. With ``unless_changed`` (a column),
    each row also holds that column's value as it was read, under
    ``"<column>__was"``, and is written only while the table still holds that value
    (a guard in the statement's ``WHERE``; a row another transaction changed is left).
    """
    if not rows:
        return 0
    meta = model._meta
    if connection.vendor != "postgresql":
        return _update_rows_portably(model, rows, columns, merge, unless_changed)
    fields = [next(f for f in meta.concrete_fields if f.column == c) for c in columns]
    guard = ""
    definitions = _definitions([meta.pk, *fields])
    if unless_changed is not None:
        was = next(f for f in meta.concrete_fields if f.column == unless_changed)
        column = connection.ops.quote_name(unless_changed)
        guarded = connection.ops.quote_name(f"{unless_changed}__was")
        guard = f" AND t.{column} = x.{guarded}"
        definitions += f", {guarded} {was.db_type(connection).split('(')[0]}"
    table = connection.ops.quote_name(meta.db_table)
    pk = _quoted(meta.pk)
    assignments = ", ".join(
        f"{_quoted(f)} = "
        + (f"t.{_quoted(f)} || x.{_quoted(f)}" if f.column in merge else f"x.{_quoted(f)}")
        for f in fields
    )
    sql = (
        f"UPDATE {table} AS t SET {assignments} "
        f"FROM jsonb_to_recordset(%s::jsonb) AS x({definitions}) "
        f"WHERE t.{pk} = x.{pk}{guard}"
    )
    written = 0
    with connection.cursor() as cursor:
        for start in range(0, len(rows), BATCH_SIZE):
            cursor.execute(sql, [_dumps(rows[start : start + BATCH_SIZE])])
            written += cursor.rowcount
    return written


def update_instances(objs: Sequence[Model], fields: Sequence[str]) -> None:
    """Write ``fields`` (names) of each saved instance, like ``QuerySet.bulk_update``;
    ``auto_now`` fields among them are set to the current time."""
    if not objs:
        return
    model = type(objs[0])
    meta = model._meta
    concrete = [meta.get_field(name) for name in fields]
    now = timezone.now()
    for field in concrete:
        if getattr(field, "auto_now", False):
            for obj in objs:
                setattr(obj, field.attname, now)
    if connection.vendor != "postgresql":
        model.objects.bulk_update(objs, list(fields), batch_size=500)
        return
    names = [(f.column, f.attname) for f in [meta.pk, *concrete]]
    rows = [{column: getattr(obj, attname) for column, attname in names} for obj in objs]
    update_rows(model, rows, [f.column for f in concrete])


def _update_rows_portably(
    model: type[Model],
    rows: Sequence[Row],
    columns: Sequence[str],
    merge: Sequence[str],
    unless_changed: str | None,
) -> int:
    meta = model._meta
    by_column = {f.column: f for f in meta.concrete_fields}
    if unless_changed is not None:
        name = by_column[unless_changed].attname
        now = dict(model.objects.filter(pk__in=[row["id"] for row in rows]).values_list("pk", name))
        key = f"{unless_changed}__was"
        rows = [row for row in rows if row["id"] in now and now[row["id"]] == row[key]]
        rows = [{c: v for c, v in row.items() if c != key} for row in rows]
    current: dict[Any, dict[str, Any]] = {}
    if merge:
        names = [by_column[c].attname for c in merge]
        ids = [row["id"] for row in rows]
        for values in model.objects.filter(pk__in=ids).values("pk", *names):
            current[values["pk"]] = values
    objs = []
    for row in rows:
        values = {by_column[c].attname: v for c, v in row.items()}
        for column in merge:
            name = by_column[column].attname
            values[name] = {**(current.get(row["id"], {}).get(name) or {}), **values[name]}
        objs.append(model(**values))
    model.objects.bulk_update(objs, [by_column[c].name for c in columns], batch_size=500)
    return len(objs)


# --------------------------------------------------------------------------- transactions


@contextmanager
def batch_transaction() -> Iterator[None]:
    """The transaction of one batch of a run that a later run can redo.

    On PostgreSQL it commits without waiting for the write-ahead log to reach the disk
    (``synchronous_commit = off``): a run commits a batch every few hundred objects
    and the flush was a tenth of its time. Only a crash of the database server itself
    can lose the last fraction of a second of committed batches, and the database
    stays consistent: the objects of those batches are still marked for sync, so
    the next run does them again. Never for exports, whose effects are outside.
    """
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL synchronous_commit = off")
        yield


# --------------------------------------------------------------------------- lookups


def one_of(column: str, values: Iterable[Any]) -> Any:
    """A filter "``column`` is one of ``values``" for many values.

    On PostgreSQL ``column = ANY(%s)`` with one array parameter: a short statement
    whose plan is an index scan even before the table has statistics (an ``IN
    (SELECT …)`` was planned as a scan of every row per value on a fresh table).
    Elsewhere ``column__in``. The column is not qualified with its table: use it on
    queries that join no other table with a column of that name.
    """
    values = list(values)
    if connection.vendor != "postgresql":
        return Q(**{f"{column}__in": values})
    return RawSQL(
        f"{connection.ops.quote_name(column)} = ANY(%s)", [values], output_field=BooleanField()
    )


class PlannerStatistics:
    r"""Keeps PostgreSQL's planner statistics of a table current while a run fills it.

    A table that had few rows when it was last analysed keeps being planned as small
    (autovacuum analyses once a minute at best): a run filling it from nothing then
    gets a scan of every row for each batch's lookup, and slows down with every
    batch. :meth:`grew` analyses the given columns each time the rows added since the
    last analysis reach the number known then (5,000 at least): a handful of quick
    ``ANALYZE``\ s per run, whatever its size. Call it where the rows are written (it
    uses that thread's connection).
    """

    MINIMUM = 5000
    SAMPLE_TARGET = 10

    def __init__(self, model: type[Model], columns: Sequence[str], known_rows: int) -> None:
        self.table = connection.ops.quote_name(model._meta.db_table)
        self.columns = ", ".join(connection.ops.quote_name(c) for c in columns)
        self.known = known_rows
        self.added = 0

    @classmethod
    def of_table(cls, model: type[Model]) -> PlannerStatistics:
        """Statistics of every column of a table, starting from the planner's own
        estimate of its rows (no count)."""
        known = 0
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT reltuples FROM pg_class WHERE oid = %s::regclass",
                    [model._meta.db_table],
                )
                row = cursor.fetchone()
                known = max(int(row[0]), 0) if row else 0
        return cls(model, (), known)

    def grew(self, rows: int) -> None:
        self.added += rows
        if self.added < max(self.MINIMUM, self.known) or connection.vendor != "postgresql":
            return
        with transaction.atomic(), connection.cursor() as cursor:
            # A small sample is plenty to tell a big table from an empty one, and ten
            # times cheaper than the default; autovacuum refines it later.
            cursor.execute(f"SET LOCAL default_statistics_target = {self.SAMPLE_TARGET}")
            columns = f" ({self.columns})" if self.columns else ""
            cursor.execute(f"ANALYZE {self.table}{columns}")
        self.known += self.added
        self.added = 0


# --------------------------------------------------------------------------- helpers


def _stamped(field: Field) -> bool:
    """True for ``auto_now``/``auto_now_add`` fields: written with the current time."""
    return isinstance(field, DateTimeField) and (field.auto_now or field.auto_now_add)


def _quoted(field: Field) -> str:
    return connection.ops.quote_name(field.column)


def _definitions(fields: Sequence[Field]) -> str:
    """``"column" type, …`` for jsonb_to_recordset (without length limits)."""
    return ", ".join(
        f"{_quoted(field)} {field.db_type(connection).split('(')[0]}" for field in fields
    )


def _json_default(value: Any) -> Any:
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} cannot be written in bulk")


#: One encoder for every value (``json.dumps`` with options builds one per call).
_ENCODER = json.JSONEncoder(default=_json_default, ensure_ascii=False, separators=(",", ":"))


def _json(value: Any) -> str | None:
    """A JSON column's value as text (the common empty document without encoding)."""
    if value is None:
        return None
    if type(value) is dict and not value:
        return "{}"
    return _ENCODER.encode(value)


def _dumps(rows: Sequence[Row]) -> str:
    return _ENCODER.encode(list(rows))
