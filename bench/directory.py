"""The benchmarks' directory: the test rig's slapd (tests/support/slapd.py), set up as
docs/openldap.md tells an administrator to — JIM binds as the service account, not
the rootdn, under OpenLDAP's default size limit — and syncing every commit to disk, as
a production directory does. ``durable=False`` (the benchmarks' ``--no-sync``) skips
the syncs, to show what they cost."""

from __future__ import annotations

from typing import Any

from tests.support.slapd import Slapd, service_settings, start_slapd


def start_directory(*, durable: bool = True) -> Slapd:
    """A new private slapd; the caller must :meth:`Slapd.destroy` it."""
    return start_slapd(durable=durable)


def connector_settings(slapd: Slapd, **overrides: Any) -> dict[str, Any]:
    """An ldap connected system's settings: bound as the service account."""
    return service_settings(slapd, **overrides)
