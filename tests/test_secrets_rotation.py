"""`jim rotate-secrets` (jim_project/cli/secrets.py) on PostgreSQL: every stored secret
encrypted again under JIM_ENCRYPTION_KEY, the old scheme (a key derived from
SECRET_KEY) migrated, and a secret no key opens refused with nothing changed."""

from __future__ import annotations

import base64
import io
import json

import pytest
from cryptography.fernet import Fernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.core.management import call_command
from django.db import connection

from connectors.models import ConnectedSystem
from jim_project.cli.secrets import secret_columns
from tests.builders import make_connected_system

pytestmark = pytest.mark.django_db

OLD_KEY = "the-installation-key-before-rotation"
NEW_KEY = "the-installation-key-after-rotation!"
OLD_SECRET_KEY = "django-secret-key-of-an-installation-from-before-issue-13"


def jim(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command("jim", *args, stdout=out, stderr=err)
        status = 0
    except SystemExit as exit_:
        status = int(exit_.code or 0)
    return status, out.getvalue(), err.getvalue()


def raw_column(system: ConnectedSystem) -> str:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT secret_settings FROM connectors_connectedsystem WHERE id = %s", [system.pk]
        )
        return cursor.fetchone()[0]


def write_raw_column(system: ConnectedSystem, stored: str) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE connectors_connectedsystem SET secret_settings = %s WHERE id = %s",
            [stored, system.pk],
        )


def old_scheme_token(secret_key: str, value: dict) -> str:
    """What JIM stored before it had its own key: Fernet under HKDF(SECRET_KEY)."""
    key = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=b"jim-secrets", info=b"connected-system"
    ).derive(secret_key.encode())
    fernet = Fernet(base64.urlsafe_b64encode(key))
    return "fernet:" + fernet.encrypt(json.dumps(value, sort_keys=True).encode()).decode()


def system(name: str, password: str | None) -> ConnectedSystem:
    secrets = {"bind_password": password} if password else {}
    return make_connected_system(
        name, "ldap", object_type=None, profiles=(), secret_settings=secrets
    )


@pytest.fixture
def under_old_key(settings) -> list[ConnectedSystem]:
    settings.JIM_ENCRYPTION_KEY = OLD_KEY
    return [system("Directory", "pw-directory"), system("Mail", "pw-mail"), system("HR", None)]


def test_every_encrypted_field_of_every_model_is_found():
    assert [str(column) for column in secret_columns()] == [
        "connectors.ConnectedSystem.secret_settings"
    ]


def test_rotation_round_trip(settings, under_old_key):
    before = {s.pk: raw_column(s) for s in under_old_key}
    settings.JIM_ENCRYPTION_KEY = NEW_KEY
    settings.JIM_ENCRYPTION_KEY_PREVIOUS = [OLD_KEY]

    status, out, err = jim("rotate-secrets")

    assert (status, err) == (0, "")
    assert (
        "connectors.ConnectedSystem.secret_settings: 3 re-encrypted (3 were under an older key)"
        in out
    )
    assert "3 secret(s) now under JIM_ENCRYPTION_KEY; 3 were under a previous key" in out
    assert all(raw_column(s) != before[s.pk] for s in under_old_key)
    settings.JIM_ENCRYPTION_KEY_PREVIOUS = []  # the old key is no longer needed
    assert {s.name: s.secret_settings for s in ConnectedSystem.objects.all()} == {
        "Directory": {"bind_password": "pw-directory"},
        "Mail": {"bind_password": "pw-mail"},
        "HR": {},
    }
    # Rotating again finds everything under the current key.
    status, out, _ = jim("rotate-secrets")
    assert status == 0 and "3 re-encrypted (0 were under an older key)" in out


def test_the_old_scheme_migrates_with_the_old_secret_key_as_a_previous_key(settings):
    directory = system("Directory", None)
    write_raw_column(directory, old_scheme_token(OLD_SECRET_KEY, {"bind_password": "legacy"}))
    settings.JIM_ENCRYPTION_KEY = NEW_KEY
    settings.JIM_ENCRYPTION_KEY_PREVIOUS = [OLD_SECRET_KEY]

    status, out, _ = jim("rotate-secrets")

    assert status == 0 and "1 were under a previous key" in out
    settings.JIM_ENCRYPTION_KEY_PREVIOUS = []
    settings.SECRET_KEY = "whatever-django-signs-with-now"
    fresh = ConnectedSystem.objects.get(pk=directory.pk)
    assert fresh.secret_settings == {"bind_password": "legacy"}


def test_a_secret_no_key_opens_is_named_and_nothing_is_rotated(settings, under_old_key):
    stranger = system("Stranger", None)
    write_raw_column(stranger, old_scheme_token("a-key-nobody-configured", {"x": "y"}))
    before = {s.pk: raw_column(s) for s in [*under_old_key, stranger]}
    settings.JIM_ENCRYPTION_KEY = NEW_KEY
    settings.JIM_ENCRYPTION_KEY_PREVIOUS = [OLD_KEY]

    status, out, err = jim("rotate-secrets")

    assert status == 2 and out == ""
    assert err.startswith(
        f"jim rotate-secrets: connected system 'Stranger' (connectors.ConnectedSystem "
        f"pk={stranger.pk}), field secret_settings: Cannot decrypt"
    )
    assert "Add that key to JIM_ENCRYPTION_KEY_PREVIOUS" in err
    assert err.endswith("Nothing was changed.\n")
    assert {s.pk: raw_column(s) for s in [*under_old_key, stranger]} == before


def test_the_wrong_previous_key_is_refused(settings, under_old_key):
    before = {s.pk: raw_column(s) for s in under_old_key}
    settings.JIM_ENCRYPTION_KEY = NEW_KEY
    settings.JIM_ENCRYPTION_KEY_PREVIOUS = ["not-the-key-these-were-stored-with"]

    status, _, err = jim("rotate-secrets")

    assert status == 2 and "connected system 'Directory'" in err
    assert {s.pk: raw_column(s) for s in under_old_key} == before


def test_a_plaintext_secret_is_refused_by_name(settings, under_old_key):
    write_raw_column(under_old_key[1], '{"bind_password": "plain"}')
    settings.JIM_ENCRYPTION_KEY_PREVIOUS = []

    status, _, err = jim("rotate-secrets")

    assert status == 2
    assert "connected system 'Mail'" in err and "is not encrypted" in err


def test_without_an_encryption_key_nothing_is_rotated(settings, under_old_key):
    settings.JIM_ENCRYPTION_KEY = ""

    status, _, err = jim("rotate-secrets")

    assert status == 2 and "JIM_ENCRYPTION_KEY is not set" in err
