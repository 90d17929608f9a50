"""What every view of the API shares: authentication answered 401, permissions
(:mod:`api.permissions`), the schema
(:mod:`api.schema`), and a 404 that names what was not found."""

from __future__ import annotations

from typing import Any

from django.http import Http404
from rest_framework import exceptions, viewsets

from api.pagination import ConfigurationPagination
from api.permissions import ReadAndWritePermissions
from api.schema import ApiSchema

#: The realm of the ``WWW-Authenticate`` header of a 401.
AUTHENTICATE_HEADER = 'Bearer realm="JIM API"'
MAX_ID = 2**63 - 1


class ApiViewMixin:
    """For every API view."""

    permission_classes = [ReadAndWritePermissions]
    schema = ApiSchema()

    def get_authenticate_header(self, request: Any) -> str:
        """A request without credentials is answered 401 (with this header), not 403."""
        return super().get_authenticate_header(request) or AUTHENTICATE_HEADER  # type: ignore[misc]


class ReadOnlyViewSet(ApiViewMixin, viewsets.ReadOnlyModelViewSet):
    """A list and a detail of one model; ids in URLs are integers."""

    lookup_value_converter = "int"
    pagination_class = ConfigurationPagination

    def get_object(self) -> Any:
        pk = self.kwargs.get(self.lookup_field, "")
        try:
            if int(pk) > MAX_ID:
                raise Http404
            return super().get_object()
        except Http404:
            meta = self.get_queryset().model._meta
            raise exceptions.NotFound(
                f"No {meta.verbose_name} has id {pk}: the list of "
                f"{meta.verbose_name_plural} says which exist."
            ) from None
