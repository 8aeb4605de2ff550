"""Registrations (RFC 3261 §10): the contacts an account is reachable at, and how a
REGISTER changes them.

Pure rules over values: the switch parses the REGISTER (its Contacts, Expires, Call-ID,
CSeq, where it came from), authenticates it, and hands this module a :class:`Register`
with the account's current bindings; :func:`update` returns the account's new bindings
or the refusal to answer. Where bindings live is the :class:`Bindings` port
(``tollguard.state.memory.MemoryBindings`` in one switch process).

The rules, from RFC 3261 §10.3:

* a Contact's own ``expires`` parameter wins over the Expires header, which wins over
  the configured default; more than the maximum is cut to the maximum; 0 removes the
  binding; anything between 0 and the minimum refuses the whole request with
  ``423 Interval Too Brief`` and ``Min-Expires`` (step 7);
* ``*`` removes every binding, and only with ``Expires: 0`` and no other Contact
  (otherwise ``400``, step 6);
* a binding is matched by its contact URI, or by its ``+sip.instance`` when the phone
  sends one (RFC 5626 §4.2: a phone that comes back from another address behind NAT
  replaces its binding instead of adding one);
* with ``+sip.instance`` and ``reg-id`` (RFC 5626 outbound, which the switch applies when
  it is the phone's first hop) a binding is one *flow*: the path its REGISTER came over.
  It is matched by the instance and the reg-id, so one phone may hold several flows
  (reg-id 1 over one connection, 2 over another) and a new REGISTER of the same flow
  replaces the old one (§6). A REGISTER that binds a flow binds nothing else (more than
  one Contact with a non-zero expiry, one of them with a reg-id: ``400``, §6);
* a REGISTER with the Call-ID of a binding and a CSeq not above it is out of order and
  changes nothing (step 7: ``500``, the answer the RFC leaves open);
* an account holds at most ``max_contacts`` bindings: past that, the ones that expire
  soonest give way to the new ones (a phone that re-registers from a new NAT port
  without an instance would otherwise lock itself out until its old binding expires);
* each binding keeps the Contact's ``q`` (§10.2.1.2; 1.0 when absent), which a refresh
  may change: calls ring the contacts of the highest q first (RFC 3261 §16.6).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Literal, Protocol

__all__ = [
    "Q_MAX",
    "Binding",
    "BindingKey",
    "Bindings",
    "ContactRequest",
    "NatPings",
    "Register",
    "RegisterLimits",
    "RegisterRefused",
    "Registered",
    "update",
]

# RFC 3261 §20.19: an Expires value is a 32-bit delta; bigger ones mean "as long as
# possible", which the maximum cuts anyway.
_EXPIRES_MAX = 2**32 - 1
# q values (RFC 3261 §20.10) are kept in thousandths: 0.000 to 1.000 is 0 to 1000.
Q_MAX = 1000


@dataclass(frozen=True, slots=True)
class RegisterLimits:
    """How long a binding may last, in seconds, and how many one account may hold."""

    min_expires_s: int = 60
    max_expires_s: int = 3600
    default_expires_s: int = 3600
    max_contacts: int = 10


@dataclass(frozen=True, slots=True)
class Binding:
    """One contact of an account, and the path its REGISTER came over.

    ``source``, ``transport`` and ``connection`` are where the REGISTER came from: a call
    to the account goes back there (over that very connection on TCP/TLS), not to the
    address in the contact URI, which behind NAT is a private one.

    ``reg_id`` is set (1 or more) when the binding is an RFC 5626 flow: then the phone
    may hold other flows of the same ``instance`` (one per reg-id), and a request to the
    phone goes over one of them (§5.2: the most recently registered first, the others
    if it fails). A flow over TCP/TLS ends with its connection: the switch removes the
    binding when the connection closes.
    """

    account_id: int
    contact: str  # the contact URI as the phone wrote it
    expires_at: float  # wall-clock seconds
    call_id: str
    cseq: int
    source: tuple[str, int]
    transport: str
    connection: int  # the stream connection's id; 0 on UDP
    instance: str = ""  # RFC 5626 +sip.instance, when the phone sends one
    user_agent: str = ""
    reg_id: int = 0  # RFC 5626 reg-id of an outbound flow; 0: not a flow
    q: int = Q_MAX  # the contact's q value in thousandths (RFC 3261 §20.10): 0 to 1000

    @property
    def key(self) -> BindingKey:
        """What identifies this binding of its account: the instance (and flow) or the URI."""
        return (self.account_id, self.instance or self.contact, self.reg_id)

    def expires_in(self, now: float) -> int:
        """Whole seconds left (what the 200 reports), at least 0."""
        return max(0, math.ceil(self.expires_at - now))

    def same_contact(self, other: ContactRequest) -> bool:
        if self.instance and other.instance:
            # Two flows of one instance are two bindings (RFC 5626 §6); a registration
            # without a reg-id stands for the whole instance.
            return self.instance == other.instance and (
                not self.reg_id or not other.reg_id or self.reg_id == other.reg_id
            )
        return self.contact == other.uri


# (account id, instance or contact URI, reg-id): a binding's identity within the store.
BindingKey = tuple[int, str, int]


@dataclass(frozen=True, slots=True)
class ContactRequest:
    """One Contact of a REGISTER."""

    uri: str
    expires: int | None = None  # its ``expires`` parameter, if any
    instance: str = ""
    reg_id: int = 0  # RFC 5626 reg-id, when outbound applies (with an instance only)
    q: int = Q_MAX  # its ``q`` parameter in thousandths; absent: 1.0

    def __post_init__(self) -> None:
        if not 0 <= self.q <= Q_MAX:
            raise ValueError(f"q out of range: {self.q}")


@dataclass(frozen=True, slots=True)
class Register:
    """What a REGISTER asks for; ``contacts`` is empty for a query, ``"*"`` for remove-all."""

    account_id: int
    contacts: tuple[ContactRequest, ...] | Literal["*"]
    expires: int | None  # the Expires header, if any
    call_id: str
    cseq: int
    source: tuple[str, int]
    transport: str
    connection: int
    user_agent: str = ""


@dataclass(frozen=True, slots=True)
class Registered:
    """The account's bindings after the REGISTER (all of them: the 200 lists them)."""

    bindings: tuple[Binding, ...]
    added: tuple[Binding, ...] = ()  # new or refreshed
    # Every binding that left: removed, pushed out, or replaced by its refresh (a
    # refresh may come over another connection: the old one is no longer needed).
    removed: tuple[Binding, ...] = ()

    @property
    def changed(self) -> bool:
        return bool(self.added or self.removed)


