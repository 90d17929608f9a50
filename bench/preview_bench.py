"""A preview of the first full sync against the real one, on the same state.

    DATABASE_URL=postgresql://root@127.0.0.1:5432/jim_bench \\
        .venv/bin/python -m bench.preview_bench --people 100000 [--profile DIR]

Empties the database in DATABASE_URL (``flush``: use a scratch database), starts a
private slapd, applies ``cycle_bench``'s configuration (HR CSV → slapd) with ``jim
apply``, generates N people and runs HR Full Import; then, on that same state, a
preview of HR Full Sync (projection of every person, a provisioning pending export
for each in scope) and then the real HR Full Sync, each through the runner as ``jim
run`` does. Prints both times, the preview's over the real's, and what each did.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

from bench.cycle_bench import CONFIG, _run
from bench.import_bench import _setup_django

#: The issue's bound: a preview of a full sync takes at most this much of the real one.
BOUND = 1.5


def _pending_exports() -> int:
    from exports.models import PendingExport

    return PendingExport.objects.count()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=100_000)
    parser.add_argument(
        "--profile",
        type=Path,
        metavar="DIR",
        help="write each step's cProfile statistics to DIR (slow: for hot spots, not figures)",
    )
    args = parser.parse_args(argv)
    _setup_django()
    from django.core.management import call_command

    from bench.directory import start_directory
    from bench.generate import write_people_csv
    from metaverse.models import MetaverseObject
    from runs.preview import previewed_export_counts

    call_command("flush", interactive=False, verbosity=0)
    slapd = start_directory(durable=True)
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
            imported = _run("HR", "Full Import")
            load_before = os.getloadavg()[0]
            preview = _run("HR", "Full Sync", args.profile, preview=True)
            if MetaverseObject.objects.exists() or _pending_exports():
                raise SystemExit("bench: the preview changed the metaverse or pending exports")
            real = _run("HR", "Full Sync", args.profile)
            load_after = os.getloadavg()[0]
            pending_real = _pending_exports()
    finally:
        slapd.destroy()
    from connectors.models import Activity

    predicted = previewed_export_counts(Activity.objects.get(pk=preview["activity"]))
    print(
        f"Preview of the first full sync of {args.people:,} people, then the real one, on the "
        f"same state (PostgreSQL durable; load {load_before:.1f} before, {load_after:.1f} after):"
    )
    for step in (imported, preview, real):
        rate = step["objects"] / step["seconds"] if step["seconds"] else 0
        print(
            f"  {step['step']:<26} {step['seconds']:8.1f} s {rate:9,.0f} objects/s  "
            f"CPU {step['cpu_seconds']:6.1f} s + PostgreSQL {step['server_seconds']:5.1f} s  "
            f"peak {step['peak_mb']:6.0f} MB  {step['counts']}"
        )
    print(
        f"  pending exports: the preview predicted {predicted['created']:,} created; "
        f"the real sync created {pending_real:,}"
    )
    ratio = preview["seconds"] / real["seconds"]
    verdict = "within" if ratio <= BOUND else "ABOVE"
    print(f"  preview / real: {ratio:.2f}x ({verdict} the bound of {BOUND}x)")


if __name__ == "__main__":
    main()
