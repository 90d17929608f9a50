"""The CSO's admin page: "What would a sync do?" for those who may run.

The button posts to the console (:mod:`console.what_if`), which previews a sync of the
CSO and shows its outcome on a page of its own (or comes back here saying why not).
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse
from django.urls import reverse

from console.admin.runs import can_run


class CsoWhatIfMixin:
    """For :class:`~console.admin.connectors.ConnectorSpaceObjectAdmin`."""

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: Any = None
    ) -> HttpResponse:
        what_if_url = (
            reverse("console:cso-what-if", args=[int(object_id)])
            if str(object_id).isdigit() and can_run(request)
            else ""
        )
        extra_context = {**(extra_context or {}), "what_if_url": what_if_url}
        return super().change_view(request, object_id, form_url, extra_context)  # type: ignore[misc]
