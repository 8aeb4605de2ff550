"""Errors of the API key services, under :class:`tollguard.web.errors.WebError`::

WebError
└── ApiKeyError                a key was refused
    ├── KeyInvalidError        malformed, unknown or wrong secret
    ├── KeyRevokedError        revoked by its owner or an operator
    ├── KeyExpiredError        past its expiry time
    ├── KeyAddressError        used from an address outside its allowed networks
    └── KeyRequestError        a key cannot be created as asked (bad scope, customer)
"""

from __future__ import annotations

from tollguard.web.errors import WebError


class ApiKeyError(WebError):
    """A key was refused or cannot be created; the message is safe to show its user."""


class KeyInvalidError(ApiKeyError):
    pass


class KeyRevokedError(ApiKeyError):
    pass


class KeyExpiredError(ApiKeyError):
    pass


class KeyAddressError(ApiKeyError):
    pass


class KeyRequestError(ApiKeyError):
    pass
