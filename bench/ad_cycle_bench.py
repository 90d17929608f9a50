"""The first sync cycle into Active Directory, timed: HR CSV → import → sync → export to
a Samba AD domain controller → confirming import, beside a raw ldap3 floor.

    DATABASE_URL=postgresql://root@127.0.0.1:5432/jim_bench \\
        .venv/bin/python -m bench.ad_cycle_bench --people 10000 [--host 127.0.0.1]

Provisions a new domain controller for the run (jim_project/devservers/samba.py: the
domain set up as docs/connectors/active-directory.md tells an administrator to; JIM
binds over LDAPS as the delegated service account, never as Administrator) on
``--host`` (Samba's ports are fixed: the address must be free), and destroys it at the
end. Applies a configuration with ``jim apply`` (HR CSV → ``user`` objects in
``OU=people`` of a new OU under ``OU=JIM``; ``objectGUID`` as the external id, the DN
as the secondary), generates N people, and runs, each through the runner as ``jim
run`` does: HR Full Import, HR Full Sync (projection + provisioning pending exports),
AD Export, AD Full Import (the confirming import). Prints the same figures as
``bench.cycle_bench`` for each step.

Beside the export, the floor: the first ``--floor`` entries JIM created (default
2,000: its rate is what counts), read back from the DC (the attributes JIM wrote:
objectClass, cn, sAMAccountName, userPrincipalName, givenName, sn, displayName, mail),
added again under another OU with raw ldap3 over LDAPS as the service account, one at
a time (SYNC: a request, its response, the next). sAMAccountName and userPrincipalName
are unique in a domain, so the floor's copies carry a one-letter prefix. JIM's export
pipelines (``export_window`` requests in flight), but Samba answers one connection's
requests one after the other, so one at a time is the floor of one connection (at
1,000 people both ran at the same rate); ldap3's own pipelining (its ASYNC strategy)
is no floor to measure against here: over LDAPS to Samba it has been seen to wait
for ever for an answer, the DC idle. Use a scratch database: it is flushed first.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.cycle_bench import _run
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
        employeeStatus: text
connected_systems:
  - name: HR
    connector: csv
    settings: {{path: hr.csv}}
    object_types:
      - name: person
        external_id: employeeId
    deletion_threshold: 20%
    run_profiles:
      - {{name: Full Import, type: full_import}}
      - {{name: Full Sync, type: full_sync}}
  - name: AD
    connector: ldap
    settings:
      url: {url}
      bind_dn: "{service_dn}"
      bind_password: ${{JIM_BENCH_AD_PASSWORD}}
      base_dn: "{base}"
      ca_file: {ca_file}
      page_size: 1000
      export_window: {window}
    object_types:
      - name: user
        container: "OU=people,{base}"
        external_id: objectGUID
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
      - {{mv: employeeStatus, from: status}}
  - name: AD users out
    connected_system: AD
    direction: export
    object_type: user
    metaverse_object_type: person
    scope: "mv.employeeStatus != 'Terminated'"
    provision: true
    dn: "CN={{{{ mv.accountName }}}},OU=people,{base}"
    deprovision: delete
    flows:
      - {{cs: sAMAccountName, from: accountName}}
      - {{cs: userPrincipalName, expression: "mv.accountName ~ '@example.org'"}}
      - {{cs: givenName, from: givenName}}
      - {{cs: sn, from: sn}}
      - {{cs: displayName, from: displayName}}
      - {{cs: mail, expression: "mv.accountName ~ '@example.org'"}}
"""

#: The attributes JIM writes to each user (cn from the DN template): what the floor adds.
FLOOR_ATTRIBUTES = (
    "objectClass",
    "cn",
    "sAMAccountName",
    "userPrincipalName",
    "givenName",
    "sn",
    "displayName",
    "mail",
)
#: Unique in the domain: the floor's copies get a prefix.
UNIQUE_ATTRIBUTES = ("sAMAccountName", "userPrincipalName")


def _bench_ou(dc: Any) -> str:
    """A new OU under OU=JIM with OU=people and the floors' OUs (made as Administrator,
    as an administrator prepares the part JIM manages)."""
    base = f"OU=bench-{int(time.time())},{dc.managed_ou}"
    connection = dc.connection(raise_exceptions=True)
    for ou in ("", "OU=people,", "OU=floor,"):
        connection.add(f"{ou}{base}", ["organizationalUnit"])
    connection.unbind()
    return base


def _created_entries(dc: Any, base: str, count: int) -> list[tuple[str, dict[str, list[bytes]]]]:
    """The first ``count`` users JIM created, as the DC holds them: the attributes JIM
    wrote."""
    import ldap3

    connection = dc.connection(dc.service_dn, dc.service_password)
    entries = connection.extend.standard.paged_search(
        f"OU=people,{base}",
        "(objectClass=user)",
        ldap3.LEVEL,
        attributes=list(FLOOR_ATTRIBUTES),
        paged_size=1000,
        generator=True,
    )
    found = []
    for entry in entries:
        if entry.get("type") == "searchResEntry" and len(found) < count:
            found.append((entry["dn"], dict(entry["raw_attributes"])))
    connection.unbind()
    return found


