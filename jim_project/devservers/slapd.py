"""A private OpenLDAP slapd: its own folder, its own loopback ports, its own data.

:func:`create` builds a cn=config folder with ``slapadd -n0``; a :class:`Slapd`
starts ``/usr/sbin/slapd`` on it (again and again: the data is kept between starts).
The server has:

- schemas core, cosine, nis, inetorgperson;
- ``dc=example,dc=org`` in an mdb database (rootdn ``cn=admin,dc=example,dc=org``),
  holding ``ou=people``, ``ou=groups`` and ``ou=services``;
- the accesslog overlay writing successful write operations into a second mdb
  database, ``cn=accesslog``, so delta imports can read
  ``reqStart``/``reqType``/``reqDN``/``reqMod``/``reqNewRDN``/``reqNewSuperior``/
  ``reqEntryUUID``;
- JIM's service account ``cn=jim-sync,ou=services,dc=example,dc=org`` (not the
  rootdn), configured as docs/openldap.md ("Configuring OpenLDAP for JIM") tells
  an administrator to: it may write everything under the suffix except
  ``ou=services`` (passwords: write, never read), read ``cn=accesslog``, and nothing
  else; OpenLDAP's default size limit (500 entries, soft and hard) applies to it on
  both databases, with one ``limits`` line each letting its *paged* searches return
  more (``size.prtotal=unlimited``);
- authenticated users read the suffix (passwords and ``ou=services`` excepted);
  anonymous users may only bind; the default size limit applies to everyone but the
  admin, who is the rootdn and has no limits;
- when given a certificate, ``ldaps://`` and StartTLS;
- durable writes (every commit synced to disk) unless created with ``durable=False``.

The test rig (``tests/support/slapd.py``) starts one per test worker in a temporary
folder; the demo (``demo/directory.py``) keeps one in ``.demo/slapd``.
"""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ldap3

from jim_project.devservers import die_with_parent, file_size, port_open, tail

SLAPD = Path("/usr/sbin/slapd")
SLAPADD = Path("/usr/sbin/slapadd")
MODULE_PATH = Path("/usr/lib/ldap")
SCHEMA_DIR = Path("/etc/ldap/schema")
SCHEMAS = ("core", "cosine", "nis", "inetorgperson")

BASE_DN = "dc=example,dc=org"
ADMIN_DN = f"cn=admin,{BASE_DN}"
SERVICES_OU = f"ou=services,{BASE_DN}"
#: JIM's service account: what JIM's connected systems bind as.
SERVICE_DN = f"cn=jim-sync,{SERVICES_OU}"
ACCESSLOG_BASE = "cn=accesslog"
#: The cn=config entries of the cn=accesslog and dc=example,dc=org databases.
ACCESSLOG_DATABASE_DN = "olcDatabase={1}mdb,cn=config"
DATA_DATABASE_DN = "olcDatabase={2}mdb,cn=config"
#: The ``limits`` line of the service account, on both databases: OpenLDAP's default
#: size limit for its plain searches, no total limit for its paged ones.
SERVICE_LIMITS = f'dn.exact="{SERVICE_DN}" size.prtotal=unlimited'

START_TIMEOUT_SECONDS = 20.0
STOP_TIMEOUT_SECONDS = 10.0


class SlapdError(RuntimeError):
    """slapd is missing, or could not be configured or started (the message says why)."""


def missing_binaries(*binaries: Path) -> list[Path]:
    """Those of ``binaries`` (default: slapd and slapadd) that cannot be run."""
    return [path for path in binaries or (SLAPD, SLAPADD) if not os.access(path, os.X_OK)]


