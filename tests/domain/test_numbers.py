from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tollguard.domain.errors import NumberError
from tollguard.domain.numbers import MAX_DIGITS, NumberKind, classify, normalize
from tollguard.domain.plan import NumberRules

UK = NumberRules(country_code="44")
NANP = NumberRules(country_code="1", national_prefix="1", international_prefix="011")
ACCESS = NumberRules(country_code="49", strip_prefix="9")


@pytest.mark.parametrize(
    ("raw", "rules", "expected"),
    [
        ("+442079460000", UK, "442079460000"),
        ("+44 20 7946 0000", UK, "442079460000"),
        ("(020) 7946-0000", UK, "442079460000"),
        ("020.7946.0000", UK, "442079460000"),
        ("00442079460000", UK, "442079460000"),
        ("0033142685300", UK, "33142685300"),
        ("442079460000", UK, "442079460000"),
        ("02079460000;phone-context=+44", UK, "442079460000"),
        ("01133142685300", NANP, "33142685300"),
        ("12125550100", NANP, "12125550100"),
        ("+12125550100", NANP, "12125550100"),
        ("9030123456", ACCESS, "4930123456"),
        ("90049301234567", ACCESS, "49301234567"),
        ("030123456", ACCESS, "4930123456"),
        ("123456789012345", UK, "123456789012345"),
    ],
    ids=[
        "plus",
        "plus-spaces",
        "national-parentheses-dash",
        "national-dots",
        "international-00",
        "international-00-other-country",
        "already-e164",
        "tel-parameter-dropped",
        "nanp-011",
        "nanp-e164",
        "nanp-plus",
        "access-code-then-national",
        "access-code-then-international",
        "no-access-code",
        "fifteen-digits",
    ],
)
def test_normalize(raw: str, rules: NumberRules, expected: str) -> None:
    assert normalize(raw, rules) == expected


@pytest.mark.parametrize(
    ("raw", "rules", "message"),
    [
        ("", UK, "empty number ''"),
        (" - ", UK, "empty number ' - '"),
        ("+", UK, "number '+' has characters other than digits"),
        ("44abc", UK, "number '44abc' has characters other than digits"),
        ("+44*123", UK, "number '+44*123' has characters other than digits"),
        ("44\u0663\u0664", UK, "has characters other than digits"),
        ("1234567890123456", UK, "number '1234567890123456' is longer than 15 digits"),
        ("02079460000", NumberRules(), "national number '02079460000' and no country code"),
        ("00", UK, "number '00' has characters other than digits"),
        ("0", NumberRules(national_prefix=""), "does not begin with a country code"),
    ],
    ids=[
        "empty",
        "separators-only",
        "plus-only",
        "letters",
        "star",
        "arabic-indic-digits",
        "sixteen-digits",
        "national-without-country-code",
        "international-prefix-only",
        "leading-zero",
    ],
)
def test_normalize_rejects(raw: str, rules: NumberRules, message: str) -> None:
    with pytest.raises(NumberError, match=message.replace("+", r"\+").replace("*", r"\*")):
        normalize(raw, rules)


@given(
    st.text(alphabet="0123456789", min_size=1, max_size=MAX_DIGITS).filter(lambda s: s[0] != "0")
)
def test_normalize_keeps_e164_and_plus_form_alike(digits: str) -> None:
    assert normalize(digits, UK) == digits
    assert normalize("+" + digits, UK) == digits
    assert normalize("00" + digits, UK) == digits


@given(st.text(max_size=30))
def test_normalize_returns_digits_or_raises(raw: str) -> None:
    try:
        number = normalize(raw, UK)
    except NumberError:
        return
    assert number.isascii()
    assert number.isdigit()
    assert 1 <= len(number) <= MAX_DIGITS
    assert number[0] != "0"


@pytest.mark.parametrize(
    ("e164", "kind"),
    [
        ("442079460000", NumberKind.FIXED),
        ("447400123456", NumberKind.MOBILE),
        ("19005550100", NumberKind.PREMIUM),
        ("18005550100", NumberKind.TOLL_FREE),
        ("999", NumberKind.UNKNOWN),
    ],
    ids=["uk-fixed", "uk-mobile", "nanp-premium", "nanp-toll-free", "too-short"],
)
def test_classify(e164: str, kind: NumberKind) -> None:
    assert classify(e164) is kind