@dataclass(frozen=True, slots=True)
class RegisterRefused:
    status: int
    reason: str
    min_expires: int | None = None  # for 423


class Bindings(Protocol):
    """Where bindings live (process memory now; a shared store later)."""

    def of(self, account_id: int, now: float) -> tuple[Binding, ...]:
        """The account's bindings that have not expired at ``now``."""
        ...

    def put(self, account_id: int, bindings: tuple[Binding, ...]) -> None:
        """Replace the account's bindings (an empty tuple removes them all)."""
        ...

    def expire(self, now: float) -> list[Binding]:
        """Remove every binding expired at ``now``; return them."""
        ...

    def every(self, now: float) -> list[Binding]:
        """Every binding of every account that has not expired at ``now``."""
        ...

    def __len__(self) -> int:
        """Bindings held, expired ones not yet removed included."""
        ...


def update(
    current: Iterable[Binding], request: Register, limits: RegisterLimits, now: float
) -> Registered | RegisterRefused:
    """The account's bindings once ``request`` is applied to ``current`` at ``now``."""
    current = tuple(current)
    live = tuple(b for b in current if b.expires_at > now)
    # Expired bindings leave with any change (their connections are let go).
    expired = tuple(b for b in current if b.expires_at <= now)
    expires = request.expires
    if expires is not None and not 0 <= expires <= _EXPIRES_MAX:
        return RegisterRefused(400, "Bad Request - malformed Expires")
    contacts = request.contacts
    if contacts == "*":
        if expires != 0:
            return RegisterRefused(400, "Bad Request - '*' needs Expires: 0")
        if _out_of_order(live, request):
            return RegisterRefused(500, "Server Internal Error - CSeq out of order")
        return Registered((), removed=current)
    if not contacts:
        return Registered(live, removed=expired)  # a query
    if _out_of_order(live, request):
        return RegisterRefused(500, "Server Internal Error - CSeq out of order")
    wanted: list[tuple[ContactRequest, int]] = []
    for contact in contacts:
        seconds = contact.expires if contact.expires is not None else expires
        if seconds is None:
            seconds = limits.default_expires_s
        if not 0 <= seconds <= _EXPIRES_MAX:
            return RegisterRefused(400, "Bad Request - malformed expires parameter")
        if 0 < seconds < limits.min_expires_s:
            return RegisterRefused(423, "Interval Too Brief", limits.min_expires_s)
        wanted.append((contact, min(seconds, limits.max_expires_s)))
    binding_now = [contact for contact, seconds in wanted if seconds]
    if len(binding_now) > 1 and any(contact.reg_id for contact in binding_now):
        # RFC 5626 §6: a REGISTER registers one flow (and may remove others).
        return RegisterRefused(400, "Bad Request - a flow (reg-id) must be bound alone")
    kept = list(live)
    added: list[Binding] = []
    removed: list[Binding] = list(expired)
    for contact, seconds in wanted:
        for old in [b for b in kept if b.same_contact(contact)]:
            kept.remove(old)
            removed.append(old)
        added = [b for b in added if not b.same_contact(contact)]
        if seconds == 0:
            continue
        binding = Binding(
            account_id=request.account_id,
            contact=contact.uri,
            expires_at=now + seconds,
            call_id=request.call_id,
            cseq=request.cseq,
            source=request.source,
            transport=request.transport,
            connection=request.connection,
            instance=contact.instance,
            user_agent=request.user_agent,
            reg_id=contact.reg_id,
            q=contact.q,
        )
        added.append(binding)
    room = limits.max_contacts - len(added)
    if room < 0:
        return RegisterRefused(403, "Forbidden - too many contacts in one request")
    if len(kept) > room:
        kept.sort(key=lambda b: b.expires_at)
        removed.extend(kept[: len(kept) - room])
        kept = kept[len(kept) - room :]
    return Registered((*kept, *added), added=tuple(added), removed=tuple(removed))


