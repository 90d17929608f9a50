"""A private OpenLDAP slapd for tests: real LDAP, own ports, own data, own certificate.

:func:`start_slapd` builds a cn=config folder with ``slapadd -n0`` and starts
``/usr/sbin/slapd`` on two free loopback ports (``ldap://`` with StartTLS, and
``ldaps://``) with:

- schemas core, cosine, nis, inetorgperson;
- ``dc=example,dc=org`` in an mdb database (rootdn ``cn=admin,dc=example,dc=org``),
  holding ``ou=people`` and ``ou=groups``;
- the accesslog overlay writing successful write operations into a second mdb
  database, ``cn=accesslog`` (readable by the admin DN), so delta imports can read
  ``reqStart``/``reqType``/``reqDN``/``reqMod``/``reqNewRDN``/``reqNewSuperior``/
  ``reqEntryUUID``;
- a certificate signed by a CA made at start-up (:attr:`Slapd.ca_file`).

Size limits: ``size.soft=1000 size.hard=unlimited`` on ``dc=example,dc=org``, like
a real directory. The admin DN is the rootdn and has no limits; paged searches have
no total limit for anyone. A test provokes ``sizeLimitExceeded`` (result code 4) by
asking for a size limit in the request (``conn.search(..., size_limit=2)`` over more
entries), or, as a non-admin user, by a plain (not paged) search over more than 1000
entries. The admin DN is also the rootdn of ``cn=config``, so a test may tighten
limits at run time (``olcSizeLimit`` on ``olcDatabase={2}mdb,cn=config``) — and must
put them back, since the server is shared by the whole session.

When the ``slapd`` binary is missing, :func:`start_slapd` raises :class:`SlapdError`
saying how to install it; it never skips.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ldap3
from ldap3.core.exceptions import LDAPNoSuchObjectResult
from ldap3.utils.dn import to_dn

from tests.support import (
    die_with_parent,
    file_size,
    free_port,
    make_private_dir,
    port_open,
    tail,
)
from tests.support.tls import make_server_certificate

SLAPD = Path(os.environ.get("JIM_TEST_SLAPD", "/usr/sbin/slapd"))
SLAPADD = Path(os.environ.get("JIM_TEST_SLAPADD", "/usr/sbin/slapadd"))
MODULE_PATH = Path("/usr/lib/ldap")
SCHEMA_DIR = Path("/etc/ldap/schema")
SCHEMAS = ("core", "cosine", "nis", "inetorgperson")

BASE_DN = "dc=example,dc=org"
ADMIN_DN = f"cn=admin,{BASE_DN}"
ADMIN_PASSWORD = "jim-test-admin-Pa55"
ACCESSLOG_BASE = "cn=accesslog"
#: The cn=config entry of the dc=example,dc=org database (for run-time limit changes).
DATA_DATABASE_DN = "olcDatabase={2}mdb,cn=config"
_NO_SUCH_OBJECT = 32

START_TIMEOUT_SECONDS = 20.0
STOP_TIMEOUT_SECONDS = 10.0
INSTALL_HINT = (
    "The LDAP tests need OpenLDAP's slapd and slapadd (Debian packages slapd and "
    "ldap-utils): run `make test`, which installs them, or "
    "`apt-get install slapd ldap-utils`."
)


class SlapdError(RuntimeError):
    """slapd is missing, or could not be configured or started (the message says why)."""


@dataclass
class Slapd:
    """A running (or stopped) private slapd and how to reach it."""

    host: str
    port: int
    ldaps_port: int
    data_dir: Path
    ca_file: Path
    base_dn: str = BASE_DN
    admin_dn: str = ADMIN_DN
    admin_password: str = ADMIN_PASSWORD
    accesslog_base: str = ACCESSLOG_BASE
    _process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        """``ldap://127.0.0.1:PORT`` (plain; StartTLS available)."""
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
    def ports(self) -> tuple[int, int]:
        return self.port, self.ldaps_port

    @property
    def pid_file(self) -> Path:
        return self.data_dir / "slapd.pid"

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

        Returns when both ports accept connections; raises :class:`SlapdError` with
        slapd's own output when it exits or does not listen in time.
        """
        if self.is_running():
            return
        listen = f"ldap://{self.host}:{self.port}/ ldaps://{self.host}:{self.ldaps_port}/"
        log_start = file_size(self.log_file)
        with self.log_file.open("ab") as log:
            self._process = subprocess.Popen(
                # -d keeps slapd in the foreground, so it is our child and its
                # errors reach the log; level "none" prints errors only.
                [str(SLAPD), "-F", str(self.data_dir / "slapd.d"), "-h", listen, "-d", "none"],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=die_with_parent(signal.SIGTERM),
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


def start_slapd(host: str = "127.0.0.1") -> Slapd:
    """Configure and start a new private slapd; the caller must :meth:`Slapd.destroy` it."""
    for binary in (SLAPD, SLAPADD):
        if not os.access(binary, os.X_OK):
            raise SlapdError(f"{binary} is not installed. {INSTALL_HINT}")
    data_dir = make_private_dir("slapd")
    try:
        tls = make_server_certificate(data_dir / "tls")
        for folder in ("slapd.d", "data", "accesslog"):
            (data_dir / folder).mkdir()
        _slapadd(
            data_dir, ["-n0"], _config_ldif(data_dir, tls.cert_file, tls.key_file, tls.ca_file)
        )
        _slapadd(data_dir, ["-b", BASE_DN], _base_entries_ldif())
        return _start_on_free_ports(host, data_dir, tls.ca_file)
    except BaseException:
        shutil.rmtree(data_dir, ignore_errors=True)
        raise


def _start_on_free_ports(host: str, data_dir: Path, ca_file: Path) -> Slapd:
    # A port may be taken between choosing and binding it: then choose again, once.
    retries = 1
    while True:
        slapd = Slapd(
            host=host, port=free_port(), ldaps_port=free_port(), data_dir=data_dir, ca_file=ca_file
        )
        try:
            slapd.start()
        except SlapdError as error:
            if retries == 0 or "Address already in use" not in str(error):
                raise
            retries -= 1
        else:
            return slapd


def _slapadd(data_dir: Path, args: list[str], ldif: str) -> None:
    ldif_file = data_dir / f"slapadd-{len(list(data_dir.glob('slapadd-*')))}.ldif"
    ldif_file.write_text(ldif)
    result = subprocess.run(
        [str(SLAPADD), "-F", str(data_dir / "slapd.d"), *args, "-l", str(ldif_file)],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise SlapdError(
            f"slapadd {' '.join(args)} failed (status {result.returncode}) on {ldif_file}:\n"
            f"{result.stdout}{result.stderr}"
        )


def _config_ldif(data_dir: Path, cert_file: Path, key_file: Path, ca_file: Path) -> str:
    schemas = "\n".join(f"include: file://{SCHEMA_DIR / name}.ldif" for name in SCHEMAS)
    admin_only = f'to * by dn.exact="{ADMIN_DN}" read by * none'
    return f"""\
