"""Writes to customers and accounts, including SIP password hashing."""

from __future__ import annotations

import hashlib
import secrets
import string

from django.db import transaction

from tollguard.web.customers import models

ALLOW_MD5_NEEDS_DIGEST = (
    "Allowing MD5 needs the SIP password again: its MD5 digest is kept only for "
    "accounts that allow MD5."
)


SIP_PASSWORD_LENGTH = 20
# Letters and digits only: every SIP phone's keypad and provisioning file accepts them.
# 20 characters of 62 give about 119 bits.
SIP_PASSWORD_ALPHABET = string.ascii_letters + string.digits


def generate_sip_password(length: int = SIP_PASSWORD_LENGTH) -> str:
    """A random SIP password from the operating system's CSPRNG."""
    return "".join(secrets.choice(SIP_PASSWORD_ALPHABET) for _ in range(length))


def ha1_digests(username: str, realm: str, password: str, *, md5: bool) -> tuple[str, str]:
    """The MD5 and SHA-256 HA1 of ``username:realm:password`` (RFC 7616 §3.4.2).

    Storing HA1 instead of the password lets the switch verify digests while a database
    leak does not reveal passwords reused elsewhere. The MD5 HA1 (``""`` unless ``md5``)
    is made only for accounts that allow MD5: it is the cheaper one to attack offline.
    """
    a1 = f"{username}:{realm}:{password}".encode()
    md5_hex = hashlib.md5(a1, usedforsecurity=False).hexdigest() if md5 else ""
    return md5_hex, hashlib.sha256(a1).hexdigest()


def set_sip_password(account: models.Account, password: str, realm: str) -> None:
    """Replace the account's HA1 digests by those of ``password`` in ``realm``."""
    if not password:
        raise ValueError("a SIP password must not be empty")
    account.ha1_md5, account.ha1_sha256 = ha1_digests(
        account.username, realm, password, md5=account.allow_md5
    )
    with transaction.atomic():
        if account.pk is None:
            account.full_clean()
            account.save()
        else:
            account.save(update_fields=["ha1_md5", "ha1_sha256"])
