"""Full import speed and memory: N generated people from CSV into PostgreSQL.

    DATABASE_URL=postgresql://root@127.0.0.1:5432/jim_bench \\
        .venv/bin/python -m bench.import_bench --people 10000,100000

For each N, in a fresh child process (so peak memory is that run's own): generate
the file, set up a connected system with the ORM, run a full import through the
runner (as ``jim run`` does), then the same import again (nothing changed). Prints
objects/s per phase — import pages, deletion detection, reference resolution — and
the peak resident memory (``ru_maxrss``) after each import. The database in
DATABASE_URL must be PostgreSQL and is migrated; the bench's connected systems
(``bench-…``) are deleted first. Use a scratch database.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PHASES = ("importing", "deletion_detection", "resolving_references", "finishing")


def _setup_django() -> None:
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith(("postgres://", "postgresql://")):
        sys.exit("bench: set DATABASE_URL to a PostgreSQL database (SQLite is not measured).")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "jim_project.settings")
    os.environ.setdefault("DEBUG", "false")
    for name in ("SECRET_KEY", "JIM_ENCRYPTION_KEY"):  # the bench's own, thrown away
        os.environ.setdefault(name, secrets.token_urlsafe(50))
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class PhaseClock:
    """Times each phase of a run from the recorder's progress reports, and samples the
    CPU time of the PostgreSQL backends serving this database (Linux /proc; the
    server shares the machine's cores with JIM)."""

    def __init__(self) -> None:
        self.started: dict[str, float] = {}
        self.backend_cpu: dict[int, tuple[float, float]] = {}  # pid → (first, last)
        self._sample_backends()

    def __call__(self, recorder: Any) -> None:
        self.started.setdefault(recorder.phase, time.perf_counter())
        self._sample_backends()

    def server_seconds(self) -> float:
        self._sample_backends()
        return sum(last - first for first, last in self.backend_cpu.values())

    def _sample_backends(self) -> None:
        from django.db import connection

        with connection.cursor() as cursor:
            cursor.execute("SELECT pid FROM pg_stat_activity WHERE datname = current_database()")
            pids = [pid for (pid,) in cursor.fetchall()]
        ticks = os.sysconf("SC_CLK_TCK")
        for pid in pids:
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue  # another machine, or gone
            cpu = (int(fields[11]) + int(fields[12])) / ticks  # utime + stime
            first = self.backend_cpu.get(pid, (cpu, cpu))[0]
            self.backend_cpu[pid] = (first, cpu)

    def durations(self, end: float) -> dict[str, float]:
        times = sorted(self.started.items(), key=lambda item: item[1])
        bounds = [t for _, t in times[1:]] + [end]
        return {phase: bound - t for (phase, t), bound in zip(times, bounds, strict=True)}


def _run_import(system: Any) -> dict[str, Any]:
    from connectors.models import RunProfile
    from runs.runner import execute, start_activity

    profile = RunProfile.objects.get(connected_system=system, name="Full Import")
    activity = start_activity(system, profile, initiated_by_name="bench")
    clock = PhaseClock()
    begin, cpu = time.perf_counter(), time.process_time()
    activity = execute(activity, on_progress=clock)
    end = time.perf_counter()
    if activity.status != "complete":
        sys.exit(f"bench: the import ended {activity.status}: {activity.message}")
    return {
        "seconds": end - begin,
        "cpu_seconds": time.process_time() - cpu,
        "server_cpu_seconds": clock.server_seconds(),
        "load": os.getloadavg()[0],
        "phases": clock.durations(end),
        "counts": activity.counts,
        "processed": activity.objects_processed,
        "peak_mb": _peak_mb(),
    }


def measure(people: int, page_size: int | None) -> dict[str, Any]:
    """One N, in this process: returns the figures of the first and second import."""
    _setup_django()
    from bench.generate import PEOPLE_ATTRIBUTES, write_people_csv
    from connectors.models import ConnectedSystem
    from tests.builders import make_connected_system

    baseline = _peak_mb()
    ConnectedSystem.objects.filter(name__startswith="bench-").delete()
    with tempfile.TemporaryDirectory() as folder:
        write_people_csv(Path(folder) / "hr.csv", people)
        system = make_connected_system(
            f"bench-{people}",
            "csv",
            {"path": "hr.csv"},
            attributes=PEOPLE_ATTRIBUTES,
            page_size=page_size,
            base_dir=Path(folder),
        )
        first = _run_import(system)
        second = _run_import(system)
    ConnectedSystem.objects.filter(pk=system.pk).delete()
    return {"people": people, "baseline_mb": baseline, "first": first, "second": second}


def _report(result: dict[str, Any]) -> str:
    people = result["people"]
    lines = [f"{people:,} people (baseline {result['baseline_mb']:.0f} MB)"]
    for label in ("first", "second"):
        run = result[label]
        rate = people / run["seconds"]
        lines.append(
            f"  {label} full import: {run['seconds']:.1f} s, {rate:,.0f} objects/s, "
            f"peak {run['peak_mb']:.0f} MB, counts {run['counts']}"
        )
        cpu = run["cpu_seconds"] + run["server_cpu_seconds"]
        lines.append(
            f"    CPU: JIM {run['cpu_seconds']:.1f} s + PostgreSQL "
            f"{run['server_cpu_seconds']:.1f} s = {cpu / people * 1e6:.0f} µs per object "
            f"(load average {run['load']:.1f})"
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
    parser.add_argument(
        "--people", default="100000", help="Comma-separated sizes (default 100000)."
    )
    parser.add_argument("--page-size", type=int, default=None, help="Run profile page size.")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    options = parser.parse_args(argv)
    sizes = [int(size) for size in options.people.split(",")]
    if options.child:
        print(json.dumps(measure(sizes[0], options.page_size)))
        return
    if not os.environ.get("DATABASE_URL", "").startswith(("postgres://", "postgresql://")):
        sys.exit("bench: set DATABASE_URL to a PostgreSQL database (SQLite is not measured).")
    for size in sizes:
        command = [sys.executable, "-m", "bench.import_bench", "--child", "--people", str(size)]
        if options.page_size:
            command += ["--page-size", str(options.page_size)]
        output = subprocess.run(command, cwd=ROOT, check=True, capture_output=True, text=True)
        print(_report(json.loads(output.stdout.strip().splitlines()[-1])), flush=True)


if __name__ == "__main__":
    main()
