"""Admin form for SIP accounts: a password field in, HA1 digests out."""

from __future__ import annotations

from typing import Any

from django import forms
from django.conf import settings

from tollguard.web.customers.models import Account
from tollguard.web.customers.services import ALLOW_MD5_NEEDS_DIGEST, ha1_digests


class AccountForm(forms.ModelForm[Account]):
    """Takes a SIP password and stores only its digests for the configured realm."""

    sip_password = forms.CharField(
        label="SIP password",
        widget=forms.PasswordInput(render_value=False),
        required=False,
        strip=False,
        help_text="Stored only as HA1 digests. Leave empty to keep the current password.",
    )

    class Meta:
        model = Account
        fields = ("customer", "username", "sip_password", "allow_md5", "enabled")

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        password = cleaned.get("sip_password", "")
        if self.instance.pk is None and not password:
            self.add_error("sip_password", "A new account needs a SIP password.")
        username = cleaned.get("username")
        if self.instance.pk is not None and username != self.instance.username and not password:
            # The digests cover the user name: renaming without a password breaks them.
            self.add_error("sip_password", "Changing the user name needs a new SIP password.")
        if cleaned.get("allow_md5") and not password and not self.instance.ha1_md5:
            self.add_error("sip_password", ALLOW_MD5_NEEDS_DIGEST)
        return cleaned

    def save(self, commit: bool = True) -> Account:
        account = super().save(commit=False)
        password = self.cleaned_data.get("sip_password", "")
        if password:
            account.ha1_md5, account.ha1_sha256 = ha1_digests(
                account.username, settings.TOLLGUARD.sip.realm, password, md5=account.allow_md5
            )
        if commit:
            account.save()
            self.save_m2m()
        return account
