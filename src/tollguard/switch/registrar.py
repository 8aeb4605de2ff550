"""The registrar (RFC 3261 §10.3): REGISTER authenticated by digest, bindings kept with
their expiry and the path each came over.

A REGISTER is authenticated exactly as an INVITE from outside every IP list
(:meth:`.auth.Authenticator.digest`): the same challenge for every caller (here a 401
with WWW-Authenticate, RFC 3261 §22.2), the same 403 for an unknown user, a wrong
password, a disabled account, a banned source or a locked account, the same line on the
``tollguard.security`` logger and the same count towards the shield's bans. An
authenticated account may change only its own bindings: the To user must be its user
name (§10.3 step 3), else 403.

The rules that turn a REGISTER into bindings are :func:`tollguard.domain.registration.update`;
the bindings live behind the :class:`~tollguard.domain.registration.Bindings` port. Each
binding records the address, transport and connection the REGISTER came from, so that
a call to the account can go back over that path (through the NAT binding, over the
same TCP/TLS connection, RFC 5626 §5.3); a stream connection that carries a binding is
pinned open (:meth:`tollguard.transport.Transports.pin`) until the binding goes, and
when the connection closes its bindings go with it; a phone registered over UDP gets an
OPTIONS every ``sip.register_nat_ping_s`` seconds, to which its answer keeps its NAT
binding open, and a phone that leaves ``sip.register_nat_ping_failures`` pings in a row
unanswered loses its binding (:class:`~tollguard.domain.registration.NatPings`).

RFC 5626 (outbound): the switch is registrar and edge proxy in one. A Contact with
``+sip.instance`` and ``reg-id`` in a REGISTER that reached the switch directly (one
Via) binds a *flow*; the 200 says ``Require: outbound`` (§6). Through another proxy
(more than one Via; the switch does not take Path) outbound cannot apply: a phone that
said ``Supported: outbound`` gets ``439 First Hop Lacks Outbound Support``, any other
has its reg-id ignored (§6). The phone's keep-alives are the transports' business: a
CRLFCRLF on a stream is answered with CRLF (RFC 5626 §4.4.1), and a STUN Binding
request on the UDP port (§4.4.2) from an address that holds a UDP binding gets its
answer (:mod:`tollguard.sip.stun`); from anyone else it is dropped, so that the port
reflects nothing to strangers.

REGISTER has no dialog: the switch answers each one statelessly and keeps its final
answer for 64*T1 (the life of a non-INVITE server transaction, RFC 3261 §17.2.2), so a
retransmission gets the same answer instead of a second authentication with a used
nonce count.
"""

from __future__ import annotations

import logging
import math
import re
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import replace
from email.utils import formatdate

from tollguard.config import SipSettings
from tollguard.domain.registration import (
    Q_MAX,
    Binding,
    Bindings,
    ContactRequest,
    NatPings,
    Register,
    RegisterLimits,
    RegisterRefused,
    update,
)
from tollguard.domain.routing import Plan
from tollguard.sip.errors import SipError
from tollguard.sip.headers import parse_contacts
from tollguard.sip.message import Request, Response
from tollguard.sip.stun import binding_response
from tollguard.sip.uri import SipUri
from tollguard.state import bindings_file
from tollguard.switch.admission import user_part
from tollguard.switch.auth import Authenticated, Authenticator, Challenge
from tollguard.switch.signalling import Signalling
from tollguard.switch.timers import Cancellable, Scheduler
from tollguard.switch.wire import Peer
from tollguard.transport import Transports

__all__ = ["Registrar", "limits_from_settings", "q_text"]

log = logging.getLogger(__name__)
security_log = logging.getLogger("tollguard.security")

# Final answers kept for retransmissions, at most.
_ANSWERS_MAX = 4096
# Seconds between sweeps of expired bindings while any exists.
SWEEP_INTERVAL_S = 1.0
# RFC 5626 §4.1: reg-id = 1*DIGIT, 1 to 2**31-1.
_REG_ID_MAX = 2**31 - 1
# A +sip.instance as the switch keeps (and echoes and logs) it: a URN in angle brackets
# (RFC 5626 §4.1); nothing that could break out of the quoted string it comes back in.
_INSTANCE_RE = re.compile(r"<[A-Za-z0-9:._~%!$&'()*+,;=/?@-]{1,254}>")
# RFC 3261 §25.1: qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] )
_QVALUE_RE = re.compile(r"0(?:\.[0-9]{0,3})?|1(?:\.0{0,3})?")


