"""The whole first cycle, timed: HR CSV → import → sync → export to slapd → confirming import.

    DATABASE_URL=postgresql://root@127.0.0.1:5432/jim_bench \\
        .venv/bin/python -m bench.cycle_bench --people 10000

Sets up the spec's example configuration (HR CSV → a private slapd started for the
run) with ``jim apply``, generates N people, and runs, each through the runner as
``jim run`` does: HR Full Import, HR Full Sync (projection + provisioning pending
exports), Directory Export, Directory Full Import (the confirming import), then a
delta sync of 100 changed people. Prints objects/s and the peak resident memory after
each phase, and beside the export the floor: raw ldap3 adds of the same entries to
the same slapd, pipelined (ASYNC strategy, a window of requests in flight).
Use a scratch database: the bench's objects are deleted first.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.import_bench import PhaseClock, _peak_mb, _setup_django

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
    settings: {{path: hr.csv}}
    object_types:
      - name: person
        external_id: employeeId
        attributes:
          managerId: {{type: reference, references: person}}
    deletion_threshold: 20%
    run_profiles:
      - {{name: Full Import, type: full_import}}
      - {{name: Full Sync, type: full_sync}}
      - {{name: Delta Sync, type: delta_sync}}
  - name: Directory
    connector: ldap
    settings:
      url: {url}
      bind_dn: {service_dn}
      bind_password: ${{JIM_BENCH_LDAP_PASSWORD}}
      base_dn: {base}
      page_size: 1000
    object_types:
      - name: inetOrgPerson
        container: ou=people,{base}
        external_id: entryUUID
        secondary_external_id: dn
    run_profiles:
      - {{name: Full Import, type: full_import}}
      - {{name: Export, type: export}}
sync_rules:
  - name: HR people in
    connected_system: HR
    direction: import
    object_type: person
    metaverse_object_type: person
    join: [{{cs: employeeId, mv: employeeId}}]
    project: true
    flows:
      - {{mv: employeeId, from: employeeId}}
      - {{mv: givenName, from: firstName}}
      - {{mv: sn, from: lastName}}
      - {{mv: displayName, expression: "cs.firstName ~ ' ' ~ cs.lastName"}}
      - {{mv: accountName, from: accountName}}
      - {{mv: department, from: department}}
      - {{mv: title, from: title}}
      - {{mv: employeeStatus, from: status}}
      - {{mv: manager, from: managerId}}
  - name: Directory people out
    connected_system: Directory
    direction: export
    object_type: inetOrgPerson
    metaverse_object_type: person
    scope: "mv.employeeStatus != 'Terminated'"
    provision: true
    dn: "uid={{{{ mv.accountName }}}},ou=people,{base}"
    deprovision: delete
    flows:
      - {{cs: uid, from: accountName}}
      - {{cs: cn, from: displayName}}
      - {{cs: sn, from: sn}}
      - {{cs: givenName, from: givenName}}
      - {{cs: departmentNumber, from: department}}
      - {{cs: title, from: title}}
      - {{cs: mail, expression: "((mv.accountName | normalize) ~ '@example.org') | lower"}}
      - {{cs: manager, from: manager}}
"""


#: How many of the exported entries the floor adds again (its rate is what counts).
FLOOR_ENTRIES = 20_000

#: The steps of the first cycle, for --through.
STEPS = ("import", "sync", "export", "confirm")


def _run(
    system: str, profile: str, profile_dir: Path | None = None, *, preview: bool = False
) -> dict[str, Any]:
    from connectors.models import RunProfile
    from runs.runner import execute, start_activity

    run_profile = RunProfile.objects.get(connected_system__name=system, name=profile)
    activity = start_activity(
        run_profile.connected_system, run_profile, initiated_by_name="bench", preview=preview
    )
    step = f"{system} {profile}" + (" (preview)" if preview else "")
    clock = PhaseClock()
    profiler = cProfile.Profile() if profile_dir else None
    begin, cpu = time.perf_counter(), time.process_time()
    if profiler:
        profiler.enable()
    activity = execute(activity, on_progress=clock)
    seconds = time.perf_counter() - begin
    if profiler:
        profiler.disable()
        profiler.dump_stats(profile_dir / f"{step}.prof".replace(" ", "_"))
    cpu = time.process_time() - cpu
    if activity.status not in ("complete", "complete_with_errors"):
        sys.exit(f"bench: {system} {profile} ended {activity.status}: {activity.message}")
    return {
        "activity": activity.pk,
        "step": step,
        "seconds": seconds,
        "cpu_seconds": cpu,
        "server_seconds": clock.server_seconds(),
        "objects": activity.objects_processed,
        "counts": activity.counts,
        "errors": activity.error_count,
        "peak_mb": _peak_mb(),
    }


def _exported_entries(
    slapd: Any, base: str, count: int
) -> list[tuple[str, dict[str, list[bytes]]]]:
    """The first ``count`` entries JIM exported, as the directory holds them: the
    floor adds exactly these (same classes, attributes, values and manager DNs)."""
    import ldap3

    connection = ldap3.Connection(
        ldap3.Server(slapd.host, port=slapd.port),
        slapd.admin_dn,
        slapd.admin_password,
        auto_bind=True,
    )
    entries = connection.extend.standard.paged_search(
        f"ou=people,{base}", "(objectClass=inetOrgPerson)", attributes=["*"], generator=True
    )
    found = []
    for entry in entries:
        if entry.get("type") != "searchResEntry":
            continue
        found.append((entry["dn"], dict(entry["raw_attributes"])))
        if len(found) == count:
            break
    connection.unbind()
    return found


