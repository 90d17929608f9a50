"""django-q2's lists of finished tasks, with its "Resubmit" action kept for those who
may run: resubmitting a task queues its work again — a run of a profile, a schedule —
so it needs the run permission, not only the right to read the list (django-q2 offers
it to whoever reads it)."""

from __future__ import annotations

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django_q.admin import FailAdmin, TaskAdmin, resubmit_task
from django_q.models import Failure, Success

from access.roles import RUN_PERMISSION


class ResubmitByRunnersMixin:
    actions = ["resubmit_selected"]

    @admin.action(description="Resubmit selected tasks to queue", permissions=["run"])
    def resubmit_selected(self, request: HttpRequest, queryset: QuerySet) -> None:
        resubmit_task(self, request, queryset)

    def has_run_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(RUN_PERMISSION)


class SuccessAdmin(ResubmitByRunnersMixin, TaskAdmin):
    """django-q2's successful tasks."""


class FailureAdmin(ResubmitByRunnersMixin, FailAdmin):
    """django-q2's failed tasks (a resubmitted failure leaves the list, as in django-q2)."""


for model, model_admin in ((Success, SuccessAdmin), (Failure, FailureAdmin)):
    if admin.site.is_registered(model):
        admin.site.unregister(model)
    admin.site.register(model, model_admin)
