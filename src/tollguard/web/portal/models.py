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
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="customer_link"
    )
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="users")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = "customer user"
        ordering = ("customer", "user")

    def __str__(self) -> str:
        return f"{self.user_id} of customer {self.customer_id}"

    def clean(self) -> None:
        # A staff account linked to a customer would carry operator rights into the
        # customer's view; keep the two kinds of user apart.
        user = getattr(self, "user", None)
        if user is not None and (user.is_staff or user.is_superuser):
            raise ValidationError({"user": "Staff users cannot be customer users."})
