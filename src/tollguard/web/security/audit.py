"""Audit trail: every configuration model registered with django-auditlog.

Each change made through the admin or the API is stored with its actor, time, address
and changed fields, and shown read-only in the admin; so is every API key issued or
revoked. Secret material is masked or left out: password hashes, SIP digests and API
key digests are never copied into the trail. Rates are
tracked too; bulk imports (``rating.services.sync_rates``) send no signals and are
recorded as one configuration version bump instead of millions of rows.
"""

from __future__ import annotations

from typing import Any

from auditlog.middleware import AuditlogMiddleware
from auditlog.registry import auditlog
from django.apps import apps
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.http import HttpRequest
from django.utils.functional import SimpleLazyObject

# (app label, model name, fields left out of the trail)
TRACKED: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("customers", "Customer", ()),
    ("customers", "Account", ("ha1_md5", "ha1_sha256")),
    ("customers", "AclEntry", ()),
    ("customers", "Did", ()),
    ("carriers", "Provider", ()),
    ("carriers", "Gateway", ()),
    ("rating", "RateCard", ()),
    ("rating", "Rate", ()),
    ("security", "BannedAddress", ()),
    ("fraud", "FraudPolicy", ()),
    ("fraud", "QuietHours", ()),
    ("fraud", "DestinationRule", ()),
    ("fraud", "GatewayLimits", ()),
    ("fraud", "SipBan", ()),
    ("fraud", "Suspension", ()),
    ("billing", "LedgerEntry", ()),
    ("billing", "BalanceAlerts", ("webhook_secret",)),
    # Issued and revoked by staff (admin) and customers (portal); the key's digest stays
    # out, and its last use (written without signals, once a minute) is no change.
    ("api", "ApiKey", ("key_hash", "last_used_at")),
)


def register() -> None:
    for app_label, model_name, excluded in TRACKED:
        model = apps.get_model(app_label, model_name)
        if not auditlog.contains(model):
            auditlog.register(model, exclude_fields=list(excluded))
    user_model = get_user_model()
    if not auditlog.contains(user_model):
        auditlog.register(
            user_model, exclude_fields=["password", "last_login"], m2m_fields={"groups"}
        )
    if not auditlog.contains(Group):
        auditlog.register(Group, m2m_fields={"permissions"})


class AuditActorMiddleware(AuditlogMiddleware):  # type: ignore[misc]  # untyped library
    """django-auditlog's middleware, with the actor read when an entry is written.

    The stock middleware takes ``request.user`` before the view runs. The API
    authenticates its keys inside the view (Django REST framework then sets the key's
    owner as the request's user), so every write made with an API key was recorded
    with no actor. Read lazily, the actor is whoever the request was authenticated as
    by the time the change is saved: the session's user or the key's owner.
    """

    def get_extra_data(self, request: HttpRequest) -> dict[str, Any]:
        data: dict[str, Any] = super().get_extra_data(request)
        data["actor"] = SimpleLazyObject(lambda: self._get_actor(request))
        return data
