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
pinned open (:meth:`tollguard.transport.Transports.pin`) until the binding goes; a
phone registered over UDP gets an OPTIONS every ``sip.register_nat_ping_s`` seconds, to
which its answer keeps its NAT binding open (the answers themselves are not needed:
they match no call and are dropped).

REGISTER has no dialog: the switch answers each one statelessly and keeps its final
answer for 64*T1 (the life of a non-INVITE server transaction, RFC 3261 §17.2.2), so a
retransmission gets the same answer instead of a second authentication with a used
nonce count.
"""

from __future__ import annotations

import logging
import math
from collections import OrderedDict
from collections.abc import Callable
from email.utils import formatdate

from tollguard.config import SipSettings
from tollguard.domain.registration import (
    Binding,
    Bindings,
    ContactRequest,
    Register,
    RegisterLimits,
    RegisterRefused,
    update,
)
from tollguard.domain.routing import Plan
from tollguard.sip.errors import SipError
from tollguard.sip.headers import parse_contacts
from tollguard.sip.message import Request
from tollguard.sip.uri import SipUri
from tollguard.switch.admission import user_part
from tollguard.switch.auth import Authenticated, Authenticator, Challenge
from tollguard.switch.signalling import Signalling
from tollguard.switch.timers import Cancellable, Scheduler
from tollguard.switch.wire import Peer
from tollguard.transport import Transports

__all__ = ["Registrar", "limits_from_settings"]

log = logging.getLogger(__name__)
security_log = logging.getLogger("tollguard.security")

# Final answers kept for retransmissions, at most.
_ANSWERS_MAX = 4096
# Seconds between sweeps of expired bindings while any exists.
SWEEP_INTERVAL_S = 1.0


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
            instance = contact.param("+sip.instance") or ""
            found.append(
                ContactRequest(
                    str(contact.uri),
                    _seconds(expires, "expires parameter") if expires is not None else None,
                    instance.strip('"'),
                )
            )
    if star:
        if found or len(values) > 1:
            raise _Malformed("Bad Request - '*' must be the only Contact")
        return "*"
    return tuple(found)


class Registrar:
    """Answers REGISTERs and holds the process's view of the bindings."""

    __slots__ = (
        "_answers",
        "_auth",
        "_bindings",
        "_limits",
        "_linger_s",
        "_ping",
        "_ping_s",
        "_scheduler",
        "_sig",
        "_sweep",
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
        # The transports, once bound: stream connections with a binding stay open.
        self.connections: Transports | None = None

    @property
    def bindings(self) -> Bindings:
        return self._bindings

    def contacts(self, account_id: int) -> tuple[Binding, ...]:
        """Where ``account_id`` is registered now (for calls to it)."""
        return self._bindings.of(account_id, self._wall())

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
                log.info(
                    "registered %s at %s from %s:%d over %s for %d s",
                    account.username,
                    binding.contact,
                    *binding.source,
                    binding.transport,
                    binding.expires_in(wall),
                )
            self._arm()
        # §10.3 step 8: every current binding with its expiry, and the Date.
        extra = tuple(
            f"Contact: <{b.contact}>;expires={b.expires_in(wall)}" for b in outcome.bindings
        )
        extra += (f"Date: {formatdate(math.floor(wall), usegmt=True)}",)
        return respond(request, peer, 200, extra=extra, to_tag=tag)

    # -- connections and expiry --------------------------------------------------------

    def _repin(self, added: tuple[Binding, ...], removed: tuple[Binding, ...]) -> None:
        connections = self.connections
        if connections is None:
            return
        for binding in added:
            if binding.connection:
                connections.pin(binding.connection)
        for binding in removed:
            if binding.connection:
                connections.unpin(binding.connection)

    def _arm(self) -> None:
        if self._sweep is None and len(self._bindings):
            self._sweep = self._scheduler.call_later(SWEEP_INTERVAL_S, self._expire)
        if self._ping is None and self._ping_s and len(self._bindings):
            self._ping = self._scheduler.call_later(self._ping_s, self._nat_ping)

    def _nat_ping(self) -> None:
        """An OPTIONS to each phone registered over UDP, to its NAT's public address."""
        self._ping = None
        sig = self._sig
        for binding in self._bindings.every(self._wall()):
            if binding.transport != "udp":
                continue  # streams: the phone's CRLF keep-alives hold the connection
            ids = sig.ids
            data = (
                f"OPTIONS {binding.contact} SIP/2.0\r\n"
                f"Via: {sig.via('udp')}\r\n"
                "Max-Forwards: 70\r\n"
                f"From: <sip:tollguard@{sig.host}>;tag={ids.tag()}\r\n"
                f"To: <{binding.contact}>\r\n"
                f"Call-ID: {ids.call_id()}\r\n"
                "CSeq: 1 OPTIONS\r\n"
                "Content-Length: 0\r\n\r\n"
            ).encode()
            sig.out(data, Peer(binding.source, "udp"))
        self._arm()

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
