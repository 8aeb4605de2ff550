"""Live state in process memory: the embedded default for one switch process.

Each class implements a port of :mod:`tollguard.domain` with the semantics its contract
tests (``tests/state/contract.py``) state, so that a shared implementation (Redis) can
replace it unchanged. Nothing here is shared between processes or survives a restart;
bans and suspensions persist through the web layer's stores (:mod:`tollguard.state.sync`).

The switch calls these from its event loop thread; the periodic synchronisation
(``LiveStateSync.sync``) and ``MemoryCounters.prune`` may run in a worker thread: they
replace whole tables (an atomic assignment under the GIL) or remove single keys that no
longer count, so no lock is needed. ``MemoryReservations`` is different: the balance
poller adjusts balances from a worker thread while calls reserve and commit on the event
loop, and each operation reads and writes several values, so each one holds the
object's lock from start to end.
"""

from __future__ import annotations

import heapq
import ipaddress
import itertools
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal

from tollguard.domain.credit import Lapsed, check_amount
from tollguard.domain.errors import ReservationExists, ReservationUnknown
from tollguard.domain.fraud import Suspension
from tollguard.domain.limits import TokenBucket, Window, refill
from tollguard.domain.plan import IPNetwork
from tollguard.domain.registration import Binding
from tollguard.domain.shield import Ban, BanMode

__all__ = [
    "SETTLED_MEMORY_S",
    "MemoryBans",
    "MemoryBindings",
    "MemoryCounters",
    "MemoryReservations",
    "MemorySuspensions",
]


# --- fraud engine and SIP shield: counters, bans, suspensions ---------------------------------


class MemoryCounters:
    """:class:`tollguard.domain.limits.Counters` in dicts."""

    __slots__ = ("_buckets", "_channels", "_sets", "_windows")

    def __init__(self) -> None:
        self._channels: dict[str, int] = {}
        # key -> (spec, tokens, time of the last refill)
        self._buckets: dict[str, tuple[TokenBucket, float, float]] = {}
        self._windows: dict[str, _Slots] = {}
        self._sets: dict[str, _ExpiringSet] = {}

    def acquire(self, key: str, limit: int) -> bool:
        taken = self._channels.get(key, 0)
        if taken >= limit:
            return False
        self._channels[key] = taken + 1
        return True

    def release(self, key: str) -> None:
        taken = self._channels.get(key, 0)
        if taken <= 1:
            self._channels.pop(key, None)
        else:
            self._channels[key] = taken - 1

    def in_use(self, key: str) -> int:
        return self._channels.get(key, 0)

    def take(self, key: str, spec: TokenBucket, now: float, cost: float = 1.0) -> bool:
        held = self._buckets.get(key)
        if held is not None and (held[0] is spec or held[0] == spec):
            _, tokens, at = held
        else:
            tokens, at = spec.burst, now
        ok, tokens, at = refill(tokens, at, spec.rate, spec.burst, now, cost=cost)
        self._buckets[key] = (spec, tokens, at)
        return ok

    def add(self, key: str, amount: int, window: Window, now: float) -> int:
        held = self._windows.get(key)
        if held is None or (held.window is not window and held.window != window):
            held = self._windows[key] = _Slots(window)
        return held.add(amount, window.slot(now))

    def total(self, key: str, window: Window, now: float) -> int:
        held = self._windows.get(key)
        if held is None or (held.window is not window and held.window != window):
            return 0
        return held.add(0, window.slot(now))

    def remember(self, key: str, member: str, ttl_s: float, now: float) -> bool:
        held = self._sets.get(key)
        if held is None:
            held = self._sets[key] = _ExpiringSet()
        return held.add(member, now, now + ttl_s)

    def members(self, key: str, now: float) -> int:
        held = self._sets.get(key)
        return 0 if held is None else held.count(now)

    def prune(self, now: float) -> int:
        """Drop full buckets, windows whose slots have all left, sets whose members have
        all expired.

        Safe from a worker thread while the event loop counts: it only reads, and removes
        a key when what it read no longer counts; an update racing with the removal loses
        at most that one update (a bucket starts full again, a window one count).
        """
        dropped = 0
        for key, (spec, tokens, at) in list(self._buckets.items()):
            if tokens + max(now - at, 0.0) * spec.rate >= spec.burst:
                self._buckets.pop(key, None)
                dropped += 1
        for key, held in list(self._windows.items()):
            if held.latest < held.window.oldest_slot(now):
                self._windows.pop(key, None)
                dropped += 1
        for key, members in list(self._sets.items()):
            if members.all_expired(now):
                self._sets.pop(key, None)
                dropped += 1
        return dropped


