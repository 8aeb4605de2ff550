import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models

import tollguard.web.rating.models


class Migration(migrations.Migration):
    dependencies = [
        ("rating", "0001_initial"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="RateImport",
            fields=[
                (
                    "id",
                    models.CharField(
                        default=tollguard.web.rating.models.new_import_id,
                        editable=False,
                        max_length=64,
                        primary_key=True,
                        serialize=False,
                    ),
                ),
                ("file_name", models.CharField(max_length=255)),
                ("path", models.CharField(max_length=1024)),
                ("size", models.PositiveBigIntegerField()),
                (
                    "state",
                    models.CharField(
                        choices=[
                            ("validating", "Validating"),
                            ("applying", "Applying"),
                            ("done", "Done"),
                            ("failed", "Failed"),
                        ],
                        default="validating",
                        max_length=10,
                    ),
                ),
                ("offset", models.PositiveBigIntegerField(default=0)),
                ("line", models.PositiveBigIntegerField(default=0)),
                ("header", models.JSONField(default=list)),
                ("rows", models.PositiveBigIntegerField(default=0)),
                ("errors", models.JSONField(default=list)),
                ("error_total", models.PositiveBigIntegerField(default=0)),
                ("created", models.PositiveBigIntegerField(default=0)),
                ("deleted", models.PositiveBigIntegerField(default=0)),
                ("unchanged", models.PositiveBigIntegerField(default=0)),
                ("step", models.PositiveIntegerField(default=0)),
                (
                    "started_at",
                    models.DateTimeField(db_index=True, default=django.utils.timezone.now),
                ),
                (
                    "card",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="imports",
                        to="rating.ratecard",
                    ),
                ),
                (
                    "user",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
            ],
            options={
                "ordering": ("-started_at",),
            },
        ),
    ]
