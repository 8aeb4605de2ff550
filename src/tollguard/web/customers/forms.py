"""Admin forms: SIP accounts (a password in, HA1 digests out) and customers (no
provider in another currency)."""

from __future__ import annotations

from typing import Any

from django import forms
from django.conf import settings

from tollguard.web.customers.models import Account, Customer
from tollguard.web.customers.services import (
    ALLOW_MD5_NEEDS_DIGEST,
    generate_sip_password,
    ha1_digests,
)


class AccountForm(forms.ModelForm[Account]):
    """Takes a SIP password and stores only its digests for the configured realm.

    A new account without a typed password gets a random one
    (:func:`generate_sip_password`); it is kept in :attr:`generated_password` for the
    admin to show once, and nowhere else.
    """

    sip_password = forms.CharField(
        label="SIP password",
        widget=forms.PasswordInput(render_value=False),
        required=False,
        strip=False,
        help_text=(
            "Stored only as HA1 digests. A new account left empty gets a random password, "
            "shown once after saving; an existing one keeps its password."
        ),
    )

    class Meta:
        model = Account
        fields = ("customer", "username", "sip_password", "extension", "allow_md5", "enabled")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.generated_password = ""

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        password = cleaned.get("sip_password", "")
        username = cleaned.get("username")
        if self.instance.pk is not None and username != self.instance.username and not password:
            # The digests cover the user name: renaming without a password breaks them.
            self.add_error("sip_password", "Changing the user name needs a new SIP password.")
        if (
            self.instance.pk is not None
            and cleaned.get("allow_md5")
            and not password
            and not self.instance.ha1_md5
        ):
            self.add_error("sip_password", ALLOW_MD5_NEEDS_DIGEST)
        return cleaned

    def save(self, commit: bool = True) -> Account:
        account = super().save(commit=False)
        password = self.cleaned_data.get("sip_password", "")
        if not password and account.pk is None:
            password = self.generated_password = generate_sip_password()
        if password:
            account.ha1_md5, account.ha1_sha256 = ha1_digests(
                account.username, settings.TOLLGUARD.sip.realm, password, md5=account.allow_md5
            )
        if commit:
            account.save()
            self.save_m2m()
        return account


CURRENCY_RULE = "calls are never routed across currencies (docs/provisioning.md, 'Currencies')"


class CustomerForm(forms.ModelForm[Customer]):
    """Refuses providers whose cost card is in another currency than the sell card:
    the switch would never route a call to them."""

    class Meta:
        model = Customer
        fields = "__all__"

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        card = cleaned.get("sell_card")
        providers = cleaned.get("providers") or ()
        if card is None:
            return cleaned
        elsewhere = [
            f"{provider.name} ({provider.cost_card.currency})"
            for provider in providers
            if provider.cost_card is not None and provider.cost_card.currency != card.currency
        ]
        if elsewhere:
            self.add_error(
                "providers",
                f"The sell card {card.name} is in {card.currency}, but these providers' cost "
                f"cards are not: {', '.join(elsewhere)}. Remove them or pick a sell card in "
                f"their currency: {CURRENCY_RULE}.",
            )
        return cleaned
