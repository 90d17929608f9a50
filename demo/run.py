"""``python -m demo``: JIM on this machine, with data, in one command (``make demo``).

0. runs with ``DEBUG=true`` and the demo's own random keys, made once into
   ``.demo/keys.env`` (:mod:`demo.keys`);
1. migrates the SQLite database in the project folder (whatever ``DATABASE_URL``
   says), in WAL mode so the web server and the workers can share it;
2. writes the HR file ``.demo/hr.csv`` (:mod:`demo.data`), or keeps the one there;
3. starts the demo's own slapd — or, when it cannot, uses a CSV file as the
   directory (:mod:`demo.directory`);
4. applies ``demo/ldap.yaml`` (or ``demo/csv.yaml``) as ``jim apply`` does;
5. makes the superuser ``admin`` with a new password (``JIM_DEMO_PASSWORD`` to choose
   it), and prints it;
6. runs the first cycle (:mod:`demo.cycle`), printing what each run did;
7. starts ``manage.py runserver`` on ``--address`` (``DEMO_ADDRESS``) and the
   django-q2 cluster (``manage.py qcluster``), so that "Run" in the admin runs;

and stops everything it started on Ctrl-C (or SIGTERM). Run it again: it keeps the
database, the HR file and the directory, and the cycle finds nothing new to do.
``--setup-only`` stops after step 6; ``--csv`` uses the CSV directory even when
slapd is installed.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

from demo.directory import Target, open_target
from demo.keys import KEYS_FILE, DemoKeysError, demo_keys
from demo.processes import Supervisor
from jim_project.devservers import port_open

PROJECT = Path(__file__).resolve().parent.parent
DEFAULT_FOLDER = PROJECT / ".demo"
DEFAULT_ADDRESS = "127.0.0.1:8000"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m demo", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--address",
        default=os.environ.get("DEMO_ADDRESS") or DEFAULT_ADDRESS,
        help="Where the web server listens (DEMO_ADDRESS; default %(default)s).",
    )
    parser.add_argument(
        "--folder", type=Path, default=DEFAULT_FOLDER, help="The demo's data (%(default)s)."
    )
    parser.add_argument("--csv", action="store_true", help="Provision a CSV file, not slapd.")
    parser.add_argument(
        "--setup-only", action="store_true", help="Stop after the first cycle; start no server."
    )
    options = parser.parse_args(argv)
    address = options.address if ":" in options.address else f"127.0.0.1:{options.address}"

    # The demo's database is SQLite in the project folder, whatever DATABASE_URL says;
    # it runs in development mode, with keys of its own (the web server and the
    # workers inherit them).
    os.environ.pop("DATABASE_URL", None)
    os.environ.pop("JIM_ENCRYPTION_KEY_PREVIOUS", None)
    os.environ["DEBUG"] = "true"
    database = PROJECT / "db.sqlite3"
    if database.is_file() and database.stat().st_size and not (options.folder / KEYS_FILE).exists():
        say(
            f"{database} was made by a demo from before the demo had keys of its own; "
            "the secrets in it cannot be read. Delete it (and the folder "
            f"{options.folder}) and run the demo again."
        )
        return 1
    try:
        os.environ.update(demo_keys(options.folder.resolve()))
    except DemoKeysError as error:
        say(str(error))
        return 1
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "jim_project.settings")
    os.environ.setdefault("PYTHONUNBUFFERED", "1")  # the servers' logs as they come
    import django

    django.setup()
    signals = _StopSignals()
    supervisor = Supervisor()
    try:
        target, credentials = set_up(supervisor, options.folder.resolve(), ldap=not options.csv)
        if options.setup_only:
            return 0
        return serve(supervisor, address, credentials, target)
    except KeyboardInterrupt:
        say("\nStopping…")
        return 130
    finally:
        signals.stopping = True
        supervisor.stop_all()
        if not options.setup_only:
            say("Stopped: nothing the demo started is running.")


def set_up(supervisor: Supervisor, folder: Path, *, ldap: bool) -> tuple[Target, tuple[str, str]]:
    """Steps 1 to 6; returns the directory and the admin's credentials. The
    ``supervisor`` stops the directory's slapd with everything else."""
    from django.core.management import call_command
    from django.db import connection

    from demo import cycle  # needs Django set up
    from demo.data import write_hr_csv
    from jim_project.cli.run import ProgressBar

    heading("Database")
    call_command("migrate", interactive=False, verbosity=0)
    if connection.vendor == "sqlite":
        with connection.cursor() as cursor:
            cursor.execute("PRAGMA journal_mode=WAL")  # kept in the file
    say(f"  {connection.settings_dict['NAME']} migrated")
    for pk in cycle.recover_interrupted_runs():
        say(f"  activity #{pk} was left running by an earlier demo: marked failed")

    heading("HR file")
    folder.mkdir(parents=True, exist_ok=True)
    hr_path = folder / "hr.csv"
    if hr_path.exists():
        say(f"  {hr_path} kept (delete it to get a new one)")
    else:
        hr = write_hr_csv(hr_path)
        say(
            f"  {hr.path}: {hr.people:,} people, employee ids given twice: "
            f"{', '.join(hr.duplicate_ids)}; a malformed row on line {hr.malformed_line}"
        )

    heading("Directory")
    target = open_target(folder, keep=cycle.known_directory(), ldap=ldap)
    if target.slapd is not None:
        supervisor.stop_later(target.slapd.stop)
    if target.note:
        say(f"  not using slapd ({target.note}): provisioning a CSV file instead")
    say(f"  {target.description}" + ("" if target.kept else " (new)"))
    if not target.kept:
        cycle.forget_directory()

    heading("Configuration")
    report = cycle.apply_configuration(target, dict(os.environ))
    changes = report.summary() if report.changes else "no changes, it was applied already"
    say(f"  applied {target.config.relative_to(PROJECT)}: {changes}")

    heading("Admin user")
    credentials = cycle.ensure_admin(os.environ.get("JIM_DEMO_PASSWORD") or None)
    say(f"  user {credentials[0]}, password {credentials[1]}")

    heading("First cycle")
    progress = ProgressBar(sys.stderr) if sys.stderr.isatty() else None

    def done(summary: dict[str, Any]) -> None:
        if progress is not None:
            progress.clear()
        say_lines(cycle.describe(summary))

    cycle.first_cycle(on_step=done, on_progress=progress)
    return target, credentials


