"""Housekeeping runs every night at 03:17 (runs/housekeeping.py)."""

from django.db import migrations

NAME = "jim:housekeeping"
TASK = "runs.housekeeping.run_housekeeping"


def create(apps, schema_editor):
    Schedule = apps.get_model("django_q", "Schedule")
    Schedule.objects.update_or_create(
        name=NAME,
        defaults={"func": TASK, "schedule_type": "C", "cron": "17 3 * * *", "repeats": -1},
    )


def remove(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.filter(name=NAME).delete()


class Migration(migrations.Migration):
    dependencies = [("runs", "0001_tasks_moved_to_runs")]

    operations = [migrations.RunPython(create, remove)]
