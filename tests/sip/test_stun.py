"""STUN keep-alives (RFC 5626 §4.4.2): the Binding request read, its answer written,
checked against the sample messages of RFC 5769."""

from __future__ import annotations

import struct
import zlib

import pytest

from tollguard.sip.stun import binding_response, is_stun

TRANSACTION = bytes.fromhex("b7e7a701bc34d686fa87dfae")
# RFC 5769 §2.1: a Binding request with SOFTWARE, PRIORITY, ICE-CONTROLLED, USERNAME,
# MESSAGE-INTEGRITY and FINGERPRINT.
SAMPLE_REQUEST = bytes.fromhex(
    "000100582112a442b7e7a701bc34d686fa87dfae"
    "802200105354554e207465737420636c69656e74"
    "002400046e0001ff"
    "80290008932ff9b151263b36"
    "000600096576746a3a68367659202020"
    "000800149aeaa70cbfd8cb56781ef2b5b2d3f249c1b571a2"
    "80280004e57a3bcf"
)
BARE_REQUEST = bytes.fromhex("000100002112a442") + TRANSACTION


def _attributes(message: bytes) -> dict[int, bytes]:
    found, offset = {}, 20
    while offset < len(message):
        kind, size = struct.unpack_from("!HH", message, offset)
        found[kind] = message[offset + 4 : offset + 4 + size]
        offset += 4 + size + (-size % 4)
    return found


@pytest.mark.parametrize(
    ("source", "mapped"),
    [
        # RFC 5769 §2.2 and §2.3: the XOR-MAPPED-ADDRESS of the sample responses.
        (("192.0.2.1", 32853), "0001a147e112a643"),
        (
            ("2001:db8:1234:5678:11:2233:4455:6677", 32853),
            "0002a1470113a9faa5d3f179bc25f4b5bed2b9d9",
        ),
    ],
    ids=["ipv4", "ipv6"],
)
def test_the_answer_tells_the_phone_its_public_address(
    source: tuple[str, int], mapped: str
) -> None:
    answer = binding_response(SAMPLE_REQUEST, source)
    assert answer is not None
    kind, length, cookie = struct.unpack_from("!HHI", answer)
    assert (kind, cookie, answer[8:20]) == (0x0101, 0x2112A442, TRANSACTION)
    assert length == len(answer) - 20
    attributes = _attributes(answer)
    assert attributes[0x0020].hex() == mapped
    # The request had a FINGERPRINT: so has the answer, and it checks out.
    assert binding_response(_as_request(answer), ("192.0.2.1", 1)) is not None


def _as_request(answer: bytes) -> bytes:
    """The answer with its type turned into a request and its FINGERPRINT recomputed:
    accepted only if the FINGERPRINT was right in the first place."""
    body = answer[:-8]
    crc = struct.unpack("!I", answer[-4:])[0]
    assert crc == (zlib.crc32(body) ^ 0x5354554E) & 0xFFFFFFFF
    request = b"\x00\x01" + body[2:]
    new_crc = (zlib.crc32(request) ^ 0x5354554E) & 0xFFFFFFFF
    return request + struct.pack("!HHI", 0x8028, 4, new_crc)


def test_a_bare_request_gets_a_bare_answer() -> None:
    answer = binding_response(BARE_REQUEST, ("203.0.113.7", 40000))
    assert answer is not None
    assert list(_attributes(answer)) == [0x0020]


@pytest.mark.parametrize(
    "data",
    [
        SAMPLE_REQUEST[:-1] + b"\x00",  # a wrong FINGERPRINT
        b"\x01\x01" + BARE_REQUEST[2:],  # a response, not a request
        b"\x00\x11" + BARE_REQUEST[2:],  # another method (Allocate-like)
        BARE_REQUEST[:4] + b"\x21\x12\xa4\x43" + BARE_REQUEST[8:],  # no magic cookie
        b"\x00\x01\x00\x08" + BARE_REQUEST[4:],  # claims attributes it does not carry
        b"\x00\x01\x00\x04" + BARE_REQUEST[4:] + b"\x00\x20\x00\x09",  # truncated attribute
        b"\x00\x01" + b"\x00" * 10,  # shorter than a header
        b"\x00\x01\x02\x20" + BARE_REQUEST[4:] + b"\x00" * 544,  # too large for a keep-alive
    ],
    ids=[
        "bad-fingerprint", "response", "other-method", "cookie", "length",
        "truncated", "short", "large",
    ],
)  # fmt: skip
def test_anything_but_a_well_formed_binding_request_is_dropped(data: bytes) -> None:
    assert binding_response(data, ("203.0.113.7", 40000)) is None


def test_stun_is_told_from_sip_by_its_first_byte() -> None:
    assert is_stun(BARE_REQUEST)
    assert not is_stun(b"OPTIONS sip:a@b SIP/2.0\r\n")
    assert not is_stun(b"\x00\x01")
