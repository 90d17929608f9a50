"""URLs of the console pages (dashboard, live activity, MVO, history).

The URL names are a contract: the admin links to these pages by name
(``console:activity``, ``console:mvo`` …).
"""

from __future__ import annotations

from django.urls import path

from console import mvo as metaverse_views
from console import search as search_views
from console import undo as undo_views
from console import value_history, what_if
from console import views as run_views

app_name = "console"

urlpatterns = [
    path("", run_views.dashboard, name="home"),
    path("dashboard/", run_views.dashboard, name="dashboard"),
    path("dashboard/runs/", run_views.dashboard_runs, name="dashboard-runs"),
    path("run-profiles/<int:pk>/run/", run_views.run_profile_now, name="run-profile-run"),
    path(
        "run-profiles/<int:pk>/preview/",
        run_views.preview_run_profile,
        name="run-profile-preview",
    ),
    path("schedules/<int:pk>/run/", run_views.run_schedule, name="schedule-run"),
    path("activities/<int:pk>/", run_views.activity_page, name="activity"),
    path("activities/<int:pk>/cancel/", run_views.cancel_activity, name="activity-cancel"),
    path(
        "activities/<int:pk>/override-threshold/",
        run_views.override_threshold,
        name="activity-override-threshold",
    ),
    path("activities/<int:pk>/undo/", undo_views.undo_page, name="activity-undo"),
    path("metaverse/<int:pk>/", metaverse_views.mvo_page, name="mvo"),
    path(
        "metaverse/<int:pk>/value-history/",
        value_history.mvo_value_history,
        name="mvo-value-history",
    ),
    # Before mvo-action, whose <action> would take "what-if".
    path("metaverse/<int:pk>/what-if/", what_if.mvo_what_if, name="mvo-what-if"),
    path("metaverse/<int:pk>/<str:action>/", metaverse_views.mvo_action, name="mvo-action"),
    path("connector-space/<int:pk>/what-if/", what_if.cso_what_if, name="cso-what-if"),
    path("what-if/<int:pk>/", what_if.what_if_page, name="what-if"),
    path("search/", search_views.search_page, name="search"),
    path(
        "connector-space/<int:pk>/value-history/",
        value_history.cso_value_history,
        name="cso-value-history",
    ),
    path(
        "run-profiles/<int:pk>/history/",
        run_views.run_profile_history,
        name="run-profile-history",
    ),
]
