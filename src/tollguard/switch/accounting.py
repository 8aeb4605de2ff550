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

from tollguard.domain.cdr import Cdr
from tollguard.domain.plan import Gateway, Provider, Rate
from tollguard.domain.rating import rate_call
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

    Without a ``cause`` the Q.850 cause is the mapping of the final SIP status.
    """
    plan = call.plan
    answered: GatewayAttempt | None = call.attempt if call.answered_at is not None else None
    duration_ms = 0
    if call.answered_at is not None:
        duration_ms = max(0, int((ended - call.answered_at) * 1000))
    customer = call.customer
    sell_amount = cost_amount = Decimal(0)
    billed_s = 0
    sell_currency, cost_currency = "EUR", ""
    provider: Provider | None = None
    gateway: Gateway | None = None
    cost_rate: Rate | None = None
    last = answered or (call.tried[-1] if call.tried else None)
    if last is not None:
        provider, gateway = last.candidate.provider, last.candidate.gateway
        cost_rate = last.candidate.cost_rate
        if provider.cost_card_id is not None:
            cost_currency = plan.rate_card(provider.cost_card_id).currency
    if customer is not None and customer.sell_card_id:
        card = plan.rate_card(customer.sell_card_id)
        sell_currency = card.currency  # a refused call too: its amounts are 0 in it
        if call.charge is not None:
            # Settled by credit control (in the sell card's currency): talk time past
            # the reservation is not charged.
            billed_s, sell_amount = call.charge.billed_s, call.charge.amount
        elif call.sell_rate is not None and duration_ms:
            charge = rate_call(duration_ms, call.sell_rate, card)
            billed_s, sell_amount = charge.billed_s, charge.amount
    if (
        answered is not None
        and cost_rate is not None
        and provider is not None
        and provider.cost_card_id is not None
        and duration_ms
    ):
        cost_amount = rate_call(
            duration_ms, cost_rate, plan.rate_card(provider.cost_card_id)
        ).amount
    status = call.final_status
    media = call.media
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
        destination=call.destination,
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
        detail=call.detail,
        attempts=tuple(attempt.record for attempt in call.tried if attempt.record is not None),
        **(_media_fields(media) if media is not None else {}),
    )


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
