"""Connected-system secrets in the admin are write-only.

A bind password set through the admin is stored (encrypted) and never shown again on
any admin page; a blank input keeps it, a value replaces it, "clear" removes it. The
settings JSON is checked against what the connector declares.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.admin.models import LogEntry
from django.db import connection
from django.forms import CheckboxInput
from django.urls import reverse

from connectors.models import ConnectedSystem
from console.admin.forms import ConnectedSystemForm
from tests.builders import make_connected_system

pytestmark = pytest.mark.django_db

PASSWORD = "Bind-S3cret!xyzzy"
NEW_PASSWORD = "An0ther-S3cret!plugh"
LDAP_SETTINGS = {"url": "ldap://127.0.0.1:3890", "base_dn": "dc=example,dc=org"}

ADD_URL = reverse("admin:connectors_connectedsystem_add")
LIST_URL = reverse("admin:connectors_connectedsystem_changelist")


def change_url(system: ConnectedSystem) -> str:
    return reverse("admin:connectors_connectedsystem_change", args=[system.pk])


def form_data(response: Any) -> dict[str, Any]:
    """The POST a browser would send back from an admin change page, unchanged."""
    data: dict[str, Any] = {}

    def add(form: Any) -> None:
        for bound in form:
            value = bound.value()
            if isinstance(bound.field.widget, CheckboxInput):
                if value:
                    data[bound.html_name] = "on"
            elif value is None:
                data[bound.html_name] = ""
            else:
                data[bound.html_name] = value

    add(response.context["adminform"].form)
    for inline in response.context["inline_admin_formsets"]:
        add(inline.formset.management_form)
        for form in inline.formset.forms:
            add(form)
    return data


def stored_secrets(system: ConnectedSystem) -> dict[str, Any]:
    return ConnectedSystem.objects.get(pk=system.pk).secret_settings


def raw_column(system: ConnectedSystem) -> str:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT secret_settings FROM connectors_connectedsystem WHERE id = %s", [system.pk]
        )
        return cursor.fetchone()[0]


@pytest.fixture
def directory() -> ConnectedSystem:
    return make_connected_system(
        "Directory",
        "ldap",
        LDAP_SETTINGS,
        object_type="inetOrgPerson",
        external_id="entryUUID",
        profiles=(),
        secret_settings={"bind_password": PASSWORD},
    )


def save(admin_client: Any, system: ConnectedSystem, **changes: Any) -> Any:
    """Post the system's change page back with ``changes``; returns the response."""
    data = form_data(admin_client.get(change_url(system)))
    data.update(changes)
    return admin_client.post(change_url(system), data)


# --------------------------------------------------------------------------- never shown


def test_a_password_set_through_the_admin_never_appears_on_a_page(admin_client: Any) -> None:
    response = admin_client.post(
        ADD_URL,
        {
            "name": "Directory",
            "connector": "ldap",
            "settings": '{"url": "ldap://127.0.0.1:3890", "base_dn": "dc=example,dc=org"}',
            "approval_mode": "none",
            "export_max_retries": "5",
            "export_retry_backoff_seconds": "60",
            "secret__bind_password": PASSWORD,
            "object_types-TOTAL_FORMS": "0",
            "object_types-INITIAL_FORMS": "0",
            "run_profiles-TOTAL_FORMS": "0",
            "run_profiles-INITIAL_FORMS": "0",
        },
    )
    assert response.status_code == 302, response.context["adminform"].form.errors
    system = ConnectedSystem.objects.get(name="Directory")
    assert system.secret_settings == {"bind_password": PASSWORD}
    assert system.settings == LDAP_SETTINGS
    assert PASSWORD not in raw_column(system)  # encrypted at rest
    pages = {
        "list": LIST_URL,
        "change": change_url(system),
        "history": reverse("admin:connectors_connectedsystem_history", args=[system.pk]),
        "delete": reverse("admin:connectors_connectedsystem_delete", args=[system.pk]),
        "object type": reverse("admin:connectors_connectedsystemobjecttype_add"),
    }
    for name, url in pages.items():
        response = admin_client.get(url)
        assert response.status_code == 200, name
        assert PASSWORD not in response.content.decode(), name
    assert all(PASSWORD not in entry.change_message for entry in LogEntry.objects.all())


def test_the_change_page_says_whether_a_secret_is_set_never_what_it_is(
    admin_client: Any, directory: ConnectedSystem
) -> None:
    response = admin_client.get(change_url(directory))
    page = response.content.decode()
    assert PASSWORD not in page
    assert 'type="password" name="secret__bind_password"' in page
    assert "Set. Leave blank to keep the stored value." in page
    assert 'name="clear__bind_password"' in page
    assert "secret_settings" not in page
    form = response.context["adminform"].form
    assert "secret_settings" not in form.fields
    assert form["secret__bind_password"].value() is None


def test_a_form_with_errors_does_not_echo_the_typed_password(
    admin_client: Any, directory: ConnectedSystem
) -> None:
    response = save(
        admin_client, directory, settings="not json", secret__bind_password=NEW_PASSWORD
    )
    assert response.status_code == 200
    assert response.context["adminform"].form.errors
    assert NEW_PASSWORD not in response.content.decode()
    assert stored_secrets(directory) == {"bind_password": PASSWORD}


