"""The DID table's rules applied to the database: one set for the admin, the API and
``tollguard load``.

The rules are :func:`tollguard.domain.dids.index_dids`'s, which the switch applies when
it builds its plan: a change is checked by indexing every DID with the change made, so
a DID the web app accepts is one the switch can load. A :class:`PlanError` becomes a
Django ``ValidationError`` on the field it is about.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.core.exceptions import NON_FIELD_ERRORS, ValidationError

from tollguard.domain.dids import index_dids
from tollguard.domain.errors import PlanError
from tollguard.domain.plan import Did, DidTarget
from tollguard.web.customers import models, selectors

__all__ = ["delete_errors", "did_errors", "field_of", "table_error"]

# The model field a domain Did field is shown on, where the names differ.
_MODEL_FIELDS = {"customer_id": "customer", "account_id": "account", "trunk": "trunk_host"}


_NEEDS = (
    (DidTarget.ACCOUNT, "account_id", "Choose the account that answers this DID."),
    (DidTarget.TRUNK, "trunk_host", "Give the address of the customer's trunk."),
    (DidTarget.DID, "forward_to", "Give the DID number to forward to."),
)


def field_of(error: PlanError) -> str:
    """The model field ``error`` is about (``NON_FIELD_ERRORS`` when none is)."""
    if not error.field:
        return NON_FIELD_ERRORS
    return _MODEL_FIELDS.get(error.field, error.field)


def _name(first: str, last: str) -> str:
    return f"DID {first}" + (f"-{last}" if last and last != first else "")


def _candidate(did: models.Did) -> Did | None:
    """``did`` as the domain sees it, every target field kept (so that a stray one is
    reported), or None when its fields are too broken to index (their own validators
    report them)."""
    if not did.first or did.customer_id is None:
        return None
    row = {column: getattr(did, column) for column in selectors.DID_COLUMNS}
    row["id"] = did.pk if did.pk is not None else -1  # not saved yet
    try:
        return selectors.did_value(row, every_target=True)
    except ValueError:
        return None


def table_error(dids: Iterable[Did]) -> PlanError | None:
    """What is wrong with ``dids`` as the whole DID table, checked against the database's
    accounts and customers; None when the switch would load it."""
    accounts = {account.id: account for account in selectors.accounts()}
    customers = models.Customer.objects.values_list("pk", flat=True)
    try:
        index_dids(dids, accounts, customers)
    except PlanError as exc:
        return exc
    return None


def did_errors(did: models.Did) -> dict[str, list[str]]:
    """What is wrong with saving ``did``, by field (empty: nothing): its target's fields,
    its range, the account's owner, an overlap with another DID, a forward to no DID or
    in a loop. Used by ``Did.clean``, hence by the admin, the API and the loader."""
    errors: dict[str, list[str]] = {}
    # What the target needs, said in the form's words before the table is consulted
    # (the domain would say "unknown account None").
    for target, field, message in _NEEDS:
        if did.target == target and not getattr(did, field):
            errors[field.removesuffix("_id")] = [message]
    if did.target == DidTarget.TRUNK and did.failover_host and not did.trunk_host:
        errors["trunk_host"] = ["A failover needs a trunk address to fail over from."]
    candidate = _candidate(did)
    if candidate is None or errors:
        return errors
    others = [other for other in selectors.dids() if other.id != candidate.id]
    problem = table_error([*others, candidate])
    if problem is not None:
        errors.setdefault(field_of(problem), []).append(_sentence(problem, did))
    return errors


def delete_errors(dids: Iterable[models.Did]) -> list[str]:
    """Why deleting ``dids`` would leave a table the switch cannot load (a DID that
    forwards to one of them), one line each; empty when they may go."""
    gone = {did.pk for did in dids}
    problem = table_error(other for other in selectors.dids() if other.id not in gone)
    return [] if problem is None else [f"{problem.entry} {problem.message}"]


def _sentence(problem: PlanError, did: models.Did) -> str:
    own = problem.entry in {_name(did.first, did.last), f"DID {did.first}"}
    text = problem.message if own else f"{problem.entry}: {problem.message}"
    return text[0].upper() + text[1:] + ("" if text.endswith(".") else ".")


def clean(did: models.Did) -> None:
    """Raise the :func:`did_errors` of ``did`` as one ``ValidationError``."""
    errors: dict[str, Any] = dict(did_errors(did))
    if errors:
        raise ValidationError(errors)
