"""Which customer a user acts for."""

from __future__ import annotations

from typing import Any

from tollguard.web.customers.models import Customer
from tollguard.web.portal.models import CustomerUser


def customer_of(user: Any) -> Customer | None:
    """The customer ``user`` is confined to, or ``None`` for an operator or anonymous user."""
    if user is None or not user.is_authenticated:
        return None
    link = CustomerUser.objects.select_related("customer").filter(user_id=user.pk).first()
    return link.customer if link is not None else None
