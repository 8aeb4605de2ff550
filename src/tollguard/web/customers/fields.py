"""A model field holding an IP network in its normalized text form."""

from __future__ import annotations

import ipaddress
from typing import Any

from django.core.exceptions import ValidationError
from django.db import models

from tollguard.domain.plan import IPNetwork


def parse_network(value: str) -> IPNetwork:
    """``value`` as a network; a bare address is a /32 (or /128). Host bits must be 0.

    Host bits are refused rather than masked: ``10.0.0.7/24`` in an ACL is more likely
    a typo than a wish to trust the whole /24.
    """
    try:
        return ipaddress.ip_network(value.strip(), strict=True)
    except ValueError as exc:
        raise ValidationError(
            "%(value)r is not an IP network in CIDR form (%(reason)s).",
            code="invalid_network",
            params={"value": value, "reason": exc},
        ) from exc


class NetworkField(models.CharField[str, str]):
    """Stores ``ipaddress`` networks as normalized CIDR text (``2001:db8::/32``)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("max_length", 43)  # the longest IPv6 CIDR text
        super().__init__(*args, **kwargs)

    def deconstruct(self) -> Any:
        name, path, args, kwargs = super().deconstruct()
        if kwargs.get("max_length") == 43:
            del kwargs["max_length"]
        return name, path, args, kwargs

    def to_python(self, value: Any) -> Any:
        value = super().to_python(value)
        if value in (None, ""):
            return value
        return str(parse_network(str(value)))

    def get_prep_value(self, value: Any) -> Any:
        # Not CharField.get_prep_value: it calls to_python, whose ValidationError is for
        # forms; a bad value reaching the database layer is a programming error.
        if value in (None, ""):
            return value
        try:
            return str(parse_network(str(value)))
        except ValidationError as exc:
            raise ValueError(f"{value!r} is not an IP network in CIDR form") from exc
