"""RFC 4475 torture messages through the receive boundary.

The byte-exact messages and their manifest live in ``tests/sip/rfc4475/`` (decoded
from the RFC's Appendix A.1 archive; ``.gitattributes`` there keeps Git from touching
line ends, and the manifest's sha256 column is checked). Each message is parsed
(:func:`parse_message`) and then read through the full boundary
(:func:`read_message`); the only exceptions allowed are :class:`RemoteProtocolError`
and :class:`MessageDropped`.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from tollguard.sip import (
    MessageDropped,
    RemoteProtocolError,
    Request,
    Response,
    SipUri,
    error_response,
    parse_contacts,
    parse_message,
    read_message,
)

CORPUS = Path(__file__).resolve().parent / "rfc4475"


def _manifest() -> list[dict[str, str]]:
    lines = (CORPUS / "MANIFEST.tsv").read_text(encoding="utf-8").splitlines()
    columns = lines[0].split("\t")
    return [dict(zip(columns, line.split("\t"), strict=True)) for line in lines[1:] if line]


MANIFEST = _manifest()
OK = "ok"
DROP = "drop"

# name -> (outcome of parse_message, outcome of read_message); an int is the
# status of the RemoteProtocolError.
EXPECTED: dict[str, tuple[str | int, str | int]] = {
    # 3.1.1 valid messages
    "wsinv": (OK, OK),
    "intmeth": (OK, OK),
    "esc01": (OK, OK),
    "escnull": (OK, OK),
    "esc02": (OK, OK),
    "lwsdisp": (OK, OK),
    "longreq": (OK, OK),
    "dblreq": (OK, OK),
    "semiuri": (OK, OK),
    "transports": (OK, OK),
    "mpart01": (OK, OK),
    "unreason": (OK, OK),
    "noreason": (OK, OK),
    # 3.1.2 invalid messages
    "badinv01": (400, 400),
    "clerr": (400, 400),
    "ncl": (400, 400),
    "scalar02": (400, 400),
    "scalarlg": (DROP, DROP),
    "quotbal": (400, 400),
    "ltgtruri": (400, 400),
    "lwsruri": (400, 400),
    "lwsstart": (400, 400),
    "trws": (400, 400),
    "escruri": (400, 400),
    "baddate": (OK, 400),
    "regbadct": (OK, 400),
    "badaspec": (400, 400),
    "baddn": (400, 400),
    "badvers": (505, 505),
    "mismatch01": (OK, 400),
    "mismatch02": (OK, 400),
    "bigcode": (DROP, DROP),
    # 3.2 / 3.3 / 3.4: well-formed, semantic issues for upper layers
    "badbranch": (OK, OK),
    "insuf": (OK, 400),
    "unkscm": (OK, 416),
    "novelsc": (OK, 416),
    "unksm2": (OK, OK),
    "bext01": (OK, OK),
    "invut": (OK, OK),
    "regaut01": (OK, OK),
    "multi01": (OK, 400),
    "mcl01": (400, 400),
    "bcast": (OK, OK),
    "zeromf": (OK, OK),
    "cparam01": (OK, OK),
    "cparam02": (OK, OK),
    "regescrt": (OK, OK),
    "sdp01": (OK, OK),
    "inv2543": (OK, OK),
}


def _cases() -> list[object]:
    return [pytest.param(entry, id=entry["name"]) for entry in MANIFEST]


def _load(name: str) -> bytes:
    return (CORPUS / f"{name}.dat").read_bytes()


def _outcome(function: object, data: bytes) -> str | int:
    assert callable(function)
    try:
        function(data)
    except RemoteProtocolError as exc:
        return exc.status_code
    except MessageDropped:
        return DROP
    return OK


def test_every_manifest_entry_has_an_expectation() -> None:
    assert {entry["name"] for entry in MANIFEST} == set(EXPECTED)


@pytest.mark.parametrize("entry", _cases())
def test_message_is_byte_exact(entry: dict[str, str]) -> None:
    data = _load(entry["name"])
    assert hashlib.sha256(data).hexdigest() == entry["sha256"]


@pytest.mark.parametrize("entry", _cases())
def test_receive_boundary_outcome(entry: dict[str, str]) -> None:
    name = entry["name"]
    data = _load(name)
    assert (_outcome(parse_message, data), _outcome(read_message, data)) == EXPECTED[name]
    if entry["kind"] == "valid":
        assert EXPECTED[name] == (OK, OK)
    elif entry["kind"] == "invalid":
        assert EXPECTED[name][1] != OK or name == "baddate"


@pytest.mark.parametrize("entry", _cases())
def test_refusal_can_be_answered(entry: dict[str, str]) -> None:
    try:
        read_message(_load(entry["name"]))
    except RemoteProtocolError as exc:
        response = error_response(exc, to_tag="t0")
        assert response is not None
        assert response.status == exc.status_code
        assert response.headers.get("Via") is not None
        assert response.headers.get("CSeq") is not None
        assert b"\r\n\r\n" in response.to_bytes()
    except MessageDropped:
        pass


def _request(name: str) -> Request:
    message = read_message(_load(name))
    assert isinstance(message, Request)
    return message


def _sip_uri(uri: object) -> SipUri:
    assert isinstance(uri, SipUri)
    return uri


def test_wsinv_folding_and_whitespace() -> None:
    request = _request("wsinv")
    assert request.max_forwards == 68
    assert (request.cseq.seq, request.cseq.method) == (9, "INVITE")
    assert [via.transport for via in request.vias] == ["UDP", "TCP", "UDP"]
    assert [via.branch for via in request.vias] == ["390skdjuw", "z9hG4bK9ikj8", "z9hG4bK30239"]
    assert request.to.tag == "1918181833n"
    assert request.from_.display_name == 'J Rosenberg \\"'
    assert request.from_.tag == "98asjd8"
    assert request.headers.get("NewFangledHeader") == "newfangled value continued newfangled value"
    assert request.headers.get("Subject") == ""
    contacts = parse_contacts(request.headers.get("m") or "")
    assert contacts != "*"
    assert contacts[0].display_name == 'Quoted string ""'
    assert contacts[0].params == (("newparam", "newvalue"), ("secondparam", None), ("q", "0.33"))
    assert len(request.body) == 150


def test_intmeth_unusual_tokens() -> None:
    request = _request("intmeth")
    assert request.method == "!interesting-Method0123456789_*+`.%indeed'~"
    assert request.cseq.method == request.method
    uri = _sip_uri(request.uri)
    assert uri.user == "1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*"
    assert uri.password == "&it+has=1,weird!*pas$wo~d_too.(doesn't-it)"
    assert request.to.display_name == "BEL:\x07 NUL:\x00 DEL:\x7f"
    assert request.from_.display_name == "token1~` token2'+_ token3*%!.-"
    assert request.from_.tag == "_token~1'+`*%!-."
    assert request.call_id == "intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{"


def test_esc01_unescapes_user_parts_and_params() -> None:
    request = _request("esc01")
    assert _sip_uri(request.uri).user == "sips:user@example.com"
    assert _sip_uri(request.to.uri).user == "user"
    assert _sip_uri(request.from_.uri).user == "I have spaces"
    contacts = parse_contacts(request.headers.get("Contact") or "")
    assert contacts != "*"
    contact = _sip_uri(contacts[0].uri)
    assert contact.user == "caller"
    assert contact.params == (("lr", None), ("name", "value%41"))


def test_escnull_keeps_nul_and_two_bindings() -> None:
    request = _request("escnull")
    assert _sip_uri(request.to.uri).user == "null-\x00-null"
    users: list[str | None] = []
    for value in request.headers.get_all("Contact"):
        contacts = parse_contacts(value)
        assert contacts != "*"
        users.extend(_sip_uri(contact.uri).user for contact in contacts)
    assert users == ["\x00", "\x00\x00"]


def test_esc02_percent_is_not_an_escape() -> None:
    request = _request("esc02")
    assert request.method == "RE%47IST%45R"
    assert len(request.headers.get_all("Contact")) == 2
    assert request.headers.get("C%6Fntact") == "<sip:alias2@host2.example.com>"
    assert request.top_via.branch == "z9hG4bK209%fzsnel234"


def test_lwsdisp_display_name_without_space() -> None:
    assert _request("lwsdisp").from_.display_name == "caller"


def test_longreq_many_vias() -> None:
    request = _request("longreq")
    assert len(request.vias) == 34
    assert request.vias[0].host == "sip33.example.com"
    assert request.vias[-1].received == "192.0.2.5"
    assert _sip_uri(request.to.uri).port == 6000


def test_dblreq_ignores_trailing_octets() -> None:
    request = _request("dblreq")
    assert request.method == "REGISTER"
    assert request.body == b""
    assert request.call_id == "dblreq.0ha0isndaksdj99sdfafnl3lk233412"


def test_semiuri_user_part() -> None:
    uri = _sip_uri(_request("semiuri").uri)
    assert (uri.user, uri.host, uri.params) == ("user;par=u@example.net", "example.com", ())


def test_transports_accepts_unknown_transport() -> None:
    request = _request("transports")
    assert [via.transport for via in request.vias] == ["UDP", "SCTP", "TLS", "UNKNOWN", "TCP"]


def test_mpart01_body_framed_by_content_length() -> None:
    request = _request("mpart01")
    assert len(request.body) == 553
    assert b"\x00" in request.body
    assert request.top_via.has_rport
    assert request.top_via.rport is None


@pytest.mark.parametrize(
    ("name", "status", "reason"),
    [
        ("unreason", 200, "= 2**3 * 5**2 но сто девяносто девять - простое"),
        ("noreason", 100, ""),
    ],
    ids=["unreason", "noreason"],
)
def test_reason_phrases(name: str, status: int, reason: str) -> None:
    response = read_message(_load(name))
    assert isinstance(response, Response)
    assert (response.status, response.reason) == (status, reason)


def test_cparam01_contact_param_is_not_a_uri_param() -> None:
    contacts = parse_contacts(_request("cparam01").headers.get("Contact") or "")
    assert contacts != "*"
    assert contacts[0].params == (("unknownparam", None),)
    assert _sip_uri(contacts[0].uri).params == ()


def test_cparam02_uri_param_stays_in_the_uri() -> None:
    contacts = parse_contacts(_request("cparam02").headers.get("Contact") or "")
    assert contacts != "*"
    assert contacts[0].params == ()
    assert _sip_uri(contacts[0].uri).params == (("unknownparam", None),)


def test_regescrt_escaped_route_stays_in_contact_uri() -> None:
    contacts = parse_contacts(_request("regescrt").headers.get("M") or "")
    assert contacts != "*"
    uri = _sip_uri(contacts[0].uri)
    assert uri.headers == (("Route", "<sip:sip.example.com>"),)
    assert str(uri) == "sip:user@example.com?Route=%3Csip:sip.example.com%3E"


def test_inv2543_body_runs_to_end_of_datagram() -> None:
    request = _request("inv2543")
    assert request.max_forwards is None
    assert request.top_via.branch is None
    assert request.from_.tag is None
    assert request.body.endswith(b"m=audio 49217 RTP/AVP 0\r\n")


def test_zeromf_max_forwards_zero() -> None:
    assert _request("zeromf").max_forwards == 0


def test_unksm2_non_sip_addresses_parse() -> None:
    request = _request("unksm2")
    assert str(request.to.uri) == "isbn:2983792873"
    assert str(request.from_.uri) == "http://www.example.com"


def test_badvers_answer_is_505() -> None:
    with pytest.raises(RemoteProtocolError) as caught:
        parse_message(_load("badvers"))
    assert caught.value.message == "SIP version not supported: SIP/7.0"
    response = error_response(caught.value)
    assert response is not None
    assert (response.status, response.reason) == (505, "Version Not Supported")


def test_insuf_answer_copies_what_is_there() -> None:
    with pytest.raises(RemoteProtocolError) as caught:
        read_message(_load("insuf"))
    assert caught.value.message == "missing Call-ID header"
    response = error_response(caught.value)
    assert response is not None
    assert response.headers.get("CSeq") == "193942 INVITE"
    assert response.headers.get("Call-ID") is None


def test_the_whole_corpus_is_there() -> None:
    # 49 messages in the RFC's archive (its undescribed test.dat left out).
    assert len(MANIFEST) == 49
