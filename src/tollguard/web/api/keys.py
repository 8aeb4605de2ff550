"""Issuing, checking and revoking API keys.

A key reads ``tg_<prefix>_<secret>``: the prefix (8 hex digits) finds the row, and the
SHA-256 of the whole key must match the stored digest. Only the owner ever sees the
whole key, once, in the value :func:`create_api_key` returns.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import logging
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import IntegrityError, transaction

from tollguard.web.api.errors import (
    KeyAddressError,
    KeyExpiredError,
    KeyInvalidError,
    KeyRequestError,
    KeyRevokedError,
)
from tollguard.web.api.models import CUSTOMER_SCOPES, DEFAULT_RATE_PER_MINUTE, ApiKey, Scope
from tollguard.web.customers.models import Customer
from tollguard.web.customers.selectors import customer_of

__all__ = [
    "KEY_PREFIX",
    "IssuedKey",
    "check_key",
    "create_api_key",
    "hash_key",
    "revoke_api_key",
]

logger = logging.getLogger(__name__)

KEY_PREFIX = "tg_"
_PREFIX_BYTES = 4
_SECRET_BYTES = 32
# Recording every use would turn each read into a write; a minute is precise enough.
LAST_USED_RESOLUTION = timedelta(minutes=1)


@dataclass(frozen=True, slots=True)
class IssuedKey:
    """A new key and its full text, which is not stored and cannot be shown again."""

    key: ApiKey
    secret: str


def hash_key(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def _parse_networks(values: Iterable[str]) -> list[str]:
    networks = []
    for value in values:
        text = value.strip()
        if not text:
            continue
        try:
            networks.append(str(ipaddress.ip_network(text, strict=True)))
        except ValueError as exc:
            raise KeyRequestError(f"{text!r} is not a network in CIDR form ({exc})") from exc
    return networks


def create_api_key(
    *,
    owner: Any,
    name: str,
    scopes: Iterable[str],
    customer: Customer | None = None,
    expires_at: datetime | None = None,
    allowed_networks: Iterable[str] = (),
    rate_per_minute: int = DEFAULT_RATE_PER_MINUTE,
) -> IssuedKey:
    """Issue a key for ``owner``.

    A customer user's keys are always confined to that user's customer, whatever
    ``customer`` says; a confined key holds only read scopes.
    """
    wanted = sorted(set(scopes))
    unknown = [s for s in wanted if s not in Scope.values]
    if unknown:
        raise KeyRequestError(f"unknown scopes: {', '.join(unknown)}")
    if not wanted:
        raise KeyRequestError("a key needs at least one scope")
    own = customer_of(owner)
    if own is not None:
        if customer is not None and customer.pk != own.pk:
            raise KeyRequestError("a customer user's key can only act for its own customer")
        customer = own
    if customer is not None and not set(wanted) <= CUSTOMER_SCOPES:
        raise KeyRequestError("a key confined to a customer cannot write configuration")
    if not name.strip():
        raise KeyRequestError("a key needs a name")
    networks = _parse_networks(allowed_networks)
    for _ in range(5):
        prefix = secrets.token_hex(_PREFIX_BYTES)
        raw = f"{KEY_PREFIX}{prefix}_{secrets.token_urlsafe(_SECRET_BYTES)}"
        try:
            with transaction.atomic():
                key = ApiKey.objects.create(
                    owner=owner,
                    customer=customer,
                    name=name.strip(),
                    prefix=prefix,
                    key_hash=hash_key(raw),
                    scopes=wanted,
                    allowed_networks=networks,
                    expires_at=expires_at,
                    rate_per_minute=rate_per_minute,
                )
        except IntegrityError:
            continue  # a prefix collision: 32 random bits make it rare, never fatal
        logger.info("API key %s issued to user %s", prefix, owner.pk)
        return IssuedKey(key=key, secret=raw)
    raise KeyRequestError("could not draw an unused key prefix; try again")


def revoke_api_key(key: ApiKey, *, now: datetime) -> None:
    if key.revoked_at is None:
        key.revoked_at = now
        key.save(update_fields=["revoked_at"])
        logger.info("API key %s revoked", key.prefix)


def _split(raw: str) -> str:
    if not raw.startswith(KEY_PREFIX):
        raise KeyInvalidError("not a Tollguard API key")
    prefix, sep, secret = raw[len(KEY_PREFIX) :].partition("_")
    if not sep or len(prefix) != 2 * _PREFIX_BYTES or not secret:
        raise KeyInvalidError("not a Tollguard API key")
    return prefix


def check_key(raw: str, *, address: str, now: datetime) -> ApiKey:
    """The usable key ``raw``, seen from ``address`` at ``now``; raises an ``ApiKeyError``."""
    prefix = _split(raw)
    key = ApiKey.objects.select_related("owner", "customer").filter(prefix=prefix).first()
    # Compare even when no row matched, so timing does not tell whether a prefix exists.
    stored = key.key_hash if key is not None else "0" * 64
    if not hmac.compare_digest(stored, hash_key(raw)) or key is None:
        raise KeyInvalidError("unknown API key")
    if key.revoked_at is not None:
        raise KeyRevokedError(f"API key {prefix} was revoked")
    if key.expires_at is not None and key.expires_at <= now:
        raise KeyExpiredError(f"API key {prefix} has expired")
    if key.allowed_networks and not _address_allowed(address, key.allowed_networks):
        raise KeyAddressError(f"API key {prefix} may not be used from {address}")
    if key.last_used_at is None or now - key.last_used_at >= LAST_USED_RESOLUTION:
        ApiKey.objects.filter(pk=key.pk).update(last_used_at=now)
        key.last_used_at = now
    return key


def _address_allowed(address: str, networks: Iterable[str]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in ipaddress.ip_network(net) for net in networks)
