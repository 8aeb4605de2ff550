"""``load_plan_file``: read, check, apply, in one transaction."""

from __future__ import annotations

import logging
from pathlib import Path

import yaml
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from tollguard.web.core.selectors import config_version
from tollguard.web.core.services import config_batch
from tollguard.web.customers.dids import field_of, table_error
from tollguard.web.customers.selectors import currency_mismatches
from tollguard.web.customers.selectors import dids as dids_selector
from tollguard.web.provisioning import apply, schema, validation
from tollguard.web.provisioning.errors import PlanApplyError, PlanFileError, Problems
from tollguard.web.provisioning.report import KINDS, Counts, LoadReport

__all__ = ["load_plan_file"]

logger = logging.getLogger(__name__)


def _describe(exc: ValidationError | IntegrityError) -> str:
    if isinstance(exc, ValidationError) and hasattr(exc, "error_dict"):
        return "; ".join(
            f"{name}: {' '.join(str(m) for m in messages)}"
            for name, messages in exc.message_dict.items()
        )
    if isinstance(exc, ValidationError):
        return " ".join(exc.messages)
    return str(exc)


def _check_currencies(plan: schema.PlanSpec, problems: Problems, path: Path) -> list[str]:
    """After the changes, inside the load's transaction: a customer of the file that
    lists a provider whose cost card is in another currency is an error (the switch
    would never route there), told at the customer's ``providers``; the rest of what
    ``tollguard check`` says about currencies (customers.W001) comes back as warnings."""
    declared = {customer.name: customer for customer in plan.customers}
    warnings = []
    for mismatch in currency_mismatches():
        spec = declared.get(mismatch.customer)
        if mismatch.listed and spec is not None:
            where = f"{spec.where}.providers" if spec.providers is not None else spec.where
            problems.add(where, mismatch.describe())
        else:
            warnings.append(mismatch.describe())
    if problems:
        raise PlanFileError(path, problems)
    return warnings


def _check_did_table(plan: schema.PlanSpec, problems: Problems, path: Path) -> None:
    """After the changes, inside the load's transaction: the DID table the switch would
    load (the file's DIDs and the database's others) obeys the DID rules (overlaps,
    forwards, account owners); an error names the file's entry, and its field, when it
    is one (:func:`~tollguard.web.customers.dids.field_of` gives the model field)."""
    problem = table_error(dids_selector())
    if problem is None:
        return
    first = problem.entry.removeprefix("DID ").split("-")[0]
    spec = next((spec for spec in plan.dids if spec.first == first), None)
    if spec is None:
        problems.add("dids", str(problem))
    else:
        key = spec.key_of(field_of(problem))
        problems.add(f"{spec.where}.{key}" if key else spec.where, problem.message)
    raise PlanFileError(path, problems)


def load_plan_file(path: Path | str, *, realm: str, dry_run: bool = False) -> LoadReport:
    """Validate and apply the plan file at ``path``; see the module docstring.

    ``realm`` is the SIP digest realm that account passwords are hashed for
    (``settings.sip.realm``). With ``dry_run`` everything is checked and applied, then
    rolled back: the report says what a real load would do.

    Raises :class:`PlanFileError` listing every problem; nothing is changed then.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PlanFileError(path, [f"(file): cannot read {str(path)!r} ({exc.strerror})"]) from exc
    except UnicodeDecodeError as exc:
        line = exc.object[: exc.start].count(b"\n") + 1
        raise PlanFileError(
            path, [f"{path.name}:{line}: (file): not UTF-8 text ({exc.reason})"]
        ) from exc
    try:
        raw = schema.read(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path.name}:{mark.line + 1}: (file)" if mark is not None else "(file)"
        problem = getattr(exc, "problem", None) or str(exc)
        raise PlanFileError(path, [f"{where}: not valid YAML: {problem}"]) from exc

    problems = Problems(path.name)
    plan = schema.parse(raw, path.parent, problems)
    counts = {kind: Counts() for kind in KINDS}
    with transaction.atomic():
        validation.check_references(plan, problems)
        validation.check_credit(plan, problems)
        validation.check_dids(plan, problems)
        if problems:
            raise PlanFileError(path, problems)
        before = config_version()
        # One bump for the whole load, and only if something changed. Whatever is
        # refused from here on leaves the transaction, so nothing is changed.
        try:
            with config_batch():
                apply.apply(plan, realm, counts)
        except apply.EntryRefused as exc:
            for where, message in exc.problems:
                problems.add(where, message)
            raise PlanApplyError(path, problems) from exc
        except (ValidationError, IntegrityError) as exc:
            raise PlanApplyError(path, [f"(database): {_describe(exc)}"]) from exc
        _check_did_table(plan, problems, path)
        warnings = _check_currencies(plan, problems, path)
        version = config_version()
        if dry_run:
            transaction.set_rollback(True)
            version = before
    report = LoadReport(path, dry_run, plan.prune, version, counts, tuple(warnings))
    logger.info(
        "%s %s: %s",
        "checked" if dry_run else "loaded",
        path,
        ", ".join(
            f"{kind} +{c.created} ~{c.updated} -{c.deleted}"
            for kind, c in counts.items()
            if c.created or c.updated or c.deleted
        )
        or "no change",
    )
    return report
