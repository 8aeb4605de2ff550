"""Writes of the SIP ban list, suspensions and fraud events.

Operators reach these through the admin, the API and ``tollguard bans``; the switch
through the stores (``stores.py``). Every operator change bumps the live-state version
("bans" or "suspensions") in its own transaction, which is how a running switch learns
to reload; every ban and release is a line on the ``tollguard.security`` logger in the
switch's own format (``sip ban: ip=...``, ``sip unban: ip=...``).
"""

from __future__ import annotations

import ipaddress
import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from tollguard.domain.events import Text, log_event, utc_stamp
from tollguard.domain.fraud import FraudEvent as DomainEvent
from tollguard.domain.fraud import Suspension as DomainSuspension
from tollguard.domain.plan import IPNetwork
from tollguard.domain.shield import Ban, BanMode, BanReason, parse_network
from tollguard.web.customers.models import Account, Customer
from tollguard.web.errors import WebError
from tollguard.web.fraud import models

__all__ = [
    "BanListError",
    "ImportReport",
    "add_ban",
    "bump_live_version",
    "export_bans",
    "import_bans",
    "parse_ban_list",
    "release_event",
    "release_suspension",
    "remove_ban",
    "save_bans",
    "save_events",
    "save_suspensions",
    "suspend",
]

logger = logging.getLogger(__name__)

BANS = "bans"
SUSPENSIONS = "suspensions"
# An import or a list larger than this is refused: no operator list is that long, and
# parsing one must not be a way to exhaust the web process.
MAX_IMPORT_ENTRIES = 1_000_000
_SLICE = 500
# Suspension.subject's length: a longer subject is not a customer, account or user name.
MAX_SUBJECT = 80


class BanListError(WebError):
    """A ban list that cannot be used; ``errors`` name each bad line."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__(
            "; ".join(errors[:5]) + (f" (and {len(errors) - 5} more)" if len(errors) > 5 else "")
        )
        self.errors = errors


def bump_live_version(name: str) -> int:
    """Increase the version of one kind of live state; call inside the change's transaction."""
    with transaction.atomic():
        updated = models.LiveStateVersion.objects.filter(name=name).update(version=F("version") + 1)
        if not updated:
            models.LiveStateVersion.objects.get_or_create(name=name, defaults={"version": 1})
        version: int = models.LiveStateVersion.objects.values_list("version", flat=True).get(
            name=name
        )
    return version


def _text(network: IPNetwork) -> str:
    """A single address without its /32 or /128, a network as CIDR."""
    if network.prefixlen == network.max_prefixlen:
        return str(network.network_address)
    return str(network)


def _datetime(epoch: float | None) -> datetime | None:
    return None if epoch is None else _at(epoch)


