"""Choose the PostgreSQL the tests run against, before Django reads its settings.

A pytest plugin, loaded early with ``-p tests.support.postgres`` (see ``addopts`` in
pyproject.toml). ``jim_project/settings.py`` builds ``DATABASES`` from
``DATABASE_URL`` when it is imported, and pytest-django imports it in its
``pytest_load_initial_conftests`` hook, before any conftest.py is read. This plugin's
wrapper of that hook runs first and sets ``DATABASE_URL`` to, in this order:

1. ``DATABASE_URL`` from the environment, when set (it must be PostgreSQL);
2. the machine's own PostgreSQL, when one answers on ``JIM_TEST_PG_PROBE``
   (``host:port``, default ``127.0.0.1:5432``) as user ``postgres`` without a
   password — with a database name unique to this run (``jim_run_<pid>``), so
   simultaneous runs on one machine don't drop each other's test databases;
3. a private PostgreSQL: ``initdb`` in a temporary folder, started on a free loopback
   port as the ``postgres`` OS user (PostgreSQL refuses to run as root), stopped and
   deleted when the session ends — or by the kernel if pytest dies first.

pytest-django then creates ``test_<name>`` (``test_<name>_gw0``… per pytest-xdist
worker). Workers inherit the controller's environment, so the private PostgreSQL is
started once, by the controller, and shared by all workers.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Generator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psycopg
import pytest

from tests.support import die_with_parent, free_port, make_private_dir, pid_alive, tail

PROBE_ENV = "JIM_TEST_PG_PROBE"
DEFAULT_PROBE = "127.0.0.1:5432"
POSTGRES_ROOT = Path("/usr/lib/postgresql")
START_TIMEOUT_SECONDS = 30.0
STOP_TIMEOUT_SECONDS = 15.0
_RUN_DATABASE_PREFIX = "jim_run_"
_STALE_TEST_DATABASE = re.compile(rf"^test_{_RUN_DATABASE_PREFIX}(\d+)(_gw\d+)?$")

_description_key = pytest.StashKey[str]()


class PostgresError(RuntimeError):
    """No PostgreSQL could be found or started (the message says why)."""


@dataclass
class PrivatePostgres:
    """A PostgreSQL server this process started, in its own folder."""

    port: int
    folder: Path
    version: str
    _process: subprocess.Popen[bytes] = field(repr=False)

    def url(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def stop(self) -> None:
        """Fast shutdown (SIGINT: disconnect clients, then stop), then delete the folder."""
        if self._process.poll() is None:
            self._process.send_signal(signal.SIGINT)
            try:
                self._process.wait(timeout=STOP_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        shutil.rmtree(self.folder, ignore_errors=True)


def postgres_bin_dir() -> Path:
    """The newest installed PostgreSQL's ``bin`` folder (Debian layout)."""
    candidates = [path for path in POSTGRES_ROOT.glob("*/bin") if (path / "initdb").exists()]
    if not candidates:
        raise PostgresError(
            f"No PostgreSQL server binaries under {POSTGRES_ROOT}/*/bin: run `make test` "
            "(it installs the postgresql package) or set DATABASE_URL to a PostgreSQL "
            "database the tests may create databases on."
        )
    return max(candidates, key=lambda path: int(path.parent.name.split(".")[0]))


def _as_postgres_user() -> dict[str, Any]:
    """Popen arguments that run a command as the ``postgres`` OS user when we are root."""
    if os.geteuid() != 0:
        return {}
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        raise PostgresError(
            "Running as root, but there is no 'postgres' OS user to run a private "
            "PostgreSQL as (PostgreSQL refuses to run as root): install the postgresql "
            "package, or set DATABASE_URL."
        ) from None
    return {"user": "postgres", "group": "postgres", "extra_groups": []}


def start_private_postgres() -> PrivatePostgres:
    """initdb and start a PostgreSQL on a free loopback port; the caller must stop it."""
    bin_dir = postgres_bin_dir()
    as_postgres = _as_postgres_user()
    folder = make_private_dir("pg")
    if as_postgres:
        shutil.chown(folder, user="postgres", group="postgres")
    pgdata, log_file = folder / "data", folder / "postgres.log"
    try:
        initdb = subprocess.run(
            [
                str(bin_dir / "initdb"),
                "--pgdata",
                str(pgdata),
                "--username=postgres",
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
                "--no-instructions",
            ],
            cwd=folder,
            capture_output=True,
            text=True,
            check=False,
            **as_postgres,
        )
        if initdb.returncode != 0:
            raise PostgresError(
                f"initdb failed (status {initdb.returncode}) in {pgdata}:\n"
                f"{initdb.stdout}{initdb.stderr}"
            )
        return _start_postmaster(bin_dir, folder, pgdata, log_file, as_postgres)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise


