"""Forget the MD5 HA1 of accounts that do not allow MD5.

It could not be used to authenticate them, and it is the cheaper digest to attack offline
should the database leak. Turning ``allow_md5`` on later needs the SIP password again.
"""

from typing import Any

from django.db import migrations


def forget_unused_md5(apps: Any, schema_editor: Any) -> None:
    account = apps.get_model("customers", "Account")
    account.objects.filter(allow_md5=False).exclude(ha1_md5="").update(ha1_md5="")


class Migration(migrations.Migration):
    dependencies = [
        ("customers", "0002_account_allow_md5_off"),
    ]

    operations = [
        migrations.RunPython(forget_unused_md5, migrations.RunPython.noop),
    ]
