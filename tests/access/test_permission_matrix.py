"""Who may do what, role by role: every admin page of JIM's models, every admin action
and button, every console page and POST, and the ``jim`` commands that act for a
``--user``.

The expectations are the issue's, written out here rather than read from
``access/roles.py``: Administrators do everything (deleting, disconnecting and
re-evaluating a metaverse object only they do); Operators run, cancel, retry and
discard; Approvers approve and reject; every role reads everything but the API keys,
the failed sign-ins, the audit trail and the users. A page no one may use (the add page
of a read-only admin) is refused to every role alike: the superuser's answer is the
ceiling each role is held to.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest
from django.contrib import admin
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.auth.models import User
from django.db.models import Model
from django.test import Client
from django.urls import reverse
from django_q.models import OrmQ

from access.models import ApiKey, FailedSignIn
from access.roles import ADMINISTRATORS, APPROVERS, OPERATORS, ROLES, VIEWERS
from connectors.models import Activity
from exports.models import PendingExport
from metaverse.models import MetaverseObject
from tests.access.world import World, build_world
from tests.support.cli import jim

pytestmark = pytest.mark.django_db

#: The apps whose admin pages the matrix visits.
JIM_APPS = ("auth", "django_q", "access", "audit", "connectors", "metaverse", "exports")
#: What every role reads (the rest — API keys, failed sign-ins, the audit trail, users
#: and groups — only Administrators).
READ_BY_EVERY_ROLE = ("django_q", "connectors", "metaverse", "exports")
RUNNERS = {ADMINISTRATORS, OPERATORS}
DECIDERS = {ADMINISTRATORS, APPROVERS}


@pytest.fixture
def world(members) -> World:
    return build_world(owner=members[VIEWERS])


@pytest.fixture
def clients(members) -> dict[str, Client]:
    """A signed-in client per role, and one for a superuser (the ceiling)."""
    users = {**members, "superuser": User.objects.create_superuser("root", password="pw")}
    clients = {}
    for name, user in users.items():
        clients[name] = Client()
        clients[name].force_login(user)
    return clients


# -- admin pages ------------------------------------------------------------------------


def jim_models() -> list[type[Model]]:
    return sorted(
        (model for model in admin.site._registry if model._meta.app_label in JIM_APPS),
        key=lambda model: model._meta.label,
    )


READING_PAGES = ("changelist", "change", "history")
WRITING_PAGES = ("add", "change (POST)", "delete")


def visit(client: Client, model: type[Model], page: str) -> int:
    """The status of ``page`` of ``model``'s admin (an object's pages: its first object,
    or an id that does not exist, which the admin refuses before it looks)."""
    meta = model._meta
    name = f"admin:{meta.app_label}_{meta.model_name}"
    pk = model._default_manager.values_list("pk", flat=True).first() or 987654
    if page == "changelist":
        return client.get(reverse(f"{name}_changelist")).status_code
    if page == "add":
        return client.get(reverse(f"{name}_add")).status_code
    if page == "change (POST)":
        return client.post(reverse(f"{name}_change", args=[pk]), {}).status_code
    return client.get(reverse(f"{name}_{page}", args=[pk])).status_code


def expected(role: str, model: type[Model], page: str, ceiling: int) -> int:
    if ceiling == 403:
        return 403
    if role == ADMINISTRATORS:
        return ceiling
    if page in READING_PAGES and model._meta.app_label in READ_BY_EVERY_ROLE:
        return ceiling
    return 403


def test_the_matrix_covers_every_model_jim_shows():
    labels = {model._meta.label for model in jim_models()}
    assert {
        "access.ApiKey",
        "access.FailedSignIn",
        "auth.User",
        "connectors.ConnectedSystem",
        "connectors.Activity",
        "exports.PendingExport",
        "exports.ApprovalAuditEntry",
        "metaverse.SyncRule",
        "django_q.Failure",
    } <= labels


@pytest.mark.parametrize("model", jim_models(), ids=lambda model: model._meta.label)
def test_admin_pages_answer_each_role_as_its_rights_say(model, clients, world):
    wrong = []
    for page in (*READING_PAGES, *WRITING_PAGES):
        ceiling = visit(clients["superuser"], model, page)
        assert ceiling != 500
        for role in ROLES:
            got, want = visit(clients[role], model, page), expected(role, model, page, ceiling)
            if got != want:
                wrong.append(f"{role} {page}: {got}, expected {want}")
    assert wrong == []


# -- admin actions and buttons, console POSTs --------------------------------------------


@dataclass(frozen=True)
class Attempt:
    """One thing a person may try: ``act`` tries it; ``done`` says whether it happened."""

    act: Callable[[Client, World], int]
    done: Callable[[World], bool]
    allowed: set[str]
    #: A URL of its own (a button, a console POST) answers 403 when refused; an admin
    #: action that is not offered does nothing (the list shown again, or "No action
    #: selected", or 403 to a role that may not read the list).
    own_url: bool


def _action(model: str, action: str, pks: Callable[[World], list], **data):
    def act(client: Client, world: World) -> int:
        return client.post(
            reverse(f"admin:{model}_changelist"),
            {"action": action, ACTION_CHECKBOX_NAME: pks(world), **data},
        ).status_code

    return act


def _post(url: Callable[[World], str], **data):
    def act(client: Client, world: World) -> int:
        return client.post(url(world), data).status_code

    return act


def _activities_added(world: World) -> bool:
    return Activity.objects.count() > 2


def _approval(world: World) -> str:
    return PendingExport.objects.get(pk=world.awaiting.pk).approval


def _failed_status(world: World) -> str | None:
    return PendingExport.objects.filter(pk=world.failed.pk).values_list("status", flat=True).first()


def _mvo() -> int:
    return MetaverseObject.objects.values_list("pk", flat=True).get()


CONFIRM = {"confirm": "yes", "reason": "checked"}
EXPORTS = "exports_pendingexport"
ATTEMPTS = {
    "run a profile (action)": Attempt(
        _action("connectors_runprofile", "run_selected", lambda w: [w.profile.pk]),
        _activities_added,
        RUNNERS,
        own_url=False,
    ),
    "run a profile (button)": Attempt(
        _post(lambda w: reverse("admin:connectors_runprofile_run", args=[w.profile.pk])),
        _activities_added,
        RUNNERS,
        own_url=True,
    ),
    "resubmit a failed task (action)": Attempt(
        _action("django_q_failure", "resubmit_selected", lambda w: [w.failed_task.pk]),
        lambda w: OrmQ.objects.exists(),
        RUNNERS,
        own_url=False,
    ),
    "cancel a run (console)": Attempt(
        _post(lambda w: reverse("console:activity-cancel", args=[w.queued.pk])),
        lambda w: Activity.objects.get(pk=w.queued.pk).cancel_requested,
        RUNNERS,
        own_url=True,
    ),
    "override a threshold (console)": Attempt(
        _post(lambda w: reverse("console:activity-override-threshold", args=[w.over_threshold.pk])),
        _activities_added,
        {ADMINISTRATORS},
        own_url=True,
    ),
    "approve (action)": Attempt(
        _action(EXPORTS, "approve_selected", lambda w: [w.awaiting.pk], **CONFIRM),
        lambda w: _approval(w) == "approved",
        DECIDERS,
        own_url=False,
    ),
    "reject (action)": Attempt(
        _action(EXPORTS, "reject_selected", lambda w: [w.awaiting.pk], **CONFIRM),
        lambda w: _approval(w) == "rejected",
        DECIDERS,
        own_url=False,
    ),
    "approve (button)": Attempt(
        _post(lambda w: reverse(f"admin:{EXPORTS}_approve", args=[w.awaiting.pk]), **CONFIRM),
        lambda w: _approval(w) == "approved",
        DECIDERS,
        own_url=True,
    ),
    "reject (button)": Attempt(
        _post(lambda w: reverse(f"admin:{EXPORTS}_reject", args=[w.awaiting.pk]), **CONFIRM),
        lambda w: _approval(w) == "rejected",
        DECIDERS,
        own_url=True,
    ),
    "retry (action)": Attempt(
        _action(EXPORTS, "retry_selected", lambda w: [w.failed.pk], **CONFIRM),
        lambda w: _failed_status(w) == "pending",
        RUNNERS,
        own_url=False,
    ),
    "discard (action)": Attempt(
        _action(EXPORTS, "discard_selected", lambda w: [w.failed.pk], **CONFIRM),
        lambda w: _failed_status(w) is None,
        RUNNERS,
        own_url=False,
    ),
    "retry (button)": Attempt(
        _post(lambda w: reverse(f"admin:{EXPORTS}_retry", args=[w.failed.pk]), **CONFIRM),
        lambda w: _failed_status(w) == "pending",
        RUNNERS,
        own_url=True,
    ),
    "discard (button)": Attempt(
        _post(lambda w: reverse(f"admin:{EXPORTS}_discard", args=[w.failed.pk]), **CONFIRM),
        lambda w: _failed_status(w) is None,
        RUNNERS,
        own_url=True,
    ),
    "revoke an API key (action)": Attempt(
        _action("access_apikey", "revoke_selected", lambda w: [w.api_key.pk]),
        lambda w: ApiKey.objects.get(pk=w.api_key.pk).revoked_at is not None,
        {ADMINISTRATORS},
        own_url=False,
    ),
    "revoke an API key (button)": Attempt(
        _post(lambda w: reverse("admin:access_apikey_revoke", args=[w.api_key.pk])),
        lambda w: ApiKey.objects.get(pk=w.api_key.pk).revoked_at is not None,
        {ADMINISTRATORS},
        own_url=True,
    ),
    "re-evaluate a metaverse object (console)": Attempt(
        _post(lambda w: reverse("console:mvo-action", args=[_mvo(), "re-evaluate"]), **CONFIRM),
        lambda w: Activity.objects.filter(profile_name__startswith="Manual:").exists(),
        {ADMINISTRATORS},
        own_url=True,
    ),
    "delete a metaverse object now (console)": Attempt(
        _post(lambda w: reverse("console:mvo-action", args=[_mvo(), "delete"]), **CONFIRM),
        lambda w: not MetaverseObject.objects.exists(),
        {ADMINISTRATORS},
        own_url=True,
    ),
    "unlock sign-ins (action)": Attempt(
        _action("access_failedsignin", "unlock_selected", lambda w: [w.failed_sign_in.pk]),
        lambda w: not FailedSignIn.objects.exists(),
        {ADMINISTRATORS},
        own_url=False,
    ),
}


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("name", list(ATTEMPTS))
def test_each_action_is_done_for_the_roles_allowed_and_refused_to_the_others(
    name, role, clients, world
):
    attempt = ATTEMPTS[name]

    status = attempt.act(clients[role], world)

    if role in attempt.allowed:
        assert status in (200, 302)
        assert attempt.done(world), f"{role} could not {name}"
    else:
        assert not attempt.done(world), f"{role} could {name}"
        assert status == 403 if attempt.own_url else status in (200, 302, 403)


# -- console pages ----------------------------------------------------------------------


@pytest.mark.parametrize("role", ROLES)
def test_every_role_reads_the_console_pages(role, clients, world):
    mvo = world.awaiting.metaverse_object
    for url in (
        reverse("console:dashboard"),
        reverse("console:activity", args=[world.over_threshold.pk]),
        reverse("console:run-profile-history", args=[world.profile.pk]),
        reverse("console:mvo", args=[mvo.pk]),
    ):
        assert clients[role].get(url).status_code == 200, url


# -- jim commands acting for a --user ---------------------------------------------------


COMMANDS = {
    "approve": (DECIDERS, lambda w: str(w.awaiting.pk), lambda w: _approval(w) == "approved"),
    "reject": (DECIDERS, lambda w: str(w.awaiting.pk), lambda w: _approval(w) == "rejected"),
    "retry": (RUNNERS, lambda w: str(w.failed.pk), lambda w: _failed_status(w) == "pending"),
    "discard": (RUNNERS, lambda w: str(w.failed.pk), lambda w: _failed_status(w) is None),
}


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("command", list(COMMANDS))
def test_jim_commands_act_only_for_users_whose_role_allows(command, role, members, world):
    allowed, target, done = COMMANDS[command]
    user = members[role].username

    status, _, err = jim(command, target(world), "--user", user, "--reason", "checked")

    if role in allowed:
        assert (status, err) == (0, "")
        assert done(world)
    else:
        assert status == 2
        assert f"{user} may not" in err
        assert not done(world)
