"""The shipped high-risk list as default destination rules (editable in the admin)."""

from __future__ import annotations

from typing import Any

from django.db import migrations

# Written out, not imported: a migration must mean the same thing forever.
KINDS = (
    ("premium", True, "premium rate abroad"),
    ("satellite", False, "satellite"),
    ("international_network", False, "882/883 networks"),
    ("shared_cost", True, "shared cost abroad"),
    ("personal", True, "personal abroad"),
)
COUNTRIES = (
    ("CU", "Cuba"),
    ("LV", "Latvia (premium ranges resold)"),
    ("LT", "Lithuania"),
    ("SO", "Somalia"),
    ("SL", "Sierra Leone"),
    ("GN", "Guinea"),
    ("GW", "Guinea-Bissau"),
    ("LR", "Liberia"),
    ("TD", "Chad"),
    ("ST", "Sao Tome and Principe"),
    ("KM", "Comoros"),
    ("IO", "Diego Garcia"),
    ("SH", "Saint Helena"),
    ("FK", "Falkland Islands"),
    ("PG", "Papua New Guinea"),
    ("NR", "Nauru"),
    ("TV", "Tuvalu"),
    ("TK", "Tokelau"),
    ("CK", "Cook Islands"),
    ("NU", "Niue"),
    ("SB", "Solomon Islands"),
    ("VU", "Vanuatu"),
    ("KI", "Kiribati"),
    ("WF", "Wallis and Futuna"),
    ("MH", "Marshall Islands"),
    ("FM", "Micronesia"),
    ("PW", "Palau"),
    ("MV", "Maldives"),
    ("TN", "Tunisia"),
)


def seed(apps: Any, schema_editor: Any) -> None:
    rule = apps.get_model("fraud", "DestinationRule")
    rule.objects.bulk_create(
        [
            *(
                rule(allow=False, match="kind", value=kind, international_only=abroad, note=note)
                for kind, abroad, note in KINDS
            ),
            *(
                rule(allow=False, match="country", value=code, note=f"high risk: {name}")
                for code, name in COUNTRIES
            ),
        ]
    )


def unseed(apps: Any, schema_editor: Any) -> None:
    apps.get_model("fraud", "DestinationRule").objects.filter(policy__isnull=True).delete()


class Migration(migrations.Migration):
    dependencies = [("fraud", "0001_initial")]
    operations = [migrations.RunPython(seed, unseed)]
