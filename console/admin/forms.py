"""The admin's connected-system form: settings as JSON, secrets write-only.

Contract of the secrets (``ConnectedSystem.secret_settings``):

* The form never holds the stored secrets: ``secret_settings`` is not a form field.
  For each secret setting the connector declares (``bind_password`` for LDAP) the form
  has one password input, ``secret__<name>``, that never renders a value, and one
  checkbox, ``clear__<name>``. Their help text says only whether a value is stored.
* A blank password input keeps the stored value; a value replaces it; the checkbox
  removes it. A value and the checkbox together are an error.
* A saved system keeps only the secrets its connector declares, so changing the
  connector drops the previous connector's secrets.

An unsaved system has no connector yet, so the add form offers the secret inputs of
every registered connector (labelled with the connectors that use them) and rejects a
secret the chosen connector does not declare. The change form offers those of the
system's connector (and, once posted, of the connector chosen in the post).

``settings`` is edited as indented JSON and checked against the connector's declared
settings: it must be an object, hold no secret (those go in the password inputs),
name only declared settings, give the required ones, and keep to declared choices.
"""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.core.exceptions import ValidationError

from connectors.base import Connector
from connectors.models import ConnectedSystem
from connectors.registry import CONNECTORS, UnknownConnector, get_connector_class

SECRET_PREFIX = "secret__"
CLEAR_PREFIX = "clear__"


def secret_field_name(setting: str) -> str:
    """The password input of secret setting ``setting``."""
    return f"{SECRET_PREFIX}{setting}"


def clear_field_name(setting: str) -> str:
    """The "clear" checkbox of secret setting ``setting``."""
    return f"{CLEAR_PREFIX}{setting}"


def connector_choices() -> list[tuple[str, str]]:
    """(registry name, label) of every registered connector, read when a form is built."""
    choices = []
    for name in sorted(CONNECTORS):
        label = get_connector_class(name).label
        choices.append((name, f"{label} ({name})" if label else name))
    return choices


def connector_class(name: str | None) -> type[Connector] | None:
    """The connector registered as ``name``; None for a blank or unknown name."""
    if not name:
        return None
    try:
        return get_connector_class(name)
    except UnknownConnector:
        return None


class PrettyJSONField(forms.JSONField):
    """A JSON form field shown indented, keys sorted, for reading and editing by hand."""

    def prepare_value(self, value: Any) -> Any:
        if isinstance(value, forms.fields.InvalidJSONInput):
            return value
        return json.dumps(value, ensure_ascii=False, indent=2, sort_keys=True, cls=self.encoder)


def settings_errors(connector: type[Connector], settings: dict[str, Any]) -> list[str]:
    """Why ``settings`` do not suit ``connector`` (an empty list when they do)."""
    specs = {spec.name: spec for spec in connector.settings_spec}
    errors = []
    for name in sorted(settings):
        spec = specs.get(name)
        if spec is None:
            known = ", ".join(sorted(n for n, s in specs.items() if not s.secret)) or "none"
            errors.append(
                f"'{name}' is not a setting of the {connector.name} connector (known: {known})."
            )
        elif spec.secret:
            errors.append(
                f"'{name}' is a secret: enter it in its password field below, "
                "where it is stored encrypted, not in the settings."
            )
        elif spec.choices and settings[name] not in spec.choices:
            allowed = ", ".join(spec.choices)
            errors.append(f"'{name}' is {settings[name]!r}; it must be one of: {allowed}.")
    for spec in connector.settings_spec:
        if spec.required and not spec.secret and settings.get(spec.name) in (None, ""):
            errors.append(f"The {connector.name} connector needs the '{spec.name}' setting.")
    return errors


def offered_secrets(current: str | None, posted: str | None = None) -> dict[str, list[str]]:
    """Secret setting name → the connectors declaring it, for the inputs a form offers.

    ``current`` is the saved system's connector (None for a new system: every
    registered connector is offered); ``posted`` the connector chosen in a post.
    """
    saved = connector_class(current)
    names = sorted(CONNECTORS) if saved is None else [saved.name]
    chosen = connector_class(posted)
    if chosen is not None and chosen.name not in names:
        names.append(chosen.name)
    offered: dict[str, list[str]] = {}
    for name in names:
        for spec in get_connector_class(name).settings_spec:
            if spec.secret:
                offered.setdefault(spec.name, []).append(name)
    return offered


