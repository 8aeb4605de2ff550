from __future__ import annotations

import importlib
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tollguard.domain.errors import PlanError
from tollguard.domain.prefix import PrefixIndex

DECK = [
    ("1", "nanp"),
    ("1212", "new-york"),
    ("44", "uk"),
    ("447", "uk-mobile"),
    ("4477009", "uk-drama"),
    ("447700912345", "one-line"),
    ("33", "france"),
    ("336", "france-mobile"),
    ("3361234", "france-mobile-block"),
    ("49", "germany"),
    ("4930", "berlin"),
]


@pytest.mark.parametrize(
    ("number", "expected"),
    [
        ("447700912345678", ["one-line", "uk-drama", "uk-mobile", "uk"]),
        ("447700900000", ["uk-drama", "uk-mobile", "uk"]),
        ("447400123456", ["uk-mobile", "uk"]),
        ("442079460000", ["uk"]),
        ("12125550100", ["new-york", "nanp"]),
        ("13125550100", ["nanp"]),
        ("33612345678", ["france-mobile-block", "france-mobile", "france"]),
        ("4930123456", ["berlin", "germany"]),
        ("81312345678", []),
        ("4930", ["berlin", "germany"]),
        ("44", ["uk"]),
        ("7", []),
        ("", []),
        ("44a123456789", ["uk"]),
    ],
    ids=[
        "longest-of-four",
        "seven-digit-prefix",
        "three-digit-prefix",
        "country-only",
        "nanp-area",
        "nanp-only",
        "france-block",
        "berlin",
        "no-match",
        "number-equals-prefix",
        "short-number",
        "single-digit-miss",
        "empty-number",
        "non-digit-after-prefix",
    ],
)
def test_matches_longest_first(number: str, expected: list[str]) -> None:
    index = PrefixIndex(DECK)
    assert list(index.matches(number)) == expected
    assert index.get(number) == (expected[0] if expected else None)


def test_empty_prefix_is_a_catch_all() -> None:
    index = PrefixIndex([*DECK, ("", "anywhere")])
    assert index.get("81312345678") == "anywhere"
    assert list(index.matches("4930123456")) == ["berlin", "germany", "anywhere"]
    assert len(index) == len(DECK) + 1


def test_later_duplicate_replaces_earlier() -> None:
    index = PrefixIndex([("44", "old"), ("44", "new")])
    assert index.get("4420") == "new"
    assert len(index) == 1


@pytest.mark.parametrize(
    "prefix",
    ["0044", "44a", "+44", "1234567890123456", "\u0664\u0664"],
    ids=["leading-zero", "letter", "plus", "sixteen-digits", "arabic-indic"],
)
def test_rejects_bad_prefix(prefix: str) -> None:
    with pytest.raises(PlanError, match=r"prefix .*: a prefix is up to 15 digits"):
        PrefixIndex([("44", 1), (prefix, 2)])


def test_empty_index() -> None:
    index: PrefixIndex[str] = PrefixIndex([])
    assert index.get("442079460000") is None
    assert len(index) == 0


_prefix = st.text(alphabet="0123456789", min_size=1, max_size=12).filter(lambda p: p[0] != "0")
_number = st.text(alphabet="0123456789", min_size=1, max_size=15) | st.text(
    alphabet="0123456789#a+\u0664", max_size=15
)


@given(st.lists(_prefix, max_size=300, unique=True), st.lists(_number, min_size=1, max_size=20))
def test_agrees_with_scanning_every_length(prefixes: list[str], numbers: list[str]) -> None:
    index = PrefixIndex([(p, p) for p in prefixes])
    known = set(prefixes)
    for number in numbers:
        expected = [number[:n] for n in range(len(number), 0, -1) if number[:n] in known]
        assert list(index.matches(number)) == expected, number
        assert index.get(number) == (expected[0] if expected else None)


@pytest.mark.parametrize("count", [20_000, 150_000], ids=["head-5", "head-6"])
def test_agrees_with_scanning_on_a_large_deck(count: int) -> None:
    rng = random.Random(count)
    deck: set[str] = set()
    while len(deck) < count:
        size = rng.randint(1, 12)
        deck.add(str(rng.randrange(10 ** (size - 1), 10**size)))
    index = PrefixIndex([(p, p) for p in deck])
    numbers = [str(rng.randrange(10**7, 10**15)) for _ in range(3_000)]
    # Numbers that do start long prefixes, not only random ones that mostly miss them.
    numbers += [p + "123" for p in rng.sample(sorted(deck), 3_000)]
    for number in numbers:
        expected = [number[:n] for n in range(len(number), 0, -1) if number[:n] in deck]
        assert index.get(number) == (expected[0] if expected else None)
        assert list(index.matches(number)) == expected


@pytest.mark.parametrize(
    "module",
    [
        "tollguard.domain.prefix",
        "tollguard.domain.numbers",
        "tollguard.domain.rating",
        "tollguard.domain.routing",
    ],
)
def test_public_names_exist(module: str) -> None:
    imported = importlib.import_module(module)
    assert imported.__all__
    for name in imported.__all__:
        assert hasattr(imported, name), name