def _start_postmaster(
    bin_dir: Path, folder: Path, pgdata: Path, log_file: Path, as_postgres: dict[str, Any]
) -> PrivatePostgres:
    port = free_port()
    with log_file.open("ab") as log:
        process = subprocess.Popen(
            [
                str(bin_dir / "postgres"),
                "-D",
                str(pgdata),
                "-p",
                str(port),
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "unix_socket_directories=",
                # A throw-away database: durability buys nothing, speed does.
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "full_page_writes=off",
                "-c",
                "max_connections=200",
            ],
            cwd=folder,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            # SIGQUIT: immediate shutdown, the only useful one once pytest is gone.
            preexec_fn=die_with_parent(signal.SIGQUIT),
            **as_postgres,
        )
    server = PrivatePostgres(
        port=port, folder=folder, version=bin_dir.parent.name, _process=process
    )
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise PostgresError(
                f"The private PostgreSQL exited with status {process.returncode} while "
                f"starting on port {port}. Its log ({log_file}):\n{tail(log_file)}"
            )
        if answers(server.url("postgres")):
            return server
        time.sleep(0.1)
    server.stop()
    raise PostgresError(
        f"The private PostgreSQL did not answer on port {port} within "
        f"{START_TIMEOUT_SECONDS:.0f} s. Its log ({log_file}):\n{tail(log_file)}"
    )


def answers(url: str) -> bool:
    """True when a PostgreSQL session can be opened at ``url``."""
    try:
        with psycopg.connect(url, connect_timeout=3):
            return True
    except psycopg.Error:
        return False


def drop_stale_run_databases(admin_url: str) -> list[str]:
    """Drop ``test_jim_run_<pid>…`` databases left by runs whose process is gone."""
    with psycopg.connect(admin_url, autocommit=True) as connection:
        names = [row[0] for row in connection.execute("SELECT datname FROM pg_database")]
        stale = [
            name
            for name in names
            if (match := _STALE_TEST_DATABASE.match(name)) and not pid_alive(int(match[1]))
        ]
        for name in stale:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    return stale


def subprocess_database_url() -> str:
    """``DATABASE_URL`` of the test database this process uses, for a ``manage.py``
    subprocess (the inherited ``DATABASE_URL`` names the database before the
    ``test_`` prefix)."""
    from django.db import connection

    config = connection.settings_dict
    user = quote(config["USER"] or "", safe="")
    password = f":{quote(config['PASSWORD'], safe='')}" if config["PASSWORD"] else ""
    credentials = f"{user}{password}@" if user else ""
    port = f":{config['PORT']}" if config["PORT"] else ""
    return f"postgresql://{credentials}{config['HOST']}{port}/{quote(config['NAME'], safe='')}"


def _probe_address() -> tuple[str, int]:
    raw = os.environ.get(PROBE_ENV, DEFAULT_PROBE)
    host, _, port = raw.rpartition(":")
    if not host or not port.isdigit():
        raise pytest.UsageError(f"{PROBE_ENV}={raw!r} is not host:port (like 127.0.0.1:5432).")
    return host, int(port)


def choose_database(config: pytest.Config) -> None:
    """Set ``DATABASE_URL`` for this session (see the module docstring)."""
    given = os.environ.get("DATABASE_URL", "").strip()
    if given:
        if not given.startswith(("postgres://", "postgresql://")):
            raise pytest.UsageError(
                f"DATABASE_URL={given!r}: the tests run on PostgreSQL only; unset it to let "
                "the test rig find or start one."
            )
        if "PYTEST_XDIST_WORKER" not in os.environ:
            config.stash[_description_key] = "PostgreSQL from DATABASE_URL"
        return
    host, port = _probe_address()
    machine_url = f"postgresql://postgres@{host}:{port}"
    if answers(f"{machine_url}/postgres"):
        drop_stale_run_databases(f"{machine_url}/postgres")
        os.environ["DATABASE_URL"] = f"{machine_url}/{_RUN_DATABASE_PREFIX}{os.getpid()}"
        config.stash[_description_key] = f"the machine's PostgreSQL on {host}:{port}"
        return
    try:
        server = start_private_postgres()
    except PostgresError as error:
        raise pytest.UsageError(str(error)) from None
    config.add_cleanup(server.stop)
    os.environ["DATABASE_URL"] = server.url("jim")
    config.stash[_description_key] = (
        f"a private PostgreSQL {server.version} on 127.0.0.1:{server.port} "
        f"(nothing answered on {host}:{port})"
    )


@pytest.hookimpl(wrapper=True)
def pytest_load_initial_conftests(early_config: pytest.Config) -> Generator[None, None, None]:
    """Runs before pytest-django's implementation, which imports the settings."""
    options = early_config.known_args_namespace
    if not (options.help or options.version):
        choose_database(early_config)
    return (yield)


def pytest_report_header(config: pytest.Config) -> str | None:
    description = config.stash.get(_description_key, None)
    return f"database: {description}" if description else None