def _at(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


# --- bans -----------------------------------------------------------------------------------


def add_ban(
    network: str | IPNetwork,
    *,
    duration: timedelta | None,
    reason: BanReason = BanReason.OPERATOR,
    mode: BanMode = BanMode.DROP,
    note: str = "",
    by: str = "",
    now: datetime | None = None,
) -> models.SipBan:
    """Ban ``network`` for ``duration`` (``None``: until released), replacing its ban.

    Raises ``ValueError`` for text that is not an address or network.
    """
    parsed = parse_network(network) if isinstance(network, str) else network
    now = now or timezone.now()
    expires = None if duration is None else now + duration
    with transaction.atomic():
        row, _ = models.SipBan.objects.update_or_create(
            network=_text(parsed),
            defaults={
                "reason": reason.value,
                "mode": mode.value,
                "created_at": now,
                "expires_at": expires,
                "note": note[:200],
            },
        )
        bump_live_version(BANS)
    log_event(
        "sip ban",
        _text(parsed),
        ("until", utc_stamp(None if expires is None else expires.timestamp())),
        ("reason", reason.value),
        ("offences", row.offences),
        ("mode", mode.value),
        ("by", Text(by)),
    )
    return row


def remove_ban(network: str | IPNetwork, *, by: str = "") -> bool:
    """Lift the ban of exactly ``network``; ``False`` when there was none."""
    parsed = parse_network(network) if isinstance(network, str) else network
    with transaction.atomic():
        deleted, _ = models.SipBan.objects.filter(network=_text(parsed)).delete()
        if deleted:
            bump_live_version(BANS)
    if deleted:
        log_event("sip unban", _text(parsed), ("by", Text(by)), level=logging.INFO)
    return bool(deleted)


def save_bans(bans: Iterable[Ban]) -> None:
    """Store bans the switch made; a stored ban that ends later is kept."""
    with transaction.atomic():
        for ban in bans:
            key = _text(ban.network)
            expires = _datetime(ban.expires)
            row = models.SipBan.objects.select_for_update().filter(network=key).first()
            if (
                row is not None
                and row.active
                and (row.expires_at is None or (expires is not None and row.expires_at >= expires))
            ):
                continue
            models.SipBan.objects.update_or_create(
                network=key,
                defaults={
                    "reason": ban.reason.value,
                    "mode": ban.mode.value,
                    "created_at": _at(ban.created),
                    "expires_at": expires,
                    "offences": ban.offences,
                    "note": ban.note[:200],
                },
            )
        bump_live_version(BANS)


@dataclass(frozen=True, slots=True)
class ImportReport:
    added: int
    replaced: int

    def summary(self) -> str:
        return f"{self.added} bans added, {self.replaced} replaced"


def parse_ban_list(text: str) -> list[IPNetwork]:
    """The addresses and networks of a plain list or of APIBAN's JSON answer.

    Plain: one address or CIDR network a line; blank lines and ``#`` comments are
    ignored. JSON: APIBAN's ``{"ipaddress": ["198.51.100.4", ...], "ID": "..."}`` (as
    its ``/banned`` and ``/check`` calls answer), or a bare list of strings. Raises
    :class:`BanListError` naming every bad line (or JSON entry); nothing is half read.
    """
    stripped = text.lstrip()
    if stripped.startswith(("{", "[")):
        return _parse_json(stripped)
    networks: list[IPNetwork] = []
    errors: list[str] = []
    for number, line in enumerate(text.splitlines(), start=1):
        entry = line.split("#", 1)[0].strip()
        if not entry:
            continue
        try:
            networks.append(parse_network(entry))
        except ValueError as exc:
            errors.append(f"line {number}: {exc}")
    if errors:
        raise BanListError(errors)
    if len(networks) > MAX_IMPORT_ENTRIES:
        raise BanListError([f"more than {MAX_IMPORT_ENTRIES} entries"])
    return networks


def _parse_json(text: str) -> list[IPNetwork]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BanListError([f"line {exc.lineno}: not valid JSON ({exc.msg})"]) from exc
    if isinstance(data, dict):
        if "ipaddress" not in data:
            raise BanListError(['JSON: expected an object with an "ipaddress" list (APIBAN)'])
        data = data["ipaddress"]
    if not isinstance(data, list):
        raise BanListError(["JSON: expected a list of addresses"])
    if len(data) > MAX_IMPORT_ENTRIES:
        raise BanListError([f"more than {MAX_IMPORT_ENTRIES} entries"])
    networks: list[IPNetwork] = []
    errors: list[str] = []
    for index, entry in enumerate(data):
        if not isinstance(entry, str):
            errors.append(f"entry {index + 1}: {entry!r} is not a string")
            continue
        try:
            networks.append(parse_network(entry))
        except ValueError as exc:
            errors.append(f"entry {index + 1}: {exc}")
    if errors:
        raise BanListError(errors)
    return networks


def import_bans(
    text: str,
    *,
    duration: timedelta | None,
    note: str = "",
    by: str = "",
    now: datetime | None = None,
) -> ImportReport:
    """Ban every address of a plain or APIBAN list, all or nothing.

    Raises :class:`BanListError` before anything is written when any entry is bad.
    """
    networks = parse_ban_list(text)
    now = now or timezone.now()
    expires = None if duration is None else now + duration
    keys = {_text(network) for network in networks}
    ordered = sorted(keys)
    with transaction.atomic():
        existing: set[str] = set()
        # In slices: a list of a million entries must not become one query with a
        # million parameters (SQLite allows 32,766).
        for start in range(0, len(ordered), _SLICE):
            chunk = ordered[start : start + _SLICE]
            found = list(
                models.SipBan.objects.filter(network__in=chunk).values_list("network", flat=True)
            )
            existing.update(found)
            models.SipBan.objects.filter(network__in=found).delete()
        models.SipBan.objects.bulk_create(
            [
                models.SipBan(
                    network=key,
                    reason=BanReason.IMPORT.value,
                    mode=BanMode.DROP.value,
                    created_at=now,
                    expires_at=expires,
                    note=note[:200],
                )
                for key in ordered
            ],
            batch_size=_SLICE,
        )
        bump_live_version(BANS)
    log_event(
        "sip ban import",
        "-",
        ("count", len(keys)),
        ("until", utc_stamp(None if expires is None else expires.timestamp())),
        ("by", Text(by)),
    )
    return ImportReport(added=len(keys) - len(existing), replaced=len(existing))


def export_bans(fmt: str = "text", *, active_only: bool = True) -> str:
    """The ban list as plain text (one entry a line) or APIBAN-shaped JSON; both import
    back with :func:`import_bans`."""
    rows = models.SipBan.objects.order_by("network")
    if active_only:
        now = timezone.now()
        rows = rows.exclude(expires_at__lte=now)
    networks = list(rows.values_list("network", flat=True))
    if fmt == "json":
        return json.dumps({"ipaddress": networks}, indent=1) + "\n"
    if fmt != "text":
        raise ValueError(f"unknown format {fmt!r}")
    return "".join(f"{network}\n" for network in networks)


def is_address_or_network(text: str) -> bool:
    try:
        ipaddress.ip_network(text.strip(), strict=False)
    except ValueError:
        return False
    return True


# --- suspensions and events --------------------------------------------------------------------


def save_suspensions(suspensions: Iterable[DomainSuspension]) -> None:
    with transaction.atomic():
        for suspension in suspensions:
            if len(suspension.subject) > MAX_SUBJECT:
                logger.warning("suspension of a subject too long to store dropped")
                continue
            models.Suspension.objects.update_or_create(
                subject=suspension.subject,
                defaults={
                    "reason": suspension.reason[:300],
                    "created_at": _at(suspension.created),
                    "expires_at": _datetime(suspension.expires),
                },
            )
        bump_live_version(SUSPENSIONS)


def suspend(subject: str, reason: str, *, duration: timedelta | None, by: str = "") -> None:
    now = timezone.now()
    expires = None if duration is None else now + duration
    with transaction.atomic():
        models.Suspension.objects.update_or_create(
            subject=subject,
            defaults={"reason": reason[:300], "created_at": now, "expires_at": expires},
        )
        bump_live_version(SUSPENSIONS)
    log_event(
        "fraud suspension",
        "-",
        ("subject", Text(subject)),
        ("until", utc_stamp(None if expires is None else expires.timestamp())),
        ("reason", Text(reason)),
        ("by", Text(by)),
    )


def release_suspension(subject: str, *, by: str = "") -> bool:
    with transaction.atomic():
        deleted, _ = models.Suspension.objects.filter(subject=subject).delete()
        if deleted:
            bump_live_version(SUSPENSIONS)
            models.FraudEvent.objects.filter(suspended=subject, released_at__isnull=True).update(
                released_at=timezone.now(), released_by=by[:150]
            )
    if deleted:
        log_event(
            "fraud release", "-", ("subject", Text(subject)), ("by", Text(by)), level=logging.INFO
        )
    return bool(deleted)


def release_event(event: models.FraudEvent, *, by: str = "") -> None:
    """Mark ``event`` handled and lift the suspension it made, if any (one click)."""
    if event.suspended:
        release_suspension(event.suspended, by=by)
    models.FraudEvent.objects.filter(pk=event.pk, released_at__isnull=True).update(
        released_at=timezone.now(), released_by=by[:150]
    )


def save_events(events: Iterable[DomainEvent]) -> int:
    """Store fraud events from the switch; references to rows since deleted are dropped."""
    batch = list(events)
    customer_ids = set(
        Customer.objects.filter(pk__in={e.customer_id for e in batch}).values_list("pk", flat=True)
    )
    account_ids = set(
        Account.objects.filter(
            pk__in={e.account_id for e in batch if e.account_id is not None}
        ).values_list("pk", flat=True)
    )
    models.FraudEvent.objects.bulk_create(
        models.FraudEvent(
            at=_at(event.at),
            rule=event.rule.value,
            action=event.action.value,
            customer_id=event.customer_id if event.customer_id in customer_ids else None,
            account_id=event.account_id if event.account_id in account_ids else None,
            source=event.source[:45],
            callee=event.callee[:32],
            detail=event.detail[:300],
            suspended=event.suspension.subject if event.suspension is not None else "",
        )
        for event in batch
    )
    return len(batch)
