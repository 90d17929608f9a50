"""The Active Directory example (examples/active-directory.yaml, which
docs/connectors/active-directory.md embeds) is checked and applied by `jim apply`, so
it cannot rot."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from django.conf import settings

from connectors.models import ConnectedSystem, ConnectedSystemAttribute, ConnectedSystemObjectType
from metaverse.models import SyncRule
from tests.support.cli import jim

pytestmark = pytest.mark.django_db

EXAMPLES = Path(settings.BASE_DIR) / "examples"
AD_EXAMPLE = EXAMPLES / "active-directory.yaml"
PASSWORD = "Example-Service-Pa55"


@pytest.fixture
def example_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the example, beside copies of its CSV files."""
    monkeypatch.setenv("JIM_AD_PASSWORD", PASSWORD)
    for name in ("hr.csv", "groups.csv", "active-directory.yaml"):
        shutil.copy(EXAMPLES / name, tmp_path / name)
    return tmp_path / "active-directory.yaml"


def test_the_example_passes_the_check(example_file: Path) -> None:
    status, out, err = jim("apply", str(example_file), "--check")

    assert status == 0, err
    assert "would create connected system 'AD'" in out
    assert "valid;" in out
    assert not ConnectedSystem.objects.exists()


def test_the_example_applies(example_file: Path) -> None:
    status, _, err = jim("apply", str(example_file))

    assert status == 0, err
    ad = ConnectedSystem.objects.get(name="AD")
    assert ad.connector == "ldap"
    assert ad.settings["url"].startswith("ldaps://")
    assert ad.settings["bind_dn"] == "CN=jim-sync,OU=Service Accounts,DC=example,DC=org"
    assert "bind_password" not in ad.settings
    assert ad.secret_settings["bind_password"] == PASSWORD
    types = {t.name: t for t in ConnectedSystemObjectType.objects.filter(connected_system=ad)}
    assert set(types) == {"user", "group"}
    for object_type in types.values():
        assert object_type.external_id_attribute == "objectGUID"
        assert object_type.secondary_external_id_attribute == "dn"
    account_name = ConnectedSystemAttribute.objects.get(
        object_type=types["user"], name="sAMAccountName"
    )
    assert account_name.writability == "write_once"
    users_out = SyncRule.objects.get(name="AD users out")
    assert users_out.dn_template.startswith("CN={{ mv.displayName }},OU=People,")
    assert users_out.enforce_state
    assert users_out.deprovision_action == "disable"
    assert users_out.delete_after_days == 30
    assert users_out.initial_password == {"attribute": "unicodePwd", "length": 16}
    assert SyncRule.objects.count() == 5


def test_the_docs_show_the_example_as_it_is() -> None:
    doc = (Path(settings.BASE_DIR) / "docs" / "connectors" / "active-directory.md").read_text()
    shown = doc.split("<!-- examples/active-directory.yaml -->\n```yaml\n", 1)[1].split("```", 1)[0]

    assert shown == AD_EXAMPLE.read_text()
