"""The life of an API key: created in the admin and shown once, hashed at rest, used as
``Authorization: Bearer …`` by a DRF view (acting as its owner, with the owner's roles),
its last use recorded, expired, revoked; throttled after too many bad keys."""

from __future__ import annotations

import hashlib
import io
import re
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.db.models import ProtectedError
from django.test import override_settings
from django.urls import reverse
from django.utils import timezone
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.test import APIRequestFactory
from rest_framework.views import APIView

from access import keys
from access.models import ApiKey, FailedSignIn
from access.roles import ADMINISTRATORS, APPROVE_PERMISSION, APPROVERS, VIEWERS
from api.errors import NOT_AUTHENTICATED
from tests.access.conftest import issue_key, member_of

pytestmark = pytest.mark.django_db

KEY_PATTERN = re.compile(r"jim_[a-z0-9]{8}_[A-Za-z0-9_-]{43}")
ADDRESS = "192.0.2.10"


class WhoAmI(APIView):
    """The tiny API of these tests: who the request acts as, and one of their rights."""

    permission_classes = [IsAuthenticated]

    def get(self, request):
        return Response(
            {
                "user": request.user.username,
                "key": request.auth.prefix if request.auth else None,
                "may_approve": request.user.has_perm(APPROVE_PERMISSION),
            }
        )


def call(authorization: str | None, address: str = ADDRESS):
    headers = {"HTTP_AUTHORIZATION": authorization} if authorization is not None else {}
    request = APIRequestFactory().get("/whoami/", REMOTE_ADDR=address, **headers)
    response = WhoAmI.as_view()(request)
    response.render()
    return response


def message(response) -> str:
    """The message of an answer in the API's error shape."""
    return response.data["error"]["message"]


def bearer(key: str) -> str:
    return f"Bearer {key}"


# -- created in the admin, shown once, hashed ------------------------------------------


@pytest.fixture
def administrator(client):
    user = member_of(ADMINISTRATORS, "ada")
    client.force_login(user)
    return user


def create_in_admin(client, owner, expires_at=None):
    expires_at = expires_at or timezone.now() + timedelta(days=30)
    return client.post(
        reverse("admin:access_apikey_add"),
        {
            "name": "HR feed",
            "owner": owner.pk,
            "expires_at_0": f"{expires_at:%Y-%m-%d}",
            "expires_at_1": f"{expires_at:%H:%M:%S}",
        },
    )


def test_the_key_is_shown_once_then_only_its_hash_is_kept(client, administrator):
    owner = member_of(VIEWERS, "integration")

    response = create_in_admin(client, owner)

    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    [key] = KEY_PATTERN.findall(response.content.decode())
    api_key = ApiKey.objects.get()
    assert key.startswith(api_key.prefix + "_")
    assert api_key.secret_hash == hashlib.sha256(key.encode()).hexdigest()
    assert (api_key.owner, api_key.created_by) == (owner, administrator)
    # never again: not on its page, not in the list, nowhere in the database
    secret = key.removeprefix(api_key.prefix + "_")
    for url in (
        reverse("admin:access_apikey_change", args=[api_key.pk]),
        reverse("admin:access_apikey_changelist"),
    ):
        html = client.get(url).content.decode()
        assert api_key.prefix in html
        assert secret not in html and api_key.secret_hash not in html
    dump = io.StringIO()
    call_command("dumpdata", stdout=dump)
    assert api_key.prefix in dump.getvalue()
    assert secret not in dump.getvalue()


def test_the_expiry_defaults_to_90_days_and_may_not_exceed_the_maximum(client, administrator):
    form = client.get(reverse("admin:access_apikey_add")).context["adminform"].form
    default = form.fields["expires_at"].initial()
    assert abs(default - (timezone.now() + timedelta(days=90))) < timedelta(minutes=1)

    response = create_in_admin(client, administrator, timezone.now() + timedelta(days=400))

    assert "A key may last at most 365 days (JIM_API_KEY_MAX_DAYS)" in response.content.decode()
    assert not ApiKey.objects.exists()
    with override_settings(JIM_API_KEY_MAX_DAYS=500):
        response = create_in_admin(client, administrator, timezone.now() + timedelta(days=400))
    assert KEY_PATTERN.search(response.content.decode())