dn: cn=config
objectClass: olcGlobal
cn: config
olcPidFile: {data_dir / "slapd.pid"}
olcArgsFile: {data_dir}/slapd.args
olcLogLevel: none
olcTLSCACertificateFile: {ca_file}
olcTLSCertificateFile: {cert_file}
olcTLSCertificateKeyFile: {key_file}

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
olcSizeLimit: size.soft=1000 size.hard=unlimited

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
olcDbMaxSize: 1073741824
olcDbNoSync: TRUE
olcDbIndex: default eq
olcDbIndex: objectClass,entryCSN,reqStart,reqEnd,reqResult,reqDN
olcSizeLimit: size.soft=1000 size.hard=unlimited
olcAccess: {{0}}{admin_only}

dn: olcDatabase={{2}}mdb,cn=config
objectClass: olcDatabaseConfig
objectClass: olcMdbConfig
olcDatabase: {{2}}mdb
olcSuffix: {BASE_DN}
olcRootDN: {ADMIN_DN}
olcRootPW: {ADMIN_PASSWORD}
olcDbDirectory: {data_dir}/data
olcDbMaxSize: 4294967296
olcDbNoSync: TRUE
olcDbIndex: objectClass eq
olcDbIndex: entryUUID,entryCSN eq
olcDbIndex: uid,cn,mail,employeeNumber eq
olcDbIndex: member,uniqueMember eq
olcSizeLimit: size.soft=1000 size.hard=unlimited
olcAccess: {{0}}to attrs=userPassword by self write by anonymous auth by * none
olcAccess: {{1}}to * by users read by * none

dn: olcOverlay={{0}}accesslog,olcDatabase={{2}}mdb,cn=config
objectClass: olcOverlayConfig
objectClass: olcAccessLogConfig
olcOverlay: {{0}}accesslog
olcAccessLogDB: {ACCESSLOG_BASE}
olcAccessLogOps: writes
olcAccessLogSuccess: TRUE
olcAccessLogPurge: 07+00:00 01+00:00
"""


def _base_entries_ldif() -> str:
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
"""


def delete_subtree(connection: ldap3.Connection, dn: str) -> int:
    """Delete ``dn`` and everything beneath it, deepest first; return how many entries.

    A missing ``dn`` deletes nothing. Raises :class:`SlapdError` naming the entry
    that could not be deleted.
    """
    try:
        response = connection.extend.standard.paged_search(
            dn, "(objectClass=*)", ldap3.SUBTREE, attributes=[ldap3.NO_ATTRIBUTES], generator=False
        )
    except LDAPNoSuchObjectResult:  # raised when the connection raises exceptions
        return 0
    if connection.result["result"] == _NO_SUCH_OBJECT:
        return 0
    dns = [entry["dn"] for entry in response if entry.get("type") == "searchResEntry"]
    for entry_dn in sorted(dns, key=lambda d: len(to_dn(d)), reverse=True):
        if not connection.delete(entry_dn):
            raise SlapdError(f"Could not delete {entry_dn}: {connection.result}")
    return len(dns)
