"""The plan against the database: names it uses exist, nothing changes owner, and every
customer pays in its sell card's currency.

Run inside the load's transaction, after :func:`tollguard.web.provisioning.schema.parse`
and before anything is written, so that a file with any problem changes nothing.
"""

from __future__ import annotations

from django.db import models

from tollguard.web.billing.models import LedgerEntry
from tollguard.web.carriers.models import Gateway, Provider
from tollguard.web.customers.models import Account, AclEntry, Customer
from tollguard.web.provisioning.errors import Problems
from tollguard.web.provisioning.schema import PlanSpec
from tollguard.web.rating.models import RateCard, RateCardKind

__all__ = ["check_credit", "check_dids", "check_references"]


def check_references(plan: PlanSpec, problems: Problems) -> None:
    """Names used by the file exist (in the file or the database), with the right kind."""
    kinds = dict(RateCard.objects.values_list("name", "kind"))
    kinds.update((card.name, card.kind) for card in plan.rate_cards)
    if plan.prune:
        kinds = {card.name: card.kind for card in plan.rate_cards}

    def card(where: str, name: str | None, kind: str) -> None:
        if name is None:
            return
        if name not in kinds:
            problems.add(where, f"unknown rate card {name!r}")
        elif kinds[name] is not None and kinds[name] != kind:
            problems.add(where, f"rate card {name!r} is a {kinds[name]} card, not {kind}")

    for provider in plan.providers:
        card(f"{provider.where}.cost_card", provider.cost_card, RateCardKind.COST)
        card(f"{provider.where}.inbound_card", provider.inbound_card, RateCardKind.COST)

    provider_names = {p.name for p in plan.providers}
    if not plan.prune:
        provider_names.update(Provider.objects.values_list("name", flat=True))
    for customer in plan.customers:
        card(f"{customer.where}.sell_card", customer.sell_card, RateCardKind.SELL)
        for j, name in enumerate(customer.providers or ()):
            if name is not None and name not in provider_names:
                problems.add(f"{customer.where}.providers[{j}]", f"unknown provider {name!r}")

    # Natural keys that are unique across parents must not silently move between them.
    owners = _owners(Gateway, "name", "provider__name")
    for provider in plan.providers:
        for gateway in provider.gateways or ():
            owner = owners.get(gateway.name) if gateway.name is not None else None
            if owner is not None and provider.name is not None and owner != provider.name:
                problems.add(f"{gateway.where}.name", f"already belongs to provider {owner!r}")
    account_owner = _owners(Account, "username", "customer__name")
    with_md5 = set(Account.objects.exclude(ha1_md5="").values_list("username", flat=True))
    acl_owner = {
        (network, tech_prefix): owner
        for network, tech_prefix, owner in AclEntry.objects.values_list(
            "network", "tech_prefix", "customer__name"
        )
    }
    for customer in plan.customers:
        for account in customer.accounts or ():
            if account.username is None or customer.name is None:
                continue
            owner = account_owner.get(account.username)
            if owner is not None and owner != customer.name:
                problems.add(
                    f"{account.where}.username",
                    f"{account.username!r} already belongs to customer {owner!r}",
                )
            if owner is None and not account.credentials_given:
                problems.add(account.where, "a new account needs 'password' or HA1 digests")
            elif (
                owner is not None
                and account.allow_md5
                and not account.credentials_given
                and account.username not in with_md5
            ):
                problems.add(
                    f"{account.where}.allow_md5",
                    "needs 'password' (or ha1_md5) again: the MD5 digest is kept only for "
                    "accounts that allow MD5",
                )
        for entry in customer.acl or ():
            owner = acl_owner.get((entry.network, entry.tech_prefix))
            if owner is not None and customer.name is not None and owner != customer.name:
                problems.add(
                    f"{entry.where}.network",
                    f"{entry.network!r} already belongs to customer {owner!r}",
                )


def check_dids(plan: PlanSpec, problems: Problems) -> None:
    """Each DID's customer exists, and its account exists and belongs to that customer
    (as the file declares it, else as the database holds it). The DID table's own rules
    (overlaps, forwards) are checked on the result, inside the load's transaction."""
    customers = {c.name for c in plan.customers}
    owner_of = {} if plan.prune else _owners(Account, "username", "customer__name")
    if not plan.prune:
        customers.update(Customer.objects.values_list("name", flat=True))
    owner_of.update(
        (account.username, customer.name)
        for customer in plan.customers
        for account in customer.accounts or ()
    )
    for did in plan.dids:
        if did.customer not in customers:
            problems.add(f"{did.where}.customer", f"unknown customer {did.customer!r}")
            continue
        if did.account is None:
            continue
        owner = owner_of.get(did.account)
        if owner is None:
            problems.add(f"{did.where}.account", f"unknown account {did.account!r}")
        elif owner != did.customer:
            problems.add(
                f"{did.where}.account",
                f"{did.account!r} belongs to customer {owner!r}, not {did.customer!r}",
            )


def _owners(model: type[models.Model], key: str, owner: str) -> dict[str, str]:
    return dict(model._default_manager.values_list(key, owner))


def check_credit(plan: PlanSpec, problems: Problems) -> None:
    """Each customer pays in its sell card's currency; a currency with a ledger is fixed;
    a customer with a ledger is never pruned (docs/billing.md)."""
    card_currency = {} if plan.prune else dict(RateCard.objects.values_list("name", "currency"))
    card_currency.update((card.name, card.currency) for card in plan.rate_cards)
    stored = {
        name: (pk, currency)
        for pk, name, currency in Customer.objects.values_list("pk", "name", "currency")
    }
    with_ledger = set(
        LedgerEntry.objects.order_by().values_list("customer_id", flat=True).distinct()
    )
    for customer in plan.customers:
        declared = customer.credit.currency if customer.credit is not None else None
        card = card_currency.get(customer.sell_card) if customer.sell_card else None
        if declared is not None and card is not None and declared != card:
            problems.add(
                f"{customer.where}.credit.currency",
                f"{declared!r} is not the currency of sell card {customer.sell_card!r} "
                f"({card}); a customer pays in its sell card's currency",
            )
            continue
        currency = declared or card
        pk, current = stored.get(customer.name, (None, None))
        if (
            currency is not None
            and current is not None
            and currency != current
            and pk in with_ledger
        ):
            problems.add(
                customer.where,
                f"customer {customer.name!r} has a ledger in {current}; its currency is "
                f"fixed (not {currency})",
            )
    if plan.prune:
        kept = {customer.name for customer in plan.customers}
        for name, (pk, _) in sorted(stored.items()):
            if name not in kept and pk in with_ledger:
                problems.add(
                    "(prune)",
                    f"customer {name!r} has ledger entries and cannot be deleted; keep it "
                    "in the file (enabled: false to stop its calls)",
                )
