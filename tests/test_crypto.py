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
    settings.JIM_ENCRYPTION_KEY = "another-installation-key-of-32-characters"

    with pytest.raises(
        ImproperlyConfigured,
        match=r"neither JIM_ENCRYPTION_KEY nor any of the 0 key\(s\) in "
        r"JIM_ENCRYPTION_KEY_PREVIOUS is the key they were stored with",
    ):
        ConnectedSystem.objects.get(pk=directory.pk)


def test_the_secret_key_is_not_the_key(directory, settings):
    settings.SECRET_KEY = "a-rotated-secret-key"

    assert ConnectedSystem.objects.get(pk=directory.pk).secret_settings == {
        "bind_password": PASSWORD
    }


def test_a_previous_key_still_reads_and_the_current_key_writes(directory, settings):
    old_key = settings.JIM_ENCRYPTION_KEY
    settings.JIM_ENCRYPTION_KEY = "the-new-key-of-at-least-32-characters"
    settings.JIM_ENCRYPTION_KEY_PREVIOUS = ["some-even-older-key", old_key]

    fresh = ConnectedSystem.objects.get(pk=directory.pk)
    assert fresh.secret_settings == {"bind_password": PASSWORD}
    fresh.save()
    settings.JIM_ENCRYPTION_KEY_PREVIOUS = []
    assert ConnectedSystem.objects.get(pk=directory.pk).secret_settings == {
        "bind_password": PASSWORD
    }


@pytest.mark.parametrize("action", ["read", "write"])
def test_without_an_encryption_key_secrets_are_neither_stored_nor_read(directory, settings, action):
    settings.JIM_ENCRYPTION_KEY = ""

    with pytest.raises(ImproperlyConfigured, match="JIM_ENCRYPTION_KEY is not set") as error:
        if action == "read":
            ConnectedSystem.objects.get(pk=directory.pk)
        else:
            directory.save()
    assert "secrets.token_urlsafe(32)" in str(error.value)


def test_a_plaintext_value_in_the_column_is_refused(directory):
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE connectors_connectedsystem SET secret_settings = %s WHERE id = %s",
            ['{"bind_password": "plain"}', directory.pk],
        )

    with pytest.raises(ImproperlyConfigured, match="not encrypted"):
        ConnectedSystem.objects.get(pk=directory.pk)
