"""JIM's URLs: the admin is the console; the HTMX pages and the API sit beside it."""

from django.contrib import admin
from django.templatetags.static import static
from django.urls import include, path
from django.views.generic import RedirectView


class FaviconRedirect(RedirectView):
    """``/favicon.ico``, which browsers ask for on every page, is JIM's SVG icon.

    The URL is resolved per request: with hashed static file names it exists only once
    ``collectstatic`` has run, not when this module is imported.
    """

    permanent = True

    def get_redirect_url(self, *args, **kwargs) -> str:
        return static("jim/favicon.svg")


urlpatterns = [
    path("favicon.ico", FaviconRedirect.as_view(), name="favicon"),
    path("admin/", admin.site.urls),
    path("api/v1/", include("api.urls")),
    path("", include("console.urls")),
]
