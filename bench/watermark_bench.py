"""Finding the watermark in a large accesslog: time and probes.

    .venv/bin/python -m bench.watermark_bench --entries 100000 [--no-sync]

Starts the benchmarks' directory (bench/directory.py: durable, JIM bound as the
service account under OpenLDAP's default size limit), fills its accesslog with
``--entries`` adds made as fast as slapd takes them (pipelined, as an export writes),
then times the LDAP connector finding the full import's watermark — the newest
``reqStart`` of the log, and the newest ``modifyTimestamp`` for ``delta_method:
modify_timestamp`` — with the number of size-limited probes it took, in the cases
that cost the most: right after the bulk write (more than a probe's limit in the last
seconds), JIM's clock an hour behind the server's, and the newest entry older than
every window (JIM's clock two days ahead). For comparison it prints what reading
every ``reqStart`` of the log takes (a paged search: what the watermark must never
need). No database is used.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import time
from collections import deque
from typing import Any

#: Requests in flight while filling the log (the connector's default export window).
WINDOW = 64


def fill(slapd: Any, count: int) -> float:
    """``count`` people added under ``ou=people``, pipelined, as the service account;
    returns the seconds it took."""
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

    def collect() -> None:
        _, result = connection.get_response(in_flight.popleft(), timeout=60)
        if result["result"] != 0:
            sys.exit(f"bench: an add failed: {result}")

    begin = time.perf_counter()
    for number in range(count):
        uid = f"w{number:07d}"
        attributes = {"objectClass": ["inetOrgPerson"], "cn": uid, "sn": uid, "uid": uid}
        in_flight.append(
            connection.add(f"uid={uid},ou=people,{slapd.base_dn}", attributes=attributes)
        )
        if len(in_flight) >= WINDOW:
            collect()
    while in_flight:
        collect()
    seconds = time.perf_counter() - begin
    connection.unbind()
    return seconds


def find(slapd: Any, delta_method: str, skew: dt.timedelta) -> tuple[float, int, str | None]:
    """The full import's watermark with JIM's clock moved by ``skew``: seconds (connecting
    excluded), probes, value."""
    from bench.directory import connector_settings
    from connectors.backends.ldap import LdapConnector
    from connectors.backends.ldap import newest as ldap_newest

    real_now = ldap_newest.utc_now
    ldap_newest.utc_now = lambda: real_now() + skew
    try:
        with LdapConnector(connector_settings(slapd, delta_method=delta_method)) as connector:
            begin = time.perf_counter()
            watermark = connector._watermark()
            seconds = time.perf_counter() - begin
            probes = connector.newest_probes
    finally:
        ldap_newest.utc_now = real_now
    value = watermark.get("req_start" if delta_method == "accesslog" else "modify_timestamp")
    return seconds, probes, value


def read_whole_log(slapd: Any) -> tuple[float, int, str]:
    """Every reqStart of the log, paged, as the service account: seconds, count, newest."""
    import ldap3

    connection = ldap3.Connection(
        slapd.server(), slapd.service_dn, slapd.service_password, auto_bind=True
    )
    begin = time.perf_counter()
    entries = connection.extend.standard.paged_search(
        slapd.accesslog_base,
        "(&(objectClass=auditWriteObject)(reqResult=0))",
        attributes=["reqStart"],
        paged_size=1000,
        generator=True,
    )
    values = [e["raw_attributes"]["reqStart"][0].decode() for e in entries if "raw_attributes" in e]
    seconds = time.perf_counter() - begin
    connection.unbind()
    return seconds, len(values), max(values)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument(
        "--no-sync",
        action="store_true",
        help="let slapd skip syncing commits to disk (not durable: a faster fill)",
    )
    args = parser.parse_args(argv)
    from bench.directory import start_directory
    from connectors.backends.ldap.importing import NEWEST_PROBE_LIMIT

    slapd = start_directory(durable=not args.no_sync)
    try:
        fill_seconds = fill(slapd, args.entries)
        durability = "not syncing (--no-sync)" if args.no_sync else "durable"
        print(
            f"accesslog filled with {args.entries:,} adds in {fill_seconds:.1f} s "
            f"({args.entries / fill_seconds:,.0f}/s, slapd {durability}); JIM bound as "
            f"{slapd.service_dn}, size limit 500, probes of at most {NEWEST_PROBE_LIMIT}"
        )
        whole_seconds, whole_count, whole_newest = read_whole_log(slapd)
        cases = [
            ("right after the bulk write", dt.timedelta(0)),
            ("JIM's clock 1 hour behind the server's", dt.timedelta(hours=-1)),
            ("newest older than every window (JIM 2 days ahead)", dt.timedelta(days=2)),
        ]
        for method in ("accesslog", "modify_timestamp"):
            for label, skew in cases:
                seconds, probes, value = find(slapd, method, skew)
                check = ""
                if method == "accesslog":
                    check = " (the newest)" if value == whole_newest else " (NOT the newest!)"
                print(
                    f"  {method:<16} {label:<50} {seconds * 1000:7.1f} ms  "
                    f"{probes:3d} probes  {value}{check}"
                )
        print(
            f"  for comparison: reading all {whole_count:,} reqStart values (paged) "
            f"{whole_seconds * 1000:,.0f} ms"
        )
    finally:
        slapd.destroy()


if __name__ == "__main__":
    main()