def secret_field_names(offered: dict[str, list[str]]) -> list[str]:
    """The form fields (password input, then clear checkbox) of each offered secret."""
    return [f(setting) for setting in offered for f in (secret_field_name, clear_field_name)]


class ConnectedSystemForm(forms.ModelForm):
    """A connected system's settings, with one write-only input per secret setting."""

    connector = forms.ChoiceField(choices=connector_choices)
    settings = PrettyJSONField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 12, "cols": 80, "class": "vLargeTextField"}),
        help_text='Non-secret settings, as a JSON object: {"path": "hr.csv"}. '
        "Secrets (passwords) have their own fields below.",
    )

    class Meta:
        model = ConnectedSystem
        fields = [
            "name",
            "description",
            "connector",
            "settings",
            "approval_mode",
            "separate_duties",
            "export_max_retries",
            "export_retry_backoff_seconds",
            "deletion_threshold",
            "change_threshold",
            "config_base_dir",
        ]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        stored = self.instance.secret_settings if self.instance.pk else {}
        posted = self.data.get(self.add_prefix("connector")) if self.is_bound else None
        current = self.instance.connector if self.instance.pk else None
        for setting, connectors in offered_secrets(current, posted).items():
            state = "Set" if stored.get(setting) not in (None, "") else "Not set"
            users = "" if self.instance.pk else f" Used by: {', '.join(connectors)}."
            self.fields[secret_field_name(setting)] = forms.CharField(
                label=setting.replace("_", " ").capitalize(),
                required=False,
                strip=False,
                widget=forms.PasswordInput(
                    render_value=False, attrs={"autocomplete": "new-password"}
                ),
                help_text=f"{state}. Leave blank to keep the stored value.{users}",
            )
            self.fields[clear_field_name(setting)] = forms.BooleanField(
                label=f"Clear {setting.replace('_', ' ')}",
                required=False,
                help_text="Remove the stored value.",
            )

    @property
    def secret_setting_names(self) -> list[str]:
        """The secret settings this form has inputs for, in display order."""
        return [
            name.removeprefix(SECRET_PREFIX)
            for name in self.fields
            if name.startswith(SECRET_PREFIX)
        ]

    def clean_settings(self) -> dict[str, Any]:
        value = self.cleaned_data.get("settings")
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise ValidationError(
                "Settings must be a JSON object of setting names and values, "
                f'like {{"path": "hr.csv"}}, not a {type(value).__name__}.'
            )
        return value

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        connector = connector_class(cleaned.get("connector"))
        if connector is None:
            return cleaned
        if "settings" in cleaned:
            for message in settings_errors(connector, cleaned["settings"]):
                self.add_error("settings", message)
        declared = connector.secret_setting_names()
        for setting in self.secret_setting_names:
            value = cleaned.get(secret_field_name(setting))
            if value and cleaned.get(clear_field_name(setting)):
                self.add_error(
                    secret_field_name(setting),
                    f"Enter a new {setting} or tick 'Clear {setting.replace('_', ' ')}', not both.",
                )
            elif value and setting not in declared:
                self.add_error(
                    secret_field_name(setting),
                    f"The {connector.name} connector has no secret setting '{setting}'.",
                )
        return cleaned

    def secret_settings_to_save(self) -> dict[str, Any]:
        """The stored secrets after this form: kept, replaced or cleared, per input."""
        connector = get_connector_class(self.cleaned_data["connector"])
        declared = connector.secret_setting_names()
        current = self.instance.secret_settings or {}
        secrets = {name: value for name, value in current.items() if name in declared}
        for setting in self.secret_setting_names:
            if setting not in declared:
                continue
            if self.cleaned_data.get(clear_field_name(setting)):
                secrets.pop(setting, None)
            elif self.cleaned_data.get(secret_field_name(setting)):
                secrets[setting] = self.cleaned_data[secret_field_name(setting)]
        return secrets

    def save(self, commit: bool = True) -> ConnectedSystem:
        self.instance.secret_settings = self.secret_settings_to_save()
        return super().save(commit=commit)