def test_a_key_is_revoked_never_deleted(client, administrator):
    api_key, key = issue_key(administrator)
    change = reverse("admin:access_apikey_change", args=[api_key.pk])
    assert "Revoke" in client.get(change).content.decode()
    assert client.get(reverse("admin:access_apikey_delete", args=[api_key.pk])).status_code == 403

    response = client.post(reverse("admin:access_apikey_revoke", args=[api_key.pk]), follow=True)

    assert f"API key {api_key.prefix} is revoked." in response.content.decode()
    api_key.refresh_from_db()
    assert api_key.revoked_by == administrator and api_key.revoked_at is not None
    assert call(bearer(key)).status_code == 401


def test_the_revoke_action_revokes_the_selection_and_names_those_already_revoked(
    client, administrator
):
    first, _ = issue_key(administrator, "first")
    second, _ = issue_key(administrator, "second")
    keys.revoke([first], by=administrator)

    response = client.post(
        reverse("admin:access_apikey_changelist"),
        {"action": "revoke_selected", "_selected_action": [first.pk, second.pk]},
        follow=True,
    )

    assert "Revoked 1 API key(s) (1 already revoked, left alone)." in response.content.decode()
    assert ApiKey.objects.filter(revoked_at__isnull=False).count() == 2


def test_signals_tell_of_creation_revocation_and_use(members):
    heard = []

    def listener(signal):
        return lambda sender, **kwargs: heard.append((signal, kwargs.get("by")))

    receivers = {
        keys.api_key_created: listener("created"),
        keys.api_key_revoked: listener("revoked"),
        keys.api_key_used: listener("used"),
    }
    for signal, receiver in receivers.items():
        signal.connect(receiver)
    try:
        admin = members[ADMINISTRATORS]
        api_key, key = issue_key(members[VIEWERS], by=admin)
        call(bearer(key))
        call(bearer(key))  # within the minute: not recorded again
        keys.revoke([api_key], by=admin)
        keys.revoke([api_key], by=admin)  # already revoked: nothing
    finally:
        for signal, receiver in receivers.items():
            signal.disconnect(receiver)
    assert heard == [("created", admin), ("used", None), ("revoked", admin)]


# -- used by a DRF view ---------------------------------------------------------------


def test_the_key_acts_as_its_owner_with_the_owners_roles(members):
    _, viewer_key = issue_key(members[VIEWERS])
    approver_key, key = issue_key(members[APPROVERS])

    assert call(bearer(viewer_key)).data == {
        "user": "viewers",
        "key": viewer_key[:12],
        "may_approve": False,
    }
    assert call(bearer(key)).data == {
        "user": "approvers",
        "key": approver_key.prefix,
        "may_approve": True,
    }


def test_last_use_is_recorded_at_most_once_a_minute(members, django_assert_num_queries):
    api_key, key = issue_key(members[VIEWERS])
    assert api_key.last_used_at is None

    call(bearer(key), address="192.0.2.1")
    api_key.refresh_from_db()
    first_use = api_key.last_used_at
    assert timezone.now() - first_use < timedelta(seconds=5)
    assert api_key.last_used_address == "192.0.2.1"

    # within the minute: the lockout check and the key's lookup, no write
    with django_assert_num_queries(2):
        assert keys.authenticate(key, "2001:db8::7") == api_key
    api_key.refresh_from_db()
    assert (api_key.last_used_at, api_key.last_used_address) == (first_use, "192.0.2.1")

    ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=first_use - timedelta(minutes=2))
    call(bearer(key), address="2001:db8::7")
    api_key.refresh_from_db()
    assert api_key.last_used_at > first_use
    assert api_key.last_used_address == "2001:db8::7"


def test_an_expired_key_is_refused_saying_when_it_expired(members):
    api_key, key = issue_key(members[VIEWERS])
    expired = timezone.now() - timedelta(hours=1)
    ApiKey.objects.filter(pk=api_key.pk).update(
        created_at=expired - timedelta(days=1), expires_at=expired
    )

    response = call(bearer(key))

    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'Bearer realm="JIM API"'
    assert message(response) == (
        f"API key {api_key.prefix} expired on {expired:%Y-%m-%d %H:%M} UTC; "
        "ask an administrator for a new key."
    )
    assert not FailedSignIn.objects.exists()  # a known key, not a guess


