"""A private OpenLDAP slapd for tests: real LDAP, own ports, own data, own certificate.

:func:`start_slapd` builds a cn=config folder with ``slapadd -n0`` and starts
``/usr/sbin/slapd`` on two free loopback ports (``ldap://`` with StartTLS, and
``ldaps://``) — the server itself is :mod:`jim_project.devservers.slapd`, which the
demo uses too — with:

- schemas core, cosine, nis, inetorgperson;
- ``dc=example,dc=org`` in an mdb database (rootdn ``cn=admin,dc=example,dc=org``),
  holding ``ou=people``, ``ou=groups`` and ``ou=services``;
- the accesslog overlay writing successful write operations into a second mdb
  database, ``cn=accesslog``, so delta imports can read
  ``reqStart``/``reqType``/``reqDN``/``reqMod``/``reqNewRDN``/``reqNewSuperior``/
  ``reqEntryUUID``;
- JIM's service account :attr:`Slapd.service_dn` (``cn=jim-sync,ou=services,…``,
  password :attr:`Slapd.service_password`), set up as a production administrator
  would (docs/openldap.md, "Configuring OpenLDAP for JIM"): write access to the
  suffix but ``ou=services``, read access to ``cn=accesslog``, OpenLDAP's default size
  limit (500) on both databases and ``size.prtotal=unlimited`` for its paged searches;
- a certificate signed by a CA made at start-up (:attr:`Slapd.ca_file`).

**Every connected system a test, the demo or a benchmark builds binds as the service
account**; the admin DN (the rootdn: no limits, no ACLs) is for setting up and
inspecting data. ``tests/test_rig.py`` asserts this configuration.

Size limits: OpenLDAP's default, 500 entries (soft and hard), for everyone but the
admin. A test provokes ``sizeLimitExceeded`` (result code 4) by asking for a size
limit in the request (``conn.search(..., size_limit=2)`` over more entries), or, as
the service account or another user, by a plain (not paged) search over more than 500
entries; a paged search by any user but the service account stops there too. The
admin DN is also the rootdn of ``cn=config``, so a test may change limits at run time
(``olcLimits`` on :data:`DATA_DATABASE_DN` or :data:`ACCESSLOG_DATABASE_DN`) — and must
put them back exactly, since the server is shared by the whole session.

The suite's slapd skips syncing commits to disk (``durable=False``: it is thrown away
at the end); the benchmarks' (:func:`start_slapd` with ``durable=True``) and the
demo's write durably.

When the ``slapd`` binary is missing, :func:`start_slapd` raises :class:`SlapdError`
saying how to install it; it never skips.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import ldap3
from ldap3.core.exceptions import LDAPNoSuchObjectResult
from ldap3.utils.dn import to_dn

from jim_project.devservers import slapd as server
from jim_project.devservers.certificates import make_server_certificate
from jim_project.devservers.slapd import (
    ACCESSLOG_BASE,
    ACCESSLOG_DATABASE_DN,
    ADMIN_DN,
    BASE_DN,
    DATA_DATABASE_DN,
    SERVICE_DN,
    SERVICE_LIMITS,
    SERVICES_OU,
    Certificate,
    Slapd,
    SlapdError,
)
from tests.support import free_port, make_private_dir

__all__ = [
    "ACCESSLOG_BASE",
    "ACCESSLOG_DATABASE_DN",
    "ADMIN_DN",
    "ADMIN_PASSWORD",
    "BASE_DN",
    "DATA_DATABASE_DN",
    "SERVICES_OU",
    "SERVICE_DN",
    "SERVICE_LIMITS",
    "SERVICE_PASSWORD",
    "Slapd",
    "SlapdError",
    "delete_subtree",
    "service_settings",
    "start_slapd",
]

SLAPD = Path(os.environ.get("JIM_TEST_SLAPD", str(server.SLAPD)))
SLAPADD = Path(os.environ.get("JIM_TEST_SLAPADD", str(server.SLAPADD)))
ADMIN_PASSWORD = "jim-test-admin-Pa55"
SERVICE_PASSWORD = "jim-test-sync-Pa55"
_NO_SUCH_OBJECT = 32

INSTALL_HINT = (
    "The LDAP tests need OpenLDAP's slapd and slapadd (Debian packages slapd and "
    "ldap-utils): run `make test`, which installs them, or "
    "`apt-get install slapd ldap-utils`."
)


def start_slapd(host: str = "127.0.0.1", *, durable: bool = False) -> Slapd:
    """Configure and start a new private slapd; the caller must :meth:`Slapd.destroy` it.

    ``durable`` makes it sync every commit to disk, as a production directory does
    (the benchmarks); the test suite's does not.
    """
    missing = server.missing_binaries(SLAPD, SLAPADD)
    if missing:
        raise SlapdError(f"{missing[0]} is not installed. {INSTALL_HINT}")
    data_dir = make_private_dir("slapd")
    try:
        tls = make_server_certificate(data_dir / "tls")
        certificate = Certificate(tls.ca_file, tls.cert_file, tls.key_file)
        server.create(
            data_dir,
            admin_password=ADMIN_PASSWORD,
            service_password=SERVICE_PASSWORD,
            certificate=certificate,
            slapadd=SLAPADD,
            durable=durable,
        )
        return _start_on_free_ports(host, data_dir, tls.ca_file)
    except BaseException:
        shutil.rmtree(data_dir, ignore_errors=True)
        raise


def _start_on_free_ports(host: str, data_dir: Path, ca_file: Path) -> Slapd:
    # A port may be taken between choosing and binding it: then choose again, once.
    retries = 1
    while True:
        slapd = Slapd(
            host=host,
            port=free_port(),
            ldaps_port=free_port(),
            data_dir=data_dir,
            ca_file=ca_file,
            admin_password=ADMIN_PASSWORD,
            service_password=SERVICE_PASSWORD,
            binary=SLAPD,
        )
        try:
            slapd.start()
        except SlapdError as error:
            if retries == 0 or "Address already in use" not in str(error):
                raise
            retries -= 1
        else:
            return slapd


def service_settings(slapd: Slapd, **overrides: Any) -> dict[str, Any]:
    """The settings of an ldap connected system of ``slapd``, bound as the service
    account (``overrides`` replace or add settings)."""
    settings: dict[str, Any] = {
        "url": slapd.url,
        "bind_dn": slapd.service_dn,
        "bind_password": slapd.service_password,
        "base_dn": slapd.base_dn,
    }
    settings.update(overrides)
    return settings


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
