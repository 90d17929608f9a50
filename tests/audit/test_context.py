"""Where an entry says it came from: the door and address of the entry point, and the
trail of an API key's life."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.http import HttpResponse
from django.test import RequestFactory

from access import keys
from access.keys import default_expiry
from access.models import ApiKey
from audit.context import AuditContextMiddleware, current, using, via_of
from audit.models import AuditEntry
from audit.recording import record

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("path", "via"),
    [("/api/v1/pending-exports/", "api"), ("/admin/exports/", "admin"), ("/", "console")],
)
def test_the_middleware_records_the_door_and_address_of_each_request(path, via) -> None:
    seen = []

    def view(request):
        seen.append(current())
        record("someone", "changed", reason="inside the request")
        return HttpResponse()

    request = RequestFactory().get(path, REMOTE_ADDR="192.0.2.7")
    AuditContextMiddleware(view)(request)

    assert via_of(path) == via
    assert (seen[0].via, seen[0].address) == (via, "192.0.2.7")
    entry = AuditEntry.objects.get()
    assert (entry.via, entry.address) == (via, "192.0.2.7")
    assert current().via == "system"  # reset after the request


def test_an_explicit_door_wins_over_the_context() -> None:
    with using(via="cli", actor_name="root"):
        entry = record(None, "changed", via="api", address="198.51.100.1")
        unnamed = record(None, "changed")
    assert (entry.via, entry.address, entry.actor_name) == ("api", "198.51.100.1", "root")
    assert (unnamed.via, unnamed.actor_name) == ("cli", "root")


def test_an_api_keys_creation_use_and_revocation_are_on_the_trail() -> None:
    admin = User.objects.create_user("keymaster", password="pw")
    owner = User.objects.create_user("integration", password="pw")
    api_key = ApiKey(name="HR feed", owner=owner, expires_at=default_expiry())

    key = keys.issue(api_key, created_by=admin)
    keys.authenticate(key, "192.0.2.2")
    keys.authenticate(key, "192.0.2.3")  # within the minute: not recorded again
    keys.revoke([api_key], by=admin)

    entries = list(AuditEntry.objects.order_by("pk"))
    assert [(e.action, e.actor) for e in entries] == [
        ("api_key_created", admin),
        ("api_key_used", owner),
        ("api_key_revoked", admin),
    ]
    used = entries[1]
    assert (used.via, used.address) == ("api", "192.0.2.2")
    assert entries[0].object_type == "access.apikey"
    assert all(key not in str(e.object_repr) + str(e.changes) for e in entries)
