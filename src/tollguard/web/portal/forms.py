"""Portal forms: CDR filters and new API keys."""

from __future__ import annotations

import ipaddress
from datetime import UTC, datetime, time, timedelta
from typing import Any

from django import forms
from django.db.models import Q, QuerySet
from django.utils import timezone

from tollguard.web.api.models import CUSTOMER_SCOPES, Scope
from tollguard.web.cdr.models import Cdr


class CdrFilterForm(forms.Form):
    since = forms.DateField(required=False, label="From (date, UTC)")
    until = forms.DateField(required=False, label="Until (date, UTC, inclusive)")
    callee_prefix = forms.RegexField(
        regex=r"^\+?[0-9]{1,32}$",
        required=False,
        label="Called number starts with",
        error_messages={"invalid": "Digits only, with an optional leading '+'."},
    )
    sip_code = forms.IntegerField(required=False, min_value=100, max_value=699, label="SIP code")
    answered = forms.ChoiceField(
        required=False,
        choices=[("", "all calls"), ("yes", "answered"), ("no", "not answered")],
    )

    def filter(self, cdrs: QuerySet[Cdr]) -> QuerySet[Cdr]:
        """``cdrs`` narrowed by the valid fields (call :meth:`is_valid` first)."""
        data = self.cleaned_data
        if data.get("since"):
            cdrs = cdrs.filter(started_at__gte=_midnight(data["since"]))
        if data.get("until"):
            end = _midnight(data["until"]) + timedelta(days=1)
            cdrs = cdrs.filter(started_at__lt=end)
        if data.get("callee_prefix"):
            cdrs = cdrs.filter(callee__startswith=data["callee_prefix"])
        if data.get("sip_code") is not None:
            cdrs = cdrs.filter(sip_code=data["sip_code"])
        if data.get("answered") == "yes":
            cdrs = cdrs.filter(answered_at__isnull=False)
        elif data.get("answered") == "no":
            cdrs = cdrs.filter(answered_at__isnull=True)
        return cdrs


def _midnight(day: Any) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


def older_than(cdrs: QuerySet[Cdr], started_at: datetime, pk: int) -> QuerySet[Cdr]:
    """Rows after (``started_at``, ``pk``) in newest-first order: the next keyset page."""
    return cdrs.filter(Q(started_at__lt=started_at) | Q(started_at=started_at, pk__lt=pk))


# What each scope lets a customer's key read: its own rows only, and no carrier (the
# operator's labels name "carriers", which a customer's key never sees).
CUSTOMER_SCOPE_LABELS: dict[str, str] = {
    Scope.READ_PROVISIONING: (
        "read your customer record, SIP accounts, IP access list and rate card"
    ),
    Scope.READ_CDR: "read your calls (CDRs)",
    Scope.READ_STATS: "read your traffic statistics",
    Scope.READ_LEDGER: "read your balance and ledger",
}


class ApiKeyForm(forms.Form):
    name = forms.CharField(max_length=100)
    scopes = forms.MultipleChoiceField(
        choices=[(s.value, CUSTOMER_SCOPE_LABELS[s.value]) for s in Scope if s in CUSTOMER_SCOPES],
        widget=forms.CheckboxSelectMultiple,
    )
    expires_on = forms.DateField(
        required=False, label="Expires on (date, UTC)", help_text="Leave empty: never."
    )
    allowed_networks = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        label="Allowed networks",
        help_text="One CIDR network per line (192.0.2.0/24); empty: any address.",
    )

    def clean_expires_on(self) -> datetime | None:
        day = self.cleaned_data.get("expires_on")
        if day is None:
            return None
        moment = _midnight(day)
        if moment <= timezone.now():
            raise forms.ValidationError("The expiry date must be in the future.")
        return moment

    def clean_allowed_networks(self) -> list[str]:
        networks = []
        for line in str(self.cleaned_data.get("allowed_networks", "")).splitlines():
            text = line.strip()
            if not text:
                continue
            try:
                networks.append(str(ipaddress.ip_network(text, strict=True)))
            except ValueError as exc:
                raise forms.ValidationError(f"{text!r} is not a CIDR network: {exc}") from exc
        return networks
