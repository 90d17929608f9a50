"""Pagination of every list: cursors for the big tables, limit and offset for the rest.

The connector space, the metaverse, the execution items (RPEIs), the activities, the
pending exports and the audit trail grow with the objects JIM manages: their lists are
paged by cursor, newest first, which costs the same on the last page as on the first
and counts nothing. The configuration (systems, types, rules, profiles, schedules) is
small: it is paged by limit and offset, with a count.
"""

from __future__ import annotations

from typing import Any

from rest_framework import exceptions
from rest_framework.pagination import CursorPagination, LimitOffsetPagination

#: Objects on a page unless the client asks for another number.
PAGE_SIZE = 100
#: The most a client may ask for on one page.
MAX_PAGE_SIZE = 1000


class ConfigurationPagination(LimitOffsetPagination):
    """``?limit=&offset=``, with ``count``."""

    default_limit = PAGE_SIZE
    max_limit = MAX_PAGE_SIZE


class NewestFirstCursorPagination(CursorPagination):
    """``?cursor=`` from ``next``/``previous``, ``?page_size=``; newest first (by id)."""

    ordering = "-id"
    page_size = PAGE_SIZE
    page_size_query_param = "page_size"
    max_page_size = MAX_PAGE_SIZE

    def decode_cursor(self, request: Any) -> Any:
        """A cursor that is not one of ours is a 400 (DRF answers 404)."""
        try:
            return super().decode_cursor(request)
        except exceptions.NotFound:
            raise exceptions.ValidationError(
                {"cursor": ["Not a cursor of this list: follow a page's 'next' or 'previous'."]}
            ) from None
