"""Inbound and internal calls: a provider calling one of the customers' DIDs, and an
account calling another account of its customer by extension.

An initial INVITE whose source address is an enabled provider gateway
(:meth:`tollguard.domain.routing.Plan.gateway_from`) is an inbound call, whatever it
carries: a gateway's address wins over the customers' IP lists and digest, so a
provider cannot place outbound calls as a customer and no customer can share an address
with a provider gateway (docs/switch.md, "Inbound calls and extensions"). :meth:`Inbound.admit`
decides where it goes:

* the called number (Request-URI user part) is normalised: a leading ``+`` and the
  visual separators ``-``, ``.``, ``(``, ``)`` are dropped, and what is left must be
  digits (E.164 without ``+``, as DIDs are written); anything else, no DID, or a
  disabled DID in the chain: ``404 Not Found``, with a CDR naming the provider;
* the owner disabled: ``403 Forbidden`` (the provider learns nothing more);
* the final DID of the chain (:meth:`tollguard.domain.dids.DidIndex.resolve`) names
  the target: an account (its registered contacts, forked by q value, highest first:
  :meth:`Inbound.contacts_of`; none: ``480 Temporarily Unavailable``), or a trunk (its
  address, then its failover address).

The money of an inbound call: the provider's cost is its inbound card's rate for the
DID number (:meth:`~tollguard.domain.routing.Plan.inbound_rate`; no card or no rate:
nothing); the charge is the ``price_per_minute`` of the DID called (the first of a
forward chain), to its owner, billed per started minute (60/60, like a rate without
increments), rounded and to the decimals of the
owner's sell card when it has one in the DID's currency. A per-minute price goes
through credit control exactly as an outbound call's sell rate does (402 when the owner
cannot pay for the first minute).

:meth:`Inbound.extension` runs for an account authenticated by digest: a called number
that is the extension of another account of the same customer rings that account's
contacts, without any provider and without money (``480`` when it is not registered).
Extensions are looked up within the caller's customer only: another customer's
extension is a number like any other, and goes to routing.

:meth:`Inbound.own_did` runs for every customer's call once its number is normalised: a
number that is one of the caller's own enabled DIDs is delivered on-net, as a call from
a provider to that DID would be, but as an internal call: no provider, no provider cost
and no DID price. Another customer's DID is a number like any other, and is routed out
(the provider brings it back in as an inbound call).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from decimal import Decimal

from tollguard.domain.cdr import CallDirection
from tollguard.domain.credit import CallCredit
from tollguard.domain.plan import (
    Account,
    Customer,
    Did,
    DidTarget,
    Gateway,
    Rate,
    RateCard,
    SipTransport,
)
from tollguard.domain.registration import Binding
from tollguard.domain.routing import Plan, Rejection
from tollguard.sip.message import Request
from tollguard.switch.admission import (
    Admission,
    Delivered,
    Refused,
    reservation_key,
    user_part,
)
from tollguard.switch.call import Delivery
from tollguard.switch.wire import Peer

__all__ = ["Inbound", "did_charge", "normalise_did_number"]

log = logging.getLogger(__name__)

_IN = CallDirection.INBOUND

_SEPARATORS = str.maketrans("", "", "-.()")
# The longest number a DID holds (the database's column).
_NUMBER_MAX = 20


def normalise_did_number(raw: str) -> str:
    """The called number of an inbound call as DIDs are written, or "" when it is none."""
    number = raw.removeprefix("+").translate(_SEPARATORS)
    if not number or len(number) > _NUMBER_MAX or not (number.isascii() and number.isdigit()):
        return ""
    return number


class Inbound:
    """Where calls to DIDs and extensions go, against the plan and the bindings."""

    __slots__ = ("_admission", "_contacts")

    def __init__(
        self, admission: Admission, contacts: Callable[[int], tuple[Binding, ...]]
    ) -> None:
        self._admission = admission
        # The registrar's contacts: never a binding whose TCP/TLS connection has closed
        # (the phone is behind NAT; a new connection would not get there).
        self._contacts = contacts

    def admit(
        self, plan: Plan, request: Request, gateway: Gateway, wall: datetime
    ) -> Delivered | Refused:
        """Decide on an INVITE from ``gateway``'s address (a provider calling in)."""
        provider = plan.provider(gateway.provider_id)
        assert provider is not None  # build_plan checked every gateway's provider
        raw = user_part(request.uri)
        number = normalise_did_number(raw)
        chain = plan.dids.resolve(number) if number else ()
        if not chain or not chain[-1].enabled:
            why = "no such DID" if not chain else f"DID {chain[-1].first} disabled"
            return Refused(
                404, "Not Found", None, plan, callee=number, detail=f"inbound: {why}", direction=_IN
            )
        # The DID called is billed (its owner, its price); the last one of a forward
        # chain says where the call goes (docs/billing.md, "Forwards").
        called, did = chain[0], chain[-1]
        customer = plan.customer(called.customer_id)
        account = _answering_account(plan, did)

        def refuse(status: int, reason: str, detail: str, q850: int | None = None) -> Refused:
            return Refused(status, reason, q850, plan, customer, account, number, detail, _IN)

        if customer is None or not customer.enabled:
            return refuse(403, "Forbidden", "inbound: owner disabled")
        deliveries = self._target(did, account, number)
        if isinstance(deliveries, str):
            return refuse(480, "Temporarily Unavailable", f"inbound: {deliveries}")
        cost: tuple[Rate, RateCard] | None = None
        inbound_rate = plan.inbound_rate(provider, number, wall)
        if inbound_rate is not None and provider.inbound_card_id is not None:
            cost = (inbound_rate, plan.rate_card(provider.inbound_card_id))
        charge = did_charge(plan, customer, called)
        credit: CallCredit | None = None
        funds = self._admission.funds
        if funds is not None and charge is not None:
            reserved = funds.admit(reservation_key(request), customer, *charge)
            if isinstance(reserved, Rejection):
                return refuse(
                    reserved.status,
                    reserved.reason,
                    f"credit: {reserved.reason.lower()}",
                    reserved.q850_cause,
                )
            credit = reserved
        self._admission.count(customer)
        return Delivered(
            plan,
            CallDirection.INBOUND,
            customer,
            account,
            number,
            deliveries,
            called,
            (provider, gateway),
            cost,
            charge,
            credit,
        )

    def extension(
        self, plan: Plan, customer: Customer, caller: Account, number: str
    ) -> Delivered | Refused | None:
        """A call by ``caller`` to ``number``: its customer's extension, or None."""
        callee = plan.account_by_extension(customer.id, number)
        if callee is None:
            return None
        deliveries = self.contacts_of(callee) if callee.enabled else ()
        if not deliveries:
            return Refused(
                480,
                "Temporarily Unavailable",
                None,
                plan,
                customer,
                caller,
                number,
                f"extension {number}: not registered",
                CallDirection.INTERNAL,
            )
        self._admission.count(customer)
        return Delivered(plan, CallDirection.INTERNAL, customer, caller, number, deliveries)

    def own_did(
        self, plan: Plan, customer: Customer, caller: Account | None, number: str
    ) -> Delivered | Refused | None:
        """A call by ``customer`` to ``number`` (E.164): on-net when the number is one of
        its own enabled DIDs (every DID of the forward chain its own), else None.

        Delivered as an inbound call to the DID would be (its account's contacts, or its
        trunk), as an internal call: no provider, and no DID price. Admission applies the
        customer's fraud policy and counts the call (:meth:`Admission.admit`).
        """
        dids = plan.dids
        if not len(dids):
            return None
        chain = dids.resolve(number)
        if (
            not chain
            or not chain[-1].enabled
            or any(did.customer_id != customer.id for did in chain)
        ):
            return None  # another customer's DID (or none, or disabled): routed out
        did = chain[-1]
        deliveries = self._target(did, _answering_account(plan, did), number)
        if isinstance(deliveries, str):
            return Refused(
                480,
                "Temporarily Unavailable",
                None,
                plan,
                customer,
                caller,
                number,
                f"own DID {did.first}: {deliveries}",
                CallDirection.INTERNAL,
                chain[0],
            )
        # The CDR names the DID called (chain[0]), as for an inbound call (accounting).
        return Delivered(
            plan, CallDirection.INTERNAL, customer, caller, number, deliveries, chain[0]
        )

    def _target(self, did: Did, account: Account | None, number: str) -> tuple[Delivery, ...] | str:
        """Where a call to ``did`` (the last of its chain) goes, or why nowhere."""
        if did.target is DidTarget.ACCOUNT:
            if account is None or not account.enabled:
                return "account disabled"
            deliveries = self.contacts_of(account)
        else:
            deliveries = tuple(
                _trunk_delivery(number, address.host, address.port, address.transport)
                for address in did.trunk
            )
        return deliveries or "not registered"

    def contacts_of(self, account: Account) -> tuple[Delivery, ...]:
        """The account's registered contacts, each over the path it registered by, the
        highest q first (RFC 3261 §16.6: each q value is a group rung at once).

        The flows of one phone (RFC 5626: one ``+sip.instance``, several reg-ids) are one
        delivery per q value: the most recently registered flow, the others its
        fallbacks in turn (§5.2), so that a phone never rings twice for one call.
        """
        phones: list[Binding | tuple[str, int]] = []
        flows: dict[tuple[str, int], list[Binding]] = {}
        for binding in self._contacts(account.id):
            if binding.reg_id and binding.instance:
                key = (binding.instance, binding.q)
                if key not in flows:
                    flows[key] = []
                    phones.append(key)
                flows[key].append(binding)
            else:
                phones.append(binding)
        deliveries: list[Delivery] = []
        for phone in phones:
            if isinstance(phone, Binding):
                deliveries.append(_contact_delivery(phone, None))
                continue
            delivery = None
            for binding in flows[phone]:  # registered in this order: the last first
                delivery = _contact_delivery(binding, delivery)
            assert delivery is not None
            deliveries.append(delivery)
        deliveries.sort(key=_highest_q_first)
        return tuple(deliveries)


