import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("portal", "0001_initial"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AlterField(
            model_name="customeruser",
            name="user",
            field=models.OneToOneField(
                limit_choices_to={"is_staff": False, "is_superuser": False},
                on_delete=django.db.models.deletion.CASCADE,
                related_name="customer_link",
                to=settings.AUTH_USER_MODEL,
            ),
        ),
    ]
