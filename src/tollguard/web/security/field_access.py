"""Field-level access by role (ASVS 8.2.3): which fields a role may see but not change.

Model permissions (:mod:`tollguard.web.security.roles`) decide whether a role may
change an object at all; this table narrows that to fields. The billing role changes
what a customer pays and may spend (its sell card, call length limit, and whether it
is enabled), never how its calls are routed or its numbers rewritten. A model or role
missing from the table has no field limits.

Every place that writes these models applies the same table: the admin through
:class:`RoleFieldLimits`, the REST API through
:class:`tollguard.web.api.serializers.RoleFieldLimitsSerializer`.

The operator role has no row: it manages rate cards outright, so a limit on a
customer's sell card would only send it to edit the card instead.

A user may hold several roles; as with permissions, the most generous one wins: a
field is read-only only when every role the user holds makes it so. Superusers and
users in no role group (a custom group) have no field limits.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.contrib.admin.options import BaseModelAdmin
from django.db.models import Model
from django.http import HttpRequest

from tollguard.web.security.roles import BILLING, ROLES

# Routing and number handling of a customer: the operator's domain, not billing's.
_CUSTOMER_TECHNICAL = frozenset(
    {
        "name",
        "strategy",
        "providers",
        "allow_negative_margin",
        "country_code",
        "national_prefix",
        "international_prefix",
        "strip_prefix",
        "media",
    }
)

# "app_label.model_name" -> role -> fields the role may not change.
READ_ONLY_FIELDS: Mapping[str, Mapping[str, frozenset[str]]] = {
    "customers.customer": {BILLING: _CUSTOMER_TECHNICAL},
    # Billing holds only the view permission on carriers; should a custom grant give it
    # more, the provider's cost card is still all it may change.
    "carriers.provider": {BILLING: frozenset({"name", "enabled", "priority", "weight", "media"})},
}

_ROLES_ATTRIBUTE = "_tollguard_roles"


def roles_of(user: Any) -> frozenset[str]:
    """The role groups ``user`` belongs to (cached on the user for the request)."""
    cached: frozenset[str] | None = getattr(user, _ROLES_ATTRIBUTE, None)
    if cached is not None:
        return cached
    roles: frozenset[str] = frozenset()
    if getattr(user, "is_authenticated", False) and user.is_active:
        roles = frozenset(user.groups.filter(name__in=ROLES).values_list("name", flat=True))
    setattr(user, _ROLES_ATTRIBUTE, roles)
    return roles


def read_only_fields(user: Any, model: type[Model]) -> frozenset[str]:
    """The fields of ``model`` that ``user`` may read but not change."""
    if getattr(user, "is_superuser", False):
        return frozenset()
    table = READ_ONLY_FIELDS.get(model._meta.label_lower)
    roles = roles_of(user)
    if table is None or not roles:
        return frozenset()
    limits = [table.get(role, frozenset()) for role in roles]
    return frozenset.intersection(*limits)


class RoleFieldLimits[M: Model](BaseModelAdmin[M]):
    """Admin mixin: the fields the user's roles may not change are shown read-only.

    Django leaves a read-only field out of the form, so a forged POST that carries it
    changes nothing.
    """

    # ``obj`` is the object edited, or for an inline its parent's.
    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> tuple[str, ...]:
        base = tuple(super().get_readonly_fields(request, obj))
        limited = read_only_fields(request.user, self.model)
        if not limited:
            return base
        # Keep the model's field order so the page reads as the form did.
        ordered = [f.name for f in self.model._meta.get_fields() if f.name in limited]
        return (*base, *(name for name in ordered if name not in base))