def _contact_delivery(binding: Binding, fallback: Delivery | None) -> Delivery:
    peer = Peer(binding.source, binding.transport, binding.connection)
    return Delivery(peer, binding.contact, contact=True, q=binding.q, fallback=fallback)


def _highest_q_first(delivery: Delivery) -> int:
    return -delivery.q


def _answering_account(plan: Plan, did: Did) -> Account | None:
    """The account a DID (the last of its chain) rings, when its target is one."""
    if did.target is DidTarget.ACCOUNT and did.account_id is not None:
        return plan.account(did.account_id)
    return None


def did_charge(plan: Plan, customer: Customer, did: Did) -> tuple[Rate, RateCard] | None:
    """The DID's per-minute price as a rate and card, or None when it is free."""
    if did.price_per_minute <= 0:
        return None
    rate = Rate(
        prefix=did.first,
        destination=f"DID {did.first}",
        price_per_minute=did.price_per_minute,
        connect_fee=Decimal(0),
    )
    card = RateCard(id=0, name=f"DID {did.first}", currency=did.currency, rates=(rate,))
    if customer.sell_card_id is not None:
        sell = plan.rate_card(customer.sell_card_id)
        if sell.currency == did.currency:
            card = replace(card, rounding=sell.rounding, decimals=sell.decimals)
    return rate, card


def _trunk_delivery(number: str, host: str, port: int, transport: SipTransport) -> Delivery:
    tparam = "" if transport is SipTransport.UDP else f";transport={transport}"
    return Delivery(
        Peer((host, port), str(transport)), f"sip:{number}@{host}:{port}{tparam}", contact=False
    )
