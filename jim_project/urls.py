"""JIM's URLs: the admin is the console; the HTMX pages and the API sit beside it."""

from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/v1/", include("api.urls")),
    path("", include("console.urls")),
]
