"""The OpenAPI description of the API: every operation lists the errors it can answer,
in the one error shape of :mod:`api.errors`."""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import OpenApiResponse
from rest_framework import serializers


class ErrorDetailSerializer(serializers.Serializer):
    code = serializers.CharField(help_text="Stable, for programs: not_found, invalid, …")
    message = serializers.CharField(help_text="A sentence for a person: what to do.")
    details = serializers.DictField(help_text="What the message summarises (fields of a 400).")


class ErrorSerializer(serializers.Serializer):
    """Every error of the API has this shape."""

    error = ErrorDetailSerializer()


def error(description: str) -> OpenApiResponse:
    return OpenApiResponse(ErrorSerializer, description=description)


#: The errors any operation may answer.
COMMON_ERRORS = {
    "401": error("Not authenticated: send 'Authorization: Bearer <API key>'."),
    "403": error("The user lacks the permission the operation needs (the message names it)."),
    "429": error("Too many requests: wait as 'Retry-After' says."),
    "500": error("An unexpected error, logged; nothing was changed."),
}
#: The errors that depend on the kind of operation.
LIST_ERRORS = {"400": error("A filter or page parameter is not valid.")}
DETAIL_ERRORS = {"404": error("No object has this id.")}
ACTION_ERRORS = {
    "400": error("The request body is not valid."),
    "409": error("The act cannot be done now (the message says why)."),
}


class ApiSchema(AutoSchema):
    """drf-spectacular's schema, with the errors of each operation."""

    def _get_response_bodies(self, direction: Any = "response") -> dict[str, Any]:
        responses = super()._get_response_bodies(direction)
        errors = dict(COMMON_ERRORS)
        if "{" in self.path:
            errors |= DETAIL_ERRORS
        if self.method == "POST":
            errors |= ACTION_ERRORS
        elif self._is_list_view():
            errors |= LIST_ERRORS
        for code, response in errors.items():
            if code not in responses:
                responses[code] = self._get_response_for_code(response, code, direction=direction)
        return responses


class ApiKeyScheme(OpenApiAuthenticationExtension):
    """API keys, sent as ``Authorization: Bearer jim_…``."""

    target_class = "access.authentication.ApiKeyAuthentication"
    name = "ApiKey"

    def get_security_definition(self, auto_schema: Any) -> dict[str, Any]:
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "An API key created in the admin (shown once), as "
            "'Authorization: Bearer jim_…'. It acts with its owner's roles.",
        }
