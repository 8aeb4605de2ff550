"""Called numbers: normalization to E.164 digits and classification.

:func:`normalize` runs on every call, so it is plain string work. :func:`classify`
consults the ``phonenumbers`` metadata (libphonenumber's numbering plans), which is
much slower; it is meant for fraud rules and reports, not for routing.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache

from tollguard.domain.errors import NumberError
from tollguard.domain.plan import NumberRules

__all__ = ["MAX_DIGITS", "Destination", "NumberKind", "classify", "destination", "normalize"]

# ITU-T E.164: at most 15 digits, country code included.
MAX_DIGITS = 15

# RFC 3966 §3 visual separators ("-", ".", "(", ")") plus the spaces and slashes
# people type; none of them carries meaning.
_SEPARATORS = str.maketrans("", "", " -.()/\t")


class NumberKind(StrEnum):
    FIXED = "fixed"
    MOBILE = "mobile"
    FIXED_OR_MOBILE = "fixed_or_mobile"
    TOLL_FREE = "toll_free"
    PREMIUM = "premium"
    SHARED_COST = "shared_cost"
    VOIP = "voip"
    PERSONAL = "personal"
    PAGER = "pager"
    UAN = "uan"
    VOICEMAIL = "voicemail"
    SATELLITE = "satellite"
    INTERNATIONAL_NETWORK = "international_network"
    UNKNOWN = "unknown"


def normalize(raw: str, rules: NumberRules) -> str:
    """Bring a dialled number to E.164 digits without '+', as rate cards key it.

    ``raw`` is a Request-URI user part whose tech prefix the caller has removed. The
    forms understood, in this order: the customer's ``strip_prefix``; ``+CC…``; the
    international prefix (``00CC…``, ``011CC…``); the national (trunk) prefix with
    the customer's country code (``020…`` → ``4420…``); anything else is taken as
    already international (``4420…``), as class-4 trunks send it.
    """
    # RFC 3966 §3 parameters (";phone-context=…", ";isub=…") do not change the number.
    number = raw.partition(";")[0].translate(_SEPARATORS)
    if not number:
        raise NumberError(f"empty number {raw!r}")
    if rules.strip_prefix and number.startswith(rules.strip_prefix):
        number = number[len(rules.strip_prefix) :]
    if number.startswith("+"):
        number = number[1:]
    elif rules.international_prefix and number.startswith(rules.international_prefix):
        number = number[len(rules.international_prefix) :]
    elif rules.national_prefix and number.startswith(rules.national_prefix):
        if not rules.country_code:
            raise NumberError(f"national number {raw!r} and no country code for the customer")
        number = rules.country_code + number[len(rules.national_prefix) :]
    # isdigit() alone accepts other scripts' digits and superscripts.
    if not (number.isascii() and number.isdigit()):
        raise NumberError(f"number {raw!r} has characters other than digits")
    if len(number) > MAX_DIGITS:
        raise NumberError(f"number {raw!r} is longer than {MAX_DIGITS} digits")
    if number[0] == "0":
        # ITU-T E.164: no country code starts with 0.
        raise NumberError(f"number {raw!r} does not begin with a country code")
    return number


# ITU-T E.164 shared codes for global services: 870 (Inmarsat) and 881 (GMSS: Iridium,
# Globalstar, ...) are satellite networks, as is Thuraya's 882 16; the rest of 882 and
# 883 are "international networks" (mostly satellite, maritime and roaming carriers).
# Both are classic destinations of international revenue share fraud.
_SATELLITE_PREFIXES = ("870", "881", "88216")
_INTERNATIONAL_NETWORK_PREFIXES = ("882", "883")
NON_GEOGRAPHIC = "001"


@dataclass(frozen=True, slots=True)
class Destination:
    """Where a number leads: its country (ISO 3166-1 alpha-2; ``"001"`` for the shared
    non-geographic codes; ``""`` when unknown) and the kind of line."""

    country: str
    kind: NumberKind


def classify(e164: str) -> NumberKind:
    """What kind of line an E.164 number (digits, no '+') belongs to, from its plan."""
    return _destination(e164).kind


def destination(e164: str) -> Destination:
    """The country and kind of an E.164 number, from libphonenumber's metadata.

    Cached per number: an uncached look-up costs about 100 µs.
    """
    return _destination(e164)


@lru_cache(maxsize=65536)
def _destination(e164: str) -> Destination:
    # Imported here: the metadata takes a while to load and only this function needs it.
    import phonenumbers

    try:
        parsed = phonenumbers.parse("+" + e164)
    except phonenumbers.NumberParseException:
        return Destination("", NumberKind.UNKNOWN)
    country = phonenumbers.region_code_for_number(parsed) or ""
    if e164.startswith(_SATELLITE_PREFIXES):
        return Destination(NON_GEOGRAPHIC, NumberKind.SATELLITE)
    if e164.startswith(_INTERNATIONAL_NETWORK_PREFIXES):
        return Destination(NON_GEOGRAPHIC, NumberKind.INTERNATIONAL_NETWORK)
    if not country:
        # A number the plan does not know still has a country code: take its main
        # country (GB for 44, US for 1).
        main = phonenumbers.region_code_for_country_code(parsed.country_code or 0)
        country = "" if main == phonenumbers.UNKNOWN_REGION else main
    name = phonenumbers.PhoneNumberType.to_string(phonenumbers.number_type(parsed))
    return Destination(country, _KINDS.get(name, NumberKind.UNKNOWN))


# libphonenumber's type names.
_KINDS = {
    "FIXED_LINE": NumberKind.FIXED,
    "MOBILE": NumberKind.MOBILE,
    "FIXED_LINE_OR_MOBILE": NumberKind.FIXED_OR_MOBILE,
    "TOLL_FREE": NumberKind.TOLL_FREE,
    "PREMIUM_RATE": NumberKind.PREMIUM,
    "SHARED_COST": NumberKind.SHARED_COST,
    "VOIP": NumberKind.VOIP,
    "PERSONAL_NUMBER": NumberKind.PERSONAL,
    "PAGER": NumberKind.PAGER,
    "UAN": NumberKind.UAN,
    "VOICEMAIL": NumberKind.VOICEMAIL,
}