def test_a_revoked_key_is_refused_saying_when(members):
    api_key, key = issue_key(members[VIEWERS])
    [revoked] = keys.revoke([api_key], by=members[ADMINISTRATORS])

    response = call(bearer(key))

    assert response.status_code == 401
    assert message(response) == (
        f"API key {api_key.prefix} was revoked on {revoked.revoked_at:%Y-%m-%d %H:%M} UTC; "
        "ask an administrator for a new key."
    )


def test_a_key_of_a_deactivated_owner_is_refused(members):
    owner = members[APPROVERS]
    api_key, key = issue_key(owner)
    owner.is_active = False
    owner.save()

    response = call(bearer(key))

    assert response.status_code == 401
    assert message(response).startswith(f"API key {api_key.prefix} belongs to a deactivated user")


def test_an_unknown_key_and_a_wrong_secret_read_alike(members):
    api_key, key = issue_key(members[VIEWERS])
    wrong_secret = key[:-4] + ("aaaa" if not key.endswith("aaaa") else "bbbb")
    unknown = "jim_zzzzzzzz_" + key.split("_", 2)[2]

    answers = [call(bearer(attempt)) for attempt in (wrong_secret, unknown)]

    assert [a.status_code for a in answers] == [401, 401]
    assert [message(a) for a in answers] == [
        f"API key {prefix} is not valid: check that the whole key was sent, "
        "or ask an administrator for a new one."
        for prefix in (api_key.prefix, "jim_zzzzzzzz")
    ]


@pytest.mark.parametrize("authorization", ["Bearer", "Bearer nonsense", "Bearer a b", "bearer x_y"])
def test_a_malformed_key_is_refused_saying_how_to_send_one(authorization):
    response = call(authorization)

    assert response.status_code == 401
    assert message(response).startswith("Malformed API key: send 'Authorization: Bearer")


def test_another_scheme_is_left_to_the_session(members):
    response = call("Basic dXNlcjpwdw==")

    assert response.status_code == 401
    assert message(response) == NOT_AUTHENTICATED
    assert not FailedSignIn.objects.exists()


# -- throttled ------------------------------------------------------------------------


def test_a_prefix_is_locked_after_five_bad_keys_even_for_the_right_key(members):
    api_key, key = issue_key(members[VIEWERS])
    bad = key[:-1] + ("x" if key[-1] != "x" else "y")
    for _ in range(5):
        assert call(bearer(bad), address="192.0.2.1").status_code == 401

    response = call(bearer(key), address="192.0.2.99")

    assert response.status_code == 429
    until = FailedSignIn.objects.order_by("attempted_at").first().attempted_at + timedelta(
        minutes=15
    )
    assert message(response) == (
        f"Too many failed attempts with API key {api_key.prefix}; try again after "
        f"{until:%H:%M} UTC or ask an administrator to unlock."
    )
    assert 0 < int(response["Retry-After"]) <= 15 * 60 + 1
    # the window passes
    FailedSignIn.objects.update(attempted_at=timezone.now() - timedelta(minutes=16))
    assert call(bearer(key)).status_code == 200


def test_an_address_is_locked_after_twenty_bad_keys(members):
    _, key = issue_key(members[VIEWERS])
    for n in range(20):
        call(bearer(f"jim_{n:08d}_secret"), address="192.0.2.66")

    locked = call(bearer(key), address="192.0.2.66")

    assert locked.status_code == 429
    assert message(locked).startswith(
        "Too many failed sign-ins from this address (192.0.2.66); try again after "
    )
    assert call(bearer(key), address="192.0.2.67").status_code == 200


@override_settings(JIM_LOGIN_MAX_FAILURES=2)
def test_a_right_key_clears_its_prefixs_failures(members):
    api_key, key = issue_key(members[VIEWERS])
    bad = key[:-1] + ("x" if key[-1] != "x" else "y")
    call(bearer(bad))

    assert call(bearer(key)).status_code == 200
    assert not FailedSignIn.objects.filter(account=api_key.prefix).exists()
    call(bearer(bad))
    assert call(bearer(key)).status_code == 200


def test_the_owner_of_keys_is_deactivated_not_deleted(members):
    owner = members[VIEWERS]
    issue_key(owner)

    with pytest.raises(ProtectedError):
        owner.delete()
