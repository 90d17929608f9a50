"""LDAP full import speed and memory: N generated people in a private slapd, into PostgreSQL.

    DATABASE_URL=postgresql://root@127.0.0.1:5432/jim_bench \\
        .venv/bin/python -m bench.ldap_import_bench --people 10000,100000

For each N, in a fresh child process (so peak memory is that run's own): start a
private slapd (tests/support/slapd.py), load N people (bench/generate.py, as
inetOrgPerson entries with a ``manager`` DN) with raw pipelined ldap3 adds — the
floor: how fast this machine's slapd takes adds at all —, then

- the connector's export of ``--export`` more people (pipelined creates with their
  entryUUID read back), against the same floor;
- the connector alone reading every page (no database): the import's read floor;
- a full import through the runner (as ``jim run`` does), then the same import again
  (nothing changed): objects/s per phase and peak resident memory (``ru_maxrss``).

The database in DATABASE_URL must be PostgreSQL and is migrated; the bench's connected
systems (``bench-ldap-…``) are deleted first. Use a scratch database.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import unicodedata
from collections import deque
from collections.abc import Iterable, Iterator
from typing import Any

from bench.import_bench import PHASES, ROOT, _peak_mb, _run_import, _setup_django

#: Requests in flight while loading entries (the connector's default window).
WINDOW = 64


def people_entries(count: int, container: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """Generated people as (DN, attributes); the RDN is the employee id."""
    from bench.generate import generate_people

    for row in generate_people(count):
        attributes = {
            "objectClass": ["top", "person", "organizationalPerson", "inetOrgPerson"],
            "uid": row["employeeId"],
            "cn": row["displayName"],
            "givenName": row["firstName"],
            "sn": row["lastName"],
            "displayName": row["displayName"],
            "mail": _ascii(row["mail"]),  # IA5: ASCII only
            "employeeNumber": row["employeeId"],
            "departmentNumber": row["department"],
            "title": row["title"],
            "l": row["location"],
            "telephoneNumber": row["phone"],
            "o": row["company"],
        }
        if row["managerId"]:
            attributes["manager"] = f"uid={row['managerId']},{container}"
        yield f"uid={row['employeeId']},{container}", attributes


def _ascii(text: str) -> str:
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")


def raw_pipelined_adds(slapd: Any, entries: Iterable[tuple[str, dict[str, Any]]]) -> int:
    """Add entries with ldap3 alone, WINDOW requests in flight, bound as JIM is (the
    service account: the same ACLs); returns how many."""
    import ldap3

    connection = ldap3.Connection(
        slapd.server(),
        slapd.service_dn,
        slapd.service_password,
        client_strategy=ldap3.ASYNC,
        auto_bind=True,
        check_names=False,
    )
    in_flight: deque[int] = deque()
    count = 0

    def collect() -> None:
        _, result = connection.get_response(in_flight.popleft(), timeout=60)
        if result["result"] != 0:
            sys.exit(f"bench: an add failed: {result}")

    for dn, attributes in entries:
        in_flight.append(connection.add(dn, attributes=attributes))
        count += 1
        if len(in_flight) >= WINDOW:
            collect()
    while in_flight:
        collect()
    connection.unbind()
    return count


def connector_export(settings: dict[str, Any], count: int, container: str) -> float:
    """Seconds the connector takes to create ``container`` and ``count`` people in it
    (batches of 1,000; the container goes first, pipelining keeps it first)."""
    from connectors.backends.ldap import LdapConnector
    from connectors.base import ExportAttributeChange, ExportChange, ObjectTypeSpec

    unit = ObjectTypeSpec("organizationalUnit", "entryUUID", "dn")
    spec = ObjectTypeSpec("inetOrgPerson", "entryUUID", "dn", container=container)
    changes = [ExportChange(-1, "create", unit, dn=container)] + [
        ExportChange(
            index,
            "create",
            spec,
            dn=dn,
            attribute_changes=[
                ExportAttributeChange(name, "update", [value])
                for name, value in attributes.items()
                if name != "objectClass"
            ],
        )
        for index, (dn, attributes) in enumerate(people_entries(count, container))
    ]
    begin = time.perf_counter()
    with LdapConnector(settings) as connector:
        for start in range(0, len(changes), 1000):
            results = connector.export(changes[start : start + 1000])
            failed = [result for result in results if not result.ok]
            if failed:
                sys.exit(f"bench: an export failed: {failed[0].error}")
    return time.perf_counter() - begin


def connector_read(settings: dict[str, Any], container: str) -> tuple[float, int]:
    """Seconds the connector takes to read every page of the people, and how many."""
    from connectors.backends.ldap import LdapConnector
    from connectors.base import ObjectTypeSpec

    spec = ObjectTypeSpec("inetOrgPerson", "entryUUID", "dn", container=container)
    begin, count = time.perf_counter(), 0
    with LdapConnector(settings) as connector:
        stream = connector.import_objects([spec], delta=False, persisted_data={})
        for page in stream.pages:
            count += len(page.objects)
    return time.perf_counter() - begin, count


def measure(people: int, export: int, durable: bool = True) -> dict[str, Any]:
    """One N, in this process, with its own slapd."""
    _setup_django()
    from bench.directory import connector_settings, start_directory
    from connectors.models import ConnectedSystem
    from tests.builders import make_connected_system

    baseline = _peak_mb()
    ConnectedSystem.objects.filter(name__startswith="bench-ldap-").delete()
    slapd = start_directory(durable=durable)
    try:
        container = f"ou=people,{slapd.base_dn}"
        begin = time.perf_counter()
        raw_pipelined_adds(slapd, people_entries(people, container))
        load_seconds = time.perf_counter() - begin
        settings = connector_settings(slapd)
        export_seconds = export_floor_seconds = None
        if export:  # the same entries, raw then through the connector, side by side
            begin = time.perf_counter()
            raw_pipelined_adds(slapd, people_entries(export, f"ou=groups,{slapd.base_dn}"))
            export_floor_seconds = time.perf_counter() - begin
            export_seconds = connector_export(settings, export, f"ou=export,{slapd.base_dn}")
        read_seconds, read_count = connector_read(settings, container)
        system = make_connected_system(
            f"bench-ldap-{people}",
            "ldap",
            settings,
            object_type="inetOrgPerson",
            external_id="entryUUID",
            secondary_external_id="dn",
            container=container,
            attributes={"manager": {"type": "reference", "references": "inetOrgPerson"}},
        )
        first_run = _run_import(system)
        second_run = _run_import(system)
        ConnectedSystem.objects.filter(pk=system.pk).delete()
    finally:
        slapd.destroy()
    return {
        "people": people,
        "durable": durable,
        "baseline_mb": baseline,
        "load_seconds": load_seconds,
        "export": export,
        "export_seconds": export_seconds,
        "export_floor_seconds": export_floor_seconds,
        "read_seconds": read_seconds,
        "read_count": read_count,
        "first": first_run,
        "second": second_run,
    }


def _report(result: dict[str, Any]) -> str:
    people = result["people"]
    lines = [
        f"{people:,} people in slapd ("
        + ("durable" if result["durable"] else "not syncing: --no-sync")
        + f"; baseline {result['baseline_mb']:.0f} MB)",
        f"  floor: raw pipelined ldap3 adds (window {WINDOW}): "
        f"{people / result['load_seconds']:,.0f} adds/s",
    ]
    if result["export_seconds"]:
        lines.append(
            f"  connector export, creates with entryUUID read back: "
            f"{result['export'] / result['export_seconds']:,.0f} creates/s "
            f"({result['export']:,} in batches of 1,000; the same entries added raw just "
            f"before: {result['export'] / result['export_floor_seconds']:,.0f} adds/s)"
        )
    lines.append(
        f"  connector read alone (no database): "
        f"{result['read_count'] / result['read_seconds']:,.0f} objects/s"
    )
    for label in ("first", "second"):
        run = result[label]
        lines.append(
            f"  {label} full import: {run['seconds']:.1f} s, "
            f"{people / run['seconds']:,.0f} objects/s, peak {run['peak_mb']:.0f} MB, "
            f"counts {run['counts']}"
        )
        lines.append(
            f"    (JIM process CPU {run['cpu_seconds']:.1f} s; machine load average "
            f"{run['load']:.1f} at the end)"
        )
        for phase in PHASES:
            seconds = run["phases"].get(phase)
            if seconds is not None:
                lines.append(
                    f"    {phase:<22} {seconds:7.2f} s  {people / max(seconds, 1e-9):>12,.0f} "
                    "objects/s"
                )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", default="10000", help="Comma-separated sizes (default 10000).")
    parser.add_argument(
        "--export", type=int, default=5000, help="People created through the connector (0: none)."
    )
    parser.add_argument(
        "--no-sync",
        action="store_true",
        help="let slapd skip syncing commits to disk (not durable: to see what syncs cost)",
    )
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    options = parser.parse_args(argv)
    sizes = [int(size) for size in options.people.split(",")]
    if options.child:
        print(json.dumps(measure(sizes[0], options.export, durable=not options.no_sync)))
        return
    if not os.environ.get("DATABASE_URL", "").startswith(("postgres://", "postgresql://")):
        sys.exit("bench: set DATABASE_URL to a PostgreSQL database (SQLite is not measured).")
    for size in sizes:
        command = [
            sys.executable,
            "-m",
            "bench.ldap_import_bench",
            "--child",
            "--people",
            str(size),
            "--export",
            str(options.export),
            *(["--no-sync"] if options.no_sync else []),
        ]
        output = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
        if output.returncode != 0:
            sys.exit(f"bench: {size:,} people failed:\n{output.stdout}{output.stderr}")
        print(_report(json.loads(output.stdout.strip().splitlines()[-1])), flush=True)


if __name__ == "__main__":
    main()
