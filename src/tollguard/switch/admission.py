"""Admission: may this new call happen, and where may it go?

:meth:`Admission.admit` runs once per initial INVITE, before anything is sent towards a
provider, and returns one verdict:

* :class:`~tollguard.switch.auth.Challenge`: answer 407 (digest authentication);
* :class:`Refused`: answer ``status`` with a Reason header carrying the Q.850 ``cause``
  when there is one; when the customer is known a CDR records the refusal;
* :class:`Admitted`: the customer, the normalized number, the sell rate and the
  gateways to try in order.

The checks, in order: who is calling (source address or digest, :mod:`.auth`), the
called number in E.164 (:func:`tollguard.domain.numbers.normalize`), and a route
(:meth:`tollguard.domain.routing.Plan.route`). Credit, limits, bans and fraud rules join
here, each as one more check that can refuse. :meth:`Admission.release` runs once for
every admitted call when it ends, whatever way it ends, so that whatever a check took at
admission (today: the customer's count of calls in progress) is given back.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from tollguard.domain.errors import NumberError
from tollguard.domain.numbers import normalize
from tollguard.domain.plan import Account, Customer, Rate
from tollguard.domain.routing import Plan, RouteCandidate
from tollguard.sip.message import Request
from tollguard.sip.uri import SipUri, TelUri, Uri
from tollguard.switch.auth import Authenticated, Authenticator, Challenge
from tollguard.switch.wire import Peer

__all__ = ["Admission", "Admitted", "Refused", "Verdict", "user_part"]

log = logging.getLogger(__name__)


def user_part(uri: Uri) -> str:
    """The user of a SIP URI or the number of a tel URI ("" otherwise)."""
    if isinstance(uri, SipUri):
        return uri.user or ""
    if isinstance(uri, TelUri):
        return uri.number
    return ""


@dataclass(frozen=True, slots=True)
class Admitted:
    plan: Plan
    customer: Customer
    account: Account | None
    callee: str  # E.164 digits
    sell_rate: Rate | None
    candidates: tuple[RouteCandidate, ...]


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


Verdict = Admitted | Challenge | Refused


class Admission:
    """The checks every new call passes, against the plan of the moment."""

    __slots__ = ("_auth", "calls_by_customer")

    def __init__(self, authenticator: Authenticator) -> None:
        self._auth = authenticator
        # Calls admitted and not yet ended, per customer id.
        self.calls_by_customer: dict[int, int] = {}

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
        try:
            callee = normalize(result.number, customer.number_rules)
        except NumberError as exc:
            if log.isEnabledFor(logging.DEBUG):
                log.debug("call %s: number %r: %s", request.call_id, result.number, exc)
            return Refused(484, "Address Incomplete", None, plan, customer, account)
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
        counts = self.calls_by_customer
        counts[customer.id] = counts.get(customer.id, 0) + 1
        return Admitted(
            plan, customer, account, callee, decision.sell_rate, tuple(decision.candidates)
        )

    def release(self, customer: Customer) -> None:
        """An admitted call of ``customer`` ended: give back what admission took."""
        counts = self.calls_by_customer
        left = counts.get(customer.id, 0) - 1
        if left > 0:
            counts[customer.id] = left
        else:
            counts.pop(customer.id, None)
