"""``tollguard manage unban ADDRESS``: lift a ban, also when it locks out the operator."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from tollguard.web.security.services import unban


class Command(BaseCommand):
    help = "Remove addresses from the web ban list."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("addresses", nargs="+")

    def handle(self, *args: Any, **options: Any) -> None:
        for address in options["addresses"]:
            lifted = unban(address)
            self.stdout.write(f"{address}: {'unbanned' if lifted else 'not banned'}")
