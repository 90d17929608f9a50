"""A private Samba Active Directory domain controller: its own folder, its own data.

:func:`create` provisions a new domain with Debian's ``samba-tool`` (about 10 s) and
sets it up as docs/connectors/active-directory.md tells an administrator to:

- the domain ``EXAMPLE.ORG`` (NetBIOS ``EXAMPLE``, base ``DC=example,DC=org``), its
  default password policy (complexity on, 7 characters at least) and its default
  search limits (``MaxPageSize`` 1,000, ``MaxValRange`` 1,500);
- ``OU=JIM,DC=example,DC=org``, the part of the directory JIM manages, and JIM's
  service account ``CN=jim-sync,OU=Service Accounts,DC=example,DC=org`` — not an
  administrator: it has full control of ``OU=JIM`` (delegated there, inherited
  below), and read access to ``CN=Deleted Objects`` so its delta imports see deletions;
  nothing else but what every authenticated user has;
- LDAPS (636) and StartTLS (389) with the certificate it is given.

A :class:`SambaDC` starts ``samba -i`` on it (again and again: the data is kept). Samba
listens on fixed ports (389, 636, 88, 464, 3268, 3269) of one address — 127.0.0.1 unless
told otherwise — so one domain controller serves every test worker of a run, each test
in its own OU (``tests/support/samba.py``); ``python -m jim_project.devservers.samba``
runs one for people trying JIM against AD.

Samba needs root (it is a domain controller); the tests and the dev server run as root
on the machines ``make test`` sets up.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import ldap3

from jim_project.devservers import die_with_parent, file_size, port_open, tail

SAMBA = Path("/usr/sbin/samba")
SAMBA_TOOL = Path("/usr/bin/samba-tool")
#: Debian's Python, which has Samba's bindings (``samba-tool`` runs on it too).
SYSTEM_PYTHON = Path("/usr/bin/python3")

REALM = "EXAMPLE.ORG"
DOMAIN = "EXAMPLE"
BASE_DN = "DC=example,DC=org"
#: Where JIM's service account may write; tests and the dev server's examples live here.
MANAGED_OU = f"OU=JIM,{BASE_DN}"
SERVICES_OU = f"OU=Service Accounts,{BASE_DN}"
SERVICE_ACCOUNT = "jim-sync"
#: JIM's service account: what JIM's connected systems bind as.
SERVICE_DN = f"CN={SERVICE_ACCOUNT},{SERVICES_OU}"
ADMIN_USER = f"Administrator@{REALM.lower()}"
DELETED_OBJECTS_DN = f"CN=Deleted Objects,{BASE_DN}"
#: The ports Samba's LDAP server listens on; they cannot be changed.
LDAP_PORT = 389
LDAPS_PORT = 636

START_TIMEOUT_SECONDS = 60.0
STOP_TIMEOUT_SECONDS = 15.0
INSTALL_HINT = (
    "The Active Directory tests need Samba (Debian package samba): run `make test`, "
    "which installs it, or `apt-get install samba`."
)


class SambaError(RuntimeError):
    """Samba is missing, or could not be provisioned or started (the message says why)."""


def missing_binaries() -> list[Path]:
    """Those of samba, samba-tool and Debian's python3 that cannot be run."""
    return [path for path in (SAMBA, SAMBA_TOOL, SYSTEM_PYTHON) if not os.access(path, os.X_OK)]


@dataclass(frozen=True)
class Certificate:
    """PEM files for LDAPS and StartTLS: the CA clients trust, the server's own."""

    ca_file: Path
    cert_file: Path
    key_file: Path


