"""A bind password never leaves JIM: not in `jim dump` or `dumpdata`, not in the logs,
the activity or its items of a run against the real slapd (bind refused or accepted),
not on the admin's pages, not on an error page. (API responses: tests/api.)

The password is a recognisable canary; every text JIM produced is searched for it."""

from __future__ import annotations

import contextlib
import io
import json
import logging
from typing import Any

import pytest
from django.core.management import call_command
from django.test import Client
from django.urls import reverse

from connectors.models import Activity, ConnectedSystem, RunProfileExecutionItem
from tests.builders import make_connected_system, run

pytestmark = pytest.mark.django_db

CANARY = "Canary-B1nd-Pa55word-7f3e9c"


def canary_account(slapd, ldap_ou: str) -> str:
    """An account under ``ldap_ou`` whose password is the canary; returns its DN."""
    dn = f"cn=canary,{ldap_ou}"
    connection = slapd.connection(raise_exceptions=True)
    try:
        connection.add(dn, ["person"], {"cn": "canary", "sn": "canary", "userPassword": CANARY})
    finally:
        connection.unbind()
    return dn


def directory(slapd, ldap_ou: str, bind_dn: str) -> ConnectedSystem:
    """An LDAP system binding as ``bind_dn`` with the canary as its password."""
    return make_connected_system(
        "Directory",
        "ldap",
        {"url": slapd.url, "bind_dn": bind_dn, "base_dn": ldap_ou},
        object_type="inetOrgPerson",
        external_id="entryUUID",
        container=f"ou=people,{ldap_ou}",
        secret_settings={"bind_password": CANARY},
    )


def texts_of(activity: Activity) -> list[str]:
    """Every text the run left in the database: the activity and its items."""
    texts = [activity.message, json.dumps(activity.counts, default=str)]
    for item in RunProfileExecutionItem.objects.filter(activity=activity):
        texts += [item.message, str(item.external_id), json.dumps(item.__dict__, default=str)]
    return texts


def jim(*args: str) -> str:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.suppress(SystemExit):  # its status is not what is tested here
        call_command("jim", *args, stdout=out, stderr=err)
    return out.getvalue() + err.getvalue()


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """Every record of every logger, DEBUG and up."""
    caplog.set_level(logging.DEBUG)
    return caplog


def everything_logged(logs: pytest.LogCaptureFixture) -> str:
    handler_text = logs.text
    records = "\n".join(
        f"{record.getMessage()} {record.args!r} {record.exc_text or ''}" for record in logs.records
    )
    return handler_text + records


def test_a_refused_bind_leaks_the_password_nowhere(slapd, ldap_ou, logs, capfd):
    system = directory(slapd, ldap_ou, slapd.service_dn)  # the canary is the wrong password

    activity = run(system, "Full Import")
    printed = jim("run", "Directory", "Full Import", "--json")

    assert activity.status == "failed"
    assert activity.message.endswith(
        f"refused the credentials of bind DN {slapd.service_dn!r}: invalidCredentials"
    )
    for text in [*texts_of(activity), printed, everything_logged(logs), *capfd.readouterr()]:
        assert CANARY not in text
    for later in Activity.objects.exclude(pk=activity.pk):
        assert later.status == "failed"
        assert not any(CANARY in text for text in texts_of(later))


def test_a_successful_run_leaks_the_password_nowhere(slapd, ldap_ou, logs, capfd):
    system = directory(slapd, ldap_ou, canary_account(slapd, ldap_ou))
    connection = slapd.connection(raise_exceptions=True)
    try:
        connection.add(
            f"uid=ann,ou=people,{ldap_ou}",
            ["inetOrgPerson"],
            {"uid": "ann", "cn": "Ann", "sn": "Lee"},
        )
    finally:
        connection.unbind()

    activity = run(system, "Full Import")
    printed = jim("run", "Directory", "Full Import", "--json")

    assert activity.status == "complete", activity.message
    assert activity.counts == {"added": 1}
    for text in [*texts_of(activity), printed, everything_logged(logs), *capfd.readouterr()]:
        assert CANARY not in text


def test_dumps_carry_no_password(slapd, ldap_ou, monkeypatch):
    directory(slapd, ldap_ou, slapd.service_dn)
    monkeypatch.delenv("JIM_DIRECTORY_BIND_PASSWORD", raising=False)

    dumped = jim("dump")
    everything = io.StringIO()
    call_command("dumpdata", stdout=everything)

    assert "bind_password: ${JIM_DIRECTORY_BIND_PASSWORD}" in dumped
    assert CANARY not in dumped
    assert CANARY not in everything.getvalue()


def admin_pages(system: ConnectedSystem, activity: Activity) -> dict[str, str]:
    return {
        "system": reverse("admin:connectors_connectedsystem_change", args=[system.pk]),
        "systems": reverse("admin:connectors_connectedsystem_changelist"),
        "history": reverse("admin:connectors_connectedsystem_history", args=[system.pk]),
        "activity": reverse("admin:connectors_activity_change", args=[activity.pk]),
        "activities": reverse("admin:connectors_activity_changelist"),
        "console activity": reverse("console:activity", args=[activity.pk]),
        "dashboard": "/",
    }


def test_no_admin_or_console_page_shows_the_password(slapd, ldap_ou, admin_client: Any):
    system = directory(slapd, ldap_ou, slapd.service_dn)
    activity = run(system, "Full Import")  # fails: its message is on the pages too

    for name, url in admin_pages(system, activity).items():
        response = admin_client.get(url)
        assert response.status_code == 200, name
        assert CANARY not in response.content.decode(), name


def test_an_error_page_shows_neither_the_password_nor_the_key(
    slapd, ldap_ou, admin_user, settings, logs
):
    """With DEBUG off (as in production), a request that fails while reading the
    secrets gets the plain 500 page; the log names the cause, not the secrets."""
    system = directory(slapd, ldap_ou, slapd.service_dn)
    key = settings.JIM_ENCRYPTION_KEY
    settings.JIM_ENCRYPTION_KEY = "a-key-these-secrets-were-not-stored-with"
    client = Client(raise_request_exception=False)
    client.force_login(admin_user)

    response = client.get(reverse("admin:connectors_connectedsystem_change", args=[system.pk]))

    assert settings.DEBUG is False
    assert response.status_code == 500
    page = response.content.decode()
    assert CANARY not in page and key not in page and "Traceback" not in page
    logged = everything_logged(logs)
    assert "Cannot decrypt connected-system secrets" in logged
    assert CANARY not in logged and key not in logged