class _Slots:
    """One window's slots in time order, with their running sum."""

    __slots__ = ("latest", "slots", "sum", "window")

    def __init__(self, window: Window) -> None:
        self.window = window
        self.slots: dict[int, int] = {}
        self.sum = 0
        self.latest = -(2**62)

    def add(self, amount: int, current: int) -> int:
        """Add ``amount`` to slot ``current`` (0 to read); return the window's sum."""
        slots = self.slots
        if current > self.latest:
            # Time moved on: slots that left the window go, oldest first.
            oldest = current - self.window.slots + 1
            while slots:
                first = next(iter(slots))
                if first >= oldest:
                    break
                self.sum -= slots.pop(first)
            self.latest = current
            if amount:
                slots[current] = amount
                self.sum += amount
            return self.sum
        # A clock that stepped back adds to the latest slot (never one that has gone).
        if amount:
            slots[self.latest] = slots.get(self.latest, 0) + amount
            self.sum += amount
        return self.sum


class _ExpiringSet:
    """Members with an expiry each, kept in expiry order while every member of the key
    gets the same time to live (the usual case): counting then drops expired members
    from the front instead of scanning them all."""

    __slots__ = ("_members", "_ordered")

    def __init__(self) -> None:
        self._members: dict[str, float] = {}
        self._ordered = True

    def add(self, member: str, now: float, expiry: float) -> bool:
        """Hold ``member`` until ``expiry``; ``True`` when it was not held at ``now``."""
        members = self._members
        old = members.pop(member, None)
        if self._ordered and members:
            self._ordered = expiry >= next(reversed(members.values()))
        members[member] = expiry
        return old is None or old <= now

    def all_expired(self, now: float) -> bool:
        """Whether no member is held at ``now`` (reads only)."""
        members = self._members
        if not members:
            return True
        if self._ordered:
            return next(reversed(members.values())) <= now
        return max(members.values()) <= now

    def count(self, now: float) -> int:
        members = self._members
        if self._ordered:
            while members:
                member, expiry = next(iter(members.items()))
                if expiry > now:
                    break
                del members[member]
        else:
            for member in [m for m, expiry in members.items() if expiry <= now]:
                del members[member]
            values = list(members.values())
            self._ordered = all(a <= b for a, b in itertools.pairwise(values))
        return len(members)


class _Address:
    """Source addresses as (bits, integer), remembered: parsing costs more than lookup."""

    __slots__ = ("_seen",)

    def __init__(self) -> None:
        self._seen: dict[str, tuple[int, int] | None] = {}

    def parse(self, text: str) -> tuple[int, int] | None:
        try:
            return self._seen[text]
        except KeyError:
            pass
        try:
            address = ipaddress.ip_address(text)
        except ValueError:
            parsed = None
        else:
            if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
                address = address.ipv4_mapped
            parsed = (address.max_prefixlen, int(address))
        if len(self._seen) >= 8192:
            self._seen.clear()
        self._seen[text] = parsed
        return parsed


