"""Password validators beyond Django's (NIST SP 800-63B section 3.1.1.2).

That section also has verifiers refuse words tied to the context (the service's name,
the user name and what is derived from them); :class:`ContextWordsValidator` does.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any

from django.conf import settings
from django.core.exceptions import ObjectDoesNotExist, ValidationError

DEFAULT_MAX_LENGTH = 128


class MaximumLengthValidator:
    """Refuse passwords longer than ``max_length`` characters.

    Passphrases of at least 64 characters must be accepted; the upper bound only stops
    megabyte "passwords" from turning each sign-in into an expensive Argon2 run.
    """

    def __init__(self, max_length: int = DEFAULT_MAX_LENGTH) -> None:
        if max_length < 64:
            raise ValueError("max_length must accept passphrases of at least 64 characters")
        self.max_length = max_length

    def validate(self, password: str, user: Any = None) -> None:
        if len(password) > self.max_length:
            raise ValidationError(
                "This password is too long: at most %(max_length)d characters.",
                code="password_too_long",
                params={"max_length": self.max_length},
            )

    def get_help_text(self) -> str:
        return f"Your password can be up to {self.max_length} characters long."


PRODUCT_WORDS = ("tollguard",)
MIN_WORD_LENGTH = 4
_WORD_SPLIT = re.compile(r"[\W_]+")
_LABEL_SPLIT = re.compile(r"[.@\s]+")


def _squeeze(text: str) -> str:
    return "".join(_WORD_SPLIT.split(text))


def words_of(*values: str, parts: bool = True) -> set[str]:
    """Lower-case words of ``values``, without separators: each value whole, each label
    between dots, spaces or "@" ("carrier-one"), and with ``parts`` each part between
    any separators ("carrier"); only those of at least :data:`MIN_WORD_LENGTH`
    characters."""
    found: set[str] = set()
    for value in values:
        lowered = value.casefold()
        labels = _LABEL_SPLIT.split(lowered)
        pieces = _WORD_SPLIT.split(lowered) if parts else []
        for word in (_squeeze(lowered), *map(_squeeze, labels), *pieces):
            if len(word) >= MIN_WORD_LENGTH:
                found.add(word)
    return found


def _host_names() -> list[str]:
    hosts = [host.lstrip(".") for host in getattr(settings, "ALLOWED_HOSTS", ())]
    return [host for host in hosts if host and host != "*" and not _is_address(host)]


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def _customer_name(user: Any) -> str:
    # The portal's link (portal.CustomerUser); looked up by attribute so that this
    # app does not import the portal.
    try:
        link = getattr(user, "customer_link", None)
    except ObjectDoesNotExist:
        return ""
    customer = getattr(link, "customer", None)
    return str(getattr(customer, "name", "") or "")


def context_words(user: Any = None) -> set[str]:
    """Every word refused in ``user``'s password (ASVS 6.1.2 and 6.2.11)."""
    tollguard = settings.TOLLGUARD
    words = words_of(
        *PRODUCT_WORDS, tollguard.sip.realm, *_host_names(), *tollguard.web.password_words
    )
    if user is not None:
        username = str(user.get_username() or "") if hasattr(user, "get_username") else ""
        email = str(getattr(user, "email", "") or "")
        # A user's names count whole and by their dot, "@" and space labels, not by
        # every fragment: "admin-21c505" refuses "admin21c505", not "admin".
        words |= words_of(
            username,
            email,
            str(getattr(user, "first_name", "") or ""),
            str(getattr(user, "last_name", "") or ""),
            _customer_name(user),
            parts=False,
        )
    return words


class ContextWordsValidator:
    """Refuse passwords containing a word of this deployment or of the user.

    The words: the product name, the SIP digest realm, the host names the web app is
    served as, the user's name and e-mail parts, the customer's name for a customer
    user, and ``[web] password_words``. Matching ignores case and separators
    ("Toll-Guard2024" contains "tollguard"); words under four characters are ignored,
    or every password with "sip" or "net" in it would be refused.
    """

    def validate(self, password: str, user: Any = None) -> None:
        lowered = password.casefold()
        squeezed = _squeeze(lowered)
        for word in sorted(context_words(user)):
            if word in lowered or word in squeezed:
                raise ValidationError(
                    "This password contains a word tied to this service or to your "
                    "account: %(word)s.",
                    code="password_context_word",
                    params={"word": word},
                )

    def get_help_text(self) -> str:
        return (
            "Your password cannot contain the name of this service, of its host, "
            "or of your account."
        )