def _floor_entry(
    dn: str, attributes: dict[str, list[bytes]], base: str, ou: str, prefix: bytes
) -> tuple[str, dict[str, list[bytes]]]:
    """A copy of one of JIM's users for the floor: under ``ou``, its unique names
    prefixed; objectClass as JIM sends it (AD adds the structural class's chain)."""
    people = f",OU=people,{base}"
    copy = {name: list(values) for name, values in attributes.items()}
    for name in UNIQUE_ATTRIBUTES:
        copy[name] = [prefix + value for value in copy[name]]
    return dn[: -len(people)] + f",{ou},{base}", copy


def _floor(dc: Any, base: str, entries: list) -> float:
    """Raw ldap3 adds of copies of ``entries`` over LDAPS as the service account, one at
    a time (SYNC: a request, its answer, the next). Adds/s."""
    import ldap3

    copies = [_floor_entry(dn, attributes, base, "OU=floor", b"f") for dn, attributes in entries]
    connection = ldap3.Connection(
        dc.server(),
        dc.service_dn,
        dc.service_password,
        client_strategy=ldap3.SYNC,
        auto_bind=True,
        receive_timeout=60,
    )
    begin = time.perf_counter()
    failures = sum(not connection.add(dn, attributes=attributes) for dn, attributes in copies)
    seconds = time.perf_counter() - begin
    connection.unbind()
    if failures:
        raise SystemExit(f"bench: {failures} of the floor's {len(copies)} adds failed")
    return len(copies) / seconds


def _start_dc(folder: Path, host: str) -> Any:
    import secrets

    from jim_project.devservers.certificates import make_server_certificate
    from jim_project.devservers.samba import Certificate, create

    tls = make_server_certificate(folder / "tls", names=("localhost", host))
    dc = create(
        folder / "dc",
        host=host,
        admin_password=f"Bench-{secrets.token_hex(8)}-A1",
        service_password=f"Bench-{secrets.token_hex(8)}-S1",
        certificate=Certificate(tls.ca_file, tls.cert_file, tls.key_file),
    )
    dc.detached = False  # it dies with the bench
    dc.start()
    return dc


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=10_000)
    parser.add_argument(
        "--host",
        default=os.environ.get("JIM_TEST_SAMBA_HOST", "127.0.0.1"),
        help="the loopback address the domain controller listens on (its ports are fixed)",
    )
    parser.add_argument(
        "--window",
        type=int,
        default=64,
        help="export requests in flight for JIM's export (export_window)",
    )
    parser.add_argument(
        "--floor",
        type=int,
        default=2_000,
        metavar="N",
        help="how many of the users JIM created the floor adds again, each way",
    )
    args = parser.parse_args(argv)
    _setup_django()
    from django.core.management import call_command

    from bench.generate import write_people_csv

    call_command("flush", interactive=False, verbosity=0)
    with tempfile.TemporaryDirectory(prefix="jim-ad-bench-") as folder:
        begin = time.perf_counter()
        dc = _start_dc(Path(folder), args.host)
        provisioned = time.perf_counter() - begin
        try:
            base = _bench_ou(dc)
            os.environ["JIM_BENCH_AD_PASSWORD"] = dc.service_password
            write_people_csv(Path(folder) / "hr.csv", args.people)
            config = Path(folder) / "jim.yaml"
            config.write_text(
                CONFIG.format(
                    url=dc.ldaps_url,
                    service_dn=dc.service_dn,
                    base=base,
                    ca_file=dc.ca_file,
                    window=args.window,
                )
            )
            call_command("jim", "apply", str(config), stdout=open(os.devnull, "w"))  # noqa: SIM115
            plan = [("HR", "Full Import"), ("HR", "Full Sync"), ("AD", "Export")]
            plan.append(("AD", "Full Import"))
            steps = [_run(system, profile) for system, profile in plan]
            entries = _created_entries(dc, base, args.floor)
            floor = _floor(dc, base, entries)
        finally:
            dc.destroy()
    print(
        f"First cycle for {args.people:,} people into a Samba AD DC (Samba durable: "
        f"tdb commits fsync'd; provisioned in {provisioned:.0f} s; JIM bound over LDAPS as "
        f"{dc.service_dn}; load {os.getloadavg()[0]:.1f}):"
    )
    total = 0.0
    for step in steps:
        rate = step["objects"] / step["seconds"] if step["seconds"] else 0
        total += step["seconds"]
        print(
            f"  {step['step']:<16} {step['seconds']:8.1f} s {rate:9,.0f} objects/s  "
            f"CPU {step['cpu_seconds']:6.1f} s + PostgreSQL {step['server_seconds']:5.1f} s  "
            f"peak {step['peak_mb']:6.0f} MB  {step['counts']}"
            + (f"  errors {step['errors']}" if step["errors"] else "")
        )
    print(f"  first cycle total {total:8.1f} s")
    export = steps[2]
    created = export["counts"].get("provisioned", 0)
    print(
        f"  export floor: raw ldap3 adds of {len(entries):,} of the users JIM created, same "
        f"server, as the service account; the time for all {created:,}:"
    )
    seconds = created / floor
    print(
        f"    one at a time {floor:7,.0f} adds/s {seconds:7.1f} s; JIM's export "
        f"{export['seconds']:.1f} s = {export['seconds'] / seconds:.2f}x"
    )


if __name__ == "__main__":
    main()