def test_history_names_the_changed_secret_not_its_value(
    admin_client: Any, directory: ConnectedSystem
) -> None:
    assert save(admin_client, directory, secret__bind_password=NEW_PASSWORD).status_code == 302
    history = admin_client.get(
        reverse("admin:connectors_connectedsystem_history", args=[directory.pk])
    ).content.decode()
    assert "Bind password" in history
    assert NEW_PASSWORD not in history and PASSWORD not in history


# --------------------------------------------------------------------------- keep, replace, clear


def test_saving_with_a_blank_password_keeps_the_stored_one(
    admin_client: Any, directory: ConnectedSystem
) -> None:
    response = save(admin_client, directory, description="The directory")
    assert response.status_code == 302
    assert stored_secrets(directory) == {"bind_password": PASSWORD}
    assert ConnectedSystem.objects.get(pk=directory.pk).description == "The directory"


def test_a_new_password_replaces_the_stored_one(
    admin_client: Any, directory: ConnectedSystem
) -> None:
    assert save(admin_client, directory, secret__bind_password=NEW_PASSWORD).status_code == 302
    assert stored_secrets(directory) == {"bind_password": NEW_PASSWORD}
    assert NEW_PASSWORD not in admin_client.get(change_url(directory)).content.decode()


def test_clear_removes_the_stored_password(admin_client: Any, directory: ConnectedSystem) -> None:
    assert save(admin_client, directory, clear__bind_password="on").status_code == 302
    assert stored_secrets(directory) == {}
    page = admin_client.get(change_url(directory)).content.decode()
    assert "Not set. Leave blank to keep the stored value." in page


def test_a_new_password_and_clear_together_are_refused(
    admin_client: Any, directory: ConnectedSystem
) -> None:
    response = save(
        admin_client, directory, secret__bind_password=NEW_PASSWORD, clear__bind_password="on"
    )
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert "not both" in str(errors["secret__bind_password"])
    assert stored_secrets(directory) == {"bind_password": PASSWORD}


def test_a_posted_secret_settings_field_is_ignored(
    admin_client: Any, directory: ConnectedSystem
) -> None:
    response = save(admin_client, directory, secret_settings='{"bind_password": "injected"}')
    assert response.status_code == 302
    assert stored_secrets(directory) == {"bind_password": PASSWORD}


def test_changing_the_connector_drops_secrets_it_does_not_declare(
    admin_client: Any, directory: ConnectedSystem
) -> None:
    response = save(admin_client, directory, connector="csv", settings='{"path": "people.csv"}')
    assert response.status_code == 302, response.context["adminform"].form.errors
    assert stored_secrets(directory) == {}


# --------------------------------------------------------------------------- the form alone


def test_the_add_form_offers_every_connectors_secrets_and_names_their_users() -> None:
    form = ConnectedSystemForm()
    assert "secret__bind_password" in form.fields
    assert "ldap" in form.fields["secret__bind_password"].help_text
    assert "secret_settings" not in form.fields


def test_the_change_form_of_a_csv_system_offers_no_secret() -> None:
    system = make_connected_system("HR", "csv", {"path": "x"}, object_type=None, profiles=())
    form = ConnectedSystemForm(instance=system)
    assert not [name for name in form.fields if name.startswith(("secret__", "clear__"))]


def _form(**changes: Any) -> ConnectedSystemForm:
    data = {
        "name": "New",
        "connector": "ldap",
        "settings": '{"url": "ldap://h", "base_dn": "dc=x"}',
        "approval_mode": "none",
        "export_max_retries": 5,
        "export_retry_backoff_seconds": 60,
    }
    data.update(changes)
    return ConnectedSystemForm(data)


def test_a_secret_the_connector_does_not_declare_is_refused() -> None:
    form = _form(connector="csv", settings='{"path": "hr.csv"}', secret__bind_password="x")
    assert not form.is_valid()
    assert "has no secret setting 'bind_password'" in " ".join(form.errors["secret__bind_password"])


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ('{"url": "ldap://h", "base_dn": "dc=x", "bind_password": "p"}', "is a secret"),
        ('["url"]', "must be a JSON object"),
        ('{"url": "ldap://h", "base_dn": "dc=x", "colour": "red"}', "'colour' is not a setting"),
        ('{"url": "ldap://h"}', "needs the 'base_dn' setting"),
        ('{"url": "ldap://h", "base_dn": "dc=x", "delta_method": "magic"}', "one of"),
        ("{not json", "Enter a valid JSON"),
    ],
)
def test_bad_settings_are_refused_with_the_reason(settings: str, message: str) -> None:
    form = _form(settings=settings)
    assert not form.is_valid()
    assert message in " ".join(form.errors["settings"])


def test_an_unknown_connector_is_refused() -> None:
    form = _form(connector="oracle")
    assert not form.is_valid()
    assert "connector" in form.errors


def test_a_valid_form_stores_the_secret_apart_from_the_settings() -> None:
    form = _form(secret__bind_password=PASSWORD)
    assert form.is_valid(), form.errors
    system = form.save()
    assert system.settings == {"url": "ldap://h", "base_dn": "dc=x"}
    assert ConnectedSystem.objects.get(pk=system.pk).secret_settings == {"bind_password": PASSWORD}


def test_settings_are_shown_as_indented_json(admin_client: Any, directory: ConnectedSystem) -> None:
    page = admin_client.get(change_url(directory)).content.decode()
    assert "{\n  &quot;base_dn&quot;: &quot;dc=example,dc=org&quot;," in page
