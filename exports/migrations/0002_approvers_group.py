from django.contrib.auth.management import create_permissions
from django.db import migrations

APPROVER_PERMISSIONS = [
    "approve_pendingexport",
    "view_pendingexport",
    "view_pendingexportattributechange",
    "view_approvalauditentry",
]


def create_approvers_group(apps, schema_editor):
    """The "Approvers" group: may see pending exports and approve or reject them."""
    exports_config = apps.get_app_config("exports")
    exports_config.models_module = True
    create_permissions(exports_config, apps=apps, verbosity=0)
    exports_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    group, _ = Group.objects.get_or_create(name="Approvers")
    group.permissions.add(
        *Permission.objects.filter(
            content_type__app_label="exports", codename__in=APPROVER_PERMISSIONS
        )
    )


def remove_approvers_group(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name="Approvers").delete()


class Migration(migrations.Migration):
    dependencies = [
        ("exports", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(create_approvers_group, remove_approvers_group)]