def limits_from_settings(sip: SipSettings) -> RegisterLimits:
    return RegisterLimits(
        min_expires_s=sip.register_min_expires_s,
        max_expires_s=sip.register_max_expires_s,
        default_expires_s=sip.register_default_expires_s,
        max_contacts=sip.register_max_contacts,
    )


class _Malformed(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _seconds(text: str, what: str) -> int:
    text = text.strip()
    if not text.isdigit() or len(text) > 10:
        raise _Malformed(f"Bad Request - malformed {what}")
    return int(text)


def _qvalue(text: str) -> int:
    """A Contact's ``q`` parameter in thousandths (``0.5`` is 500)."""
    text = text.strip()
    if not _QVALUE_RE.fullmatch(text):
        raise _Malformed("Bad Request - malformed q (0 to 1, at most three decimals)")
    whole, _, decimals = text.partition(".")
    return int(whole) * Q_MAX + int(decimals.ljust(3, "0"))


def q_text(q: int) -> str:
    """A q value in thousandths as the shortest qvalue (500 is ``0.5``, 1000 is ``1``)."""
    if q >= Q_MAX:
        return "1"
    return f"0.{q:03d}".rstrip("0").rstrip(".")


def _contacts(request: Request) -> tuple[ContactRequest, ...] | str:
    values = request.headers.values("Contact")
    found: list[ContactRequest] = []
    star = False
    for value in values:
        try:
            parsed = parse_contacts(value)
        except SipError as exc:
            raise _Malformed("Bad Request - malformed Contact") from exc
        if parsed == "*":
            star = True
            continue
        for contact in parsed:
            if not isinstance(contact.uri, SipUri):
                # A call will be sent there: a SIP address, nothing else (no tel:, http:).
                raise _Malformed("Bad Request - Contact must be a sip: or sips: URI")
            expires = contact.param("expires")
            instance = (contact.param("+sip.instance") or "").strip('"')
            if instance and not _INSTANCE_RE.fullmatch(instance):
                raise _Malformed("Bad Request - malformed +sip.instance")
            q = contact.param("q")
            reg_id = contact.param("reg-id")
            flow = 0
            if reg_id is not None:
                flow = _seconds(reg_id, "reg-id")
                if not 1 <= flow <= _REG_ID_MAX:
                    raise _Malformed("Bad Request - malformed reg-id")
            found.append(
                ContactRequest(
                    str(contact.uri),
                    _seconds(expires, "expires parameter") if expires is not None else None,
                    instance,
                    # §6: a reg-id without an instance is ignored.
                    flow if instance else 0,
                    _qvalue(q) if q is not None else Q_MAX,
                )
            )
    if star:
        if found or len(values) > 1:
            raise _Malformed("Bad Request - '*' must be the only Contact")
        return "*"
    return tuple(found)


def _option_tags(request: Request, header: str) -> set[str]:
    return {tag.strip() for tag in request.headers.get_all(header)}


def _contact_value(binding: Binding, wall: float) -> str:
    value = f"<{binding.contact}>;expires={binding.expires_in(wall)};q={q_text(binding.q)}"
    if binding.instance:
        value += f';+sip.instance="{binding.instance}"'
    if binding.reg_id:
        value += f";reg-id={binding.reg_id}"
    return value


class Registrar:
    """Answers REGISTERs and holds the process's view of the bindings."""

    __slots__ = (
        "_answers",
        "_auth",
        "_bindings",
        "_by_connection",
        "_limits",
        "_linger_s",
        "_ping",
        "_ping_s",
        "_pings",
        "_scheduler",
        "_sig",
        "_sweep",
        "_udp_sources",
        "_wall",
        "connections",
    )

    def __init__(  # noqa: PLR0917 (the parts of the switch it works with)
        self,
        sip: SipSettings,
        sig: Signalling,
        authenticator: Authenticator,
        bindings: Bindings,
        scheduler: Scheduler,
        wall: Callable[[], float],
    ) -> None:
        self._sig = sig
        self._auth = authenticator
        self._bindings = bindings
        self._limits = limits_from_settings(sip)
        self._scheduler = scheduler
        self._wall = wall
        self._linger_s = 64 * sip.t1
        # (Call-ID, CSeq, branch, sender) -> (final answer, when it is forgotten), oldest
        # first.
        self._answers: OrderedDict[tuple[str, int, str, Peer], tuple[bytes, float]] = OrderedDict()
        self._sweep: Cancellable | None = None
        self._ping_s = sip.register_nat_ping_s
        self._ping: Cancellable | None = None
        self._pings = NatPings(sip.register_nat_ping_failures)
        # TCP/TLS connection id -> the accounts with a binding over it (maybe stale).
        self._by_connection: dict[int, set[int]] = {}
        # Addresses with UDP bindings, and how many: who may have its STUN answered.
        self._udp_sources: dict[tuple[str, int], int] = {}
        # The transports, once bound: stream connections with a binding stay open.
        self.connections: Transports | None = None

    def attach(self, connections: Transports | None) -> None:
        """Work with the switch's transports: pin the connections bindings came over,
        and drop a connection's bindings when it closes."""
        self.connections = connections
        if connections is not None:
            connections.on_close(self.connection_closed)

    @property
    def bindings(self) -> Bindings:
        return self._bindings

    def contacts(self, account_id: int) -> tuple[Binding, ...]:
        """Where ``account_id`` is registered now (for calls to it).

        Each binding's ``source``, ``transport`` and ``connection`` are the path to use;
        a binding whose TCP/TLS connection has closed is never returned (it is removed
        when the connection closes; this also holds between the close and its removal).
        """
        bindings = self._bindings.of(account_id, self._wall())
        connections = self.connections
        if connections is None or not any(b.connection for b in bindings):
            return bindings
        return tuple(b for b in bindings if not b.connection or connections.is_open(b.connection))

    def registered(self) -> tuple[int, int]:
        """``(bindings, accounts with at least one)`` now, for the status document."""
        every = self._bindings.every(self._wall())
        return len(every), len({binding.account_id for binding in every})

    def persistent(self) -> list[Binding]:
        """The live bindings that survive a restart (made over UDP; docs/registrar.md)."""
        return [b for b in self._bindings.every(self._wall()) if bindings_file.kept(b)]

    def restore(self, bindings: Iterable[Binding], plan: Plan) -> int:
        """Take back the bindings kept across a restart; returns how many were taken.

        Only for accounts the plan still has, enabled, and not past each account's
        ``sip.register_max_contacts`` (the most recently refreshed first). An account
        that registered meanwhile keeps what it registered.
        """
        wall = self._wall()
        by_account: dict[int, list[Binding]] = {}
        for binding in bindings:
            if bindings_file.kept(binding) and binding.expires_at > wall:
                by_account.setdefault(binding.account_id, []).append(binding)
        taken = 0
        for account_id, found in by_account.items():
            account = plan.account(account_id)
            if account is None or not account.enabled or self._bindings.of(account_id, wall):
                continue
            found.sort(key=lambda b: b.expires_at, reverse=True)
            restored = tuple(found[: self._limits.max_contacts])
            self._bindings.put(account_id, restored)
            self._repin(restored, ())
            taken += len(restored)
        self._arm()
        return taken

    # -- REGISTER ----------------------------------------------------------------------

    def register(self, request: Request, peer: Peer, plan: Plan) -> None:
        """Answer one REGISTER (never raises for the peer's mistakes)."""
        # The sender is part of the key: an answer goes back only where its request came from.
        branch = request.vias[0].branch or ""
        key = (request.call_id, request.cseq.seq, branch, peer)
        now = self._scheduler.now()
        kept = self._answers.get(key)
        if kept is not None and kept[1] > now:
            self._sig.out(kept[0], peer)  # a retransmission (RFC 3261 §17.2.2)
            return
        data = self._answer(request, peer, plan)
        answers = self._answers
        answers[key] = (data, now + self._linger_s)
        while answers:
            oldest = next(iter(answers.values()))
            if len(answers) <= _ANSWERS_MAX and oldest[1] > now:
                break
            answers.popitem(last=False)

    def _answer(self, request: Request, peer: Peer, plan: Plan) -> bytes:
        respond = self._sig.respond
        tag = self._sig.ids.tag()
        result = self._auth.digest(
            plan,
            method="REGISTER",
            request_uri=str(request.uri),
            called="",
            credentials=request.headers.get_all("Authorization"),
            source=peer.address,
            transport=peer.transport,
            now=self._scheduler.now(),
        )
        if isinstance(result, Challenge):
            extra = tuple(f"WWW-Authenticate: {value}" for value in result.values)
            return respond(request, peer, 401, extra=extra, to_tag=tag)
        if not isinstance(result, Authenticated):
            return respond(request, peer, result.status, result.reason, to_tag=tag)
        account = result.account
        assert account is not None  # digest authentication names the account
        if user_part(request.to.uri) != account.username:
            # §10.3 step 3: this account may not bind another address-of-record.
            security_log.warning(
                'register refused: ip=%s port=%d transport=%s user="%s" reason=other-aor',
                *peer.address,
                peer.transport,
                account.username,
            )
            return respond(request, peer, 403, "Forbidden - not your address-of-record", to_tag=tag)
        try:
            contacts = _contacts(request)
            header = request.headers.get("Expires")
            expires = _seconds(header, "Expires") if header is not None else None
        except _Malformed as exc:
            return respond(request, peer, 400, exc.reason, to_tag=tag)
        outbound = isinstance(contacts, tuple) and any(c.reg_id for c in contacts)
        if outbound and len(request.vias) > 1:
            # RFC 5626 §6: not the first hop, and no Path to say the hop before does
            # outbound: the flow cannot be reached.
            if "outbound" in _option_tags(request, "Supported"):
                return respond(request, peer, 439, "First Hop Lacks Outbound Support", to_tag=tag)
            assert isinstance(contacts, tuple)
            contacts = tuple(replace(contact, reg_id=0) for contact in contacts)
            outbound = False
        wall = self._wall()
        self._drop_expired(wall)  # so that none leaves below without its unpin
        current = self._bindings.of(account.id, wall)
        outcome = update(
            current,
            Register(
                account_id=account.id,
                contacts=contacts if isinstance(contacts, tuple) else "*",
                expires=expires,
                call_id=request.call_id,
                cseq=request.cseq.seq,
                source=peer.address,
                transport=peer.transport,
                connection=peer.connection,
                user_agent=(request.headers.get("User-Agent") or "")[:128],
            ),
            self._limits,
            wall,
        )
        if isinstance(outcome, RegisterRefused):
            extra = (
                (f"Min-Expires: {outcome.min_expires}",) if outcome.min_expires is not None else ()
            )
            return respond(request, peer, outcome.status, outcome.reason, extra, to_tag=tag)
        if outcome.changed:
            self._bindings.put(account.id, outcome.bindings)
            self._repin(outcome.added, outcome.removed)
            for binding in outcome.added:
                self._pings.heard_from(binding)
                log.info(
                    "registered %s at %s from %s:%d over %s%s for %d s, q=%s",
                    account.username,
                    binding.contact,
                    *binding.source,
                    binding.transport,
                    f" (flow {binding.reg_id} of {binding.instance})" if binding.reg_id else "",
                    binding.expires_in(wall),
                    q_text(binding.q),
                )
            self._arm()
        # §10.3 step 8: every current binding with its expiry, and the Date.
        extra = tuple(f"Contact: {_contact_value(b, wall)}" for b in outcome.bindings)
        extra += (f"Date: {formatdate(math.floor(wall), usegmt=True)}",)
        # RFC 5626 §6: the phone learns that its flow is one.
        extra += ("Require: outbound",) if outbound else ()
        extra += ("Supported: outbound",)
        return respond(request, peer, 200, extra=extra, to_tag=tag)

    # -- connections and expiry --------------------------------------------------------

    def _repin(self, added: tuple[Binding, ...], removed: tuple[Binding, ...]) -> None:
        sources = self._udp_sources
        for binding in added:
            if binding.transport == "udp":
                sources[binding.source] = sources.get(binding.source, 0) + 1
        for binding in removed:
            if binding.transport == "udp":
                left = sources.get(binding.source, 0) - 1
                if left > 0:
                    sources[binding.source] = left
                else:
                    sources.pop(binding.source, None)
        connections = self.connections
        if connections is None:
            return
        for binding in added:
            if binding.connection:
                connections.pin(binding.connection)
                self._by_connection.setdefault(binding.connection, set()).add(binding.account_id)
        for binding in removed:
            if binding.connection:
                connections.unpin(binding.connection)

    def _arm(self) -> None:
        if self._sweep is None and len(self._bindings):
            self._sweep = self._scheduler.call_later(SWEEP_INTERVAL_S, self._expire)
        if self._ping is None and self._ping_s and len(self._bindings):
            self._ping = self._scheduler.call_later(self._ping_s, self._nat_ping)

    def connection_closed(self, connection: int) -> None:
        """A TCP/TLS connection closed: the bindings that came over it are unreachable
        (RFC 5626 §5.3: a flow ends with its connection), so they go, and calls go to the
        account's other bindings."""
        accounts = self._by_connection.pop(connection, None)
        if not accounts:
            return
        wall = self._wall()
        gone = [
            binding
            for account_id in accounts
            for binding in self._bindings.of(account_id, wall)
            if binding.connection == connection
        ]
        self._remove(gone, "connection closed")

    def _remove(self, gone: Iterable[Binding], why: str) -> None:
        """Take ``gone`` out of their accounts' bindings, and say so in the log."""
        wall = self._wall()
        by_account: dict[int, list[Binding]] = {}
        for binding in gone:
            by_account.setdefault(binding.account_id, []).append(binding)
        for account_id, leaving in by_account.items():
            current = self._bindings.of(account_id, wall)
            self._bindings.put(account_id, tuple(b for b in current if b not in leaving))
            self._repin((), tuple(leaving))
            for binding in leaving:
                log.info(
                    "binding dropped: account %d at %s from %s:%d over %s: %s",
                    account_id,
                    binding.contact,
                    *binding.source,
                    binding.transport,
                    why,
                )

    def _nat_ping(self) -> None:
        """An OPTIONS to each phone registered over UDP, to its NAT's public address;
        the phones that left the last pings unanswered are given up."""
        self._ping = None
        sig = self._sig
        # Streams: the phone's CRLF keep-alives hold the connection, whose end is seen.
        over_udp = (b for b in self._bindings.every(self._wall()) if b.transport == "udp")
        to_ping, silent = self._pings.round(over_udp, sig.ids.call_id)
        if silent:
            failures = self._pings.failures
            self._remove(silent, f"{failures} pings in a row unanswered")
        for binding, call_id in to_ping:
            data = (
                f"OPTIONS {binding.contact} SIP/2.0\r\n"
                f"Via: {sig.via('udp')}\r\n"
                "Max-Forwards: 70\r\n"
                f"From: <sip:tollguard@{sig.host}>;tag={sig.ids.tag()}\r\n"
                f"To: <{binding.contact}>\r\n"
                f"Call-ID: {call_id}\r\n"
                "CSeq: 1 OPTIONS\r\n"
                "Content-Length: 0\r\n\r\n"
            ).encode()
            sig.out(data, Peer(binding.source, "udp"))
        self._arm()

    def stun(self, data: bytes, source: tuple[str, int]) -> None:
        """A STUN keep-alive on the UDP port: answered for a registered phone only."""
        if source not in self._udp_sources:
            if log.isEnabledFor(logging.DEBUG):
                log.debug("stun from %s:%d dropped: no binding from there", *source)
            return
        answer = binding_response(data, source)
        if answer is not None:
            self._sig.out(answer, Peer(source, "udp"))

    def response(self, response: Response, source: tuple[str, int]) -> None:
        """A response that matched no call: maybe a phone's answer to a ping. Any final
        answer (a 200, a 404, a 405 ...) shows the phone is there."""
        if response.status >= 200 and response.cseq.method == "OPTIONS":
            self._pings.answered(response.call_id, source[0])

    def _expire(self) -> None:
        self._sweep = None
        self._drop_expired(self._wall())
        self._arm()

    def _drop_expired(self, wall: float) -> None:
        gone = self._bindings.expire(wall)
        for binding in gone:
            log.info("binding expired: account %d at %s", binding.account_id, binding.contact)
        self._repin((), tuple(gone))

    def close(self) -> None:
        for timer in (self._sweep, self._ping):
            if timer is not None:
                timer.cancel()
        self._sweep = self._ping = None
