"""Where an entry says it came from: the door and address of the entry point, and the
receivers the API keys' signals will be connected to."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group, User
from django.http import HttpResponse
from django.test import RequestFactory

from audit.context import AuditContextMiddleware, current, using, via_of
from audit.models import AuditEntry
from audit.receivers import record_api_key_created, record_api_key_revoked, record_api_key_used
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


def test_the_api_key_receivers_record_who_what_and_where() -> None:
    owner = User.objects.create_user("integration", password="pw")
    key = Group.objects.create(name="stand-in for an API key")  # any model instance

    created = record_api_key_created(sender=None, key=key, actor=owner, address="192.0.2.1")
    used = record_api_key_used(sender=None, key=key, actor=owner, address="192.0.2.2")
    revoked = record_api_key_revoked(sender=None, key=key, actor=owner, address=None)

    assert [e.action for e in (created, used, revoked)] == [
        "api_key_created",
        "api_key_used",
        "api_key_revoked",
    ]
    assert used.via == "api" and used.address == "192.0.2.2"
    assert {e.actor for e in (created, used, revoked)} == {owner}
    assert created.object_repr == str(key) and created.object_type == "auth.group"
