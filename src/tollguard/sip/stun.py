"""STUN keep-alives on SIP's UDP port (RFC 5626 §4.4.2, §8; the message format of
RFC 5389 §6).

A phone registered with SIP outbound over UDP keeps its NAT binding open with STUN
Binding requests sent to the switch's SIP port, and learns from the answer's
XOR-MAPPED-ADDRESS whether its public address changed (then it registers again). This
module only reads a Binding request and writes its success response: no I/O, no
authentication (§8.4 has none), no other STUN method. Who gets an answer is the
switch's decision (only addresses with a UDP binding: answering anyone would make the
port a reflector).

A STUN message cannot be taken for SIP: its first byte is 0x00 or 0x01 (RFC 5389 §6,
RFC 7983), a SIP message starts with a letter.
"""

from __future__ import annotations

import ipaddress
import struct
import zlib

__all__ = ["MAGIC_COOKIE", "binding_response", "is_stun"]

MAGIC_COOKIE = 0x2112A442
_HEADER = struct.Struct("!HHI12s")  # type, length, magic cookie, transaction id
_BINDING_REQUEST = 0x0001
_BINDING_SUCCESS = 0x0101
_XOR_MAPPED_ADDRESS = 0x0020
_FINGERPRINT = 0x8028
_FINGERPRINT_XOR = 0x5354554E
# A keep-alive has no attributes or a FINGERPRINT; anything much larger is not one.
_MAX_REQUEST = 548


def is_stun(data: bytes) -> bool:
    """Whether ``data`` is laid out as a STUN message (not whether it is valid)."""
    return len(data) >= _HEADER.size and data[0] < 2


def binding_response(data: bytes, source: tuple[str, int]) -> bytes | None:
    """The success response to a STUN Binding request from ``source``, telling it that
    address; None for anything else (other methods, responses, malformed messages),
    which is dropped without an answer (RFC 5389 §7.3)."""
    if not _HEADER.size <= len(data) <= _MAX_REQUEST:
        return None
    kind, length, cookie, transaction = _HEADER.unpack_from(data)
    if kind != _BINDING_REQUEST or cookie != MAGIC_COOKIE:
        return None
    if length != len(data) - _HEADER.size or length % 4:
        return None
    fingerprint = _has_fingerprint(data)
    if fingerprint is None:
        return None
    try:
        address = ipaddress.ip_address(source[0].partition("%")[0])
    except ValueError:
        return None
    port = source[1] ^ (MAGIC_COOKIE >> 16)
    # RFC 5389 §15.2: the address XORed with the cookie (and, for IPv6, the transaction id).
    mask = struct.pack("!I", MAGIC_COOKIE) + (transaction if address.version == 6 else b"")
    size = len(mask)
    packed = (int.from_bytes(address.packed) ^ int.from_bytes(mask)).to_bytes(size)
    family = 0x01 if address.version == 4 else 0x02
    value = struct.pack("!BBH", 0, family, port) + packed
    attributes = struct.pack("!HH", _XOR_MAPPED_ADDRESS, len(value)) + value
    if not fingerprint:
        return _HEADER.pack(_BINDING_SUCCESS, len(attributes), MAGIC_COOKIE, transaction) + (
            attributes
        )
    # RFC 5389 §15.5: the CRC covers the message up to the FINGERPRINT, whose length is
    # already counted in the header; answer with one when the request had one.
    head = _HEADER.pack(_BINDING_SUCCESS, len(attributes) + 8, MAGIC_COOKIE, transaction)
    body = head + attributes
    crc = (zlib.crc32(body) ^ _FINGERPRINT_XOR) & 0xFFFFFFFF
    return body + struct.pack("!HHI", _FINGERPRINT, 4, crc)


def _has_fingerprint(data: bytes) -> bool | None:
    """Whether the request ends with a FINGERPRINT (None: malformed attributes or a
    wrong FINGERPRINT)."""
    offset = _HEADER.size
    found = False
    while offset < len(data):
        if offset + 4 > len(data) or found:
            return None  # a truncated attribute, or one after the FINGERPRINT
        kind, size = struct.unpack_from("!HH", data, offset)
        end = offset + 4 + size
        if end > len(data):
            return None
        if kind == _FINGERPRINT:
            if size != 4:
                return None
            expected = (zlib.crc32(data[:offset]) ^ _FINGERPRINT_XOR) & 0xFFFFFFFF
            if struct.unpack_from("!I", data, offset + 4)[0] != expected:
                return None
            found = True
        offset = end + (-size % 4)  # attributes are padded to 4 bytes
    return found
