"""Search across MVOs, CSOs and pending exports (the box in every page's header)."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from console.views import console_view, page_context


@console_view()
def search_page(request: HttpRequest) -> HttpResponse:
    query = request.GET.get("q", "").strip()
    return render(
        request,
        "console/search.html",
        page_context(request, "Search", search_query=query),
    )
