"""``Authorization: Bearer tg_...`` authentication for the API.

Refusals are security events: they go to the ``tollguard.security`` logger in the same
fail2ban-readable shape as the admin's login failures.
"""

from __future__ import annotations

import logging
from typing import Any

from django.utils import timezone
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.request import Request

from tollguard.web.api.errors import ApiKeyError, KeyAddressError
from tollguard.web.api.keys import check_key
from tollguard.web.api.models import ApiKey
from tollguard.web.customers.selectors import customer_of

security_log = logging.getLogger("tollguard.security")

_SCHEME = b"bearer"


def client_address(request: Request) -> str:
    return str(request.META.get("REMOTE_ADDR") or "")


class ApiKeyAuthentication(BaseAuthentication):
    """Authenticates the key's owner; ``request.auth`` is the :class:`ApiKey`."""

    def authenticate(self, request: Request) -> tuple[Any, ApiKey] | None:
        parts = get_authorization_header(request).split()
        if not parts or parts[0].lower() != _SCHEME:
            return None  # not ours: another authentication class may apply
        if len(parts) != 2:
            raise exceptions.AuthenticationFailed("Expected 'Authorization: Bearer <key>'.")
        address = client_address(request)
        try:
            raw = parts[1].decode("ascii")
            key = check_key(raw, address=address, now=timezone.now())
        except (UnicodeDecodeError, ApiKeyError) as exc:
            security_log.warning(
                "api key refused: ip=%s reason=%s", address or "-", type(exc).__name__
            )
            if isinstance(exc, KeyAddressError):
                raise exceptions.PermissionDenied(str(exc)) from exc
            raise exceptions.AuthenticationFailed("Invalid, revoked or expired API key.") from exc
        reason = _owner_problem(key)
        if reason:
            security_log.warning('api key refused: ip=%s reason="%s"', address or "-", reason)
            raise exceptions.AuthenticationFailed("Invalid, revoked or expired API key.")
        return key.owner, key

    def authenticate_header(self, request: Request) -> str:
        # Makes DRF answer 401 (not 403) to a request without credentials.
        return 'Bearer realm="tollguard-api"'


def _owner_problem(key: ApiKey) -> str:
    """Why the key's owner can no longer use it, or ``""``."""
    owner = key.owner
    if not owner.is_active:
        return "InactiveOwner"
    if owner.is_staff:
        return ""
    # A customer user's key is only as good as the user's link: moved to another
    # customer, or unlinked, the key must not keep the old customer's data open.
    own = customer_of(owner)
    if own is None or own.pk != key.customer_id:
        return "OwnerCustomerChanged"
    return ""
