"""Seed a served data directory for the browser tests, then print what was made as JSON.

Run as ``python seed.py DATA_DIR`` after ``tollguard init``; it talks to the data
directory's database through the production settings, exactly as ``tollguard manage``
would. It makes staff users with a confirmed TOTP device each, whose keys are printed
(so the test can compute codes), a staff user for the lockout test, two customers
with a portal user and CDRs each, and for the operator's tests: a rate card to import
into, a provider with a gateway, and customers selling in EUR and in USD with rated
CDRs (one of them written as the switch did before it refused routes across
currencies).
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from tollguard import config
from tollguard.web import bootstrap

STAFF_USERS = (
    "operator-one",
    "operator-two",
    "operator-three",
    "operator-four",
    "operator-five",
    "operator-six",
    "operator-seven",
    "operator-eight",
)
LOCKED_USER = "operator-locked"
PASSWORD = "correct horse battery staple 42"
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def main(data_dir: Path) -> dict[str, object]:
    bootstrap.setup(config.load(data_dir))
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group
    from django_otp.plugins.otp_totp.models import TOTPDevice

    from tollguard.web.carriers.models import Gateway, Provider
    from tollguard.web.cdr.models import Cdr
    from tollguard.web.customers.models import Account, Customer, Did
    from tollguard.web.portal.models import CustomerUser
    from tollguard.web.rating.models import RateCard

    users = get_user_model()
    # One staff user per test that signs in: a TOTP code works once per 30-second step
    # and device, so two tests sharing a user within one step would refuse each other.
    keys: dict[str, str] = {}
    for name in STAFF_USERS:
        staff = users.objects.create_user(name, password=PASSWORD, is_staff=True)
        staff.groups.add(Group.objects.get(name="administrator"))
        device = TOTPDevice.objects.create(user=staff, name="authenticator", confirmed=True)
        keys[name] = device.key

    # Locked out by the lockout test; nothing else signs in with it.
    users.objects.create_user(LOCKED_USER, password=PASSWORD, is_staff=True)

    made: dict[str, object] = {
        "staff": keys,
        "locked": LOCKED_USER,
        "password": PASSWORD,
    }
    for name in ("alpha", "bravo"):
        customer = Customer.objects.create(name=name)
        user = users.objects.create_user(f"{name}-user", password=PASSWORD)
        CustomerUser.objects.create(user=user, customer=customer)
        cdr_ids = []
        for n in range(3):
            started = T0 + timedelta(minutes=n)
            cdr = Cdr.objects.create(
                call_id=f"{name}-call-{n}",
                started_at=started,
                ended_at=started + timedelta(seconds=65),
                answered_at=started + timedelta(seconds=5),
                duration_ms=60_000,
                billed_s=60,
                customer=customer,
                source_ip="192.0.2.1",
                source_port=5060,
                callee=f"4930{name}{n}",
                destination=f"{name} destination",
                sip_code=200,
                hangup_side="caller",
            )
            cdr_ids.append(cdr.pk)
        # A number of its own, ringing a SIP account of its own (the Numbers page).
        phone = Account.objects.create(
            customer=customer, username=f"{name}-phone", ha1_sha256="0" * 64, extension="201"
        )
        number = f"44207{100000 + len(made)}"
        did = Did(customer=customer, first=number, account=phone, monthly_price=Decimal(2))
        did.full_clean()
        did.save()
        made[name] = {
            "user": f"{name}-user",
            "customer": customer.pk,
            "cdrs": cdr_ids,
            "number": number,
        }

    made["import_card"] = RateCard.objects.create(name="import-target").pk
    cards = {
        (kind, currency): RateCard.objects.create(
            name=f"{kind}-{currency.lower()}", kind=kind, currency=currency
        )
        for kind in ("sell", "cost")
        for currency in ("EUR", "USD")
    }
    providers = {
        currency: Provider.objects.create(
            name=f"carrier-{currency.lower()}", cost_card=cards["cost", currency]
        )
        for currency in ("EUR", "USD")
    }
    Gateway.objects.create(
        provider=providers["EUR"],
        name="carrier-eur-frankfurt-1",
        host="sip-trunk-frankfurt-1.carrier-eur.example",
        port=5061,
        transport="tls",
        add_prefix="+",
        max_channels=240,
    )
    shops = {
        currency: Customer.objects.create(
            name=f"{currency.lower()}-shop", sell_card=cards["sell", currency]
        )
        for currency in ("EUR", "USD")
    }
    # (customer, provider, sell, cost, margin): the last as written before the fix.
    rated: list[tuple[str, str, str, str, str | None]] = [
        ("EUR", "EUR", "0.30", "0.12", "0.18"),
        ("USD", "USD", "0.50", "0.20", "0.30"),
        ("USD", "EUR", "0.40", "0.10", None),
    ]
    for n, (sold_in, paid_in, sell, cost, margin) in enumerate(rated):
        started = T0 + timedelta(minutes=10 + n)
        values: dict[str, Any] = {
            "call_id": f"money-{n}",
            "started_at": started,
            "ended_at": started + timedelta(seconds=65),
            "answered_at": started + timedelta(seconds=5),
            "duration_ms": 60_000,
            "billed_s": 60,
            "customer": shops[sold_in],
            "provider": providers[paid_in],
            "source_ip": "192.0.2.1",
            "source_port": 5060,
            "callee": "4930123456",
            "destination": "Germany",
            "sip_code": 200,
            "hangup_side": "caller",
            "sell_amount": Decimal(sell),
            "sell_currency": sold_in,
            "cost_amount": Decimal(cost),
            "cost_currency": paid_in,
            "margin": None if margin is None else Decimal(margin),
        }
        Cdr.objects.create(**values)
    made["providers"] = {c: p.pk for c, p in providers.items()}
    made["shops"] = {c: shop.pk for c, shop in shops.items()}
    return made


if __name__ == "__main__":
    print(json.dumps(main(Path(sys.argv[1]))))
