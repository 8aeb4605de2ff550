"""The mail backend in use when ``[mail] host`` is not set: it refuses to send."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.core.mail.backends.base import BaseEmailBackend
from django.core.mail.message import EmailMessage

from tollguard.web.billing.errors import BillingError


class MailNotConfigured(BillingError):
    """No SMTP server is configured."""


class UnconfiguredBackend(BaseEmailBackend):
    def send_messages(self, email_messages: Sequence[EmailMessage], **kwargs: Any) -> int:
        if not email_messages:
            return 0
        raise MailNotConfigured("no mail server: set [mail] host in tollguard.toml")
