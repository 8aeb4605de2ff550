"""Apply a checked plan: create or update by natural key, then prune if asked.

Every object is found by its natural key (names, usernames, ``network`` +
``tech_prefix``) and saved only when a value differs, after the model's own validation
(as an admin form would). The caller holds the transaction and the configuration batch.
What the database refuses of an entry of the file (a model's rule, a unique key taken
meanwhile) is raised as :class:`EntryRefused`, naming the entry and, when the refusal
is about one, the file's key of the field.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.db import IntegrityError, models

from tollguard.domain.plan import CallLimits, Rate, VelocityPolicy
from tollguard.web.billing.models import BalanceAlerts
from tollguard.web.carriers.models import Gateway, Provider
from tollguard.web.customers.models import Account, AclEntry, Customer, Did
from tollguard.web.customers.services import ha1_digests
from tollguard.web.fraud.models import DestinationRule, FraudPolicy, GatewayLimits, QuietHours
from tollguard.web.provisioning.report import Counts, Outcome
from tollguard.web.provisioning.schema import FraudSpec, PlanSpec
from tollguard.web.rating import services as rating_services
from tollguard.web.rating.models import Rate as RateModel
from tollguard.web.rating.models import RateCard

__all__ = ["EntryRefused", "apply"]

# The file's key of a model field, where the two differ (other fields keep their name).
_CUSTOMER_KEYS = {
    "country_code": "numbering.country_code",
    "national_prefix": "numbering.national_prefix",
    "international_prefix": "numbering.international_prefix",
    "strip_prefix": "numbering.strip_prefix",
    "billing_mode": "credit.mode",
    "credit_limit": "credit.credit_limit",
    "currency": "credit.currency",
}
# A fraud policy's limits and velocity are the domain's fields, nested in the file.
_POLICY_KEYS = {
    **{f.name: f"limits.{f.name}" for f in dataclasses.fields(CallLimits)},
    **{f"velocity_{f.name}": f"velocity.{f.name}" for f in dataclasses.fields(VelocityPolicy)},
}


class EntryRefused(Exception):
    """The database refused an entry of the plan file; ``problems`` holds (path, message)
    pairs, the path the entry's or one of its fields'."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        self.problems = problems
        super().__init__("; ".join(f"{where}: {message}" for where, message in problems))


type _Keys = Callable[[str], str | None]


def _as_named(field: str) -> str | None:
    return None


@contextmanager
def _entry(where: str, keys: _Keys = _as_named) -> Iterator[None]:
    """Raise what the database refuses inside as :class:`EntryRefused` for ``where``;
    ``keys`` gives the file's key of a model field when it is not the field's name."""
    try:
        yield
    except ValidationError as exc:
        raise EntryRefused(list(_refusals(where, exc, keys))) from exc
    except IntegrityError as exc:
        raise EntryRefused([(where, str(exc))]) from exc


def _refusals(where: str, exc: ValidationError, keys: _Keys) -> Iterator[tuple[str, str]]:
    if not hasattr(exc, "error_dict"):
        yield where, " ".join(exc.messages)
        return
    for field, messages in exc.message_dict.items():
        text = " ".join(messages)
        if field == NON_FIELD_ERRORS:
            yield where, text
        else:
            yield f"{where}.{keys(field) or field}", text


def _full_clean(obj: models.Model) -> None:
    obj.full_clean()


def _row_clean(obj: models.Model) -> None:
    """The row's own checks, without ``clean()``'s look at the other rows: a DID is
    checked against the whole table once every DID of the file is in
    (:func:`tollguard.web.provisioning.load`), so that the file's order does not matter."""
    obj.clean_fields()
    obj.validate_unique()
    obj.validate_constraints()


def _upsert(
    model: type[models.Model],
    lookup: dict[str, Any],
    values: dict[str, Any],
    check: Callable[[models.Model], None] = _full_clean,
    *,
    where: str,
    keys: _Keys = _as_named,
) -> tuple[Any, Outcome]:
    """Create or update the row found by ``lookup``, validated like an admin form save;
    a refusal is the entry's at ``where`` (:func:`_entry`)."""
    obj = model._default_manager.filter(**lookup).first()
    with _entry(where, keys):
        if obj is None:
            obj = model(**lookup, **values)
            check(obj)
            obj.save()
            return obj, "created"
        changed = [name for name, value in values.items() if getattr(obj, name) != value]
        if not changed:
            return obj, "unchanged"
        for name in changed:
            setattr(obj, name, values[name])
        check(obj)
        obj.save(update_fields=changed)
        return obj, "updated"


