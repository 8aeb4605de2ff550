"""New SIP accounts accept SHA-256 digest only.

Existing accounts keep their ``allow_md5``: turning it off under a phone that knows only
MD5 would stop its calls, so that stays an operator's decision (``tollguard check``
warns about accounts that allow MD5 while the switch does not offer it).
"""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("customers", "0001_initial"),
    ]

    operations = [
        migrations.AlterField(
            model_name="account",
            name="allow_md5",
            field=models.BooleanField(
                default=False,
                help_text=(
                    "Accept MD5 digest (RFC 8760 keeps it for old phones only); needs MD5 "
                    "in sip.digest_algorithms."
                ),
            ),
        ),
    ]