class MemoryBans:
    """:class:`tollguard.domain.shield.Bans` in dicts: single addresses by their text
    (the hot path is one dict lookup), networks by family and prefix length."""

    __slots__ = ("_addresses", "_bans", "_hosts", "_networks")

    def __init__(self, bans: Iterable[Ban] = ()) -> None:
        self._bans: dict[IPNetwork, Ban] = {}
        self._hosts: dict[str, Ban] = {}
        # (bits, prefixlen) -> {network integer >> host bits: ban}, longest first
        self._networks: dict[tuple[int, int], dict[int, Ban]] = {}
        self._addresses = _Address()
        self.replace(bans)

    def add(self, ban: Ban) -> Ban:
        old = self._bans.get(ban.network)
        if old is not None and old.active(ban.created):
            expires = (
                None
                if old.expires is None or ban.expires is None
                else max(old.expires, ban.expires)
            )
            mode = BanMode.DROP if BanMode.DROP in (old.mode, ban.mode) else ban.mode
            keep_old = expires == old.expires
            base = old if keep_old else ban
            ban = Ban(
                ban.network,
                base.reason,
                base.created,
                expires,
                mode,
                max(old.offences, ban.offences),
                base.note,
            )
        self._bans[ban.network] = ban
        self._put(ban.network, ban)
        return ban

    def remove(self, network: IPNetwork) -> Ban | None:
        ban = self._bans.pop(network, None)
        if ban is not None:
            self._put(network, None)
        return ban

    def match(self, address: str, now: float) -> Ban | None:
        ban = self._hosts.get(address)
        if ban is None and self._networks:
            ban = self._match_network(address)
        if ban is None or not ban.active(now):
            return None
        return ban

    def get(self, network: IPNetwork) -> Ban | None:
        return self._bans.get(network)

    def all(self) -> list[Ban]:
        return list(self._bans.values())

    def replace(self, bans: Iterable[Ban]) -> None:
        self._index({ban.network: ban for ban in bans})

    def prune(self, now: float, keep_s: float) -> int:
        kept = {
            network: ban
            for network, ban in self._bans.items()
            if ban.expires is None or now - ban.expires < keep_s
        }
        dropped = len(self._bans) - len(kept)
        if dropped:
            self._index(kept)
        return dropped

    def _match_network(self, address: str) -> Ban | None:
        parsed = self._addresses.parse(address)
        if parsed is None:
            return None
        bits, value = parsed
        for (family, prefixlen), networks in self._networks.items():
            if family != bits:
                continue
            ban = networks.get(value >> (bits - prefixlen))
            if ban is not None:
                return ban
        return None

    def _put(self, network: IPNetwork, ban: Ban | None) -> None:
        """Change one entry of the lookup tables in place (``None`` removes it)."""
        if network.prefixlen == network.max_prefixlen:
            names = [str(network.network_address)]
            if network.version == 4:
                names.append("::ffff:" + names[0])
            for name in names:
                if ban is None:
                    self._hosts.pop(name, None)
                else:
                    self._hosts[name] = ban
            return
        key = (network.max_prefixlen, network.prefixlen)
        value = int(network.network_address) >> (network.max_prefixlen - network.prefixlen)
        table = self._networks.get(key)
        if ban is None:
            if table is not None:
                table.pop(value, None)
            return
        if table is None:
            networks = dict(self._networks)
            networks[key] = {value: ban}
            self._networks = dict(sorted(networks.items(), key=lambda item: -item[0][1]))
        else:
            table[value] = ban

    def _index(self, bans: dict[IPNetwork, Ban]) -> None:
        hosts: dict[str, Ban] = {}
        networks: dict[tuple[int, int], dict[int, Ban]] = {}
        for network, ban in bans.items():
            if network.prefixlen == network.max_prefixlen:
                hosts[str(network.network_address)] = ban
                if network.version == 4:
                    # The same address as a dual-stack socket reports it.
                    hosts["::ffff:" + str(network.network_address)] = ban
            else:
                key = (network.max_prefixlen, network.prefixlen)
                shift = network.max_prefixlen - network.prefixlen
                networks.setdefault(key, {})[int(network.network_address) >> shift] = ban
        # Readers see either the old or the new tables, never a mix of one table each:
        # the hosts table is swapped last and holds every single-address ban.
        self._bans = bans
        self._networks = dict(sorted(networks.items(), key=lambda item: -item[0][1]))
        self._hosts = hosts


class MemorySuspensions:
    """:class:`tollguard.domain.fraud.Suspensions` in a dict."""

    __slots__ = ("_held",)

    def __init__(self, suspensions: Iterable[Suspension] = ()) -> None:
        self._held: dict[str, Suspension] = {s.subject: s for s in suspensions}

    def suspend(self, suspension: Suspension) -> None:
        held = dict(self._held)
        held[suspension.subject] = suspension
        self._held = held

    def release(self, subject: str) -> Suspension | None:
        if subject not in self._held:
            return None
        held = dict(self._held)
        suspension = held.pop(subject)
        self._held = held
        return suspension

    def get(self, subject: str, now: float) -> Suspension | None:
        suspension = self._held.get(subject)
        if suspension is None or not suspension.active(now):
            return None
        return suspension

    def all(self) -> list[Suspension]:
        return list(self._held.values())

    def replace(self, suspensions: Iterable[Suspension]) -> None:
        self._held = {s.subject: s for s in suspensions}


