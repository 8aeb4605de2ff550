"""Longest-prefix match of E.164 numbers over millions of digit prefixes.

Rate cards are keyed by number prefixes ("44", "447", "4477009"); a call is priced by
the longest one its number starts with. The index is built once per configuration
snapshot and read on every call, so it is laid out for lookups that touch little
memory (at millions of prefixes, each random memory read costs more than the
arithmetic around it):

* Every number is cut at its first ``head`` digits, where ``head`` grows with the
  number of prefixes (one to ten possible heads per prefix, at most
  :data:`MAX_HEAD_DIGITS` digits).
* Prefixes no longer than ``head`` are resolved ahead of time into a flat list
  indexed by the head, holding the value of the longest such prefix of that head.
* Longer prefixes live in one ``dict`` keyed by ``int(prefix)``. No E.164 country
  code starts with 0, so neither does a prefix, and that integer is unique across
  lengths.
* A bitmap over the first ``head + 1`` digits tells whether any longer prefix starts
  there; most numbers begin none, and skip the dict. For the others, a bitmask per
  head lists the lengths of its longer prefixes, so the dict is probed only at
  lengths that can match, longest first.

Values are stored by reference: the index makes no copy of them.
"""

from __future__ import annotations

import math
import re
from array import array
from collections.abc import Iterable, Iterator, Sequence

from tollguard.domain.errors import PlanError

__all__ = ["MAX_HEAD_DIGITS", "MAX_PREFIX_DIGITS", "PrefixIndex"]

# The head tables take about 11 bytes per possible head (a list slot, a length mask
# and the stem bitmap): 110 MB at 7 digits, which pays off only for millions of
# prefixes.
MAX_HEAD_DIGITS = 7
# ITU-T E.164: a number has at most 15 digits, so no prefix is longer.
MAX_PREFIX_DIGITS = 15


class PrefixIndex[V]:
    """An immutable map from digit prefixes to values, queried by longest match.

    The empty prefix is allowed and matches every number (a catch-all rate). Values
    must not be None (None means "no match").
    """

    __slots__ = (
        "_default",
        "_head",
        "_heads",
        "_lengths",
        "_long",
        "_masks",
        "_short",
        "_size",
        "_stems",
    )

    def __init__(self, items: Iterable[tuple[str, V]]) -> None:
        pairs = items if isinstance(items, Sequence) else list(items)
        # Between one and ten possible heads per prefix: fewer leave many prefixes to
        # the dict, more cost table memory and build time.
        head = max(1, min(MAX_HEAD_DIGITS, math.ceil(math.log10(max(len(pairs), 2) / 2))))
        short: dict[str, V] = {}
        default: V | None = None
        for prefix, value in pairs:
            length = len(prefix)
            if not length:
                default = value
            elif (
                length > MAX_PREFIX_DIGITS
                or not (prefix.isascii() and prefix.isdigit())
                or prefix[0] == "0"
            ):
                raise PlanError(f"prefix {prefix!r}", _BAD_PREFIX)
            elif length <= head:
                short[prefix] = value
        heads: list[V | None] = [default] * 10**head
        # Shorter prefixes first, so that longer ones overwrite the heads they share.
        for prefix in sorted(short, key=len):
            span = 10 ** (head - len(prefix))
            start = int(prefix) * span
            heads[start : start + span] = [short[prefix]] * span
        long: dict[int, V] = {}
        masks = array("H", [0]) * 10**head
        stems = bytearray(10 ** (head + 1) // 8 + 1)
        for prefix, value in pairs:
            length = len(prefix)
            if length > head:
                long[int(prefix)] = value
                stem = int(prefix[: head + 1])
                stems[stem >> 3] |= 1 << (stem & 7)
                masks[stem // 10] |= 1 << length
        self._head = head
        self._heads = heads
        self._masks = masks
        self._stems = stems
        self._long = long
        self._lengths = {
            mask: tuple(n for n in range(MAX_PREFIX_DIGITS, head, -1) if mask >> n & 1)
            for mask in set(masks)
        }
        self._short = short
        self._default = default
        self._size = len(long) + len(short) + (default is not None)

    def __len__(self) -> int:
        return self._size

    def __repr__(self) -> str:
        return f"<PrefixIndex of {self._size} prefixes>"

    def get(self, number: str) -> V | None:
        """The value of the longest prefix of ``number`` (E.164 digits), or None."""
        # The hot path of every call: kept flat rather than built on matches().
        size = len(number)
        head = self._head
        if size <= head or not (number.isascii() and number.isdigit()):
            return next(self.matches(number), None)
        stem = int(number[: head + 1])
        if self._stems[stem >> 3] >> (stem & 7) & 1:
            long = self._long
            for length in self._lengths[self._masks[stem // 10]]:
                if length <= size:
                    value = long.get(int(number[:length]))
                    if value is not None:
                        return value
        return self._heads[stem // 10]

    def matches(self, number: str) -> Iterator[V]:
        """Values of every prefix of ``number``, longest first, then the catch-all."""
        if not (number.isascii() and number.isdigit()):
            # Prefixes are all digits: only the number's leading digits can match.
            match = _LEADING_DIGITS.match(number)
            number = match.group() if match else ""
        size = len(number)
        head = self._head
        if size > head:
            stem = int(number[: head + 1])
            if self._stems[stem >> 3] >> (stem & 7) & 1:
                long = self._long
                for length in self._lengths[self._masks[stem // 10]]:
                    if length <= size:
                        value = long.get(int(number[:length]))
                        if value is not None:
                            yield value
        # Short prefixes: at most ``head`` probes, and only when the longest match was
        # not wanted (a rate not yet or no longer in force).
        for length in range(min(size, head), 0, -1):
            value = self._short.get(number[:length])
            if value is not None:
                yield value
        if self._default is not None:
            yield self._default


_LEADING_DIGITS = re.compile("[0-9]*")
_BAD_PREFIX = f"a prefix is up to {MAX_PREFIX_DIGITS} digits and does not start with 0"
