"""Admission: may this new call happen, and where may it go?

:meth:`Admission.admit` runs once per initial INVITE, before anything is sent towards a
provider, and returns one verdict:

* :class:`~tollguard.switch.auth.Challenge`: answer 407 (digest authentication);
* :class:`Refused`: answer ``status`` with a Reason header carrying the Q.850 ``cause``
  when there is one; when the customer is known a CDR records the refusal;
* :class:`Admitted`: the customer, the normalized number, the sell rate and the
  gateways to try in order.

The checks, in order: who is calling (source address or digest, :mod:`.auth`), the
called number in E.164 (:func:`tollguard.domain.numbers.normalize`; one of the
customer's own DIDs is then delivered on-net instead, :meth:`.inbound.Inbound.own_did`,
once the fraud policy let it through), a route
(:meth:`tollguard.domain.routing.Plan.route`), then the fraud policy (:mod:`.guard`:
destinations, caller ID, quiet hours, source country, limits, velocity). A refusal by a
fraud rule answers what the rule says (403, or 503 for a capacity limit) and nothing
more; the CDR's ``detail`` says which rule and what it saw. :meth:`Admission.release`
runs once for every admitted call when it ends, whatever way it ends, so that whatever
a check took at admission (the customer's count of calls in progress, the fraud
engine's channels) is given back. Credit control comes last (:mod:`.credit`): the
first slice of the call is reserved, or the call refused with 402.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime

from tollguard.domain import fraud
from tollguard.domain.cdr import CallDirection
from tollguard.domain.credit import CallCredit
from tollguard.domain.errors import NumberError
from tollguard.domain.numbers import normalize
from tollguard.domain.plan import Account, Customer, Did, Gateway, Provider, Rate, RateCard
from tollguard.domain.routing import Plan, Rejection, RouteCandidate
from tollguard.sip.message import Request
from tollguard.sip.uri import SipUri, TelUri, Uri
from tollguard.switch.auth import Authenticated, Authenticator, Challenge
from tollguard.switch.call import Delivery
from tollguard.switch.credit import CallFunds
from tollguard.switch.guard import Guard
from tollguard.switch.wire import Peer

__all__ = ["Admission", "Admitted", "Delivered", "Refused", "Verdict", "user_part"]

log = logging.getLogger(__name__)


def user_part(uri: Uri) -> str:
    """The user of a SIP URI or the number of a tel URI ("" otherwise)."""
    if isinstance(uri, SipUri):
        return uri.user or ""
    if isinstance(uri, TelUri):
        return uri.number
    return ""


def reservation_key(request: Request) -> str:
    """The key a call's credit reservation is held under: its customer leg's Call-ID and
    From tag (unique per call, the same on every retransmission)."""
    return f"{request.call_id};{request.from_.tag or ''}"


@dataclass(frozen=True, slots=True)
class Admitted:
    plan: Plan
    customer: Customer
    account: Account | None
    callee: str  # E.164 digits
    sell_rate: Rate | None
    candidates: tuple[RouteCandidate, ...]
    fraud: fraud.Admitted | None = None
    credit: CallCredit | None = None


@dataclass(frozen=True, slots=True)
class Refused:
    """Refuse the call with ``status``; a known customer gets a CDR of the refusal."""

    status: int
    reason: str
    cause: int | None = None  # Q.850, in a Reason header and in the CDR
    plan: Plan | None = None
    customer: Customer | None = None
    account: Account | None = None
    callee: str = ""
    detail: str = ""  # for the CDR (the operator), never for the caller
    direction: CallDirection = CallDirection.OUTBOUND
    did: Did | None = None  # the customer's own DID it called (an on-net call)


@dataclass(frozen=True, slots=True)
class Delivered:
    """An inbound or internal call (:mod:`.inbound`): deliver it to ``deliveries`` in
    order (contacts forked by q), for ``customer`` (the DID's owner, or the caller's
    customer)."""

    plan: Plan
    direction: CallDirection
    customer: Customer
    account: Account | None  # the called account (inbound) or the calling one (internal)
    callee: str
    deliveries: tuple[Delivery, ...]
    did: Did | None = None
    gateway: tuple[Provider, Gateway] | None = None
    cost: tuple[Rate, RateCard] | None = None  # the provider's inbound rate and card
    charge: tuple[Rate, RateCard] | None = None  # the DID's per-minute price
    credit: CallCredit | None = None
    fraud: fraud.Admitted | None = None  # a call to the caller's own DID: what it took


Verdict = Admitted | Challenge | Refused | Delivered
# An account calling a number of its own customer (an extension): where it goes, or None
# when the number is no extension (see :mod:`.inbound`).
Internal = Callable[[Plan, Customer, Account, str], Delivered | Refused | None]
# A customer calling a number in E.164: one of its own DIDs, delivered on-net, or None.
OnNet = Callable[[Plan, Customer, Account | None, str], Delivered | Refused | None]


class Admission:
    """The checks every new call passes, against the plan of the moment."""

    __slots__ = ("_auth", "calls_by_customer", "funds", "guard", "internal", "on_net")

    def __init__(self, authenticator: Authenticator, guard: Guard | None = None) -> None:
        self._auth = authenticator
        self.guard = guard
        # Credit control, when the switch runs it (set once the scheduler exists).
        self.funds: CallFunds | None = None
        # Calls admitted and not yet ended, per customer id.
        self.calls_by_customer: dict[int, int] = {}
        # Calls to a customer's own extensions and DIDs, once the switch has set it up.
        self.internal: Internal | None = None
        self.on_net: OnNet | None = None

    def admit(
        self, plan: Plan, request: Request, peer: Peer, now: float, wall: datetime
    ) -> Verdict:
        """Decide on an initial INVITE; ``now`` is monotonic, ``wall`` the time of day."""
        result = self._auth.authenticate(
            plan,
            method="INVITE",
            request_uri=str(request.uri),
            from_user=user_part(request.from_.uri),
            called=user_part(request.uri),
            credentials=tuple(request.headers.get_all("Proxy-Authorization")),
            source=peer.address,
            transport=peer.transport,
            now=now,
        )
        if isinstance(result, Challenge):
            return result
        if not isinstance(result, Authenticated):
            return Refused(result.status, result.reason)
        customer, account = result.customer, result.account
        if account is not None and self.internal is not None:
            # An authenticated account dialling one of its customer's extensions.
            internal = self.internal(plan, customer, account, result.number)
            if internal is not None:
                return internal
        try:
            callee = normalize(result.number, customer.number_rules)
        except NumberError as exc:
            if log.isEnabledFor(logging.DEBUG):
                log.debug("call %s: number %r: %s", request.call_id, result.number, exc)
            return Refused(484, "Address Incomplete", None, plan, customer, account)
        if self.on_net is not None:
            on_net = self.on_net(plan, customer, account, callee)
            if on_net is not None:
                return self._on_net(on_net, request, peer)
        decision = plan.route(customer, callee, wall)
        rejection = decision.rejection
        if rejection is not None:
            return Refused(
                rejection.status,
                rejection.reason,
                rejection.q850_cause,
                plan,
                customer,
                account,
                callee,
            )
        admitted_fraud: fraud.Admitted | None = None
        guard = self.guard
        if guard is not None:
            verdict = guard.admit(
                plan, customer, account, request, peer.address[0], callee, decision.sell_rate
            )
            if isinstance(verdict, fraud.Refused):
                return _fraud_refusal(verdict, plan, customer, account, callee)
            admitted_fraud = verdict
        credit = None
        funds = self.funds
        sell_rate = decision.sell_rate
        if funds is not None and sell_rate is not None and customer.sell_card_id is not None:
            # Last, once nothing else refuses: the reservation is the costliest check.
            reserved = funds.admit(
                reservation_key(request), customer, sell_rate, plan.rate_card(customer.sell_card_id)
            )
            if isinstance(reserved, Rejection):
                if admitted_fraud is not None and guard is not None:
                    guard.release(admitted_fraud)
                return Refused(
                    reserved.status,
                    reserved.reason,
                    reserved.q850_cause,
                    plan,
                    customer,
                    account,
                    callee,
                    f"credit: {reserved.reason.lower()}",
                )
            credit = reserved
        self.count(customer)
        return Admitted(
            plan,
            customer,
            account,
            callee,
            decision.sell_rate,
            tuple(decision.candidates),
            admitted_fraud,
            credit,
        )

    def _on_net(
        self, verdict: Delivered | Refused, request: Request, peer: Peer
    ) -> Delivered | Refused:
        """A call to the caller's own DID: no route, rate or credit (it costs nothing),
        but the customer's fraud policy (limits, caller ID, hours ...) as for any call."""
        if isinstance(verdict, Refused):
            return verdict
        guard = self.guard
        checked: fraud.Admitted | None = None
        if guard is not None:
            plan, customer, account = verdict.plan, verdict.customer, verdict.account
            source, callee = peer.address[0], verdict.callee
            outcome = guard.admit(plan, customer, account, request, source, callee, None)
            if isinstance(outcome, fraud.Refused):
                return _fraud_refusal(
                    outcome, plan, customer, account, callee, CallDirection.INTERNAL, verdict.did
                )
            checked = outcome
        self.count(verdict.customer)
        return replace(verdict, fraud=checked)

    def count(self, customer: Customer) -> None:
        """One more call of ``customer`` in progress (:meth:`release` gives it back)."""
        counts = self.calls_by_customer
        counts[customer.id] = counts.get(customer.id, 0) + 1

    def cancel(self, admitted: Admitted | Delivered) -> None:
        """An admitted call that will not be set up after all: give everything back."""
        if admitted.credit is not None and self.funds is not None:
            self.funds.release(admitted.credit)
        self.release(admitted.customer, admitted.fraud)

    def release(self, customer: Customer, admitted_fraud: fraud.Admitted | None) -> None:
        """An admitted call of ``customer`` ended: give back what admission took."""
        if admitted_fraud is not None and self.guard is not None:
            self.guard.release(admitted_fraud)
        counts = self.calls_by_customer
        left = counts.get(customer.id, 0) - 1
        if left > 0:
            counts[customer.id] = left
        else:
            counts.pop(customer.id, None)


def _fraud_refusal(  # noqa: PLR0917 (the Refused fields it fills, in their order)
    verdict: fraud.Refused,
    plan: Plan,
    customer: Customer,
    account: Account | None,
    callee: str,
    direction: CallDirection = CallDirection.OUTBOUND,
    did: Did | None = None,
) -> Refused:
    """The fraud engine's answer to the caller, its rule and detail for the CDR."""
    answer = verdict.answer
    detail = f"fraud {verdict.rule.value}: {verdict.detail}"
    return Refused(
        answer.status,
        answer.reason,
        answer.q850_cause,
        plan,
        customer,
        account,
        callee,
        detail,
        direction,
        did,
    )
