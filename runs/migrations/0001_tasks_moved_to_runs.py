"""The run tasks moved from ``connectors.tasks`` to ``runs.tasks``: django-q2 schedules
stored with the old path call the new one."""

from django.db import migrations

OLD = "connectors.tasks.run_schedule"
NEW = "runs.tasks.run_schedule"


def repoint(apps, schema_editor):
    Schedule = apps.get_model("django_q", "Schedule")
    Schedule.objects.filter(func=OLD).update(func=NEW)


def point_back(apps, schema_editor):
    Schedule = apps.get_model("django_q", "Schedule")
    Schedule.objects.filter(func=NEW).update(func=OLD)


class Migration(migrations.Migration):
    dependencies = [("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more")]

    operations = [migrations.RunPython(repoint, point_back)]
