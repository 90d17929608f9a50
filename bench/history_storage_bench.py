"""What value history costs on disk: a first full import and sync of N people, then a
run of changes.

    DATABASE_URL=postgresql://root@127.0.0.1:5432/jim_history_bench \\
        .venv/bin/python -m bench.history_storage_bench --people 100000 --changes 1000

Empties the database in DATABASE_URL (``flush``: use a scratch database), applies an HR
CSV → metaverse configuration with ``jim apply`` (the generated file's 15 attributes,
nine of them flowed into the metaverse), generates N people and runs, through the
runner as ``jim run`` does, HR Full Import and HR Full Sync; then changes the surname
and title of ``--changes`` people in the file and runs HR Full Import and HR Delta
Sync again. After each step it prints the rows and the bytes of the history table
(``pg_total_relation_size``: heap, TOAST and indexes, after ``VACUUM ANALYZE``), bytes
per row, and for comparison the size of the connector space and the metaverse.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench.import_bench import _setup_django

CONFIG = """
version: 1
metaverse:
  object_types:
    person:
      attributes:
        employeeId: text
        accountName: text
        givenName: text
        sn: text
        displayName: text
        department: text
        title: text
        employeeStatus: text
        manager: reference
connected_systems:
  - name: HR
    connector: csv
    settings: {path: hr.csv}
    object_types:
      - name: person
        external_id: employeeId
        attributes:
          managerId: {type: reference, references: person}
    run_profiles:
      - {name: Full Import, type: full_import}
      - {name: Full Sync, type: full_sync}
      - {name: Delta Sync, type: delta_sync}
sync_rules:
  - name: HR people in
    connected_system: HR
    direction: import
    object_type: person
    metaverse_object_type: person
    join: [{cs: employeeId, mv: employeeId}]
    project: true
    flows:
      - {mv: employeeId, from: employeeId}
      - {mv: givenName, from: firstName}
      - {mv: sn, from: lastName}
      - {mv: displayName, expression: "cs.firstName ~ ' ' ~ cs.lastName"}
      - {mv: accountName, from: accountName}
      - {mv: department, from: department}
      - {mv: title, from: title}
      - {mv: employeeStatus, from: status}
      - {mv: manager, from: managerId}
"""


def _run(profile: str, *, allow_changes: bool = False) -> dict[str, Any]:
    from connectors.models import RunProfile
    from runs.runner import execute, start_activity

    run_profile = RunProfile.objects.get(connected_system__name="HR", name=profile)
    system = run_profile.connected_system
    activity = start_activity(
        system, run_profile, initiated_by_name="bench", allow_changes=allow_changes
    )
    activity = execute(activity)
    if activity.status not in ("complete", "complete_with_errors"):
        sys.exit(f"bench: HR {profile} ended {activity.status}: {activity.message}")
    return activity.counts


def _change_people(path: Path, count: int) -> None:
    """Change the surname and title of ``count`` people spread through the file."""
    with path.open(newline="", encoding="utf-8") as source:
        rows = list(csv.DictReader(source))
    step = max(1, len(rows) // count)
    for row in rows[::step][:count]:
        row["lastName"] += "-Changed"
        row["title"] = "Changed " + row["title"]
    with path.open("w", newline="", encoding="utf-8") as target:
        writer = csv.DictWriter(target, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def _sizes() -> dict[str, tuple[int, int]]:
    """(rows, bytes with TOAST and indexes) of the history, the CSOs and the MVOs."""
    from django.db import connection

    from connectors.models import ConnectorSpaceObject
    from history.models import ValueChange
    from metaverse.models import MetaverseObject

    sizes = {}
    with connection.cursor() as cursor:
        for name, model in (
            ("history", ValueChange),
            ("connector space", ConnectorSpaceObject),
            ("metaverse", MetaverseObject),
        ):
            table = connection.ops.quote_name(model._meta.db_table)
            cursor.execute(f"VACUUM ANALYZE {table}")
            cursor.execute(f"SELECT count(*), pg_total_relation_size('{table}') FROM {table}")
            sizes[name] = cursor.fetchone()
    return sizes


def _row_bytes(rows: int) -> float:
    """The mean size of the last ``rows`` history rows as stored (``pg_column_size``),
    without page and index overhead: the figure a few rows are measured by."""
    from django.db import connection

    from history.models import ValueChange

    table = connection.ops.quote_name(ValueChange._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT avg(pg_column_size(h.*)) FROM "
            f"(SELECT * FROM {table} ORDER BY id DESC LIMIT %s) h",
            [rows],
        )
        return float(cursor.fetchone()[0] or 0)


def _report(
    step: str, counts: dict[str, int], sizes: dict[str, tuple[int, int]], before: tuple[int, int]
) -> None:
    rows, size = sizes["history"]
    new_rows, new_bytes = rows - before[0], size - before[1]
    others = ", ".join(f"{n} {s / 2**20:,.1f} MiB" for n, (_, s) in sizes.items() if n != "history")
    print(
        f"  {step}: run {counts}\n"
        f"    history +{new_rows:,} rows, +{new_bytes / 2**20:,.2f} MiB on disk "
        f"({new_bytes / max(new_rows, 1):,.0f} B/row with indexes), "
        f"{_row_bytes(new_rows):,.0f} B/row as stored\n"
        f"    history now {rows:,} rows, {size / 2**20:,.1f} MiB ({others})"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=100_000)
    parser.add_argument("--changes", type=int, default=1_000)
    args = parser.parse_args(argv)
    _setup_django()
    from django.core.management import call_command

    from bench.generate import write_people_csv

    call_command("flush", interactive=False, verbosity=0)
    print(f"Value history for {args.people:,} people, then {args.changes:,} changed:")
    with tempfile.TemporaryDirectory() as folder:
        hr = Path(folder) / "hr.csv"
        write_people_csv(hr, args.people)
        config = Path(folder) / "jim.yaml"
        config.write_text(CONFIG)
        call_command("jim", "apply", str(config), stdout=open(os.devnull, "w"))  # noqa: SIM115
        last = _sizes()["history"]
        steps = [
            ("Full Import", "first full import (CSOs created)"),
            ("Full Sync", "first full sync (MVOs projected)"),
            ("Full Import", f"import of {args.changes:,} changes"),
            ("Delta Sync", f"delta sync of {args.changes:,} changes"),
        ]
        for n, (profile, step) in enumerate(steps):
            if n == 2:
                _change_people(hr, args.changes)
            counts = _run(profile, allow_changes=n == 2)  # past the change threshold
            sizes = _sizes()
            _report(step, counts, sizes, last)
            last = sizes["history"]


if __name__ == "__main__":
    main()
