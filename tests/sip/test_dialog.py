"""Dialogs: creation on both sides, in-dialog requests, CSeq rules and routing."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tollguard.sip.dialog import (
    DIALOG_TRANSITIONS,
    Dialog,
    DialogEvent,
    DialogState,
    dialog_id,
)
from tollguard.sip.errors import LocalProtocolError, RemoteProtocolError
from tollguard.sip.headers import Headers, Via
from tollguard.sip.message import Request, Response, make_response
from tollguard.sip.uri import SipUri, parse_uri

CALL_ID = "a84b4c76e66710@pc33.example.com"
VIA = Via("UDP", "192.0.2.1", 5060, (("branch", "z9hG4bKnext"),))


def invite(
    *,
    record_route: tuple[str, ...] = (),
    uri: str = "sip:bob@example.com",
    contact: str | None = "<sip:alice@192.0.2.10:5062>",
    from_tag: str | None = "alice-tag",
    cseq: int = 314159,
    method: str = "INVITE",
) -> Request:
    from_ = '"Alice" <sip:alice@example.com>' + (f";tag={from_tag}" if from_tag else "")
    fields = [
        ("Via", "SIP/2.0/UDP 192.0.2.10:5062;branch=z9hG4bK74bf9"),
        *(("Record-Route", route) for route in record_route),
        ("Max-Forwards", "70"),
        ("From", from_),
        ("To", "Bob <sip:bob@example.com>"),
        ("Call-ID", CALL_ID),
        ("CSeq", f"{cseq} {method}"),
    ]
    if contact is not None:
        fields.append(("Contact", contact))
    return Request(method, parse_uri(uri), Headers(fields))


def answer(
    request: Request,
    status: int,
    *,
    to_tag: str | None = "bob-tag",
    contact: str | None = "<sip:bob@192.0.2.20>",
    record_route: tuple[str, ...] = (),
) -> Response:
    extra = [("Record-Route", route) for route in record_route]
    if contact is not None:
        extra.append(("Contact", contact))
    return make_response(request, status, to_tag=to_tag, headers=extra)


PROXIES = ("<sip:p1.example.com;lr>", "<sip:p2.example.com;lr>")


def test_uac_dialog_from_2xx() -> None:
    request = invite(uri="sips:bob@example.com")
    dialog = Dialog.from_uac(request, answer(request, 200, record_route=PROXIES))
    assert dialog.id == (CALL_ID, "alice-tag", "bob-tag")
    assert dialog.state is DialogState.CONFIRMED
    assert dialog.local_cseq == 314159 and dialog.remote_cseq is None
    assert dialog.remote_target == parse_uri("sip:bob@192.0.2.20")
    # §12.1.2: the UAC reverses the Record-Route of the response.
    assert dialog.route_set == tuple(reversed(PROXIES))
    assert dialog.secure is True
    assert dialog.local_uri.tag is None and dialog.local_uri.display_name == "Alice"


def test_uac_early_dialog_then_confirmed_by_2xx() -> None:
    request = invite()
    early = Dialog.from_uac(request, answer(request, 180, contact="<sip:bob@ringing>"))
    assert early.state is DialogState.EARLY
    ok = answer(request, 200, record_route=PROXIES)
    confirmed = early.confirm(ok)
    assert confirmed.state is DialogState.CONFIRMED
    assert confirmed.remote_target == parse_uri("sip:bob@192.0.2.20")
    assert confirmed.route_set == tuple(reversed(PROXIES))
    assert early.state is DialogState.EARLY  # values do not change under us
    with pytest.raises(LocalProtocolError, match="cannot confirm a dialog in state CONFIRMED"):
        confirmed.confirm(ok)
    with pytest.raises(LocalProtocolError, match="does not confirm"):
        early.confirm(answer(request, 183))


@pytest.mark.parametrize("status", [100, 300, 486], ids=["100", "300", "486"])
def test_only_101_to_299_create_dialogs(status: int) -> None:
    request = invite()
    with pytest.raises(LocalProtocolError, match="does not create a dialog"):
        Dialog.from_uac(request, answer(request, status))


def test_uac_needs_contact_and_from_tag() -> None:
    request = invite()
    with pytest.raises(LocalProtocolError, match="no Contact"):
        Dialog.from_uac(request, answer(request, 200, contact=None))
    untagged = invite(from_tag=None)
    with pytest.raises(LocalProtocolError, match="no From tag"):
        Dialog.from_uac(untagged, answer(untagged, 200))


def test_uac_rfc2543_response_without_to_tag() -> None:
    request = invite()
    dialog = Dialog.from_uac(request, answer(request, 180, to_tag=None))
    assert dialog.remote_tag is None
    assert dialog.confirm(answer(request, 200)).remote_tag == "bob-tag"


def test_uas_dialog() -> None:
    request = invite(record_route=PROXIES)
    dialog = Dialog.from_uas(request, "bob-tag", early=True)
    assert dialog.id == (CALL_ID, "bob-tag", "alice-tag")
    assert dialog.state is DialogState.EARLY
    assert dialog.remote_cseq == 314159 and dialog.local_cseq is None
    assert dialog.route_set == PROXIES
    assert dialog.remote_target == parse_uri("sip:alice@192.0.2.10:5062")
    assert dialog.secure is False
    assert dialog.confirm().state is DialogState.CONFIRMED


def test_dialog_id_of_received_messages_matches_both_sides() -> None:
    request = invite()
    ok = answer(request, 200)
    uac = Dialog.from_uac(request, ok)
    assert dialog_id(ok) == uac.id
    uas = Dialog.from_uas(request, "bob-tag")
    bye, _ = uac.create_request("BYE", via=VIA)
    assert dialog_id(bye) == uas.id


def test_create_request_increments_cseq_and_builds_headers() -> None:
    request = invite()
    dialog = Dialog.from_uac(request, answer(request, 200, record_route=PROXIES))
    bye, after = dialog.create_request(
        "BYE", via=VIA, headers=[("Reason", "Q.850;cause=16")], body=b""
    )
    assert bye.cseq.seq == 314160 and bye.cseq.method == "BYE"
    assert after.local_cseq == 314160 and dialog.local_cseq == 314159
    assert bye.uri == parse_uri("sip:bob@192.0.2.20")
    assert bye.headers.get_all("Route") == tuple(reversed(PROXIES))
    assert bye.from_.tag == "alice-tag" and bye.to.tag == "bob-tag"
    assert bye.call_id == CALL_ID
    assert bye.vias == (VIA,)
    assert bye.headers.get("Reason") == "Q.850;cause=16"
    assert bye.max_forwards == 70
    info, later = after.create_request("INFO", via=VIA)
    assert info.cseq.seq == 314161 and later.local_cseq == 314161


@pytest.mark.parametrize("method", ["ACK", "CANCEL"])
def test_ack_and_cancel_reuse_the_invite_cseq(method: str) -> None:
    request = invite()
    dialog = Dialog.from_uac(request, answer(request, 200))
    message, after = dialog.create_request(method, via=VIA)
    assert message.cseq.seq == 314159 and message.cseq.method == method
    assert after == dialog


def test_ack_in_uas_dialog_without_local_invite_is_an_error() -> None:
    dialog = Dialog.from_uas(invite(), "bob-tag")
    with pytest.raises(LocalProtocolError, match="never sent"):
        dialog.create_request("ACK", via=VIA)
    bye, after = dialog.create_request("BYE", via=VIA)
    assert bye.cseq.seq == 1 and after.local_cseq == 1
    assert bye.to.display_name == "Alice" and bye.to.tag == "alice-tag"


def test_strict_router_puts_remote_target_last() -> None:
    request = invite()
    routes = ("<sip:strict.example.com;maddr=192.0.2.50>", "<sip:p2.example.com;lr>")
    ok = answer(request, 200, record_route=tuple(reversed(routes)))
    dialog = Dialog.from_uac(request, ok)
    assert dialog.route_set == routes
    bye, _ = dialog.create_request("BYE", via=VIA)
    assert isinstance(bye.uri, SipUri) and bye.uri.host == "strict.example.com"
    assert bye.headers.get_all("Route") == ("<sip:p2.example.com;lr>", "<sip:bob@192.0.2.20>")


def test_check_remote_cseq() -> None:
    dialog = Dialog.from_uas(invite(cseq=10), "bob-tag")
    after = dialog.check_remote_cseq(invite(method="INFO", cseq=12))
    assert after.remote_cseq == 12
    assert after.check_remote_cseq(invite(method="ACK", cseq=10)) is after
    with pytest.raises(RemoteProtocolError, match="out of order") as info:
        after.check_remote_cseq(invite(method="BYE", cseq=11))
    assert info.value.status_code == 500
    # The UAC side starts with an empty remote sequence number.
    request = invite()
    uac = Dialog.from_uac(request, answer(request, 200))
    assert uac.check_remote_cseq(invite(method="BYE", cseq=7)).remote_cseq == 7


def test_terminated_dialog_refuses_everything() -> None:
    dialog = Dialog.from_uas(invite(), "bob-tag").terminate()
    assert dialog.state is DialogState.TERMINATED
    with pytest.raises(LocalProtocolError, match="terminated"):
        dialog.create_request("BYE", via=VIA)
    with pytest.raises(RemoteProtocolError) as info:
        dialog.check_remote_cseq(invite(method="BYE", cseq=999999))
    assert info.value.status_code == 481
    with pytest.raises(LocalProtocolError, match="cannot terminate"):
        dialog.terminate()


def test_target_refresh() -> None:
    dialog = Dialog.from_uas(invite(), "bob-tag")
    reinvite = invite(contact="<sip:alice@198.51.100.3:5070>", cseq=314160)
    assert dialog.with_remote_target(reinvite).remote_target == parse_uri(
        "sip:alice@198.51.100.3:5070"
    )


@given(
    start=st.sampled_from(list(DialogState)),
    events=st.lists(st.sampled_from(list(DialogEvent)), max_size=5),
)
def test_state_table_is_the_only_way(start: DialogState, events: list[DialogEvent]) -> None:
    dialog = Dialog.from_uas(invite(), "bob-tag", early=start is DialogState.EARLY)
    if start is DialogState.TERMINATED:
        dialog = dialog.terminate()
    for event in events:
        expected = DIALOG_TRANSITIONS.get((dialog.state, event))
        step = dialog.confirm if event is DialogEvent.CONFIRM else dialog.terminate
        if expected is None:
            with pytest.raises(LocalProtocolError):
                step()
            continue
        dialog = step()
        assert dialog.state is expected


@given(st.lists(st.sampled_from(["BYE", "INFO", "ACK", "UPDATE", "CANCEL"]), max_size=20))
def test_local_cseq_is_monotonic(methods: list[str]) -> None:
    request = invite()
    dialog = Dialog.from_uac(request, answer(request, 200))
    last = dialog.local_cseq
    assert last is not None
    for method in methods:
        message, dialog = dialog.create_request(method, via=VIA)
        if method in ("ACK", "CANCEL"):
            assert message.cseq.seq == last
        else:
            assert message.cseq.seq == last + 1
            last = message.cseq.seq
        assert dialog.local_cseq == last
