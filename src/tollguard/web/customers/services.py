"""Writes to customers and accounts, including SIP password hashing."""

from __future__ import annotations

import hashlib

from django.db import transaction

from tollguard.web.customers import models


def ha1_digests(username: str, realm: str, password: str) -> tuple[str, str]:
    """The MD5 and SHA-256 HA1 of ``username:realm:password`` (RFC 7616 §3.4.2).

    Storing HA1 instead of the password lets the switch verify digests of both
    algorithms while a database leak does not reveal passwords reused elsewhere.
    """
    a1 = f"{username}:{realm}:{password}".encode()
    md5 = hashlib.md5(a1, usedforsecurity=False).hexdigest()
    return md5, hashlib.sha256(a1).hexdigest()


def set_sip_password(account: models.Account, password: str, realm: str) -> None:
    """Replace the account's HA1 digests by those of ``password`` in ``realm``."""
    if not password:
        raise ValueError("a SIP password must not be empty")
    account.ha1_md5, account.ha1_sha256 = ha1_digests(account.username, realm, password)
    with transaction.atomic():
        if account.pk is None:
            account.full_clean()
            account.save()
        else:
            account.save(update_fields=["ha1_md5", "ha1_sha256"])
