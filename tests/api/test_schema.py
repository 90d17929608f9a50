"""The OpenAPI schema (valid, describing the actions and the error shape), the reference
page, and the console's links to both."""

from __future__ import annotations

import pytest
from django.core.management import call_command

from tests.api.endpoints import API

pytestmark = pytest.mark.django_db


def test_the_schema_is_valid_without_a_warning(tmp_path):
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(tmp_path / "s.yaml"))


def test_the_schema_describes_the_actions_and_the_errors(world, admin_client):
    schema = admin_client.get(f"{API}schema/", {"format": "json"}).json()
    paths = schema["paths"]
    run = paths["/api/v1/run-profiles/{id}/run/"]["post"]
    assert {"202", "400", "401", "403", "404", "409", "500"} <= set(run["responses"])
    for name in ("approve", "reject", "retry", "discard"):
        assert f"/api/v1/pending-exports/{{id}}/{name}/" in paths
        assert f"/api/v1/pending-exports/{name}/" in paths
    error = schema["components"]["schemas"]["Error"]
    assert error["properties"]["error"]["$ref"].endswith("/ErrorDetail")
    assert {"ApiKey", "cookieAuth"} <= set(schema["components"]["securitySchemes"])


def test_the_reference_page_works_offline(world, client_for):
    world.administrator.is_staff = True
    world.administrator.save()
    page = client_for(world.administrator).get(f"{API}docs/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "POST /api/v1/run-profiles/{id}/run/" in html
    assert "<script" not in html.split("</head>")[1]  # nothing runs in the page itself
    assert "cdn." not in html


def test_the_console_links_to_the_api(world, client_for):
    world.administrator.is_staff = True
    world.administrator.save()
    html = client_for(world.administrator).get("/admin/").content.decode()
    assert f'href="{API}docs/"' in html
    assert f'href="{API}schema/"' in html
    assert f'href="{API}"' in html
