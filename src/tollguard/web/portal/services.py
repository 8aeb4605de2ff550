"""Writes a customer may make from the portal."""

from __future__ import annotations

import secrets
import string

from django.conf import settings

from tollguard.web.customers.models import Account
from tollguard.web.customers.services import set_sip_password

SIP_PASSWORD_LENGTH = 24
# Letters and digits only: every SIP phone's keypad and provisioning format accepts them.
_ALPHABET = string.ascii_letters + string.digits


def generate_sip_password() -> str:
    """A random password of about 143 bits."""
    return "".join(secrets.choice(_ALPHABET) for _ in range(SIP_PASSWORD_LENGTH))


def reset_sip_password(account: Account) -> str:
    """Give ``account`` a new random password; returns it (only its HA1s are stored)."""
    password = generate_sip_password()
    set_sip_password(account, password, settings.TOLLGUARD.sip.realm)
    return password
