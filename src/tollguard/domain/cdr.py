"""The call detail record: one per call, with every gateway attempt listed."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Protocol


class HangupSide(StrEnum):
    CALLER = "caller"  # the customer side hung up (BYE or CANCEL from the customer)
    CALLEE = "callee"  # the provider side hung up or rejected the call
    SWITCH = "switch"  # Tollguard ended it (max duration, no route, shutdown)


class CallDirection(StrEnum):
    """Which way a call went through the switch (docs/switch.md, "Inbound calls and extensions")."""

    OUTBOUND = "outbound"  # a customer's call out to a provider
    INBOUND = "inbound"  # a provider's call in to one of the customers' DIDs
    INTERNAL = "internal"  # between two accounts of one customer (an extension)


@dataclass(frozen=True, slots=True)
class Attempt:
    """One try of one gateway, or (inbound and internal calls) of one place the call was
    delivered to: a registered contact or a customer's trunk, named by ``target``."""

    provider_id: int | None
    gateway_id: int | None
    started_at: datetime
    sip_code: int  # final response, 408 for a timeout, 0 when cancelled before any answer
    reason: str = ""
    target: str = ""  # the Request-URI of a delivery; "" for a gateway


@dataclass(frozen=True, slots=True)
class Cdr:
    call_id: str  # the calling leg's Call-ID (the customer's, or the provider's inbound)
    started_at: datetime  # INVITE received (UTC)
    ended_at: datetime
    answered_at: datetime | None
    duration_ms: int  # answer to end; 0 when not answered
    billed_s: int  # seconds billed to the customer after increments
    customer_id: int | None
    account_id: int | None
    source_ip: str
    source_port: int
    caller: str  # From user part as received
    callee_raw: str  # Request-URI user part as received
    callee: str  # normalized E.164 (digits, no '+'), "" when it could not be normalized
    destination: str  # destination name from the customer's rate
    sip_code: int  # final code sent to the customer
    sip_reason: str
    q850_cause: int
    hangup_side: HangupSide
    provider_id: int | None = None  # the answering (or last tried) provider
    gateway_id: int | None = None
    # Every amount is in the currency of the card it was rated with: the sell side in the
    # customer's sell card's, the cost side in the provider's cost card's. The switch
    # routes a call only over providers whose cost card has the sell card's currency
    # (domain.routing), so the two agree; the margin is never taken across currencies.
    sell_rate: Decimal | None = None  # customer price per minute
    sell_amount: Decimal = Decimal(0)
    sell_currency: str = "EUR"
    cost_rate: Decimal | None = None  # provider price per minute
    cost_amount: Decimal = Decimal(0)
    cost_currency: str = ""  # "" when no provider was tried
    margin: Decimal | None = Decimal(0)  # sell_amount - cost_amount; None across currencies
    caller_user_agent: str = ""
    callee_user_agent: str = ""
    # Why the switch refused or ended the call, for the operator (a fraud rule and what
    # it saw, ...); the caller was told only the SIP status.
    detail: str = ""
    attempts: tuple[Attempt, ...] = field(default_factory=tuple)
    # The media backend that carried the call ("bypass", "relay", "rtpengine") and what
    # it counted: RTP packets, bytes and losses sent by each side, packets dropped
    # (from strangers, or not RTP), and whether the call ended because its media stopped.
    media: str = "bypass"
    caller_rtp_packets: int = 0
    caller_rtp_bytes: int = 0
    caller_rtp_lost: int = 0
    callee_rtp_packets: int = 0
    callee_rtp_bytes: int = 0
    callee_rtp_lost: int = 0
    rtp_dropped: int = 0
    media_timeout: bool = False
    # Outbound, inbound (a provider called ``did``: the provider's cost is its inbound
    # card's rate, the customer's charge the DID's per-minute price in the DID's
    # currency) or internal (an extension of the same customer: no money at all).
    direction: CallDirection = CallDirection.OUTBOUND
    did: str = ""  # the DID number called (inbound), "" otherwise


class CdrSink(Protocol):
    """Port: where finished CDRs go (implemented by the web layer, called off the call path)."""

    def write_batch(self, cdrs: list[Cdr]) -> None: ...
