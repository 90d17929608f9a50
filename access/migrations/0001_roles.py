"""The four roles (access/roles.py): Administrators, Operators, Approvers, Viewers."""

from django.contrib.auth.management import create_permissions
from django.db import migrations

from access.roles import ROLES, grant_roles

#: The apps whose permissions the roles are made of (created here, as Django creates
#: permissions only after the last migration).
PERMISSION_APPS = ("auth", "connectors", "metaverse", "exports", "django_q")


def create_roles(apps, schema_editor):
    for label in PERMISSION_APPS:
        config = apps.get_app_config(label)
        config.models_module = True
        create_permissions(config, apps=apps, verbosity=0)
        config.models_module = None
    grant_roles(apps.get_model("auth", "Group"), apps.get_model("auth", "Permission"))


def remove_roles(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name__in=ROLES).exclude(
        name="Approvers"
    ).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("connectors", "0007_override_threshold"),
        ("metaverse", "0002_drop_redundant_fk_indexes"),
        ("exports", "0004_interventions"),
        ("django_q", "__latest__"),
    ]

    operations = [migrations.RunPython(create_roles, remove_roles)]
