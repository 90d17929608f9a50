"""Fast bulk writes for the processors' hot paths (100,000 objects per run).

Django's ``QuerySet.bulk_update`` builds one ``CASE WHEN`` expression per row and
field, and on PostgreSQL ``bulk_create`` escapes every value into SQL arrays in
Python; both cost more than the sync itself at this scale. These two functions do the
same jobs with plain parameters: :func:`bulk_update` sends one ``UPDATE … WHERE id``
per object through ``executemany`` (pipelined by psycopg 3), :func:`bulk_insert` uses
``COPY`` on PostgreSQL (Django's ``bulk_create`` elsewhere). Values are converted per
field once per field, not through the full ``get_db_prep_save`` machinery per value.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

from django.db import connections, models
from django.utils import timezone

Converter = Callable[[models.Model], Any]

#: Field classes whose Python value is the database parameter as it is (exact classes:
#: a subclass may convert, like the encrypted secrets field).
_PLAIN_FIELDS = frozenset(
    {
        models.CharField,
        models.TextField,
        models.IntegerField,
        models.PositiveIntegerField,
        models.PositiveBigIntegerField,
        models.BigIntegerField,
        models.BooleanField,
        models.ForeignKey,
        models.OneToOneField,
        models.DateTimeField,
    }
)


def _converter(field: models.Field, connection: Any, now: Any) -> Converter:
    """A function reading a field's database value from an object."""
    attname = field.attname
    if getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False):

        def stamp(obj: models.Model) -> Any:
            setattr(obj, attname, now)
            return now

        return stamp
    if isinstance(field, models.JSONField):
        encoder = field.encoder

        def dump(obj: models.Model) -> Any:
            value = getattr(obj, attname)
            return None if value is None else json.dumps(value, cls=encoder)

        return dump
    if type(field) in _PLAIN_FIELDS:
        return lambda obj: getattr(obj, attname)
    return lambda obj: field.get_db_prep_save(getattr(obj, attname), connection)


def bulk_update(
    objs: Sequence[models.Model], fields: Sequence[str], batch_size: int = 2000
) -> None:
    """Write ``fields`` of each object (by primary key), like ``QuerySet.bulk_update``."""
    if not objs:
        return
    connection = connections["default"]
    meta = type(objs[0])._meta
    concrete = [meta.get_field(name) for name in fields]
    now = timezone.now()
    converters = [_converter(f, connection, now) for f in concrete]
    quote = connection.ops.quote_name
    assignments = ", ".join(f"{quote(f.column)} = %s" for f in concrete)
    sql = f"UPDATE {quote(meta.db_table)} SET {assignments} WHERE {quote(meta.pk.column)} = %s"
    with connection.cursor() as cursor:
        for start in range(0, len(objs), batch_size):
            chunk = objs[start : start + batch_size]
            cursor.executemany(sql, [[c(obj) for c in converters] + [obj.pk] for obj in chunk])


def bulk_insert(objs: Sequence[models.Model], batch_size: int = 5000) -> None:
    """Insert new objects and set their primary keys, like ``QuerySet.bulk_create``.

    On PostgreSQL the primary keys are drawn from the table's sequence and the rows
    sent with ``COPY``; elsewhere (SQLite) Django's ``bulk_create`` is used.
    """
    if not objs:
        return
    model = type(objs[0])
    connection = connections["default"]
    if connection.vendor != "postgresql":
        model.objects.bulk_create(objs, batch_size=batch_size)
        return
    meta = model._meta
    fields = [f for f in meta.concrete_fields if not f.primary_key]
    now = timezone.now()
    converters = [_converter(f, connection, now) for f in fields]
    quote = connection.ops.quote_name
    table, pk_column = meta.db_table, meta.pk.column
    columns = ", ".join(quote(c) for c in [pk_column, *(f.column for f in fields)])
    with connection.cursor() as cursor:
        for start in range(0, len(objs), batch_size):
            chunk = objs[start : start + batch_size]
            cursor.execute(
                "SELECT nextval(pg_get_serial_sequence(%s, %s)) FROM generate_series(1, %s)",
                [table, pk_column, len(chunk)],
            )
            for obj, (pk,) in zip(chunk, cursor.fetchall(), strict=True):
                obj.pk = pk
            with cursor.cursor.copy(f"COPY {quote(table)} ({columns}) FROM STDIN") as copy:
                for obj in chunk:
                    copy.write_row([obj.pk, *(c(obj) for c in converters)])
            for obj in chunk:
                obj._state.adding = False
                obj._state.db = connection.alias


def insert_values(
    model: type[models.Model], field_names: Sequence[str], rows: Sequence[Sequence[Any]]
) -> None:
    """Insert rows given as tuples of database values, without building model instances.

    For high-volume rows whose ids nobody needs back (attribute changes, join keys,
    RPEIs). JSON fields take Python values; foreign keys take ids.
    """
    if not rows:
        return
    connection = connections["default"]
    meta = model._meta
    fields = [meta.get_field(name) for name in field_names]
    json_positions = [i for i, f in enumerate(fields) if isinstance(f, models.JSONField)]
    quote = connection.ops.quote_name
    columns = ", ".join(quote(f.column) for f in fields)

    def prepared(row: Sequence[Any]) -> list[Any]:
        values = list(row)
        for i in json_positions:
            values[i] = json.dumps(values[i])
        return values

    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            with cursor.cursor.copy(f"COPY {quote(meta.db_table)} ({columns}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(prepared(row))
        else:
            placeholders = ", ".join(["%s"] * len(fields))
            cursor.executemany(
                f"INSERT INTO {quote(meta.db_table)} ({columns}) VALUES ({placeholders})",
                [prepared(row) for row in rows],
            )
