"""Bencode, the encoding of rtpengine's ng control protocol.

The grammar (BitTorrent BEP 3, "bencoding"): an integer is ``i<decimal>e``, a byte string
``<length>:<bytes>``, a list ``l<items>e`` and a dictionary ``d<key><value>...e`` whose
keys are byte strings in sorted order. ``str`` values are encoded as UTF-8; decoding gives
``bytes`` for strings, so a caller decodes the text it expects.

Decoding is strict about form: leading zeros, ``i-0e``, repeated keys and trailing bytes
raise :class:`BencodeError` with the offset of the problem. Keys out of order are
accepted, because rtpengine writes its replies' keys in the order it builds them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

__all__ = ["BencodeError", "Bencoded", "decode", "encode"]

type Bencoded = int | bytes | list[Bencoded] | dict[bytes, Bencoded]
type Encodable = (
    int | str | bytes | Sequence[Encodable] | Mapping[str, Encodable] | Mapping[bytes, Encodable]
)

# Nesting deeper than this is refused: ng replies are a few levels deep at most.
_MAX_DEPTH = 32


class BencodeError(ValueError):
    """Input that is not valid bencode; the message gives the byte offset."""


def encode(value: Encodable) -> bytes:
    """``value`` as bencode; dictionary keys are sorted as the grammar requires."""
    out: list[bytes] = []
    _encode(value, out)
    return b"".join(out)


def _key(key: str | bytes) -> bytes:
    return key.encode() if isinstance(key, str) else key


def _encode(value: Encodable, out: list[bytes]) -> None:
    if isinstance(value, bool):
        raise TypeError("bencode has no booleans")
    if isinstance(value, int):
        out.append(b"i%de" % value)
    elif isinstance(value, str | bytes):
        data = value.encode() if isinstance(value, str) else value
        out.append(b"%d:" % len(data))
        out.append(data)
    elif isinstance(value, Mapping):
        out.append(b"d")
        items = sorted((_key(key), item) for key, item in value.items())
        for index in range(1, len(items)):
            if items[index][0] == items[index - 1][0]:
                raise ValueError(f"duplicate key {items[index][0]!r}")
        for key, item in items:
            out.append(b"%d:" % len(key))
            out.append(key)
            _encode(item, out)
        out.append(b"e")
    elif isinstance(value, Sequence):
        out.append(b"l")
        for item in value:
            _encode(item, out)
        out.append(b"e")
    else:
        raise TypeError(f"cannot bencode {type(value).__name__}")


def decode(data: bytes) -> Bencoded:
    """The value ``data`` encodes; raises :class:`BencodeError` for anything else."""
    value, end = _decode(data, 0, 0)
    if end != len(data):
        raise BencodeError(f"offset {end}: trailing data")
    return value


def _integer(data: bytes, start: int, end: int) -> int:
    text = data[start:end]
    digits = text[1:] if text.startswith(b"-") else text
    if not digits or not digits.isdigit():
        raise BencodeError(f"offset {start}: {text!r} is not an integer")
    if (digits.startswith(b"0") and len(digits) > 1) or text == b"-0":
        raise BencodeError(f"offset {start}: {text!r} is not in canonical form")
    return int(text)


def _decode(data: bytes, pos: int, depth: int) -> tuple[Bencoded, int]:
    if depth > _MAX_DEPTH:
        raise BencodeError(f"offset {pos}: nested too deeply")
    if pos >= len(data):
        raise BencodeError(f"offset {pos}: unexpected end of data")
    lead = data[pos]
    if lead == 0x69:  # i
        end = data.find(b"e", pos)
        if end < 0:
            raise BencodeError(f"offset {pos}: unterminated integer")
        return _integer(data, pos + 1, end), end + 1
    if lead == 0x6C:  # l
        items: list[Bencoded] = []
        pos += 1
        while True:
            if pos >= len(data):
                raise BencodeError(f"offset {pos}: unterminated list")
            if data[pos] == 0x65:  # e
                return items, pos + 1
            item, pos = _decode(data, pos, depth + 1)
            items.append(item)
    if lead == 0x64:  # d
        result: dict[bytes, Bencoded] = {}
        pos += 1
        while True:
            if pos >= len(data):
                raise BencodeError(f"offset {pos}: unterminated dictionary")
            if data[pos] == 0x65:
                return result, pos + 1
            key_at = pos
            key, pos = _decode(data, pos, depth + 1)
            if not isinstance(key, bytes):
                raise BencodeError(f"offset {key_at}: dictionary key is not a string")
            if key in result:
                raise BencodeError(f"offset {key_at}: repeated key {key!r}")
            result[key], pos = _decode(data, pos, depth + 1)
    if 0x30 <= lead <= 0x39:
        colon = data.find(b":", pos)
        if colon < 0:
            raise BencodeError(f"offset {pos}: string length without ':'")
        length = _integer(data, pos, colon)
        end = colon + 1 + length
        if end > len(data):
            raise BencodeError(f"offset {pos}: string of {length} bytes runs past the end")
        return data[colon + 1 : end], end
    raise BencodeError(f"offset {pos}: unexpected byte {bytes([lead])!r}")
