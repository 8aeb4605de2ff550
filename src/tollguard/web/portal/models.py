"""The link between a Django user and the customer whose portal it may see."""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models

from tollguard.web.customers.models import Customer


class CustomerUser(models.Model):
    """``user`` acts for ``customer`` only: every page and API call is confined to it.

    A customer user is never staff; the link is what the portal and the API check to
    narrow every query to the customer's own rows.
    """

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="customer_link",
        # The admin's search box offers only users who may be linked (see clean()).
        limit_choices_to={"is_staff": False, "is_superuser": False},
    )
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="users")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = "customer user"
        ordering = ("customer", "user")

    def __str__(self) -> str:
        # Names, not ids: this is what the admin's messages and history say.
        user = getattr(self, "user", None)
        customer = getattr(self, "customer", None)
        who = user.get_username() if user is not None else "(no user)"
        return f"{who} of {customer.name if customer is not None else '(no customer)'}"

    def clean(self) -> None:
        # A staff account linked to a customer would carry operator rights into the
        # customer's view; keep the two kinds of user apart.
        user = getattr(self, "user", None)
        if user is not None and (user.is_staff or user.is_superuser):
            raise ValidationError({"user": "Staff users cannot be customer users."})