# --- credit: balances and reservations (domain.credit.Reservations) -------------------------

# How long a settled reservation key is remembered, so that a repeated commit or release
# changes nothing (the contract asks for at least ten minutes).
SETTLED_MEMORY_S = 600.0

_ZERO = Decimal(0)

type _Key = tuple[int, str]


@dataclass(slots=True)
class _Funds:
    balance: Decimal = _ZERO
    reserved: Decimal = _ZERO
    version: int = 0  # the last ledger version applied


@dataclass(slots=True)
class _Held:
    amount: Decimal
    expires_at: float


class MemoryReservations:
    """:class:`tollguard.domain.credit.Reservations` in a dictionary behind one lock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._funds: dict[int, _Funds] = {}
        self._held: dict[_Key, _Held] = {}
        # Leases and settled keys in time order. A lease entry goes stale when its
        # reservation ends (commit, release) or moves its lease (extend); a stale entry is
        # skipped when it comes up, and counted: once they outnumber the live ones the
        # heap is rebuilt from the reservations held (and emptied with the last of them),
        # so that ended calls do not stay in it until their leases would have ended.
        self._leases: list[tuple[float, int, str]] = []
        self._stale = 0
        self._settled: dict[_Key, float] = {}
        self._forget: list[tuple[float, int, str]] = []

    def _customer(self, customer_id: int) -> _Funds:
        funds = self._funds.get(customer_id)
        if funds is None:
            funds = self._funds[customer_id] = _Funds()
        return funds

    def open(self, customer_id: int, balance: Decimal, version: int) -> bool:
        check_amount(balance, signed=True)
        with self._lock:
            if customer_id in self._funds:
                return False
            self._funds[customer_id] = _Funds(balance=balance, version=version)
            return True

    def adjust(self, customer_id: int, amount: Decimal, version: int) -> bool:
        check_amount(amount, signed=True)
        with self._lock:
            funds = self._customer(customer_id)
            if version <= funds.version:
                return False
            funds.balance += amount
            funds.version = version
            return True

    def balance(self, customer_id: int) -> Decimal:
        with self._lock:
            funds = self._funds.get(customer_id)
            return funds.balance if funds is not None else _ZERO

    def available(self, customer_id: int) -> Decimal:
        with self._lock:
            funds = self._funds.get(customer_id)
            return funds.balance - funds.reserved if funds is not None else _ZERO

    def reserve(
        self, customer_id: int, key: str, amount: Decimal, floor: Decimal, expires_at: float
    ) -> bool:
        check_amount(amount)
        check_amount(floor, signed=True)
        name = (customer_id, key)
        with self._lock:
            if name in self._held or name in self._settled:
                raise ReservationExists(key)
            funds = self._customer(customer_id)
            if amount and funds.balance - funds.reserved - amount < floor:
                return False
            funds.reserved += amount
            self._held[name] = _Held(amount, expires_at)
            heapq.heappush(self._leases, (expires_at, customer_id, key))
            return True

    def extend(
        self, customer_id: int, key: str, amount: Decimal, floor: Decimal, expires_at: float
    ) -> bool:
        check_amount(amount)
        check_amount(floor, signed=True)
        with self._lock:
            held = self._held.get((customer_id, key))
            if held is None:
                raise ReservationUnknown(key)
            funds = self._customer(customer_id)
            if amount and funds.balance - funds.reserved - amount < floor:
                return False
            funds.reserved += amount
            held.amount += amount
            if expires_at != held.expires_at:
                held.expires_at = expires_at
                heapq.heappush(self._leases, (expires_at, customer_id, key))
                self._stale += 1  # the entry of the lease it had
                self._compact()
            return True

    def commit(self, customer_id: int, key: str, amount: Decimal, now: float) -> bool:
        check_amount(amount)
        with self._lock:
            if (customer_id, key) in self._settled:
                return False
            funds = self._customer(customer_id)
            self._drop(customer_id, key, funds, now)
            funds.balance -= amount
            return True

    def release(self, customer_id: int, key: str, now: float) -> Decimal:
        with self._lock:
            if (customer_id, key) in self._settled:
                return _ZERO
            return self._drop(customer_id, key, self._customer(customer_id), now)

    def _drop(self, customer_id: int, key: str, funds: _Funds, now: float) -> Decimal:
        """Remove the reservation (if any) and remember the key as settled."""
        held = self._held.pop((customer_id, key), None)
        amount = _ZERO
        if held is not None:
            amount = held.amount
            self._stale += 1  # its lease entry
            self._compact()
        funds.reserved -= amount
        forget_at = now + SETTLED_MEMORY_S
        self._settled[customer_id, key] = forget_at
        heapq.heappush(self._forget, (forget_at, customer_id, key))
        return amount

    def _compact(self) -> None:
        """Drop the stale lease entries once they are more than the live ones (at most
        twice as many entries as reservations: each rebuild pays for the pushes since)."""
        if not self._held:
            self._leases.clear()
            self._stale = 0
        elif self._stale > len(self._held):
            self._leases = [(h.expires_at, c, k) for (c, k), h in self._held.items()]
            heapq.heapify(self._leases)
            self._stale = 0

    def expire(self, now: float) -> tuple[Lapsed, ...]:
        lapsed: list[Lapsed] = []
        with self._lock:
            leases = self._leases
            while leases and leases[0][0] <= now:
                at, customer_id, key = heapq.heappop(leases)
                held = self._held.get((customer_id, key))
                if held is None or held.expires_at != at:
                    self._stale -= 1
                    continue
                del self._held[customer_id, key]
                self._funds[customer_id].reserved -= held.amount
                lapsed.append(Lapsed(customer_id, key, held.amount))
            self._compact()
            forget = self._forget
            while forget and forget[0][0] <= now:
                at, customer_id, key = heapq.heappop(forget)
                if self._settled.get((customer_id, key)) == at:
                    del self._settled[customer_id, key]
        return tuple(lapsed)


# --- registrar: bindings -------------------------------------------------------------------


# Stale expiry entries MemoryBindings tolerates beyond twice its accounts.
_DUE_SLACK = 64


class MemoryBindings:
    """:class:`tollguard.domain.registration.Bindings` in a dict, with a heap of expiries.

    The switch saves the UDP ones to a file and takes them back at its next start
    (:mod:`tollguard.state.bindings_file`; docs/registrar.md, "Restart").
    """

    __slots__ = ("_by_account", "_due")

    def __init__(self) -> None:
        self._by_account: dict[int, tuple[Binding, ...]] = {}
        # (expiry, account): the soonest expiry an account had when it was written; a
        # stale entry (the account changed since) is checked and skipped.
        self._due: list[tuple[float, int]] = []

    def of(self, account_id: int, now: float) -> tuple[Binding, ...]:
        return tuple(b for b in self._by_account.get(account_id, ()) if b.expires_at > now)

    def put(self, account_id: int, bindings: tuple[Binding, ...]) -> None:
        if not bindings:
            self._by_account.pop(account_id, None)
            return
        self._by_account[account_id] = bindings
        due = self._due
        if len(due) > 2 * len(self._by_account) + _DUE_SLACK:
            # Every refresh leaves the account's previous entry behind until its time
            # comes (up to the longest expiry later): a phone refreshing every few
            # seconds would pile them up. Rebuilt from the live bindings instead.
            due[:] = [
                (min(b.expires_at for b in kept), key) for key, kept in self._by_account.items()
            ]
            heapq.heapify(due)
        else:
            heapq.heappush(due, (min(b.expires_at for b in bindings), account_id))

    def expire(self, now: float) -> list[Binding]:
        gone: list[Binding] = []
        due = self._due
        while due and due[0][0] <= now:
            _, account_id = heapq.heappop(due)
            bindings = self._by_account.get(account_id)
            if bindings is None:
                continue
            kept = tuple(b for b in bindings if b.expires_at > now)
            if len(kept) == len(bindings):
                continue  # a stale entry: the account was rewritten since
            gone.extend(b for b in bindings if b.expires_at <= now)
            self.put(account_id, kept)
        return gone

    def every(self, now: float) -> list[Binding]:
        return [b for bindings in self._by_account.values() for b in bindings if b.expires_at > now]

    def __len__(self) -> int:
        return sum(len(bindings) for bindings in self._by_account.values())
