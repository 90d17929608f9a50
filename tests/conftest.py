"""Session-wide fixtures: the private OpenLDAP slapd, the run's Samba AD domain
controller, and per-test subtrees in each.

The PostgreSQL side is chosen earlier, by the ``tests.support.postgres`` plugin
(see docs/testing.md). Each pytest-xdist worker starts its own slapd; the workers of a
run share one domain controller (tests/support/samba.py).

Fixtures:
    slapd            (session) a running :class:`tests.support.slapd.Slapd`.
    ldap_connection  a SYNC ldap3 connection bound as the admin, unbound afterwards.
    ldap_ou          a fresh ``ou=t<N>,dc=example,dc=org`` holding ``ou=people`` and
                     ``ou=groups``; deleted with everything beneath it afterwards.
    ldap_password    ``JIM_LDAP_PASSWORD`` set, for applying the spec's example
                     (:mod:`tests.support.configuration`).
    samba_dc         (session) the run's running :class:`~tests.support.samba.SambaDC`.
    ad_connection    a SYNC ldap3 connection to it over LDAPS, bound as Administrator.
    ad_ou            a fresh ``OU=t<N>,OU=JIM,DC=example,DC=org`` holding
                     ``OU=people``, ``OU=groups`` and ``OU=disabled``, where JIM's
                     service account has full control; deleted afterwards.

Every test that uses ``slapd`` (directly or through another fixture) is marked
``ldap``, so ``pytest -m "not ldap"`` leaves them out; and every test marked ``ldap``
gets ``slapd`` started, so a missing slapd fails it with the install instructions.
The same goes for ``samba_dc`` and the ``ad`` marker.
"""

from __future__ import annotations

import contextlib
import itertools
import os
from collections.abc import Iterator

import ldap3
import pytest
from ldap3.core.exceptions import LDAPException

from tests.support import samba
from tests.support.configuration import PASSWORD
from tests.support.samba import SambaDC, SambaError
from tests.support.slapd import Slapd, SlapdError, delete_subtree, start_slapd

_ou_numbers = itertools.count(1)


@pytest.fixture(scope="session")
def slapd() -> Iterator[Slapd]:
    """A private slapd for the whole session (see tests/support/slapd.py)."""
    try:
        server = start_slapd()
    except SlapdError as error:
        pytest.fail(f"Cannot start the private slapd: {error}", pytrace=False)
    try:
        yield server
    finally:
        server.destroy()


@pytest.fixture
def ldap_connection(slapd: Slapd) -> Iterator[ldap3.Connection]:
    """A connection bound as the admin DN (ldap3 SYNC strategy)."""
    slapd.start()  # a no-op unless an earlier test left it stopped
    connection = slapd.connection()
    try:
        yield connection
    finally:
        with contextlib.suppress(LDAPException):  # the test may have stopped slapd
            connection.unbind()


@pytest.fixture
def ldap_ou(slapd: Slapd) -> Iterator[str]:
    """The DN of a new, empty ``ou=t<N>`` (with ``ou=people`` and ``ou=groups``)."""
    slapd.start()
    dn = f"ou=t{next(_ou_numbers)},{slapd.base_dn}"
    connection = slapd.connection(raise_exceptions=True)
    try:
        connection.add(dn, ["organizationalUnit"])
        connection.add(f"ou=people,{dn}", ["organizationalUnit"])
        connection.add(f"ou=groups,{dn}", ["organizationalUnit"])
    finally:
        connection.unbind()
    yield dn
    slapd.start()  # the test may have stopped it
    connection = slapd.connection(raise_exceptions=True)
    try:
        delete_subtree(connection, dn)
    finally:
        connection.unbind()


@pytest.fixture
def ldap_password(monkeypatch: pytest.MonkeyPatch) -> str:
    """The example's bind password, in ``JIM_LDAP_PASSWORD`` for the test."""
    monkeypatch.setenv("JIM_LDAP_PASSWORD", PASSWORD)
    return PASSWORD


@pytest.fixture(autouse=True)
def _ldap_tests_get_slapd(request: pytest.FixtureRequest) -> None:
    """A test marked ``ldap`` gets the session slapd even when it names no LDAP fixture,
    so a missing slapd fails it with the install instructions instead of a confusing
    connection error."""
    if request.node.get_closest_marker("ldap"):
        request.getfixturevalue("slapd")


@pytest.fixture(scope="session")
def samba_dc() -> SambaDC:
    """The run's domain controller (see tests/support/samba.py); the run stops it."""
    try:
        return samba.shared_dc()
    except SambaError as error:
        pytest.fail(f"Cannot start the Samba domain controller: {error}", pytrace=False)


@pytest.fixture
def ad_connection(samba_dc: SambaDC) -> Iterator[ldap3.Connection]:
    """A connection bound as Administrator, for setting up and inspecting data."""
    samba_dc.start()  # a no-op unless an earlier test left it stopped
    connection = samba_dc.connection()
    try:
        yield connection
    finally:
        with contextlib.suppress(LDAPException):
            connection.unbind()


@pytest.fixture
def ad_ou(samba_dc: SambaDC) -> Iterator[str]:
    """The DN of a new ``OU=t<N>`` of this worker, with ``OU=people``, ``OU=groups`` and
    ``OU=disabled``; it and everything beneath it are deleted afterwards."""
    samba_dc.start()
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    dn = f"OU=t-{worker}-{os.getpid()}-{next(_ou_numbers)},{samba_dc.managed_ou}"
    connection = samba_dc.connection(raise_exceptions=True)
    try:
        for ou in (dn, f"OU=people,{dn}", f"OU=groups,{dn}", f"OU=disabled,{dn}"):
            connection.add(ou, ["organizationalUnit"])
    finally:
        connection.unbind()
    yield dn
    samba_dc.start()  # the test may have stopped it
    connection = samba_dc.connection(raise_exceptions=True)
    try:
        connection.delete(dn, controls=[(_TREE_DELETE, True, None)])
    finally:
        connection.unbind()


#: LDAP_SERVER_TREE_DELETE_OID: delete an entry and everything beneath it at once.
_TREE_DELETE = "1.2.840.113556.1.4.805"


@pytest.fixture(autouse=True)
def _ad_tests_get_samba(request: pytest.FixtureRequest) -> None:
    """A test marked ``ad`` gets the run's domain controller even when it names no AD
    fixture, so a missing samba fails it with the install instructions."""
    if request.node.get_closest_marker("ad"):
        request.getfixturevalue("samba_dc")


def pytest_configure(config: pytest.Config) -> None:
    if not hasattr(config, "workerinput"):  # the run's first process
        samba.prepare_run()


def pytest_unconfigure(config: pytest.Config) -> None:
    if not hasattr(config, "workerinput"):
        samba.finish_run()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        fixtures = getattr(item, "fixturenames", ())
        if "slapd" in fixtures:
            item.add_marker(pytest.mark.ldap)
        if "samba_dc" in fixtures:
            item.add_marker(pytest.mark.ad)