def _floor(slapd: Any, base: str, entries: list, window: int = 64) -> float:
    """Raw pipelined ldap3 adds of the same entries into ``ou=floor``: adds per second."""
    import ldap3

    server = ldap3.Server(slapd.host, port=slapd.port)
    connection = ldap3.Connection(
        server,
        slapd.service_dn,  # as JIM binds: the same ACLs and limits
        slapd.service_password,
        client_strategy=ldap3.ASYNC,
        auto_bind=True,
    )
    connection.add(f"ou=floor,{base}", ["organizationalUnit"])
    people = f",ou=people,{base}"
    begin = time.perf_counter()
    pending: list[int] = []
    for dn, attributes in entries:
        floor_dn = dn[: -len(people)] + f",ou=floor,{base}"
        pending.append(connection.add(floor_dn, attributes=attributes))
        if len(pending) >= window:
            connection.get_response(pending.pop(0))
    for message_id in pending:
        connection.get_response(message_id)
    rate = len(entries) / (time.perf_counter() - begin)
    connection.unbind()
    return rate


def _change_people(count: int) -> None:
    """``count`` people change surname in the HR connector space, as an import would."""
    from connectors.models import ConnectorSpaceObject

    changed = list(
        ConnectorSpaceObject.objects.filter(connected_system__name="HR").order_by("?")[:count]
    )
    for cso in changed:
        cso.attributes["lastName"] = [cso.attributes["lastName"][0] + "-Changed"]
        cso.sync_pending = True
    ConnectorSpaceObject.objects.bulk_update(changed, ["attributes", "sync_pending"])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=100_000)
    parser.add_argument("--changes", type=int, default=100)
    parser.add_argument(
        "--through",
        choices=STEPS,
        default=STEPS[-1],
        help="stop after this step (the delta sync and the floor run after the last one only)",
    )
    parser.add_argument(
        "--profile",
        type=Path,
        metavar="DIR",
        help="write each step's cProfile statistics to DIR/<system>-<profile>.prof",
    )
    parser.add_argument(
        "--no-sync",
        action="store_true",
        help="let slapd skip syncing commits to disk (not durable: to see what syncs cost)",
    )
    args = parser.parse_args(argv)
    _setup_django()
    from django.core.management import call_command

    from bench.directory import start_directory
    from bench.generate import write_people_csv

    # Empty tables, without the ORM's cascade loading the last run's objects.
    call_command("flush", interactive=False, verbosity=0)
    slapd = start_directory(durable=not args.no_sync)
    try:
        os.environ["JIM_BENCH_LDAP_PASSWORD"] = slapd.service_password
        with tempfile.TemporaryDirectory() as folder:
            write_people_csv(Path(folder) / "hr.csv", args.people)
            config = Path(folder) / "jim.yaml"
            config.write_text(
                CONFIG.format(url=slapd.url, service_dn=slapd.service_dn, base=slapd.base_dn)
            )
            call_command("jim", "apply", str(config), stdout=open(os.devnull, "w"))  # noqa: SIM115
            if args.profile:
                args.profile.mkdir(parents=True, exist_ok=True)
            plan = [("HR", "Full Import"), ("HR", "Full Sync"), ("Directory", "Export")]
            plan.append(("Directory", "Full Import"))
            steps = []
            for system, profile in plan[: STEPS.index(args.through) + 1]:
                steps.append(_run(system, profile, args.profile))
            if args.through == STEPS[-1]:
                _change_people(args.changes)
                steps.append(_run("HR", "Delta Sync", args.profile))
        floor = None
        if args.through in ("export", "confirm"):
            entries = _exported_entries(slapd, slapd.base_dn, min(args.people, FLOOR_ENTRIES))
            floor = _floor(slapd, slapd.base_dn, entries)
    finally:
        slapd.destroy()
    durability = "slapd not syncing (--no-sync)" if args.no_sync else "slapd durable"
    print(
        f"Full cycle for {args.people:,} people ({durability}, JIM bound as "
        f"{slapd.service_dn}, load {os.getloadavg()[0]:.1f}):"
    )
    total = 0.0
    for step in steps:
        rate = step["objects"] / step["seconds"] if step["seconds"] else 0
        total += step["seconds"] if step["step"] != "HR Delta Sync" else 0
        print(
            f"  {step['step']:<22} {step['seconds']:8.1f} s {rate:9,.0f} objects/s  "
            f"CPU {step['cpu_seconds']:6.1f} s + PostgreSQL {step['server_seconds']:5.1f} s  "
            f"peak {step['peak_mb']:6.0f} MB  {step['counts']}"
            + (f"  errors {step['errors']}" if step["errors"] else "")
        )
    print(f"  first cycle total      {total:8.1f} s")
    if floor is not None:
        export = steps[2]
        created = export["counts"].get("provisioned", 0)
        floor_seconds = created / floor
        print(
            f"  export floor: raw pipelined ldap3 adds of the same entries {floor:,.0f} adds/s, "
            f"{floor_seconds:.1f} s for the {created:,} entries JIM created; JIM's export "
            f"{export['seconds']:.1f} s ({export['seconds'] / floor_seconds:.2f}x the floor's time)"
        )


if __name__ == "__main__":
    main()