@dataclass
class SambaDC:
    """A provisioned (running or stopped) domain controller and how to reach it.

    ``own_process_group`` starts samba in a process group of its own (the dev server,
    so that a Ctrl-C reaches only whoever started it); ``detached`` starts it in a new
    session that does not die with its parent (the test rig, whose workers share it;
    the run's controller stops it).
    """

    host: str
    data_dir: Path
    ca_file: Path
    admin_password: str
    service_password: str
    base_dn: str = BASE_DN
    service_dn: str = SERVICE_DN
    managed_ou: str = MANAGED_OU
    own_process_group: bool = False
    detached: bool = False
    _process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    # -- where it is -----------------------------------------------------------------

    @property
    def url(self) -> str:
        """``ldap://HOST:389`` (StartTLS available)."""
        return f"ldap://{self.host}:{LDAP_PORT}"

    @property
    def ldaps_url(self) -> str:
        """``ldaps://HOST:636`` (TLS from the first byte)."""
        return f"ldaps://{self.host}:{LDAPS_PORT}"

    @property
    def config_file(self) -> Path:
        return self.data_dir / "etc" / "smb.conf"

    @property
    def log_file(self) -> Path:
        return self.data_dir / "samba.log"

    @property
    def pid_file(self) -> Path:
        return self.data_dir / "run" / "samba.pid"

    @property
    def pid(self) -> int | None:
        """The id of samba's root process while it runs (whoever started it)."""
        try:
            pid = int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None
        try:
            os.kill(pid, 0)
        except OSError:
            return None
        return pid

    def is_running(self) -> bool:
        return self.pid is not None

    def answers(self) -> bool:
        """True when the LDAPS port takes a bind of the service account."""
        if not port_open(self.host, LDAPS_PORT):
            return False
        try:
            self.connection(self.service_dn, self.service_password).unbind()
        except ldap3.core.exceptions.LDAPException:
            return False
        return True

    # -- start and stop ----------------------------------------------------------------

    def start(self) -> None:
        """Start samba on this folder; return once LDAPS takes the service account's
        bind. Raises :class:`SambaError` with samba's own output when it exits or
        does not answer in time."""
        if self.answers():
            return
        if port_open(self.host, LDAPS_PORT):
            raise SambaError(
                f"Something else listens on {self.host}:{LDAPS_PORT}: another directory "
                f"server, or a domain controller left from an earlier run "
                f"(`ss -ltnp 'sport = :{LDAPS_PORT}'` names it). Stop it, or choose another "
                "loopback address (JIM_TEST_SAMBA_HOST)."
            )
        log_start = file_size(self.log_file)
        (self.data_dir / "run").mkdir(exist_ok=True)
        with self.log_file.open("ab") as log:
            self._process = subprocess.Popen(
                [str(SAMBA), "-i", "-s", str(self.config_file)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=_system_environment(),
                preexec_fn=None if self.detached else die_with_parent(signal.SIGTERM),
                process_group=0 if self.own_process_group else None,
                start_new_session=self.detached,
            )
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise SambaError(
                    f"samba exited with status {self._process.returncode} while starting "
                    f"on {self.host}. Its output ({self.log_file}):\n"
                    f"{tail(self.log_file, since=log_start)}"
                )
            if self.answers():
                return
            time.sleep(0.2)
        self.stop()
        raise SambaError(
            f"samba did not answer on {self.ldaps_url} within {START_TIMEOUT_SECONDS:.0f} s. "
            f"Its output ({self.log_file}):\n{tail(self.log_file, since=log_start)}"
        )

    def stop(self) -> None:
        """Stop samba (SIGTERM to its root process, SIGKILL to its group after a grace
        period), whoever started it; keep its data."""
        pid = self.pid
        process, self._process = self._process, None
        if pid is None:
            if process is not None:
                process.wait()
            return
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
        while time.monotonic() < deadline and self.pid is not None:
            time.sleep(0.1)
        if self.pid is not None:
            os.killpg(os.getpgid(pid), signal.SIGKILL)
        if process is not None:
            process.wait()
        # samba's children (one per service) leave with their parent; wait for the
        # ports, so that a start right after this one does not find them taken.
        deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
        while time.monotonic() < deadline and port_open(self.host, LDAPS_PORT):
            time.sleep(0.1)

    def destroy(self) -> None:
        """Stop samba and delete its folder."""
        self.stop()
        shutil.rmtree(self.data_dir, ignore_errors=True)

    # -- talking to it -----------------------------------------------------------------

    def server(self, *, ldaps: bool = True, **kwargs: Any) -> ldap3.Server:
        """An ldap3 Server for LDAPS (default) or plain LDAP, trusting :attr:`ca_file`."""
        kwargs.setdefault("get_info", ldap3.NONE)
        kwargs.setdefault("connect_timeout", 5)
        tls = ldap3.Tls(ca_certs_file=str(self.ca_file), validate=2)  # ssl.CERT_REQUIRED
        port = LDAPS_PORT if ldaps else LDAP_PORT
        return ldap3.Server(self.host, port=port, use_ssl=ldaps, tls=tls, **kwargs)

    def connection(
        self, user: str | None = None, password: str | None = None, **kwargs: Any
    ) -> ldap3.Connection:
        """A SYNC ldap3 Connection over LDAPS, bound as Administrator (or ``user``).

        Keyword arguments go to ``ldap3.Connection`` (``raise_exceptions=True``…).
        """
        kwargs.setdefault("receive_timeout", 60)
        return ldap3.Connection(
            self.server(),
            user=user or ADMIN_USER,
            password=self.admin_password if password is None else password,
            client_strategy=ldap3.SYNC,
            auto_bind=True,
            **kwargs,
        )

    def service_settings(self, base_dn: str | None = None) -> dict[str, Any]:
        """The settings of a connected system that binds as the service account."""
        return {
            "url": self.ldaps_url,
            "bind_dn": self.service_dn,
            "bind_password": self.service_password,
            "base_dn": base_dn or self.managed_ou,
            "ca_file": str(self.ca_file),
        }

    # -- saved description (for processes sharing one DC) ------------------------------

    def save(self, path: Path) -> None:
        """Write how to reach this DC (mode 0600: it holds passwords)."""
        fields = {
            name: str(value) if isinstance(value, Path) else value
            for name, value in asdict(self).items()
            if not name.startswith("_")
        }
        path.write_text(json.dumps(fields))
        path.chmod(0o600)

    @classmethod
    def load(cls, path: Path) -> SambaDC:
        fields = json.loads(path.read_text())
        for name in ("data_dir", "ca_file"):
            fields[name] = Path(fields[name])
        return cls(**fields)


def create(
    data_dir: Path,
    *,
    host: str,
    admin_password: str,
    service_password: str,
    certificate: Certificate,
) -> SambaDC:
    """Provision a new domain into ``data_dir`` (created; it must not hold one) and set
    up JIM's OU and service account; the DC is returned stopped."""
    missing = missing_binaries()
    if missing:
        raise SambaError(f"{missing[0]} is not installed. {INSTALL_HINT}")
    data_dir.mkdir(parents=True, exist_ok=True)
    options = {
        "interfaces": host,
        "bind interfaces only": "yes",
        "server services": "ldap, cldap, kdc",
        "pid directory": str(data_dir / "run"),
        "log file": str(data_dir / "samba.log"),
        "log level": "1",
        "prefork children": "2",
        "tls enabled": "yes",
        "tls cafile": str(certificate.ca_file),
        "tls certfile": str(certificate.cert_file),
        "tls keyfile": str(certificate.key_file),
    }
    _run(
        [
            str(SAMBA_TOOL),
            "domain",
            "provision",
            f"--realm={REALM}",
            f"--domain={DOMAIN}",
            "--server-role=dc",
            "--dns-backend=NONE",
            "--host-name=dc1",
            f"--targetdir={data_dir}",
            f"--adminpass={admin_password}",
            *(f"--option={name}={value}" for name, value in options.items()),
        ],
        "samba-tool domain provision",
    )
    _run(
        [str(SYSTEM_PYTHON), "-c", _SET_UP_JIM, str(data_dir / "etc" / "smb.conf")],
        "setting up JIM's OU and service account",
        stdin=service_password,
    )
    return SambaDC(
        host=host,
        data_dir=data_dir,
        ca_file=certificate.ca_file,
        admin_password=admin_password,
        service_password=service_password,
    )


def _system_environment() -> dict[str, str]:
    """A clean environment for Samba's programs, which run on Debian's Python (a
    virtualenv's variables would point it at the wrong packages)."""
    return {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}


def _run(command: list[str], what: str, *, stdin: str | None = None) -> None:
    result = subprocess.run(
        command,
        input=stdin,
        capture_output=True,
        text=True,
        env=_system_environment(),
        check=False,
    )
    if result.returncode != 0:
        output = "\n".join((result.stdout + result.stderr).splitlines()[-40:])
        raise SambaError(f"{what} failed (status {result.returncode}):\n{output}")


#: Run by Debian's python3 on the stopped DC's own database (Samba's bindings): the OUs,
#: the service account (password on stdin) and its delegations.
_SET_UP_JIM = f"""
import sys
import ldb
from samba.auth import system_session
from samba.dcerpc import security
from samba.ndr import ndr_pack, ndr_unpack
from samba.param import LoadParm
from samba.samdb import SamDB

lp = LoadParm()
lp.load(sys.argv[1])
db = SamDB(url=lp.private_path("sam.ldb"), session_info=system_session(), lp=lp)
domain_sid = security.dom_sid(db.get_domain_sid())
for ou in ({SERVICES_OU!r}, {MANAGED_OU!r}):
    db.create_ou(ou)
db.newuser({SERVICE_ACCOUNT!r}, sys.stdin.read(), userou="OU=Service Accounts",
           setpassword=True)
sid = str(ndr_unpack(security.dom_sid, db.search(base={SERVICE_DN!r},
          scope=ldb.SCOPE_BASE, attrs=["objectSid"])[0]["objectSid"][0]))


def grant(dn, sddl_ace, controls=()):
    res = db.search(base=dn, scope=ldb.SCOPE_BASE, attrs=["nTSecurityDescriptor"],
                    controls=list(controls))
    sd = ndr_unpack(security.descriptor, res[0]["nTSecurityDescriptor"][0])
    ace = security.descriptor.from_sddl("D:" + sddl_ace % sid, domain_sid).dacl.aces[0]
    sd.dacl_add(ace)
    message = ldb.Message()
    message.dn = ldb.Dn(db, dn)
    message["nTSecurityDescriptor"] = ldb.MessageElement(
        ndr_pack(sd), ldb.FLAG_MOD_REPLACE, "nTSecurityDescriptor")
    db.modify(message, controls=[*controls, "sd_flags:1:4"])


# Full control of OU=JIM and everything below it (reset password included).
grant({MANAGED_OU!r}, "(A;CI;GA;;;%s)")
# List and read the Deleted Objects container, as `dsacls "CN=Deleted Objects,…"
# /G EXAMPLE\\\\jim-sync:LCRP` does on Windows: delta imports read deletions there.
grant({DELETED_OBJECTS_DN!r}, "(A;;LCRP;;;%s)", ["show_deleted:1"])
"""


def main(argv: list[str] | None = None) -> int:
    """``python -m jim_project.devservers.samba [FOLDER]``: a domain controller to try
    JIM against, on 127.0.0.1, until Ctrl-C (see docs/connectors/active-directory.md).

    The first start provisions it into FOLDER (about 10 s); later starts reuse its data.
    The passwords are in FOLDER/dc.json (mode 0600), never printed."""
    import argparse
    import secrets

    from jim_project.devservers.certificates import make_server_certificate

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("folder", nargs="?", default=".demo/samba", type=Path)
    parser.add_argument("--host", default="127.0.0.1")
    args = parser.parse_args(argv)
    saved = args.folder / "dc.json"
    try:
        if saved.exists():
            dc = SambaDC.load(saved)
        else:
            print(f"Provisioning a new domain into {args.folder} (about 10 s)…", flush=True)
            tls = make_server_certificate(
                args.folder / "tls", names=("localhost", args.host), days=365
            )
            dc = create(
                args.folder / "dc",
                host=args.host,
                admin_password=_password(secrets),
                service_password=_password(secrets),
                certificate=Certificate(tls.ca_file, tls.cert_file, tls.key_file),
            )
            dc.save(saved)
        dc.own_process_group = True
        dc.start()
    except SambaError as error:
        print(f"samba-dc: {error}", file=sys.stderr)
        return 1
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # stopped as by Ctrl-C
    try:
        # What examples/active-directory.yaml provisions into, made as Administrator
        # (as an administrator prepares the part of the domain JIM manages).
        connection = dc.connection()
        for name in ("People", "Groups", "Disabled"):
            dn = f"OU={name},{dc.managed_ou}"
            added = connection.add(dn, ["organizationalUnit"])
            if not added and connection.result["description"] != "entryAlreadyExists":
                print(f"samba-dc: cannot create {dn}: {connection.result['message']}")
                return 1
        connection.unbind()
        print(
            f"Samba AD domain controller for {REALM}, base {dc.base_dn}:\n"
            f"  LDAPS     {dc.ldaps_url}\n"
            f"  StartTLS  {dc.url}\n"
            f"  CA        {dc.ca_file}\n"
            f"JIM's service account: {dc.service_dn}, full control of {dc.managed_ou}\n"
            "  (with OU=People, OU=Groups and OU=Disabled, for examples/active-directory.yaml).\n"
            f"Its password and Administrator's are in {saved} (mode 0600); for the example:\n"
            f"  export JIM_AD_PASSWORD=\"$(python3 -c 'import json; "
            f'print(json.load(open("{saved}"))["service_password"])\')"\n'
            "Ctrl-C stops it; its data stays for the next start.",
            flush=True,
        )
        while dc.is_running():
            time.sleep(1)
    except KeyboardInterrupt:
        pass
    finally:
        dc.stop()
    return 0


def _password(secrets: Any) -> str:
    """A password AD's default policy accepts: upper, lower, digit and symbol, and no
    part of the account's name (hex cannot spell "jim" or "sync")."""
    return f"Dc-{secrets.token_hex(12)}-Xy9"


if __name__ == "__main__":
    sys.exit(main())
