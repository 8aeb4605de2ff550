"""``tollguard manage charge_dids [--month YYYY-MM]``: post DIDs' monthly fees now."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from tollguard.web.billing.did_fees import charge_month, month_of, parse_month


class Command(BaseCommand):
    help = (
        "Charge the monthly fee of every enabled DID not yet charged for the month "
        "(default: the current one, UTC). Safe to run again."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--month", help="YYYY-MM; the current month or an earlier one")

    def handle(self, *args: Any, **options: Any) -> None:
        now = timezone.now()
        try:
            month = parse_month(options["month"]) if options["month"] else month_of(now)
            posted = charge_month(month, now)
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"{month:%Y-%m}: {posted} DID fee(s) charged")