def serve(
    supervisor: Supervisor, address: str, credentials: tuple[str, str], target: Target
) -> int:
    """Step 7: the web server and the workers, until Ctrl-C or one of them stops."""
    heading("Web server and workers")
    manage = [sys.executable, str(PROJECT / "manage.py")]
    env = dict(os.environ)
    supervisor.start("web server", [*manage, "runserver", "--noreload", address], env=env)
    supervisor.start("workers", [*manage, "qcluster"], env=env)
    host, port = address.rsplit(":", 1)
    host = "127.0.0.1" if host in ("", "0.0.0.0") else host.strip("[]")
    deadline = time.monotonic() + 30
    while not port_open(host, int(port)):
        if time.monotonic() > deadline or any(
            child.process.poll() is not None for child in supervisor.children
        ):
            break
        time.sleep(0.2)
    url = f"http://{address}/"
    user, password = credentials
    say_lines(
        [
            "",
            "=" * 72,
            f"  JIM is running: {url}",
            f"  Sign in as  {user}  with password  {password}",
            "",
            f"  Dashboard            {url}",
            f"  Run a profile        {url}admin/connectors/connectedsystem/  (a system: Run …)",
            f"  Pending exports      {url}admin/exports/pendingexport/",
            f"  Directory            {target.description}",
            "  Ctrl-C stops the web server, the workers" + (" and slapd." if target.slapd else "."),
            "=" * 72,
            "",
        ]
    )
    child = supervisor.wait()
    say(f"The {child.name} stopped (status {child.process.returncode}); stopping the demo.")
    return 1


def heading(text: str) -> None:
    say(f"\n== {text}")


def say(text: str) -> None:
    print(text, flush=True)


def say_lines(lines: list[str]) -> None:
    for line in lines:
        say(line)


class _StopSignals:
    """Ctrl-C, SIGTERM and SIGHUP stop the demo (a KeyboardInterrupt) — until it is
    stopping: then more of them (a second Ctrl-C, ``timeout`` passing one on) are
    ignored, so that nothing cuts the stopping short."""

    def __init__(self) -> None:
        self.stopping = False
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, self._interrupt)

    def _interrupt(self, signum: int, frame: Any) -> None:
        if not self.stopping:
            self.stopping = True
            raise KeyboardInterrupt