def apply(plan: PlanSpec, realm: str, counts: dict[str, Counts]) -> None:
    cards: dict[str, RateCard] = {}
    for spec in plan.rate_cards:
        card, outcome = _upsert(
            RateCard,
            {"name": spec.name},
            {
                "currency": spec.currency,
                "rounding": spec.rounding,
                "decimals": spec.decimals,
                "kind": spec.kind,
            },
            where=spec.where,
        )
        counts["rate_cards"].add(outcome)
        cards[spec.name] = card
        if spec.rates is not None:
            with _entry(f"{spec.where}.rates"):
                _replace_rates(card, spec.rates, counts["rates"])

    def card_id(name: str | None) -> int | None:
        if name is None:
            return None
        if name not in cards:
            cards[name] = RateCard.objects.get(name=name)
        return cards[name].pk

    providers: dict[str, Provider] = {}
    for pspec in plan.providers:
        provider, outcome = _upsert(
            Provider,
            {"name": pspec.name},
            {
                "cost_card_id": card_id(pspec.cost_card),
                "inbound_card_id": card_id(pspec.inbound_card),
                **pspec.values,
            },
            where=pspec.where,
        )
        counts["providers"].add(outcome)
        providers[pspec.name] = provider
        for gspec in pspec.gateways or ():
            gateway, outcome = _upsert(
                Gateway,
                {"name": gspec.name},
                {"provider_id": provider.pk, **gspec.values},
                where=gspec.where,
            )
            counts["gateways"].add(outcome)
            if gspec.limits is not None:
                _, outcome = _upsert(
                    GatewayLimits,
                    {"gateway": gateway},
                    gspec.limits.values,
                    where=gspec.limits.where,
                )
                counts["fraud"].add(outcome)

    for cspec in plan.customers:
        fields: dict[str, Any] = {"sell_card_id": card_id(cspec.sell_card), **cspec.values}
        if cspec.credit is not None:
            fields["billing_mode"] = cspec.credit.mode
            fields["credit_limit"] = cspec.credit.credit_limit
        # The customer pays in its sell card's currency unless the file says it (the
        # validation made sure the two agree).
        currency = cspec.credit.currency if cspec.credit is not None else None
        if currency is None and cspec.sell_card is not None:
            currency = cards[cspec.sell_card].currency
        if currency is not None:
            fields["currency"] = currency
        customer, outcome = _upsert(
            Customer, {"name": cspec.name}, fields, where=cspec.where, keys=_CUSTOMER_KEYS.get
        )
        if cspec.providers is not None:
            wanted = set(
                Provider.objects.filter(name__in=cspec.providers).values_list("pk", flat=True)
            )
            current = set(customer.providers.values_list("pk", flat=True))
            if wanted != current:
                customer.providers.set(wanted)
                if outcome == "unchanged":
                    outcome = "updated"
        counts["customers"].add(outcome)
        if cspec.fraud is not None:
            counts["fraud"].add(_apply_fraud(cspec.fraud, {"customer": customer}))
        for aspec in cspec.accounts or ():
            values: dict[str, Any] = {
                "customer_id": customer.pk,
                "allow_md5": aspec.allow_md5,
                "enabled": aspec.enabled,
                "extension": aspec.extension,
            }
            if aspec.password is not None:
                values["ha1_md5"], values["ha1_sha256"] = ha1_digests(
                    aspec.username, realm, aspec.password, md5=aspec.allow_md5
                )
            elif aspec.ha1_sha256 is not None:
                # The MD5 HA1 is kept only for accounts that allow MD5 (Account.save).
                values["ha1_md5"] = (aspec.ha1_md5 or "") if aspec.allow_md5 else ""
                values["ha1_sha256"] = aspec.ha1_sha256
            account, outcome = _upsert(
                Account, {"username": aspec.username}, values, where=aspec.where
            )
            counts["accounts"].add(outcome)
            if aspec.fraud is not None:
                counts["fraud"].add(_apply_fraud(aspec.fraud, {"account": account}))
        for lspec in cspec.acl or ():
            _, outcome = _upsert(
                AclEntry,
                {"network": lspec.network, "tech_prefix": lspec.tech_prefix},
                {"customer_id": customer.pk},
                where=lspec.where,
            )
            counts["acl"].add(outcome)
        if cspec.alerts is not None:
            _, outcome = _upsert(
                BalanceAlerts,
                {"customer_id": customer.pk},
                {
                    "thresholds": ", ".join(f"{t:f}" for t in cspec.alerts.thresholds),
                    "email": cspec.alerts.email,
                    "webhook_url": cspec.alerts.webhook_url,
                },
                where=f"{cspec.where}.alerts",
            )
            counts["alerts"].add(outcome)

    if plan.prune:
        _prune(plan, counts)
    # After the prune, so that a DID of the file may take a number a pruned one held.
    _apply_dids(plan, counts["dids"])


