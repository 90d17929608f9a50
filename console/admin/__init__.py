"""The admin of every model, one module per area (imported here, so that the admin's
autodiscovery of ``console.admin`` registers them all)."""

from django.contrib import admin

from console.admin import (  # noqa: F401
    access,
    approvals,
    audit,
    confirmation,
    connectors,
    exports,
    interventions,
    login,
    metaverse,
    runs,
    task_queue,
)

admin.site.site_header = "JIM identity sync"
admin.site.site_title = "JIM"
admin.site.index_title = "Administration"