@dataclass
class Slapd:
    """A running (or stopped) private slapd and how to reach it.

    ``ldaps_port`` is only listened on when the server was created with a
    certificate. ``own_process_group`` starts slapd in a process group of its own, so
    a Ctrl-C in the terminal reaches only whoever started it, who stops it in turn.
    """

    host: str
    port: int
    data_dir: Path
    ldaps_port: int | None = None
    ca_file: Path | None = None
    base_dn: str = BASE_DN
    admin_dn: str = ADMIN_DN
    admin_password: str = ""
    service_dn: str = SERVICE_DN
    service_password: str = ""
    accesslog_base: str = ACCESSLOG_BASE
    binary: Path = SLAPD
    own_process_group: bool = False
    _process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        """``ldap://127.0.0.1:PORT`` (plain; StartTLS available when there is TLS)."""
        return f"ldap://{self.host}:{self.port}"

    @property
    def ldaps_url(self) -> str:
        """``ldaps://127.0.0.1:PORT`` (TLS from the first byte)."""
        return f"ldaps://{self.host}:{self.ldaps_port}"

    @property
    def log_file(self) -> Path:
        """slapd's own output (stderr), appended across restarts."""
        return self.data_dir / "slapd.log"

    @property
    def ports(self) -> tuple[int, ...]:
        return (self.port,) if self.ldaps_port is None else (self.port, self.ldaps_port)

    @property
    def pid_file(self) -> Path:
        return self.data_dir / "slapd.pid"

    @property
    def pid(self) -> int | None:
        """The process id while slapd runs."""
        return self._process.pid if self.is_running() else None

    def _started(self) -> bool:
        """True once our process wrote its pid: it has bound its ports and opened its data."""
        try:
            return self.pid_file.read_text().strip() == str(self._process.pid)
        except (OSError, AttributeError):
            return False

    def _output(self, since: int) -> str:
        return tail(self.log_file, since=since)

    def is_running(self) -> bool:
        """True while the slapd process is alive."""
        return self._process is not None and self._process.poll() is None

    def start(self) -> None:
        """Start slapd on this object's ports and data (again, after :meth:`stop`).

        Returns when every port accepts connections; raises :class:`SlapdError` with
        slapd's own output when it exits or does not listen in time.
        """
        if self.is_running():
            return
        listen = f"ldap://{self.host}:{self.port}/"
        if self.ldaps_port is not None:
            listen += f" ldaps://{self.host}:{self.ldaps_port}/"
        log_start = file_size(self.log_file)
        config = str(self.data_dir / "slapd.d")
        with self.log_file.open("ab") as log:
            self._process = subprocess.Popen(
                # -d keeps slapd in the foreground, so it is our child and its
                # errors reach the log; level "none" prints errors only.
                [str(self.binary), "-F", config, "-h", listen, "-d", "none"],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=die_with_parent(signal.SIGTERM),
                process_group=0 if self.own_process_group else None,
            )
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise SlapdError(
                    f"slapd exited with status {self._process.returncode} while starting on "
                    f"{listen}. Its output ({self.log_file}):\n{self._output(since=log_start)}"
                )
            if self._started() and all(port_open(self.host, p) for p in self.ports):
                return
            time.sleep(0.05)
        self.stop()
        raise SlapdError(
            f"slapd did not listen on {listen} within {START_TIMEOUT_SECONDS:.0f} s. "
            f"Its output ({self.log_file}):\n{self._output(since=log_start)}"
        )

    def stop(self) -> None:
        """Stop slapd (SIGTERM, then SIGKILL after a grace period); keep its data."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=STOP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def destroy(self) -> None:
        """Stop slapd and delete its folder."""
        self.stop()
        shutil.rmtree(self.data_dir, ignore_errors=True)

    def server(self, *, ldaps: bool = False, **kwargs: Any) -> ldap3.Server:
        """An ldap3 Server for the plain (default) or the ldaps port."""
        kwargs.setdefault("get_info", ldap3.NONE)
        kwargs.setdefault("connect_timeout", 5)
        if ldaps:
            return ldap3.Server(self.host, port=self.ldaps_port, use_ssl=True, **kwargs)
        return ldap3.Server(self.host, port=self.port, **kwargs)

    def connection(
        self, user: str | None = None, password: str | None = None, **kwargs: Any
    ) -> ldap3.Connection:
        """A SYNC ldap3 Connection to the plain port, bound as the admin (or ``user``).

        Keyword arguments go to ``ldap3.Connection`` (``raise_exceptions=True``…).
        Raises ``ldap3.core.exceptions.LDAPBindError`` when the bind fails.
        """
        kwargs.setdefault("receive_timeout", 30)
        return ldap3.Connection(
            self.server(),
            user=user or self.admin_dn,
            password=self.admin_password if password is None else password,
            client_strategy=ldap3.SYNC,
            auto_bind=True,
            **kwargs,
        )


@dataclass(frozen=True)
class Certificate:
    """PEM files for ``ldaps://`` and StartTLS: the CA clients trust, the server's own."""

    ca_file: Path
    cert_file: Path
    key_file: Path


def create(
    data_dir: Path,
    *,
    admin_password: str,
    service_password: str,
    certificate: Certificate | None = None,
    slapadd: Path = SLAPADD,
    durable: bool = True,
) -> None:
    """Write a new server into ``data_dir`` (created; it must not hold one already):
    cn=config, the suffix with ``ou=people``, ``ou=groups`` and the service account,
    the accesslog.

    ``durable=False`` lets both databases skip syncing commits to disk
    (``olcDbNoSync``): faster, and a crash of the machine may lose the last writes —
    for the test suite only.
    """
    for folder in ("slapd.d", "data", "accesslog"):
        (data_dir / folder).mkdir(parents=True)
    config = _config_ldif(data_dir, admin_password, certificate, durable=durable)
    _slapadd(slapadd, data_dir, ["-n0"], config)
    _slapadd(slapadd, data_dir, ["-b", BASE_DN], _base_entries_ldif(service_password))


