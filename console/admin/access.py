"""The admin of API keys and failed sign-ins (Administrators only: the roles give no
other role any permission of the ``access`` app).

Creating an API key shows the whole key once, on the page that answers the form, and
never again: the database holds its SHA-256 only (:mod:`access.keys`). Keys are never
deleted; the Revoke action (and button) ends one and keeps its history.

Failed sign-ins list the recent failures behind lockouts (:mod:`access.throttling`);
"Unlock" clears the failures of the selected rows' accounts and addresses.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.views.decorators.http import require_POST

from access import keys, throttling
from access.models import ApiKey, ApiKeyStatus, FailedSignIn

ISSUED_TEMPLATE = "admin/access/apikey/issued.html"


class ApiKeyForm(forms.ModelForm):
    """A new key: its name, owner and expiry (default and maximum from the settings)."""

    class Meta:
        model = ApiKey
        fields = ("name", "owner", "expires_at")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if "expires_at" in self.fields:  # a new key (an existing one changes its name only)
            self.fields["expires_at"].initial = keys.default_expiry
            self.fields[
                "expires_at"
            ].help_text = (
                f"At most {keys.max_days()} days from now (the default is {keys.default_days()})."
            )
            self.fields["owner"].queryset = self.fields["owner"].queryset.filter(is_active=True)

    def clean_expires_at(self) -> Any:
        expires_at = self.cleaned_data.get("expires_at")
        problem = keys.expiry_problem(expires_at)
        if problem:
            raise forms.ValidationError(problem)
        return expires_at


class StatusFilter(admin.SimpleListFilter):
    """Keys by status: active, expired or revoked."""

    title = "status"
    parameter_name = "status"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return list(ApiKeyStatus.choices)

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        now = timezone.now()
        if self.value() == ApiKeyStatus.REVOKED:
            return queryset.filter(revoked_at__isnull=False)
        if self.value() == ApiKeyStatus.EXPIRED:
            return queryset.filter(revoked_at__isnull=True, expires_at__lte=now)
        if self.value() == ApiKeyStatus.ACTIVE:
            return queryset.filter(revoked_at__isnull=True, expires_at__gt=now)
        return queryset


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    """API keys: created here (the key shown once), listed, revoked; never deleted."""

    form = ApiKeyForm
    list_display = (
        "prefix",
        "name",
        "owner",
        "status",
        "expires_at",
        "last_used_at",
        "last_used_address",
        "created_at",
        "created_by",
    )
    list_filter = (StatusFilter,)
    list_select_related = ("owner", "created_by")
    search_fields = ("prefix", "name", "owner__username")
    actions = ["revoke_selected"]
    readonly_fields = (
        "prefix",
        "owner",
        "expires_at",
        "status",
        "created_at",
        "created_by",
        "revoked_at",
        "revoked_by",
        "last_used_at",
        "last_used_address",
    )

    @admin.display(description="status")
    def status(self, api_key: ApiKey) -> str:
        return api_key.status()

    def get_fields(self, request: HttpRequest, obj: ApiKey | None = None) -> Any:
        if obj is None:
            return ("name", "owner", "expires_at")
        return ("name", *self.readonly_fields)

    def get_readonly_fields(self, request: HttpRequest, obj: ApiKey | None = None) -> Any:
        return () if obj is None else self.readonly_fields

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_revoke_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self.has_change_permission(request, obj)

    def save_model(self, request: HttpRequest, obj: ApiKey, form: Any, change: bool) -> None:
        if change:
            obj.save(update_fields=["name"])
        else:
            obj.issued_key = keys.issue(obj, created_by=request.user)

    def response_add(self, request: HttpRequest, obj: ApiKey, post_url_continue: Any = None):
        """The whole key, once: this response is the only place it appears."""
        context = {
            **self.admin_site.each_context(request),
            "title": f"API key {obj.prefix} created",
            "opts": self.opts,
            "api_key": obj,
            "key": obj.issued_key,
        }
        response = TemplateResponse(request, ISSUED_TEMPLATE, context)
        response["Cache-Control"] = "no-store"
        return response

    @admin.action(description="Revoke the selected API keys", permissions=["revoke"])
    def revoke_selected(self, request: HttpRequest, queryset: QuerySet) -> None:
        revoked = keys.revoke(queryset, by=request.user)
        left = queryset.count() - len(revoked)
        note = f" ({left} already revoked, left alone)" if left else ""
        messages.success(request, f"Revoked {len(revoked)} API key(s){note}.")

    def get_urls(self) -> list:
        view = self.admin_site.admin_view(require_POST(self.revoke_view))
        return [
            path("<int:pk>/revoke/", view, name="access_apikey_revoke"),
            *super().get_urls(),
        ]

    def revoke_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        """POST from the Revoke button of a key's page."""
        api_key = get_object_or_404(ApiKey, pk=pk)
        if not self.has_revoke_permission(request, api_key):
            raise PermissionDenied
        if keys.revoke([api_key], by=request.user):
            messages.success(request, f"API key {api_key.prefix} is revoked.")
        else:
            messages.warning(request, f"API key {api_key.prefix} was already revoked.")
        return HttpResponseRedirect(reverse("admin:access_apikey_change", args=[pk]))

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: Any = None
    ) -> HttpResponse:
        api_key = ApiKey.objects.filter(pk=object_id if str(object_id).isdigit() else None).first()
        can_revoke = (
            api_key is not None
            and api_key.revoked_at is None
            and self.has_revoke_permission(request, api_key)
        )
        extra_context = {
            **(extra_context or {}),
            "revoke_url": reverse("admin:access_apikey_revoke", args=[api_key.pk])
            if can_revoke
            else "",
        }
        return super().change_view(request, object_id, form_url, extra_context)


class InWindowFilter(admin.SimpleListFilter):
    """Failures still counted (within the lockout window), or all that are kept."""

    title = "counted now"
    parameter_name = "counted"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("yes", "Within the lockout window")]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        if self.value() == "yes":
            return queryset.filter(attempted_at__gt=timezone.now() - throttling.window())
        return queryset


@admin.register(FailedSignIn)
class FailedSignInAdmin(admin.ModelAdmin):
    """Recent failed sign-ins (admin passwords, API keys), read-only; Unlock clears the
    failures of the selected accounts and addresses."""

    list_display = ("attempted_at", "channel", "account", "address")
    list_filter = (InWindowFilter, "channel")
    search_fields = ("account", "address")
    actions = ["unlock_selected"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_unlock_permission(self, request: HttpRequest) -> bool:
        return super().has_delete_permission(request)

    def get_actions(self, request: HttpRequest) -> dict:
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)  # Unlock says what deleting them means
        return actions

    @admin.action(
        description="Unlock: clear every failure of the selected accounts and addresses",
        permissions=["unlock"],
    )
    def unlock_selected(self, request: HttpRequest, queryset: QuerySet) -> None:
        cleared = throttling.unlock(queryset)
        window = int(throttling.window() / timedelta(minutes=1))
        messages.success(
            request,
            f"Cleared {cleared} failed sign-in(s): those accounts and addresses may sign in "
            f"again (the lockout window is {window} minutes).",
        )
