"""URLs of the REST API, under ``/api/v1/``: one router for the resources, the
OpenAPI schema and its docs page, and a JSON 404 for every other ``/api/`` URL."""

from __future__ import annotations

from django.urls import path, re_path
from rest_framework.routers import DefaultRouter

from api.docs import ApiRootView, DocsView, SchemaView
from api.errors import not_found
from api.views.exports import ApprovalAuditViewSet, PendingExportViewSet
from api.views.objects import ConnectorSpaceObjectViewSet, MetaverseObjectViewSet
from api.views.previews import PreviewedExportListView
from api.views.runs import (
    ActivityViewSet,
    ExecutionItemViewSet,
    RunProfileViewSet,
    ScheduleViewSet,
)
from api.views.sync_rules import SyncRuleViewSet
from api.views.systems import (
    ConnectedSystemViewSet,
    MetaverseObjectTypeViewSet,
    ObjectTypeViewSet,
)
from api.views.undo import ActivityUndoView

app_name = "api"


class Router(DefaultRouter):
    APIRootView = ApiRootView
    include_format_suffixes = False


router = Router(use_regex_path=False)
router.register("connected-systems", ConnectedSystemViewSet, basename="connected-system")
router.register("object-types", ObjectTypeViewSet, basename="object-type")
router.register(
    "metaverse-object-types", MetaverseObjectTypeViewSet, basename="metaverse-object-type"
)
router.register("sync-rules", SyncRuleViewSet, basename="sync-rule")
router.register("run-profiles", RunProfileViewSet, basename="run-profile")
router.register("schedules", ScheduleViewSet, basename="schedule")
router.register("activities", ActivityViewSet, basename="activity")
router.register("execution-items", ExecutionItemViewSet, basename="execution-item")
router.register(
    "connector-space-objects", ConnectorSpaceObjectViewSet, basename="connector-space-object"
)
router.register("metaverse-objects", MetaverseObjectViewSet, basename="metaverse-object")
router.register("pending-exports", PendingExportViewSet, basename="pending-export")
router.register("approval-audit", ApprovalAuditViewSet, basename="approval-audit")

urlpatterns = [
    path("schema/", SchemaView.as_view(), name="schema"),
    path("docs/", DocsView.as_view(), name="docs"),
    path("activities/<int:pk>/undo/", ActivityUndoView.as_view(), name="activity-undo"),
    path(
        "activities/<int:pk>/previewed-exports/",
        PreviewedExportListView.as_view(),
        name="activity-previewed-exports",
    ),
    *router.urls,
    re_path(r"^(?P<path>.*)$", not_found),
]