def _slapadd(slapadd: Path, data_dir: Path, args: list[str], ldif: str) -> None:
    ldif_file = data_dir / f"slapadd-{len(list(data_dir.glob('slapadd-*')))}.ldif"
    ldif_file.write_text(ldif)
    result = subprocess.run(
        [str(slapadd), "-F", str(data_dir / "slapd.d"), *args, "-l", str(ldif_file)],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise SlapdError(
            f"slapadd {' '.join(args)} failed (status {result.returncode}) on {ldif_file}:\n"
            f"{result.stdout}{result.stderr}"
        )


def _config_ldif(
    data_dir: Path, admin_password: str, certificate: Certificate | None, *, durable: bool
) -> str:
    schemas = "\n".join(f"include: file://{SCHEMA_DIR / name}.ldif" for name in SCHEMAS)
    tls = (
        f"olcTLSCACertificateFile: {certificate.ca_file}\n"
        f"olcTLSCertificateFile: {certificate.cert_file}\n"
        f"olcTLSCertificateKeyFile: {certificate.key_file}\n"
        if certificate
        else ""
    )
    no_sync = "" if durable else "olcDbNoSync: TRUE\n"
    service = f'dn.exact="{SERVICE_DN}"'
    # No olcSizeLimit anywhere: OpenLDAP's default (500) applies to all but the rootdn.
    return f"""\
dn: cn=config
objectClass: olcGlobal
cn: config
olcPidFile: {data_dir / "slapd.pid"}
olcArgsFile: {data_dir}/slapd.args
olcLogLevel: none
{tls}
dn: cn=module{{0}},cn=config
objectClass: olcModuleList
cn: module{{0}}
olcModulePath: {MODULE_PATH}
olcModuleLoad: back_mdb
olcModuleLoad: accesslog

dn: cn=schema,cn=config
objectClass: olcSchemaConfig
cn: schema

{schemas}

dn: olcDatabase={{-1}}frontend,cn=config
objectClass: olcDatabaseConfig
objectClass: olcFrontendConfig
olcDatabase: {{-1}}frontend

dn: olcDatabase={{0}}config,cn=config
objectClass: olcDatabaseConfig
olcDatabase: {{0}}config
olcRootDN: {ADMIN_DN}
olcAccess: {{0}}to * by * none

dn: olcDatabase={{1}}mdb,cn=config
objectClass: olcDatabaseConfig
objectClass: olcMdbConfig
olcDatabase: {{1}}mdb
olcSuffix: {ACCESSLOG_BASE}
olcRootDN: {ADMIN_DN}
olcDbDirectory: {data_dir}/accesslog
olcDbMaxSize: 4294967296
{no_sync}olcDbIndex: default eq
olcDbIndex: objectClass,entryCSN,reqStart,reqEnd,reqResult,reqDN
olcLimits: {{0}}{SERVICE_LIMITS}
olcAccess: {{0}}to * by {service} read by * none

dn: olcDatabase={{2}}mdb,cn=config
objectClass: olcDatabaseConfig
objectClass: olcMdbConfig
olcDatabase: {{2}}mdb
olcSuffix: {BASE_DN}
olcRootDN: {ADMIN_DN}
olcRootPW: {admin_password}
olcDbDirectory: {data_dir}/data
olcDbMaxSize: 4294967296
{no_sync}olcDbIndex: objectClass eq
olcDbIndex: entryUUID,entryCSN eq
olcDbIndex: modifyTimestamp eq
olcDbIndex: uid,cn,mail,employeeNumber eq
olcDbIndex: member,uniqueMember eq
olcLimits: {{0}}{SERVICE_LIMITS}
olcAccess: {{0}}to dn.subtree="{SERVICES_OU}" attrs=userPassword by anonymous auth by * none
olcAccess: {{1}}to dn.subtree="{SERVICES_OU}" by self read by * none
olcAccess: {{2}}to attrs=userPassword by {service} =w by self write by anonymous auth by * none
olcAccess: {{3}}to dn.base="{BASE_DN}" attrs=children by {service} write by users read by * none
olcAccess: {{4}}to dn.children="{BASE_DN}" by {service} write by users read by * none
olcAccess: {{5}}to * by users read by * none

dn: olcOverlay={{0}}accesslog,olcDatabase={{2}}mdb,cn=config
objectClass: olcOverlayConfig
objectClass: olcAccessLogConfig
olcOverlay: {{0}}accesslog
olcAccessLogDB: {ACCESSLOG_BASE}
olcAccessLogOps: writes
olcAccessLogSuccess: TRUE
olcAccessLogPurge: 07+00:00 01+00:00
"""


def _base_entries_ldif(service_password: str) -> str:
    return f"""\
dn: {BASE_DN}
objectClass: top
objectClass: dcObject
objectClass: organization
dc: example
o: Example

dn: ou=people,{BASE_DN}
objectClass: organizationalUnit
ou: people

dn: ou=groups,{BASE_DN}
objectClass: organizationalUnit
ou: groups

dn: {SERVICES_OU}
objectClass: organizationalUnit
ou: services

dn: {SERVICE_DN}
objectClass: organizationalRole
objectClass: simpleSecurityObject
cn: jim-sync
description: JIM's service account
userPassword: {ssha_password(service_password)}
"""


def ssha_password(password: str) -> str:
    """``{SSHA}…``: a salted SHA-1 hash of ``password`` (the service account's
    password is not stored in clear)."""
    salt = os.urandom(8)
    digest = hashlib.sha1(password.encode("utf-8") + salt).digest()
    return "{SSHA}" + base64.b64encode(digest + salt).decode("ascii")
