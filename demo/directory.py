"""The demo's target system: its own OpenLDAP slapd, or a CSV file when there is no slapd.

The slapd lives in ``<folder>/slapd`` (``dc=example,dc=org``, accesslog on, plain
``ldap://`` on 127.0.0.1:3890 — or on a free port when 3890 is taken) and keeps its
entries between runs. It is set up as docs/openldap.md tells an administrator to
("Configuring OpenLDAP for JIM"): JIM binds as the service account
``cn=jim-sync,ou=services,dc=example,dc=org``, not the rootdn, under OpenLDAP's default
size limit, and commits are synced to disk. The admin's and the service account's
passwords are made once and kept beside it. The CSV directory is
``<folder>/directory.csv``, written by JIM's first export.

A target is only kept (``keep=True``) while JIM's database still knows what it holds;
otherwise it is started empty, so JIM never meets a directory full of entries it did
not provision (see :mod:`demo.run`).
"""

from __future__ import annotations

import secrets
import shutil
import socket
from dataclasses import dataclass
from pathlib import Path

from jim_project.devservers import slapd as server
from jim_project.devservers.slapd import Slapd, SlapdError

HOST = "127.0.0.1"
LDAP_PORT = 3890
#: The files beside the slapd's data that keep its passwords.
ADMIN_PASSWORD = "admin-password"
SERVICE_PASSWORD = "service-password"
CONFIGS = Path(__file__).resolve().parent


@dataclass
class Target:
    """The directory the demo provisions, and how its configuration file reaches it."""

    kind: str  # "ldap" or "csv"
    config: Path
    #: The variables the configuration file reads (``${…}``).
    variables: dict[str, str]
    #: False when it was started empty (new, or what it held could not be kept).
    kept: bool
    slapd: Slapd | None = None
    #: Why the demo uses the CSV file instead of slapd.
    note: str = ""
    #: Where it is, for people.
    description: str = ""


def open_target(folder: Path, *, keep: dict[str, bool], ldap: bool = True) -> Target:
    """The demo's slapd, started (when ``ldap`` and it can be), or else the CSV file.

    ``keep`` says, per kind, whether what the target held may be kept.
    """
    note = "--csv was given"
    if ldap:
        try:
            return ldap_target(folder, keep=keep.get("ldap", False))
        except SlapdError as error:
            note = str(error).splitlines()[0]
    return csv_target(folder, keep=keep.get("csv", False), note=note)


def ldap_target(folder: Path, *, keep: bool) -> Target:
    """Start the demo's slapd (raises :class:`SlapdError` when it cannot run)."""
    missing = server.missing_binaries()
    if missing:
        raise SlapdError(f"{missing[0]} is not installed (apt-get install slapd ldap-utils)")
    data_dir = folder / "slapd"
    # A directory made before the service account existed is started again.
    kept = keep and (data_dir / "slapd.d").is_dir() and (data_dir / SERVICE_PASSWORD).is_file()
    if kept:
        try:
            slapd = _start(data_dir)
        except (SlapdError, OSError):
            kept = False  # its data could not be used: start again from nothing
    if not kept:
        shutil.rmtree(data_dir, ignore_errors=True)
        passwords = {name: secrets.token_urlsafe(18) for name in (ADMIN_PASSWORD, SERVICE_PASSWORD)}
        server.create(
            data_dir,
            admin_password=passwords[ADMIN_PASSWORD],
            service_password=passwords[SERVICE_PASSWORD],
        )
        for name, password in passwords.items():
            password_file = data_dir / name
            password_file.write_text(password + "\n")
            password_file.chmod(0o600)
        slapd = _start(data_dir)
    return Target(
        kind="ldap",
        config=CONFIGS / "ldap.yaml",
        variables={
            "JIM_DEMO_DATA": str(folder),
            "JIM_DEMO_LDAP_URL": slapd.url,
            "JIM_LDAP_PASSWORD": slapd.service_password,
        },
        kept=kept,
        slapd=slapd,
        description=f"OpenLDAP slapd on {slapd.url} ({slapd.base_dn}), data in {data_dir}",
    )


def csv_target(folder: Path, *, keep: bool, note: str = "") -> Target:
    """The CSV file the demo provisions (nothing to start)."""
    path = folder / "directory.csv"
    kept = keep and path.exists()
    if not kept:
        path.unlink(missing_ok=True)
    return Target(
        kind="csv",
        config=CONFIGS / "csv.yaml",
        variables={"JIM_DEMO_DATA": str(folder)},
        kept=kept,
        note=note,
        description=f"the CSV file {path}",
    )


def _start(data_dir: Path) -> Slapd:
    slapd = Slapd(
        host=HOST,
        port=_port(),
        data_dir=data_dir,
        admin_password=(data_dir / ADMIN_PASSWORD).read_text().strip(),
        service_password=(data_dir / SERVICE_PASSWORD).read_text().strip(),
        own_process_group=True,  # Ctrl-C reaches the demo, which stops slapd last
    )
    slapd.start()
    return slapd


def _port() -> int:
    """3890 when it is free, else a free port the kernel picks."""
    for port in (LDAP_PORT, 0):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            # As slapd does: a port whose last connections are closing (TIME_WAIT) is free.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((HOST, port))
            except OSError:
                continue
            return sock.getsockname()[1]
    raise SlapdError("no free port on 127.0.0.1")
