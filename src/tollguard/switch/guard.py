"""The SIP shield and the fraud engine where the switch meets them.

:class:`Guard` holds the process's :class:`~tollguard.domain.shield.Shield` (absent when
``shield.enabled`` is false) and builds a :class:`~tollguard.domain.fraud.FraudEngine` for
each plan. The switch asks it:

* for every datagram or framed stream message, **before parsing** (:meth:`datagram`):
  banned, oversized and flooding sources are dropped without an answer;
* for every parsed request (:meth:`request`): scanners and requests with too many header
  fields are dropped;
* for every new call (:meth:`open_call` / :meth:`close_call`): calls in progress per
  source address are bounded;
* at digest authentication (:meth:`may_authenticate`, :meth:`auth_failed`): password
  guessers are banned and attacked accounts locked, answered exactly as a wrong password;
* at admission (:meth:`admit` / :meth:`release`): the customer's and account's fraud
  policy (destinations, caller ID, quiet hours, source country, limits, velocity);
* for each gateway attempt (:meth:`admit_gateway` / :meth:`release_gateway`): a gateway's
  own limits;
* with every charge (:meth:`record_spend`): spend limits.

The allow-list of the shield is the configured ``shield.allow`` plus, with
``shield.trust_acl``, every customer's IP list and every provider gateway given by
address, set by :meth:`use_plan` when the switch loads a plan and at each swap: a trunk
and a carrier are never rate-limited or banned, from their first request on.
Times are wall-clock seconds: bans outlive the process.
"""

from __future__ import annotations

import ipaddress
import logging
import time
from collections.abc import Callable
from decimal import Decimal

from tollguard.domain import fraud
from tollguard.domain.limits import Counters
from tollguard.domain.plan import Account, Customer, IPNetwork, Rate
from tollguard.domain.routing import Plan
from tollguard.domain.shield import Shield
from tollguard.sip.message import Request
from tollguard.sip.uri import SipUri

__all__ = ["Guard"]

log = logging.getLogger(__name__)


def _gateway_networks(plan: Plan) -> list[IPNetwork]:
    networks: list[IPNetwork] = []
    for gateway in plan.gateways():
        try:
            address = ipaddress.ip_address(gateway.host)
        except ValueError:
            continue  # a host name: its addresses are not known here
        networks.append(ipaddress.ip_network(address))
    return networks


class Guard:
    """The shield and the fraud engine of one switch process."""

    __slots__ = (
        "_counters",
        "_countries",
        "_engine",
        "_needs_country",
        "_on_event",
        "_plan",
        "_suspensions",
        "_trust_acl",
        "_wall",
        "shield",
    )

    def __init__(
        self,
        shield: Shield | None,
        counters: Counters,
        suspensions: fraud.Suspensions,
        *,
        trust_acl: bool = True,
        countries: fraud.SourceCountries | None = None,
        on_event: Callable[[fraud.FraudEvent], None] | None = None,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.shield = shield
        self._counters = counters
        self._suspensions = suspensions
        self._trust_acl = trust_acl
        self._countries = countries
        self._on_event = on_event
        self._wall = wall
        self._plan: Plan | None = None
        self._engine: fraud.FraudEngine | None = None
        self._needs_country = False

    # -- before and after parsing ----------------------------------------------------------

    def datagram(self, source: str, size: int) -> bool:
        """Whether a message of ``size`` bytes from ``source`` may be parsed."""
        shield = self.shield
        return shield is None or shield.datagram(source, size, self._wall())

    def request(self, request: Request, source: str) -> bool:
        """Whether a parsed request may be handled (``False``: drop it, no answer)."""
        shield = self.shield
        if shield is None:
            return True
        headers = request.headers
        return shield.request(
            source, headers.get("User-Agent") or "", len(headers.items), self._wall()
        )

    def open_call(self, source: str) -> bool:
        shield = self.shield
        return shield is None or shield.open_transaction(source)

    def close_call(self, source: str) -> None:
        if self.shield is not None:
            self.shield.close_transaction(source)

    # -- authentication ---------------------------------------------------------------------

    def may_authenticate(self, source: str, username: str) -> bool:
        shield = self.shield
        return shield is None or shield.may_authenticate(source, username, self._wall())

    def auth_failed(self, source: str, username: str, known_user: bool) -> None:
        if self.shield is not None:
            self.shield.auth_failed(source, username, self._wall(), known_user=known_user)

    # -- admission --------------------------------------------------------------------------

    def use_plan(self, plan: Plan) -> None:
        """Take ``plan`` (at start and at each swap): its fraud rules, and the shield's
        allow-list from its IP lists and gateways, in force before any request arrives."""
        self._engine_for(plan)

    def _engine_for(self, plan: Plan) -> fraud.FraudEngine:
        if plan is not self._plan or self._engine is None:
            self._plan = plan
            self._engine = fraud.FraudEngine(
                plan.fraud, self._counters, self._suspensions, on_event=self._on_event
            )
            policies = (*plan.fraud.customers.values(), *plan.fraud.accounts.values())
            self._needs_country = any(policy.source_countries for policy in policies)
            if self.shield is not None and self._trust_acl:
                networks = [entry.network for entry in plan.acl]
                self.shield.set_extra_allow([*networks, *_gateway_networks(plan)])
        return self._engine

    def admit(  # noqa: PLR0917 (what a fraud rule may look at)
        self,
        plan: Plan,
        customer: Customer,
        account: Account | None,
        request: Request,
        source: str,
        callee: str,
        sell_rate: Rate | None,
    ) -> fraud.Admitted | fraud.Refused:
        """The fraud policy's verdict on a routed call."""
        engine = self._engine_for(plan)
        from_uri = request.from_.uri
        from_user = from_uri.user or "" if isinstance(from_uri, SipUri) else ""
        from_host = from_uri.host if isinstance(from_uri, SipUri) else ""
        privacy = request.headers.get("Privacy") or ""
        country = None
        if self._needs_country and self._countries is not None:
            country = self._countries.country(source)
        attempt = fraud.CallAttempt(
            customer,
            account,
            source,
            callee,
            caller=from_user,
            anonymous=fraud.is_anonymous(from_user, from_host, privacy),
            source_country=country,
            price_per_minute=sell_rate.price_per_minute if sell_rate is not None else None,
        )
        return engine.admit(attempt, self._wall())

    def release(self, admitted: fraud.Admitted) -> None:
        if self._engine is not None:
            self._engine.release(admitted)

    def record_spend(self, customer_id: int, account_id: int | None, amount: Decimal) -> None:
        if self._engine is not None and amount:
            self._engine.record_spend(customer_id, account_id, amount, self._wall())

    def admit_gateway(self, gateway_id: int) -> bool:
        engine = self._engine
        return engine is None or engine.admit_gateway(gateway_id, self._wall())

    def release_gateway(self, gateway_id: int) -> None:
        if self._engine is not None:
            self._engine.release_gateway(gateway_id)
