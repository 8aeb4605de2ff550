"""Who may do what through the API.

Deny by default, in this order:

1. the user must be authenticated and active;
2. a key must hold the scope the view asks for (:class:`Scope`);
3. a user or key confined to a customer may only read, only views that allow it, and
   only that customer's rows (the view's ``customer_lookup`` narrows the queryset, so
   another customer's object is a 404, not a 403 that would confirm it exists);
4. anyone else needs the Django model permission of the action (view, add, change,
   delete), which the role groups grant.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from django.db.models import Model, QuerySet
from rest_framework.permissions import SAFE_METHODS, BasePermission
from rest_framework.request import Request

from tollguard.web.api.models import ApiKey, Scope
from tollguard.web.customers.models import Customer
from tollguard.web.customers.selectors import customer_of

if TYPE_CHECKING:
    # Importing DRF's views here would be circular: DRF imports this module from its settings.
    from rest_framework.views import APIView

security_log = logging.getLogger("tollguard.security")

_ACTION_OF_METHOD = {
    "GET": "view",
    "HEAD": "view",
    "OPTIONS": "view",
    "POST": "add",
    "PUT": "change",
    "PATCH": "change",
    "DELETE": "delete",
}


def confined_customer(request: Request) -> Customer | None:
    """The customer the request is confined to, or ``None`` for an operator."""
    cached: Customer | bool | None = getattr(request, "_tollguard_customer", False)
    if cached is not False:
        return cached if isinstance(cached, Customer) else None
    key = request.auth
    customer = key.customer if isinstance(key, ApiKey) and key.customer_id else None
    if customer is None:
        customer = customer_of(request.user)
    request._tollguard_customer = customer  # type: ignore[attr-defined]
    return customer


def confine[M: Model](request: Request, queryset: QuerySet[M], lookup: str | None) -> QuerySet[M]:
    """``queryset`` narrowed to the request's customer (nothing if the view has no lookup)."""
    customer = confined_customer(request)
    if customer is None:
        return queryset
    if lookup is None:
        return queryset.none()
    return queryset.filter(**{lookup: customer.pk})


def model_permission(method: str, model: type[Model]) -> str:
    action = _ACTION_OF_METHOD.get(method.upper(), "change")
    return f"{model._meta.app_label}.{action}_{model._meta.model_name}"


class ApiAccess(BasePermission):
    """Views declare ``read_scope``, ``write_scope``, ``permission_model`` and
    ``customer_lookup`` (``None``: closed to customers)."""

    message = "You do not have permission to perform this action."

    def has_permission(self, request: Request, view: APIView) -> bool:
        user = request.user
        if user is None or not user.is_authenticated or not user.is_active:
            return False
        safe = request.method in SAFE_METHODS
        scope: Scope | None = getattr(view, "read_scope" if safe else "write_scope", None)
        key = request.auth
        if isinstance(key, ApiKey) and (scope is None or scope not in key.scopes):
            return self._deny(request, f"key {key.prefix} lacks scope {scope}")
        if confined_customer(request) is not None:
            if not safe or getattr(view, "customer_lookup", None) is None:
                return self._deny(request, "customer confined to own objects")
            return True
        model: type[Model] | None = getattr(view, "permission_model", None)
        if model is None:
            return self._deny(request, "view declares no permission model")
        if not user.has_perm(model_permission(str(request.method), model)):
            return self._deny(request, f"missing {model_permission(str(request.method), model)}")
        return True

    def _deny(self, request: Request, why: str) -> bool:
        security_log.warning(
            'api permission denied: ip=%s user="%s" path="%s" reason="%s"',
            request.META.get("REMOTE_ADDR") or "-",
            _printable(request.user.get_username()),
            _printable(request.path),
            why,
        )
        return False


def _printable(text: Any) -> str:
    return "".join(c if c.isprintable() and c not in '"\\' else "?" for c in str(text))[:128]
