"""Session-wide fixtures: the private OpenLDAP slapd and per-test LDAP subtrees.

The PostgreSQL side is chosen earlier, by the ``tests.support.postgres`` plugin
(see docs/testing.md). Each pytest-xdist worker starts its own slapd.

Fixtures:
    slapd            (session) a running :class:`tests.support.slapd.Slapd`.
    ldap_connection  a SYNC ldap3 connection bound as the admin, unbound afterwards.
    ldap_ou          a fresh ``ou=t<N>,dc=example,dc=org`` holding ``ou=people`` and
                     ``ou=groups``; deleted with everything beneath it afterwards.
    ldap_password    ``JIM_LDAP_PASSWORD`` set, for applying the spec's example
                     (:mod:`tests.support.configuration`).

Every test that uses ``slapd`` (directly or through another fixture) is marked
``ldap``, so ``pytest -m "not ldap"`` leaves them out; and every test marked ``ldap``
gets ``slapd`` started, so a missing slapd fails it with the install instructions.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Iterator

import ldap3
import pytest
from ldap3.core.exceptions import LDAPException

from tests.support.configuration import PASSWORD
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


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "slapd" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.ldap)
