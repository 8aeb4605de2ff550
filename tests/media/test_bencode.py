"""The ng protocol's bencode codec: round trips, the grammar's edge cases, exact errors."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tollguard.media.bencode import BencodeError, decode, encode

values = st.recursive(
    st.integers() | st.binary(max_size=20),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.binary(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)


@given(values)
def test_round_trip(value: object) -> None:
    assert decode(encode(value)) == value  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("value", "encoded"),
    [
        (0, b"i0e"),
        (-42, b"i-42e"),
        ("ok", b"2:ok"),
        (b"", b"0:"),
        (["a", 1], b"l1:ai1ee"),
        ({"b": 1, "a": "x"}, b"d1:a1:x1:bi1ee"),
        ({"command": "ping"}, b"d7:command4:pinge"),
    ],
    ids=["zero", "negative", "text", "empty", "list", "sorted-keys", "ng-ping"],
)
def test_encode(value: object, encoded: bytes) -> None:
    assert encode(value) == encoded  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"i01e", "offset 1: b'01' is not in canonical form"),
        (b"i-0e", "offset 1: b'-0' is not in canonical form"),
        (b"ie", "offset 1: b'' is not an integer"),
        (b"i12", "offset 0: unterminated integer"),
        (b"5:abc", "offset 0: string of 5 bytes runs past the end"),
        (b"l1:a", "offset 4: unterminated list"),
        (b"d1:ai1e1:ai2ee", "offset 7: repeated key b'a'"),
        (b"di1ei2ee", "offset 1: dictionary key is not a string"),
        (b"i1ei2e", "offset 3: trailing data"),
        (b"x", "offset 0: unexpected byte b'x'"),
        (b"l" * 40 + b"e" * 40, "offset 33: nested too deeply"),
    ],
    ids=[
        "leading-zero",
        "minus-zero",
        "empty-int",
        "open-int",
        "short-string",
        "open-list",
        "repeated-key",
        "int-key",
        "trailing",
        "junk",
        "deep",
    ],
)
def test_decode_errors(data: bytes, message: str) -> None:
    with pytest.raises(BencodeError) as error:
        decode(data)
    assert str(error.value) == message


def test_keys_out_of_order_are_accepted() -> None:
    # rtpengine writes its keys in the order it builds them.
    assert decode(b"d6:result2:ok3:sdp1:xe") == {b"result": b"ok", b"sdp": b"x"}


def test_booleans_are_refused() -> None:
    with pytest.raises(TypeError):
        encode(True)
