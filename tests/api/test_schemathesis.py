"""Schemathesis against the API's own OpenAPI schema: generated requests to every
operation, as an Administrator, over data a real cycle left (systems, CSOs, MVOs,
pending exports awaiting approval and failed), and no answer is a 500 or strays from
the schema.

Bounded and repeatable: a fixed number of examples per operation, derandomized (the
same requests every run), no shrinking, no example database; the requests go to the
WSGI application in this process, inside the test's transaction. Runs it queues are
django-q2 tasks in the ORM broker's table, which nothing runs here and the transaction
drops.

The checks: no 500, and every answer as the schema describes it. Not schemathesis'
checks of what the API accepts (a request the schema allows may still be a 400: a
cursor of another list, ``attribute`` without ``value``), nor of authentication (its
wrong API key travels with the test's session cookie, which rightly signs it in).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from django.test import Client
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.api.endpoints import API, RESOURCES

pytestmark = pytest.mark.django_db

#: Examples generated per operation (and again with an existing id, for an object's URL).
EXAMPLES = 20
#: No 500, and every answer as the schema describes it (status, type, body, headers).
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]
#: A session's CSRF secret: the cookie and the header must match.
CSRF = "a" * 32


@contextmanager
def connection_kept() -> Iterator[None]:
    """Keep the test's database connection (and its transaction) across requests, as
    Django's test client does: a request's end would otherwise close it."""
    for signal in (request_started, request_finished):
        signal.disconnect(close_old_connections)
    try:
        yield
    finally:
        for signal in (request_started, request_finished):
            signal.connect(close_old_connections)


def strategies_of(operation) -> list:
    """Requests to ``operation``: generated, and for a URL with an id, also with the id
    of an object that exists (most generated ids name none)."""
    strategies = [operation.as_strategy()]
    if "{id}" in operation.path:
        model = RESOURCES[operation.path.split("{id}")[0]]
        existing = model.objects.order_by("pk").values_list("pk", flat=True).first()
        strategies.append(operation.as_strategy(path_parameters={"id": existing}))
    return strategies


def test_no_generated_request_gets_a_500(world):
    browser = Client()
    browser.force_login(world.administrator)
    cookies = {"sessionid": browser.cookies["sessionid"].value, "csrftoken": CSRF}
    headers = {"X-CSRFToken": CSRF}
    schema = schemathesis.openapi.from_dict(browser.get(f"{API}schema/", {"format": "json"}).json())
    schema.app = get_wsgi_application()
    failures = []
    answered: Counter[int] = Counter()
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 30

    strategies = [
        (operation, strategy) for operation in operations for strategy in strategies_of(operation)
    ]
    for operation, strategy in strategies:

        @given(case=strategy)
        @settings(
            max_examples=EXAMPLES,
            derandomize=True,
            database=None,
            deadline=None,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        def check(case) -> None:
            response = case.call_and_validate(headers=headers, cookies=cookies, checks=CHECKS)
            answered[response.status_code] += 1

        try:
            with connection_kept():
                check()
        except Exception as exc:
            failures.append(f"{operation.label}: {exc}")
    assert failures == []
    # The run reached the data, and the actions did act, not only refuse.
    assert answered[200] > len(operations)
    assert answered[202] > 0
