"""Each amount of a CDR with its own currency.

``currency`` held the sell card's currency and labelled the cost and the margin too,
whatever the provider's cost card was in. It becomes ``sell_currency``; the new
``cost_currency`` of existing rows is their provider's cost card's currency now (the
best that can be known afterwards), and a margin worked out across two currencies is
cleared: it was an amount of no currency at all.
"""

from decimal import Decimal
from typing import Any

from django.db import migrations, models
from django.db.models import F, OuterRef, Subquery


def fill_cost_currency(apps: Any, schema_editor: Any) -> None:
    cdr = apps.get_model("cdr", "Cdr")
    provider = apps.get_model("carriers", "Provider")
    card_currency = provider.objects.filter(pk=OuterRef("provider_id")).values(
        "cost_card__currency"
    )[:1]
    cdr.objects.filter(provider_id__isnull=False).update(cost_currency=Subquery(card_currency))
    cdr.objects.filter(cost_currency__isnull=True).update(cost_currency="")
    cdr.objects.exclude(cost_currency="").exclude(cost_currency=F("sell_currency")).update(
        margin=None
    )


class Migration(migrations.Migration):
    dependencies = [
        ("carriers", "0001_initial"),
        ("cdr", "0004_cdr_detail"),
    ]

    operations = [
        migrations.RenameField("cdr", "currency", "sell_currency"),
        migrations.AddField(
            model_name="cdr",
            name="cost_currency",
            field=models.CharField(blank=True, max_length=3, null=True),
        ),
        migrations.AlterField(
            model_name="cdr",
            name="margin",
            field=models.DecimalField(
                blank=True, decimal_places=6, default=Decimal(0), max_digits=16, null=True
            ),
        ),
        migrations.RunPython(fill_cost_currency, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="cdr",
            name="cost_currency",
            field=models.CharField(blank=True, max_length=3),
        ),
    ]