def _apply_dids(plan: PlanSpec, counts: Counts) -> None:
    customers = dict(
        Customer.objects.filter(name__in={d.customer for d in plan.dids}).values_list("name", "pk")
    )
    accounts = dict(
        Account.objects.filter(
            username__in={d.account for d in plan.dids if d.account}
        ).values_list("username", "pk")
    )
    for spec in plan.dids:
        values = {
            "customer_id": customers[spec.customer],
            "account_id": accounts[spec.account] if spec.account else None,
            **spec.values,
        }
        _, outcome = _upsert(
            Did, {"first": spec.first}, values, _row_clean, where=spec.where, keys=spec.key_of
        )
        counts.add(outcome)


def _apply_fraud(spec: FraudSpec, owner: dict[str, Any]) -> Outcome:
    """Make the owner's fraud policy exactly ``spec``: values, destination rules and quiet
    hours (rules and hours are replaced when they differ)."""
    policy, outcome = _upsert(
        FraudPolicy, owner, spec.values, where=spec.where, keys=_POLICY_KEYS.get
    )
    rules = [
        (r["allow"], r["match"], r["value"], r["international_only"], r["note"])
        for r in spec.destinations
    ]
    held = list(
        policy.destination_rules.order_by("id").values_list(
            "allow", "match", "value", "international_only", "note"
        )
    )
    if held != rules:
        policy.destination_rules.all().delete()
        for j, values in enumerate(spec.destinations):
            verb = "allow" if values["allow"] else "deny"
            with _entry(f"{spec.where}.destinations[{j}]", {"match": verb, "value": verb}.get):
                rule = DestinationRule(policy=policy, **values)
                rule.full_clean()
                rule.save()
        outcome = "updated" if outcome == "unchanged" else outcome
    hours = [
        (q["days"], q["start"], q["end"], q["timezone"], q["international_only"])
        for q in spec.quiet_hours
    ]
    held_hours = list(
        policy.quiet_hours.order_by("id").values_list(
            "days", "start", "end", "timezone", "international_only"
        )
    )
    if held_hours != hours:
        policy.quiet_hours.all().delete()
        for j, values in enumerate(spec.quiet_hours):
            with _entry(f"{spec.where}.quiet_hours[{j}]"):
                window = QuietHours(policy=policy, **values)
                window.full_clean()
                window.save()
        outcome = "updated" if outcome == "unchanged" else outcome
    return outcome


def _replace_rates(card: RateCard, rates: tuple[Rate, ...], counts: Counts) -> None:
    # A rate card is one price list: the declared rates replace the card's rates.
    result = rating_services.sync_rates(card, rates)
    counts.created += result.created
    counts.deleted += result.deleted
    counts.unchanged += result.unchanged


def _prune(plan: PlanSpec, counts: dict[str, Counts]) -> None:
    def delete(queryset: models.QuerySet[Any], kind: str) -> None:
        removed = queryset.count()
        if removed:
            queryset.delete()
            counts[kind].deleted += removed

    # DIDs first: they hold accounts, which may not be deleted under them.
    delete(Did.objects.exclude(first__in={d.first for d in plan.dids}), "dids")
    customer_names = {c.name for c in plan.customers}
    usernames = {a.username for c in plan.customers for a in c.accounts or ()}
    acl_keys = {(e.network, e.tech_prefix) for c in plan.customers for e in c.acl or ()}
    # Children first, so that their count is not hidden inside a parent's cascade.
    delete(Account.objects.exclude(username__in=usernames), "accounts")
    stale_acl = [
        pk
        for pk, network, tech_prefix in AclEntry.objects.values_list("pk", "network", "tech_prefix")
        if (network, tech_prefix) not in acl_keys
    ]
    delete(AclEntry.objects.filter(pk__in=stale_acl), "acl")
    delete(Customer.objects.exclude(name__in=customer_names), "customers")
    gateway_names = {g.name for p in plan.providers for g in p.gateways or ()}
    delete(Gateway.objects.exclude(name__in=gateway_names), "gateways")
    delete(Provider.objects.exclude(name__in={p.name for p in plan.providers}), "providers")
    stale_cards = RateCard.objects.exclude(name__in={c.name for c in plan.rate_cards})
    counts["rates"].deleted += RateModel.objects.filter(card__in=stale_cards).count()
    delete(stale_cards, "rate_cards")
