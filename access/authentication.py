"""DRF authentication by API key (``Authorization: Bearer …``)."""

from __future__ import annotations

from rest_framework.authentication import BaseAuthentication


class ApiKeyAuthentication(BaseAuthentication):
    """Placeholder until API keys land: authenticates nobody."""

    def authenticate(self, request):
        return None
