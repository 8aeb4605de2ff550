"""Seed a served data directory for the browser tests, then print what was made as JSON.

Run as ``python seed.py DATA_DIR`` after ``tollguard init``; it talks to the data
directory's database through the production settings, exactly as ``tollguard manage``
would. It makes staff users with a confirmed TOTP device each, whose keys are printed
(so the test can compute codes), a staff user for the lockout test, and two customers
with a portal user and CDRs each.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tollguard import config
from tollguard.web import bootstrap

STAFF_USERS = ("operator-one", "operator-two")
LOCKED_USER = "operator-locked"
PASSWORD = "correct horse battery staple 42"
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def main(data_dir: Path) -> dict[str, object]:
    bootstrap.setup(config.load(data_dir))
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group
    from django_otp.plugins.otp_totp.models import TOTPDevice

    from tollguard.web.cdr.models import Cdr
    from tollguard.web.customers.models import Customer
    from tollguard.web.portal.models import CustomerUser

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
        made[name] = {"user": f"{name}-user", "customer": customer.pk, "cdrs": cdr_ids}
    return made


if __name__ == "__main__":
    print(json.dumps(main(Path(sys.argv[1]))))
