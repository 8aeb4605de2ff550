"""Create the staff roles (administrator, operator, billing, read-only) as groups.

Permissions are normally created after all migrations; they are created here first so
the groups can hold them. ``SecurityConfig`` re-syncs the groups after every migrate.
"""

from django.contrib.auth.management import create_permissions
from django.db import migrations

from tollguard.web.security.roles import sync_roles


def create_roles(apps, schema_editor):
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0, using=schema_editor.connection.alias)
        app_config.models_module = None
    sync_roles(apps, schema_editor.connection.alias)


def remove_roles(apps, schema_editor):
    from tollguard.web.security.roles import ROLES

    apps.get_model("auth", "Group").objects.filter(name__in=list(ROLES)).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("security", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("core", "0002_config_version_row"),
        ("customers", "0001_initial"),
        ("carriers", "0001_initial"),
        ("rating", "0001_initial"),
        ("cdr", "0001_initial"),
        ("axes", "0010_accessattemptexpiration"),
        ("auditlog", "0017_add_actor_email"),
    ]

    operations = [migrations.RunPython(create_roles, remove_roles)]
