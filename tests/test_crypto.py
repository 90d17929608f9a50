"""Connected-system secrets are encrypted at rest (core/crypto.py)."""

from __future__ import annotations

import io
import json

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.db import connection

from connectors.models import ConnectedSystem
from tests.builders import make_connected_system

pytestmark = pytest.mark.django_db

PASSWORD = "Corr3ct-Horse-Battery"


def _raw_secret_column(system: ConnectedSystem) -> str:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT secret_settings FROM connectors_connectedsystem WHERE id = %s", [system.pk]
        )
        return cursor.fetchone()[0]


@pytest.fixture
def directory() -> ConnectedSystem:
    return make_connected_system(
        "Directory",
        "ldap",
        {"url": "ldap://127.0.0.1:389", "bind_dn": "cn=admin,dc=example,dc=org"},
        object_type=None,
        profiles=(),
        secret_settings={"bind_password": PASSWORD},
    )


def test_the_stored_secret_is_ciphertext(directory):
    raw = _raw_secret_column(directory)

    assert raw.startswith("fernet:")
    assert PASSWORD not in raw
    assert "bind_password" not in raw


def test_secret_settings_round_trip(directory):
    fresh = ConnectedSystem.objects.get(pk=directory.pk)

    assert fresh.secret_settings == {"bind_password": PASSWORD}
    assert fresh.all_settings()["bind_password"] == PASSWORD
    assert fresh.all_settings()["url"] == "ldap://127.0.0.1:389"


def test_the_same_secret_is_stored_differently_each_time(directory):
    first = _raw_secret_column(directory)
    directory.save()

    assert _raw_secret_column(directory) != first  # Fernet tokens carry a random IV


def test_no_secrets_are_stored_encrypted_too():
    system = make_connected_system("HR", object_type=None, profiles=())

    assert _raw_secret_column(system).startswith("fernet:")
    assert ConnectedSystem.objects.get(pk=system.pk).secret_settings == {}


def test_dumpdata_carries_ciphertext_only(directory):
    out = io.StringIO()
    call_command("dumpdata", "connectors.connectedsystem", stdout=out)

    dumped = out.getvalue()
    assert PASSWORD not in dumped
    (record,) = json.loads(dumped)
    assert record["fields"]["secret_settings"].startswith("fernet:")


def test_dumpdata_output_loads_back_with_the_secret(directory, tmp_path):
    fixture = tmp_path / "systems.json"
    call_command("dumpdata", "connectors.connectedsystem", output=str(fixture))
    ConnectedSystem.objects.all().delete()

    call_command("loaddata", str(fixture), verbosity=0)

    assert ConnectedSystem.objects.get(name="Directory").secret_settings == {
        "bind_password": PASSWORD
    }


def test_a_different_key_cannot_read_the_secrets(directory, settings):
    settings.JIM_ENCRYPTION_KEY = "another-installation-key"

    with pytest.raises(ImproperlyConfigured, match=r"JIM_ENCRYPTION_KEY .* differs"):
        ConnectedSystem.objects.get(pk=directory.pk)


def test_without_an_encryption_key_the_secret_key_is_the_key(directory, settings):
    assert not settings.JIM_ENCRYPTION_KEY
    settings.SECRET_KEY = "a-rotated-secret-key"

    with pytest.raises(ImproperlyConfigured, match="differs from the key"):
        ConnectedSystem.objects.get(pk=directory.pk)


def test_an_explicit_encryption_key_survives_a_secret_key_change(settings):
    settings.JIM_ENCRYPTION_KEY = "jim-encryption-passphrase"
    system = make_connected_system(
        "Directory",
        "ldap",
        object_type=None,
        profiles=(),
        secret_settings={"bind_password": PASSWORD},
    )
    settings.SECRET_KEY = "a-rotated-secret-key"

    assert ConnectedSystem.objects.get(pk=system.pk).secret_settings["bind_password"] == PASSWORD


def test_a_plaintext_value_in_the_column_is_refused(directory):
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE connectors_connectedsystem SET secret_settings = %s WHERE id = %s",
            ['{"bind_password": "plain"}', directory.pk],
        )

    with pytest.raises(ImproperlyConfigured, match="not encrypted"):
        ConnectedSystem.objects.get(pk=directory.pk)
