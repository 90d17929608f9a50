"""Sync rules, with their joins and attribute flows."""

from __future__ import annotations

from api.filters import SyncRuleFilter
from api.serializers.sync_rules import SyncRuleSerializer
from api.views.base import ReadOnlyViewSet
from metaverse.models import SyncRule


class SyncRuleViewSet(ReadOnlyViewSet):
    """Sync rules (import and export), each with its joins and attribute flows."""

    queryset = SyncRule.objects.prefetch_related("joins", "flows")
    serializer_class = SyncRuleSerializer
    filterset_class = SyncRuleFilter
