"""A trigram index on MVO display names, for the console search (PostgreSQL only).

The search (``console/search.py``) looks for a text inside display names with
Django's ``icontains``: ``UPPER(display_name::text) LIKE UPPER('%…%')``. Without an
index that reads every MVO, attribute documents and all — about 0.2 s for 100,000
people; a GIN trigram index on the same expression answers in a few milliseconds.

The index needs PostgreSQL's ``pg_trgm`` extension. It ships with PostgreSQL and is
trusted, so the database's owner may create it; when it cannot be created the
migration stops and says what to ask the database's administrator for. The index is
not declared in the models' ``Meta``: SQLite (the demo) has no GIN indexes, and reads
its small table.

Everything else the search looks up is indexed already: join values
(``MetaverseObjectKey``), CSO external ids and DN keys.
"""

from django.db import migrations
from django.db.utils import DatabaseError

INDEX = "mvo_display_name_trgm_idx"


def create_index(apps, schema_editor):
    connection = schema_editor.connection
    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm'")
        if cursor.fetchone() is None:
            try:
                with connection.cursor() as create:
                    create.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
            except DatabaseError as exc:
                raise RuntimeError(
                    f"The search index on metaverse display names needs PostgreSQL's "
                    f"pg_trgm extension, which could not be created: {exc}. Ask the "
                    f"database's administrator to run CREATE EXTENSION pg_trgm; in database "
                    f"{connection.settings_dict['NAME']!r}, then run migrate again."
                ) from exc
        cursor.execute(
            f"CREATE INDEX IF NOT EXISTS {INDEX} ON metaverse_metaverseobject "
            "USING gin (UPPER(display_name::text) gin_trgm_ops)"
        )


def drop_index(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"DROP INDEX IF EXISTS {INDEX}")


class Migration(migrations.Migration):
    dependencies = [
        ("metaverse", "0002_drop_redundant_fk_indexes"),
    ]

    operations = [
        migrations.RunPython(create_index, drop_index, elidable=False),
    ]
