from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("security", "0003_user_sessions"),
    ]

    operations = [
        migrations.CreateModel(
            name="SecurityEvent",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("at", models.DateTimeField(db_index=True)),
                (
                    "level",
                    models.PositiveSmallIntegerField(
                        help_text="The log level: 20 info, 30 warning."
                    ),
                ),
                ("event", models.CharField(max_length=64)),
                ("address", models.CharField(blank=True, max_length=45)),
                ("user", models.CharField(blank=True, max_length=150)),
                ("detail", models.CharField(blank=True, max_length=512)),
            ],
            options={
                "ordering": ("-at", "-id"),
                "indexes": [
                    models.Index(fields=["level", "at"], name="security_event_level_at"),
                    models.Index(fields=["event", "at"], name="security_event_event_at"),
                ],
            },
        ),
    ]
