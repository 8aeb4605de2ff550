"""Writes to rate cards."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from tollguard.domain.plan import Rate
from tollguard.web.core.services import bump_config_version, config_batch
from tollguard.web.rating import models

BULK_BATCH_SIZE = 2000


@dataclass(frozen=True, slots=True)
class RateSync:
    """What :func:`sync_rates` did. A changed rate counts as one deleted and one created."""

    created: int
    deleted: int
    unchanged: int


def sync_rates(card: models.RateCard, rates: Iterable[Rate]) -> RateSync:
    """Make the rates of ``card`` exactly ``rates``, touching only the rows that differ.

    A rate card is replaced as a whole price list, but a new version of a large card
    usually changes few lines: comparing first keeps the write (and the lock it holds
    on SQLite) proportional to the change. Bumps the configuration version once if
    anything changed.
    """
    wanted = set(rates)
    with config_batch():
        stale: list[int] = []
        kept: set[Rate] = set()
        current = models.Rate.objects.filter(card=card).values_list("pk", *models.RATE_FIELDS)
        for pk, *values in current:
            rate = Rate(*values)
            if rate in wanted and rate not in kept:
                kept.add(rate)
            else:
                stale.append(pk)
        new = wanted - kept
        for start in range(0, len(stale), BULK_BATCH_SIZE):
            models.Rate.objects.filter(pk__in=stale[start : start + BULK_BATCH_SIZE]).delete()
        models.Rate.objects.bulk_create(
            (_row(card, rate) for rate in sorted(new, key=_order)), batch_size=BULK_BATCH_SIZE
        )
        if new:
            bump_config_version()  # bulk_create sends no signal; the deletes did
    return RateSync(created=len(new), deleted=len(stale), unchanged=len(kept))


def replace_rates(card: models.RateCard, rates: Iterable[Rate]) -> int:
    """Set the rates of ``card`` to ``rates``; returns how many rates the card now has."""
    result = sync_rates(card, rates)
    return result.created + result.unchanged


def _order(rate: Rate) -> tuple[str, str]:
    start = rate.effective_from.isoformat() if rate.effective_from is not None else ""
    return rate.prefix, start


def _row(card: models.RateCard, rate: Rate) -> models.Rate:
    return models.Rate(card=card, **{name: getattr(rate, name) for name in models.RATE_FIELDS})
