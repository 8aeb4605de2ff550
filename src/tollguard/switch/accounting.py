"""Accounting: the one CDR of every call, rated on both sides, handed to the CDR writer.

This is where money leaves the call path: the customer's charge and the provider's cost
come from :func:`tollguard.domain.rating.rate_call` on the rates the call was routed
with, and the record goes to the writer's queue (written in batches off the call path).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Protocol

from tollguard.domain.cdr import CallDirection, Cdr
from tollguard.domain.plan import Gateway, Provider, Rate, RateCard
from tollguard.domain.rating import rate_call
from tollguard.domain.routing import RouteCandidate
from tollguard.media import MediaCounters
from tollguard.switch.call import Call, GatewayAttempt
from tollguard.switch.q850 import q850_cause

__all__ = ["Accounting", "CdrQueue", "build_cdr"]


class CdrQueue(Protocol):
    """Where finished CDRs go (the :class:`~tollguard.switch.cdr_writer.CdrWriter`)."""

    def submit(self, cdr: Cdr) -> None: ...


class Accounting:
    """Builds and submits the CDR of each call as it ends."""

    __slots__ = ("_queue", "on_charged")

    def __init__(self, queue: CdrQueue) -> None:
        self._queue = queue
        # Told of every CDR with a charge (the fraud engine's spend limits).
        self.on_charged: Callable[[Cdr], None] | None = None

    def record(self, call: Call, ended: float, cause: int | None) -> None:
        """The call ended at ``ended`` (wall-clock seconds); ``cause`` is its Q.850 cause."""
        cdr = build_cdr(call, ended, cause)
        self._queue.submit(cdr)
        if cdr.sell_amount and self.on_charged is not None:
            self.on_charged(cdr)


def build_cdr(call: Call, ended: float, cause: int | None) -> Cdr:
    """The CDR of ``call``: the answered attempt is billed; otherwise the last one is named.

    Without a ``cause`` the Q.850 cause is the mapping of the final SIP status. An
    inbound call's cost is the delivering provider's inbound rate, its charge the DID's
    per-minute price (in the DID's currency); an internal call costs nothing.
    """
    answered: GatewayAttempt | None = call.attempt if call.answered_at is not None else None
    duration_ms = 0
    if call.answered_at is not None:
        duration_ms = max(0, int((ended - call.answered_at) * 1000))
    customer = call.customer
    sell_amount = cost_amount = Decimal(0)
    billed_s = 0
    provider, gateway, cost = _cost_side(call, answered)
    cost_currency = cost[1].currency if cost is not None else ""
    sell_card = _sell_card(call)
    sell_currency = "EUR" if sell_card is None else sell_card.currency
    if sell_card is not None:
        # A refused call too: its amounts are 0 in the card's currency.
        if call.charge is not None:
            # Settled by credit control (in the sell card's currency): talk time past
            # the reservation is not charged.
            billed_s, sell_amount = call.charge.billed_s, call.charge.amount
        elif call.sell_rate is not None and duration_ms:
            charge = rate_call(duration_ms, call.sell_rate, sell_card)
            billed_s, sell_amount = charge.billed_s, charge.amount
    elif customer is not None:
        sell_currency = customer.credit.currency
    if cost is not None and duration_ms:
        cost_amount = rate_call(duration_ms, *cost).amount
    cost_rate = cost[0] if cost is not None else None
    status = call.final_status
    media = call.media
    destination, detail = _did_fields(call)
    return Cdr(
        call_id=call.a.call_id,
        started_at=datetime.fromtimestamp(call.started_at, UTC),
        ended_at=datetime.fromtimestamp(ended, UTC),
        answered_at=datetime.fromtimestamp(call.answered_at, UTC) if call.answered_at else None,
        duration_ms=duration_ms,
        billed_s=billed_s,
        customer_id=customer.id if customer else None,
        account_id=call.account.id if call.account else None,
        source_ip=call.a.peer.address[0],
        source_port=call.a.peer.address[1],
        caller=call.caller,
        callee_raw=call.callee_raw,
        callee=call.callee,
        destination=destination,
        sip_code=status,
        sip_reason=call.final_reason,
        q850_cause=cause if cause is not None else q850_cause(status),
        hangup_side=call.hangup_side,
        provider_id=provider.id if provider else None,
        gateway_id=gateway.id if gateway else None,
        sell_rate=call.sell_rate.price_per_minute if call.sell_rate else None,
        sell_amount=sell_amount,
        sell_currency=sell_currency,
        cost_rate=cost_rate.price_per_minute if cost_rate else None,
        cost_amount=cost_amount,
        cost_currency=cost_currency,
        # Amounts of two currencies are never subtracted (routing refuses such a pair).
        margin=sell_amount - cost_amount
        if not cost_currency or cost_currency == sell_currency
        else None,
        caller_user_agent=call.caller_ua,
        callee_user_agent=answered.user_agent if answered else "",
        detail=detail,
        direction=call.direction,
        # The number called, which a DID holds (a range's, or the start of a forward).
        did=call.callee if call.did is not None else "",
        attempts=tuple(attempt.record for attempt in call.tried if attempt.record is not None),
        **(_media_fields(media) if media is not None else {}),
    )


def _did_fields(call: Call) -> tuple[str, str]:
    """The CDR's destination and detail. A call to a DID, delivered or refused, is the
    DID called's: its number is ``did``, its name the destination (what the operator
    bills and searches by); where a forward took the call is said in the detail."""
    did = call.did
    if did is None:
        return call.destination, call.detail
    chain = call.plan.dids.resolve(call.callee)
    detail = call.detail
    if len(chain) > 1:
        forward = f"forwarded to DID {chain[-1].first}"
        detail = f"{detail}; {forward}" if detail else forward
    return call.destination or f"DID {did.first}", detail


def _cost_side(
    call: Call, answered: GatewayAttempt | None
) -> tuple[Provider | None, Gateway | None, tuple[Rate, RateCard] | None]:
    """The provider and gateway of the call's cost side, with the rate and card it is
    priced with: the answering (or last tried) gateway of an outbound call, the gateway
    that delivered an inbound one."""
    if call.inbound_gateway is not None:
        provider, gateway = call.inbound_gateway
        return provider, gateway, call.inbound_cost
    last = answered or (call.tried[-1] if call.tried else None)
    if last is None or not isinstance(last.candidate, RouteCandidate):
        return None, None, None
    candidate = last.candidate
    provider = candidate.provider
    if provider.cost_card_id is None:
        return provider, candidate.gateway, None
    return (
        provider,
        candidate.gateway,
        (candidate.cost_rate, call.plan.rate_card(provider.cost_card_id)),
    )


def _sell_card(call: Call) -> RateCard | None:
    """The card the customer's side is priced with: its sell card, a DID's price."""
    if call.direction is CallDirection.INBOUND:
        return call.did_charge
    customer = call.customer
    if call.direction is CallDirection.OUTBOUND and customer is not None and customer.sell_card_id:
        return call.plan.rate_card(customer.sell_card_id)
    return None


def _media_fields(media: MediaCounters) -> dict[str, Any]:
    return {
        "media": media.backend,
        "caller_rtp_packets": media.caller_packets,
        "caller_rtp_bytes": media.caller_bytes,
        "caller_rtp_lost": media.caller_lost,
        "callee_rtp_packets": media.callee_packets,
        "callee_rtp_bytes": media.callee_bytes,
        "callee_rtp_lost": media.callee_lost,
        "rtp_dropped": media.dropped,
        "media_timeout": media.timed_out,
    }