def _out_of_order(live: tuple[Binding, ...], request: Register) -> bool:
    # RFC 3261 §10.3 step 7: same Call-ID, CSeq not higher: the update is aborted.
    return any(b.call_id == request.call_id and request.cseq <= b.cseq for b in live)


class NatPings:
    """Which bindings answer the switch's keep-alive pings, and which have gone silent.

    No clock and no I/O: each :meth:`round` (one per ping interval) says which bindings
    to ping now, each with the token that identifies the ping (its Call-ID), and which
    bindings left their last ``failures`` pings in a row unanswered: a ping counts as
    missed when the next round comes without an answer to it. :meth:`answered` takes
    the answer to a ping; :meth:`heard_from` a REGISTER of the binding. Either starts
    the count again. ``failures`` 0: nobody is ever given up on.

    It holds one entry per binding pinged in the last round, no more.
    """

    __slots__ = ("_missed", "_tokens", "_waiting", "failures")

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self._waiting: dict[BindingKey, str] = {}  # the unanswered ping of each binding
        self._tokens: dict[str, tuple[BindingKey, str]] = {}  # token -> binding, host
        self._missed: dict[BindingKey, int] = {}

    def round(
        self, bindings: Iterable[Binding], token: Callable[[], str]
    ) -> tuple[list[tuple[Binding, str]], list[Binding]]:
        """``(bindings to ping now with their tokens, bindings to give up on)``."""
        live = {binding.key: binding for binding in bindings}
        for gone in [key for key in self._missed if key not in live]:
            del self._missed[gone]
        to_ping: list[tuple[Binding, str]] = []
        silent: list[Binding] = []
        waiting = self._waiting
        self._waiting = {}
        for key, binding in live.items():
            unanswered = waiting.pop(key, None)
            if unanswered is not None:
                self._tokens.pop(unanswered, None)
                missed = self._missed.get(key, 0) + 1
                if self.failures and missed >= self.failures:
                    self._missed.pop(key, None)
                    silent.append(binding)
                    continue
                self._missed[key] = missed
            sent = token()
            self._waiting[key] = sent
            self._tokens[sent] = (key, binding.source[0])
            to_ping.append((binding, sent))
        for stale in waiting.values():  # bindings gone since the last round
            self._tokens.pop(stale, None)
        return to_ping, silent

    def answered(self, token: str, host: str) -> bool:
        """A response to the ping ``token`` came from ``host``; False when it is no ping
        of ours, or came from elsewhere than the address pinged."""
        entry = self._tokens.get(token)
        if entry is None or entry[1] != host:
            return False
        del self._tokens[token]
        key = entry[0]
        self._waiting.pop(key, None)
        self._missed.pop(key, None)
        return True

    def heard_from(self, binding: Binding) -> None:
        """The phone registered (or refreshed) this binding: it is alive."""
        key = binding.key
        self._missed.pop(key, None)
        unanswered = self._waiting.pop(key, None)
        if unanswered is not None:
            self._tokens.pop(unanswered, None)

    def missed(self, binding: Binding) -> int:
        """Pings in a row ``binding`` has left unanswered so far."""
        return self._missed.get(binding.key, 0)
