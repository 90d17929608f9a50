"""The API's own description: the OpenAPI schema, the browsable root, and a reference
page that works offline.

The reference page (``/api/v1/docs/``) is rendered on the server from the same schema,
with the admin's look: no script, nothing from a CDN (drf-spectacular's Swagger UI and
Redoc pages load their code from jsdelivr, which an installation without internet
cannot reach, and which would run on the console's origin). DRF's browsable API at
``/api/v1/`` lets a signed-in person try each endpoint from the browser.
"""

from __future__ import annotations

from typing import Any

from django.contrib.admin.views.decorators import staff_member_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.decorators import method_decorator
from django.views import View
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.views import SpectacularAPIView
from rest_framework.permissions import IsAuthenticated
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.routers import APIRootView

from api.views.base import ApiViewMixin

METHODS = ("get", "post", "put", "patch", "delete")


class ApiRootView(ApiViewMixin, APIRootView):
    """JIM's REST API: its resources (follow a link). The OpenAPI schema is at
    /api/v1/schema/, a reference page at /api/v1/docs/."""

    permission_classes = [IsAuthenticated]
    schema = None  # not an operation of the schema


class SchemaView(ApiViewMixin, SpectacularAPIView):
    """The OpenAPI 3 schema of the API (YAML; ``?format=json`` for JSON)."""

    permission_classes = [IsAuthenticated]

    def handle_exception(self, exc: Exception) -> Response:
        """Errors in JSON, like every error of the API (not in the schema's YAML)."""
        self.request.accepted_renderer = JSONRenderer()
        self.request.accepted_media_type = JSONRenderer.media_type
        return super().handle_exception(exc)


def operations(schema: dict[str, Any]) -> list[dict[str, Any]]:
    """The schema's operations in path order, each with what the page shows."""
    found = []
    for path, item in schema.get("paths", {}).items():
        for method in METHODS:
            operation = item.get(method)
            if operation is None:
                continue
            found.append(
                {
                    "method": method.upper(),
                    "path": path,
                    "summary": operation.get("summary", ""),
                    "description": operation.get("description", ""),
                    "parameters": operation.get("parameters", []),
                    "responses": sorted(operation.get("responses", {})),
                    "tag": (operation.get("tags") or [""])[0],
                }
            )
    return found


@method_decorator(staff_member_required, name="dispatch")
class DocsView(View):
    """The reference page: every operation, its parameters and its answers."""

    def get(self, request: HttpRequest) -> HttpResponse:
        schema = SchemaGenerator().get_schema(request=None, public=True)
        return render(
            request,
            "api/docs.html",
            {
                "title": "REST API reference",
                "info": schema.get("info", {}),
                "operations": operations(schema),
            },
        )
