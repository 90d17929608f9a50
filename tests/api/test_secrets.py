"""No API answer carries a secret: Vault's bind password is set (and a copy wrongly
kept among its plain settings, as a hand-edited database might hold it), every list and
every detail of every resource is read, and the password appears in none of them."""

from __future__ import annotations

import pytest

from connectors.models import ConnectedSystem
from tests.api.endpoints import API, RESOURCES, detail_urls
from tests.api.world import SECRET

pytestmark = pytest.mark.django_db


def crawl(client) -> dict[str, bytes]:
    """Every page of every list, and every detail, of the API."""
    pages = {}
    for url in [API, *RESOURCES]:
        while url:
            response = client.get(url)
            assert response.status_code == 200, url
            pages[url] = response.content
            url = response.json().get("next") if url != API else None
    for url in detail_urls():
        response = client.get(url)
        assert response.status_code == 200, url
        pages[url] = response.content
    return pages


def test_no_answer_holds_a_secret(world, admin_client):
    ConnectedSystem.objects.filter(pk=world.vault.pk).update(
        settings={**world.vault.settings, "bind_password": SECRET, "api_token": SECRET}
    )
    assert ConnectedSystem.objects.get(pk=world.vault.pk).secret_settings == {
        "bind_password": SECRET
    }
    pages = crawl(admin_client)
    assert len(pages) > 50
    leaking = [url for url, content in pages.items() if SECRET.encode() in content]
    assert leaking == []
    vault = admin_client.get(f"{API}connected-systems/{world.vault.pk}/").json()
    assert "secret_settings" not in vault
    assert set(vault["settings"]) == {"url", "base_dn", "bind_dn"}


def test_the_schema_has_no_secret_field(world, admin_client):
    schema = admin_client.get(f"{API}schema/", {"format": "json"}).json()
    system = schema["components"]["schemas"]["ConnectedSystem"]["properties"]
    assert "secret_settings" not in system
    assert "persisted_connector_data" not in system
