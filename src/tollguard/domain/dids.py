"""The DID table: which customer owns a called number, and where its calls go.

A DID is a single number or an inclusive range of numbers of one length. The index
answers "who owns this number" with a dictionary for single numbers and a binary search
over the ranges of each length, so a table of a million numbers held as a few ranges
costs nothing to look up. A DID may forward to another DID; :meth:`DidIndex.resolve`
follows the chain, which :func:`index_dids` has checked ends within
:data:`MAX_FORWARDS` hops and has no loop.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable, Iterator, Mapping
from itertools import pairwise

from tollguard.domain.errors import PlanError
from tollguard.domain.plan import Account, Did, DidTarget

__all__ = ["MAX_FORWARDS", "DidIndex", "index_dids"]

MAX_FORWARDS = 4


class DidIndex:
    """An immutable lookup of DIDs by number. Build it with :func:`index_dids`."""

    __slots__ = ("_by_id", "_ranges", "_single")

    def __init__(
        self,
        single: dict[str, Did],
        ranges: dict[int, tuple[tuple[str, ...], tuple[Did, ...]]],
    ) -> None:
        self._single = single
        # Per number length: the sorted first numbers and the DIDs they start.
        self._ranges = ranges
        self._by_id = {did.id: did for did in single.values()}
        for _, dids in ranges.values():
            self._by_id.update((did.id, did) for did in dids)

    def __len__(self) -> int:
        return len(self._by_id)

    def __iter__(self) -> Iterator[Did]:
        return iter(self._by_id.values())

    def by_id(self, did_id: int) -> Did | None:
        return self._by_id.get(did_id)

    def lookup(self, number: str) -> Did | None:
        """The DID holding ``number`` (enabled or not), or None."""
        did = self._single.get(number)
        if did is not None:
            return did
        return self.range_holding(number)

    def range_holding(self, number: str) -> Did | None:
        """The DID range holding ``number``, or None."""
        table = self._ranges.get(len(number))
        if table is None:
            return None
        firsts, dids = table
        at = bisect_right(firsts, number) - 1
        if at >= 0 and number <= dids[at].end:
            return dids[at]
        return None

    def resolve(self, number: str) -> tuple[Did, ...]:
        """The DIDs a call to ``number`` passes through, the one that delivers it last.

        Empty when no DID holds ``number``. A forward is followed only while the DIDs
        are enabled; a disabled DID ends the chain (the caller refuses the call).
        """
        chain: list[Did] = []
        did = self.lookup(number)
        while did is not None:
            chain.append(did)
            if not did.enabled or did.target is not DidTarget.DID:
                break
            did = self.lookup(did.forward_to)
        return tuple(chain)


def index_dids(
    dids: Iterable[Did],
    accounts: Mapping[int, Account],
    customers: Iterable[int],
) -> DidIndex:
    """Check ``dids`` and index them. Raises :class:`PlanError` naming the bad DID.

    Checked: digits only; a range's ends of one length and in order; no number held by
    two DIDs; each target's field set and the others empty; an account target belongs
    to the DID's owner; a forward reaches a DID that is not a forward within
    :data:`MAX_FORWARDS` hops, with no loop.
    """
    known_customers = set(customers)
    single: dict[str, Did] = {}
    by_length: dict[int, list[Did]] = {}
    ids: set[int] = set()
    for did in dids:
        name = f"DID {did.first}" + (f"-{did.last}" if did.last and did.last != did.first else "")
        if did.id in ids:
            raise PlanError(name, "defined twice")
        ids.add(did.id)
        _check_did(did, name, accounts, known_customers)
        if did.end == did.first:
            if did.first in single:
                raise PlanError(name, "number held by another DID", field="first")
            single[did.first] = did
        else:
            by_length.setdefault(len(did.first), []).append(did)
    ranges: dict[int, tuple[tuple[str, ...], tuple[Did, ...]]] = {}
    for length, group in by_length.items():
        group.sort(key=lambda d: d.first)
        for before, after in pairwise(group):
            if after.first <= before.end:
                raise PlanError(
                    f"DID {after.first}-{after.end}", "overlaps another DID range", field="first"
                )
        ranges[length] = (tuple(d.first for d in group), tuple(group))
    index = DidIndex(single, ranges)
    for did in single.values():
        if (holder := index.range_holding(did.first)) is not None:
            raise PlanError(
                f"DID {did.first}",
                f"number held by range {holder.first}-{holder.end}",
                field="first",
            )
    for did in index:
        _check_forward(index, did)
    return index


def _check_did(did: Did, name: str, accounts: Mapping[int, Account], customers: set[int]) -> None:
    if did.customer_id not in customers:
        raise PlanError(name, f"unknown customer {did.customer_id}", field="customer_id")
    end = did.end
    if not did.first.isdigit() or not end.isdigit() or not did.first.isascii():
        raise PlanError(name, "a DID is digits only (E.164 without '+')", field="first")
    if len(end) != len(did.first) or end < did.first:
        raise PlanError(
            name,
            "a range's last number must be as long as its first and not below it",
            field="last",
        )
    if did.price_per_minute < 0 or did.monthly_price < 0:
        raise PlanError(name, "prices must be >= 0", field="price_per_minute")
    if did.target is DidTarget.ACCOUNT:
        account = accounts.get(did.account_id) if did.account_id is not None else None
        if account is None:
            raise PlanError(name, f"unknown account {did.account_id}", field="account_id")
        if account.customer_id != did.customer_id:
            raise PlanError(
                name,
                f"account {account.username!r} belongs to another customer",
                field="account_id",
            )
        if did.trunk or did.forward_to:
            raise PlanError(name, "an account target has no trunk and no forward", field="target")
    elif did.target is DidTarget.TRUNK:
        if not 1 <= len(did.trunk) <= 2:
            raise PlanError(
                name, "a trunk target has one address and at most one failover", field="trunk"
            )
        if did.account_id is not None or did.forward_to:
            raise PlanError(name, "a trunk target has no account and no forward", field="target")
        for address in did.trunk:
            if not address.host or not 0 < address.port < 65536:
                raise PlanError(
                    name, f"bad trunk address {address.host}:{address.port}", field="trunk"
                )
    else:
        if not did.forward_to.isdigit():
            raise PlanError(name, "a forward names a DID number", field="forward_to")
        if did.account_id is not None or did.trunk:
            raise PlanError(name, "a forward has no account and no trunk", field="target")


def _check_forward(index: DidIndex, did: Did) -> None:
    seen = {did.id}
    current = did
    for _ in range(MAX_FORWARDS):
        if current.target is not DidTarget.DID:
            return
        nxt = index.lookup(current.forward_to)
        if nxt is None:
            raise PlanError(
                f"DID {did.first}", f"forwards to {current.forward_to}, no DID", field="forward_to"
            )
        if nxt.id in seen:
            raise PlanError(f"DID {did.first}", "forwards in a loop", field="forward_to")
        seen.add(nxt.id)
        current = nxt
    if current.target is DidTarget.DID:
        raise PlanError(
            f"DID {did.first}", f"more than {MAX_FORWARDS} forwards", field="forward_to"
        )
