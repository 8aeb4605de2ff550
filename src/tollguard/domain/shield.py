"""The SIP shield: what is dropped or refused before any business logic runs.

The shield sits in front of the switch and sees every datagram or stream message:

1. **before parsing** (:meth:`Shield.datagram`): a source banned in ``drop`` mode, a
   message over ``max_message_bytes``, a source over its request rate (banned for
   flooding), and — for sources not on the allow-list — any message over the global
   request cap are dropped without an answer. This is a dict lookup and two token
   buckets: the cheapest place to stop a flood.
2. **after parsing a request** (:meth:`Shield.request`): a known scanner's user agent
   (``friendly-scanner``, ``sipvicious`` ...) is dropped and its source banned; a
   request with more than ``max_headers`` header fields is dropped.
3. **around each server transaction** (:meth:`Shield.open_transaction` /
   :meth:`Shield.close_transaction`): at most ``max_transactions`` open per source.
4. **at authentication** (:meth:`Shield.may_authenticate`, :meth:`Shield.auth_failed`):
   ``auth_failures`` failures from one source within ``auth_window_s`` ban it; a user
   name that fails from ``lock_sources`` different sources within ``lock_window_s``
   is locked until an operator releases it.

**Indistinguishable failures.** An unknown user, a wrong password, an address that is
not a customer's and a source banned for failed authentication all get the same
answer: the usual 407 challenge, then the same 403. A source banned for
authentication failures is therefore banned in ``refuse`` mode (its requests are parsed
and every authentication fails) rather than dropped: a dropped request would tell a
password guesser that it has been noticed, and that its next guess — right or wrong —
cannot be checked. A locked account answers like a wrong password, even to the
right one. Scanners, floods and operator bans are dropped: their senders learn
nothing from silence that they did not know.

**Repeat offenders** get longer bans: the n-th ban of an address within
``offence_memory_s`` lasts ``ban_s * ban_factor ** (n - 1)``, at most ``max_ban_s``.

**The allow-list** (``shield.allow`` and, with ``shield.trust_acl``, every customer's
IP list) is never banned, never rate-limited per source and never counted in the
global cap: the cap exists so that a flood from many addresses cannot starve the
trunks the operator knows.

Bans and account locks live behind the ports :class:`Bans` and
:class:`~tollguard.domain.fraud.Suspensions` (memory now, a shared store later);
counters behind :class:`~tollguard.domain.limits.Counters`. ``now`` is seconds since the
epoch throughout: bans outlive the process, so they need wall-clock times.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Protocol

from tollguard.domain.events import Text, log_event, utc_stamp
from tollguard.domain.fraud import Suspension, Suspensions
from tollguard.domain.limits import Counters, TokenBucket, Window
from tollguard.domain.plan import IPNetwork

if TYPE_CHECKING:
    from tollguard.config import ShieldSettings

__all__ = [
    "DEFAULT_SCANNER_AGENTS",
    "MAX_USERNAME",
    "Ban",
    "BanMode",
    "BanReason",
    "BanStore",
    "Bans",
    "Shield",
    "ShieldPolicy",
    "account_lock_subject",
    "ban_duration",
    "parse_network",
    "policy_from_settings",
]

# User agents of SIP scanners and war-dialers, lower case, matched as substrings. The
# sipvicious suite announces itself as "friendly-scanner" by default; the others are
# the names seen most in honeypot logs. Operators extend the list in shield.scanner_agents.
DEFAULT_SCANNER_AGENTS: tuple[str, ...] = (
    "friendly-scanner",
    "sipvicious",
    "sipcli",
    "vaxsipuseragent",
    "pplsip",
    "sip-scan",
    "sipscan",
    "sundayddr",
    "iwar",
    "sippts",
    "smap",
)


# The longest SIP user name an account may have (the web app's validator): longer names
# in failed attempts are an attacker's and are never locked.
MAX_USERNAME = 64


class BanReason(StrEnum):
    AUTH_FAILURES = "auth-failures"
    SCANNER = "scanner"
    FLOOD = "flood"
    OPERATOR = "operator"
    IMPORT = "import"


class BanMode(StrEnum):
    DROP = "drop"  # every datagram dropped before parsing
    REFUSE = "refuse"  # parsed, and every authentication fails as a wrong password would


@dataclass(frozen=True, slots=True)
class Ban:
    network: IPNetwork
    reason: BanReason
    created: float
    expires: float | None  # None: until an operator releases it
    mode: BanMode = BanMode.DROP
    offences: int = 1
    note: str = ""

    def active(self, now: float) -> bool:
        return self.expires is None or now < self.expires


def parse_network(text: str) -> IPNetwork:
    """An address or CIDR network (host bits allowed); IPv4-mapped IPv6 reads as IPv4.

    Raises ``ValueError`` with the text in the message.
    """
    value = text.strip()
    try:
        network = ipaddress.ip_network(value, strict=False)
    except ValueError as exc:
        raise ValueError(f"{value!r} is not an IP address or CIDR network") from exc
    if isinstance(network, ipaddress.IPv6Network) and network.prefixlen == 128:
        mapped = network.network_address.ipv4_mapped
        if mapped is not None:
            return ipaddress.ip_network(mapped)
    return network


class Bans(Protocol):
    """Port: the ban list, by network; an address is banned when a network holds it.

    The contract tests in ``tests/state/contract.py`` state the semantics.
    """

    def add(self, ban: Ban) -> Ban:
        """Store ``ban``; an active ban of the same network that ends later is kept
        (and returned) instead. Returns the ban in force."""
        ...

    def remove(self, network: IPNetwork) -> Ban | None:
        """Lift the ban of exactly ``network``; returns it, or ``None``."""
        ...

    def match(self, address: str, now: float) -> Ban | None:
        """The active ban covering ``address`` (the most specific one), or ``None``.

        ``address`` is text as a transport reports it; something that is not an
        address is never banned."""
        ...

    def get(self, network: IPNetwork) -> Ban | None:
        """The ban of exactly ``network``, active or expired but not yet pruned."""
        ...

    def all(self) -> list[Ban]:
        """Every ban held, expired ones not yet pruned included."""
        ...

    def replace(self, bans: Iterable[Ban]) -> None:
        """Hold exactly ``bans`` (a snapshot read back from the persistent store)."""
        ...

    def prune(self, now: float, keep_s: float) -> int:
        """Forget bans that expired more than ``keep_s`` seconds ago; return how many."""
        ...


class BanStore(Protocol):
    """Port: where bans persist across restarts (the database; implemented by the web
    layer) and where operators add and lift them."""

    def version(self) -> int:
        """A number that changes whenever an operator changes the ban list (cheap)."""
        ...

    def load(self) -> list[Ban]:
        """Every ban stored, expired ones that still count as offences included."""
        ...

    def save(self, bans: list[Ban]) -> None:
        """Store bans the switch made (a longer stored ban of the same network stays)."""
        ...


def account_lock_subject(username: str) -> str:
    return f"sip-user:{username}"


@dataclass(frozen=True, slots=True)
class ShieldPolicy:
    """The shield's thresholds (``[shield]`` in ``tollguard.toml``)."""

    allow: tuple[IPNetwork, ...] = ()
    auth_failures: int = 5
    auth_window_s: float = 600.0
    ban_s: float = 900.0
    ban_factor: float = 4.0
    max_ban_s: float = 7 * 86400.0
    offence_memory_s: float = 30 * 86400.0
    lock_sources: int = 5
    lock_window_s: float = 3600.0
    scanner_agents: tuple[str, ...] = DEFAULT_SCANNER_AGENTS
    scanner_ban_s: float = 86400.0
    source_rate: float = 30.0
    source_burst: float = 150.0
    flood_ban_s: float = 600.0
    global_rate: float = 2000.0
    global_burst: float = 4000.0
    max_message_bytes: int = 16384
    max_headers: int = 100
    max_transactions: int = 200
    # An IPv6 host holds a /64 at least: counting and banning single IPv6 addresses
    # would let an attacker walk its network one address per request.
    ipv6_prefix: int = 64
    _agents: tuple[str, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for name in ("auth_failures", "lock_sources", "max_message_bytes", "max_headers"):
            if getattr(self, name) < 1:
                raise ValueError(f"shield.{name} must be at least 1")
        if self.ban_factor < 1:
            raise ValueError("shield.ban_factor must be at least 1")
        if not 32 <= self.ipv6_prefix <= 128:
            raise ValueError("shield.ipv6_prefix must be between 32 and 128")
        for name in ("source", "global"):
            rate, burst = getattr(self, f"{name}_rate"), getattr(self, f"{name}_burst")
            if not (rate > 0 and burst >= 1):
                raise ValueError(
                    f"shield.{name}_rate must be above 0 and shield.{name}_burst at least 1"
                )
        object.__setattr__(
            self, "_agents", tuple(a.lower() for a in self.scanner_agents if a.strip())
        )

    @property
    def source_bucket(self) -> TokenBucket:
        return TokenBucket(self.source_rate, self.source_burst)

    @property
    def global_bucket(self) -> TokenBucket:
        return TokenBucket(self.global_rate, self.global_burst)

    def is_scanner(self, user_agent: str) -> bool:
        agent = user_agent.lower()
        return any(name in agent for name in self._agents)


def policy_from_settings(settings: ShieldSettings) -> ShieldPolicy:
    """The policy of ``[shield]`` in ``tollguard.toml``; a bad entry raises ``ValueError``
    naming the setting."""
    allow: list[IPNetwork] = []
    for entry in settings.allow:
        try:
            allow.append(parse_network(entry))
        except ValueError as exc:
            raise ValueError(f"shield.allow: {exc}") from exc
    names = (
        "auth_failures",
        "auth_window_s",
        "ban_s",
        "ban_factor",
        "max_ban_s",
        "offence_memory_s",
        "lock_sources",
        "lock_window_s",
        "scanner_ban_s",
        "source_rate",
        "source_burst",
        "flood_ban_s",
        "global_rate",
        "global_burst",
        "max_message_bytes",
        "max_headers",
        "max_transactions",
        "ipv6_prefix",
    )
    return ShieldPolicy(
        allow=tuple(allow),
        scanner_agents=settings.scanner_agents or DEFAULT_SCANNER_AGENTS,
        **{name: getattr(settings, name) for name in names},
    )


def ban_duration(base_s: float, offences: int, factor: float, cap_s: float) -> float:
    """How long the ``offences``-th ban lasts: ``base * factor ** (offences - 1)``, capped."""
    if offences <= 1:
        return min(base_s, cap_s)
    # Grows fast: stop multiplying once past the cap (no float overflow).
    duration = base_s
    for _ in range(offences - 1):
        duration *= factor
        if duration >= cap_s:
            return cap_s
    return duration


_GLOBAL_KEY = "shield:global"


class _AllowList:
    """Networks never banned, as exact addresses and a short list of networks."""

    __slots__ = ("_hosts", "_networks", "_seen")

    def __init__(self, networks: Iterable[IPNetwork]) -> None:
        hosts: set[str] = set()
        wider: list[IPNetwork] = []
        for network in networks:
            if network.prefixlen == network.max_prefixlen:
                hosts.add(str(network.network_address))
            else:
                wider.append(network)
        self._hosts = frozenset(hosts)
        self._networks = tuple(wider)
        # Verdicts for addresses already seen: parsing an address costs more than the
        # rest of the check. Bounded, cleared when full.
        self._seen: dict[str, bool] = {}

    def __contains__(self, address: str) -> bool:
        if address in self._hosts:
            return True
        if not self._networks:
            return False
        seen = self._seen.get(address)
        if seen is not None:
            return seen
        try:
            parsed = ipaddress.ip_address(address)
        except ValueError:
            verdict = False
        else:
            if isinstance(parsed, ipaddress.IPv6Address) and parsed.ipv4_mapped is not None:
                parsed = parsed.ipv4_mapped
            verdict = any(parsed in network for network in self._networks)
        if len(self._seen) >= 4096:
            self._seen.clear()
        self._seen[address] = verdict
        return verdict


class _SourceKeys:
    """What a source is counted and banned as: an IPv4 address as it is, an IPv6 address
    as its /``prefix`` network (IPv4-mapped IPv6 as the IPv4 address)."""

    __slots__ = ("_prefix", "_seen")

    def __init__(self, prefix: int) -> None:
        self._prefix = prefix
        self._seen: dict[str, str] = {}

    def key(self, source: str) -> str:
        if ":" not in source:
            return source
        key = self._seen.get(source)
        if key is not None:
            return key
        try:
            address = ipaddress.ip_address(source)
        except ValueError:
            key = source
        else:
            if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
                key = str(address.ipv4_mapped)
            elif self._prefix == 128:
                key = str(address)
            else:
                key = str(ipaddress.ip_network(f"{address}/{self._prefix}", strict=False))
        if len(self._seen) >= 8192:
            self._seen.clear()
        self._seen[source] = key
        return key


class Shield:
    """The shield's decisions over its ports; one per switch process.

    ``on_ban`` is called with every ban the shield makes and ``on_lock`` with every
    account lock (the switch queues them for the persistent stores, off the call path:
    :class:`tollguard.state.sync.LiveStateSync`).
    """

    __slots__ = (
        "_allow",
        "_bans",
        "_counters",
        "_global",
        "_locks",
        "_on_ban",
        "_on_lock",
        "_source",
        "_sources",
        "policy",
    )

    def __init__(
        self,
        policy: ShieldPolicy,
        bans: Bans,
        counters: Counters,
        locks: Suspensions,
        *,
        extra_allow: Iterable[IPNetwork] = (),
        on_ban: Callable[[Ban], None] | None = None,
        on_lock: Callable[[Suspension], None] | None = None,
    ) -> None:
        self.policy = policy
        self._bans = bans
        self._counters = counters
        self._locks = locks
        self._on_ban = on_ban
        self._on_lock = on_lock
        self._source = policy.source_bucket
        self._sources = _SourceKeys(policy.ipv6_prefix)
        self._global = policy.global_bucket
        self._allow = _AllowList((*policy.allow, *extra_allow))

    def set_extra_allow(self, networks: Iterable[IPNetwork]) -> None:
        """Allow ``shield.allow`` plus ``networks`` (the plan's IP lists, at each swap)."""
        self._allow = _AllowList((*self.policy.allow, *networks))

    def allowed(self, address: str) -> bool:
        return address in self._allow

    # --- before parsing -------------------------------------------------------------------

    def datagram(self, source: str, size: int, now: float) -> bool:
        """Whether a datagram (or framed stream message) of ``size`` bytes from
        ``source`` may be parsed; ``False``: drop it without an answer."""
        if source in self._allow:
            return size <= self.policy.max_message_bytes
        ban = self._bans.match(source, now)
        if ban is not None and ban.mode is BanMode.DROP:
            return False
        if size > self.policy.max_message_bytes:
            return False
        if not self._counters.take("shield:src:" + self._sources.key(source), self._source, now):
            self._ban(source, BanReason.FLOOD, self.policy.flood_ban_s, BanMode.DROP, now)
            log_event("sip flood", source, ("rate", f"{self.policy.source_rate:g}/s"))
            return False
        return self._counters.take(_GLOBAL_KEY, self._global, now)

    # --- after parsing ----------------------------------------------------------------------

    def request(self, source: str, user_agent: str, headers: int, now: float) -> bool:
        """Whether a parsed request may go on; ``False``: drop it without an answer."""
        if headers > self.policy.max_headers:
            return False
        if user_agent and self.policy.is_scanner(user_agent) and source not in self._allow:
            log_event("sip scanner", source, ("agent", Text(user_agent)))
            self._ban(source, BanReason.SCANNER, self.policy.scanner_ban_s, BanMode.DROP, now)
            return False
        return True

    def open_transaction(self, source: str) -> bool:
        """Count a new server transaction of ``source``; ``False``: over the limit
        (drop the request; do not call :meth:`close_transaction` for it)."""
        if source in self._allow:
            return True
        return self._counters.acquire(
            "shield:tx:" + self._sources.key(source), self.policy.max_transactions
        )

    def close_transaction(self, source: str) -> None:
        if source not in self._allow:
            self._counters.release("shield:tx:" + self._sources.key(source))

    # --- authentication --------------------------------------------------------------------

    def may_authenticate(self, source: str, username: str, now: float) -> bool:
        """``False``: answer as to a wrong password, whatever the credentials (the
        source is banned, or the user name is locked)."""
        if source not in self._allow:
            ban = self._bans.match(source, now)
            if ban is not None:
                return False
        return not (username and self._locks.get(account_lock_subject(username), now))

    def auth_failed(
        self, source: str, username: str, now: float, *, known_user: bool = True
    ) -> None:
        """Count one failed authentication of ``username`` from ``source``.

        ``known_user``: whether the plan has an account of that name. Only real accounts
        are locked: locking names an attacker makes up would only fill the store.
        """
        policy = self.policy
        if source not in self._allow:
            failures = self._counters.add(
                "shield:authfail:" + self._sources.key(source), 1, Window(policy.auth_window_s), now
            )
            if failures >= policy.auth_failures and self._bans.match(source, now) is None:
                self._ban(source, BanReason.AUTH_FAILURES, policy.ban_s, BanMode.REFUSE, now)
        if not username or not known_user or len(username) > MAX_USERNAME:
            return
        key = "shield:authsrc:" + username
        self._counters.remember(key, self._sources.key(source), policy.lock_window_s, now)
        subject = account_lock_subject(username)
        if (
            self._counters.members(key, now) >= policy.lock_sources
            and self._locks.get(subject, now) is None
        ):
            sources = self._counters.members(key, now)
            lock = Suspension(subject, f"failed authentication from {sources} sources", now, None)
            self._locks.suspend(lock)
            if self._on_lock is not None:
                self._on_lock(lock)
            log_event("sip account lock", source, ("user", Text(username)), ("sources", sources))

    # --- operators ------------------------------------------------------------------------

    def ban(
        self,
        network: IPNetwork,
        reason: BanReason,
        duration_s: float | None,
        now: float,
        *,
        mode: BanMode = BanMode.DROP,
        note: str = "",
    ) -> Ban:
        """Ban ``network`` for ``duration_s`` (``None``: until released)."""
        expires = None if duration_s is None else now + duration_s
        ban = self._bans.add(Ban(network, reason, now, expires, mode, 1, note))
        _log_ban(_host_or_network(network), ban)
        return ban

    def release(self, network: IPNetwork, by: str = "") -> Ban | None:
        ban = self._bans.remove(network)
        if ban is not None:
            log_event("sip unban", _host_or_network(network), ("by", Text(by)), level=logging.INFO)
        return ban

    def unlock(self, username: str, by: str = "") -> bool:
        lifted = self._locks.release(account_lock_subject(username)) is not None
        if lifted:
            log_event(
                "sip account unlock",
                "-",
                ("user", Text(username)),
                ("by", Text(by)),
                level=logging.INFO,
            )
        return lifted

    def prune(self, now: float) -> int:
        """Forget expired state; call periodically, off the call path."""
        return self._counters.prune(now) + self._bans.prune(now, self.policy.offence_memory_s)

    # --- internals --------------------------------------------------------------------------

    def _ban(
        self, source: str, reason: BanReason, base_s: float, mode: BanMode, now: float
    ) -> None:
        if source in self._allow:
            return
        try:
            network = parse_network(self._sources.key(source))
        except ValueError:
            return
        previous = self._bans.get(network)
        offences = 1
        if previous is not None and (
            previous.expires is None or now - previous.expires < self.policy.offence_memory_s
        ):
            offences = previous.offences + 1
        policy = self.policy
        duration = ban_duration(base_s, offences, policy.ban_factor, policy.max_ban_s)
        ban = self._bans.add(Ban(network, reason, now, now + duration, mode, offences))
        _log_ban(source, ban)
        if self._on_ban is not None:
            self._on_ban(ban)


def _host_or_network(network: IPNetwork) -> str:
    if network.prefixlen == network.max_prefixlen:
        return str(network.network_address)
    return str(network)


def _log_ban(address: str, ban: Ban) -> None:
    log_event(
        "sip ban",
        address,
        ("until", utc_stamp(ban.expires)),
        ("reason", ban.reason.value),
        ("offences", ban.offences),
        ("mode", ban.mode.value),
    )
