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
from tollguard.web.provisioning.errors import PlanApplyError, PlanFileError
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


def _check_currencies(plan: schema.PlanSpec, path: Path) -> list[str]:
    """After the changes, inside the load's transaction: a customer of the file that
    lists a provider whose cost card is in another currency is an error (the switch
    would never route there); the rest of what ``tollguard check`` says about
    currencies (customers.W001) comes back as warnings."""
    declared = {customer.name for customer in plan.customers}
    errors, warnings = [], []
    for mismatch in currency_mismatches():
        if mismatch.listed and mismatch.customer in declared:
            errors.append(f"customers: {mismatch.describe()}")
        else:
            warnings.append(mismatch.describe())
    if errors:
        raise PlanFileError(path, errors)
    return warnings


def _check_did_table(plan: schema.PlanSpec, path: Path) -> None:
    """After the changes, inside the load's transaction: the DID table the switch would
    load (the file's DIDs and the database's others) obeys the DID rules (overlaps,
    forwards, account owners); an error names the file's entry when it is one."""
    problem = table_error(dids_selector())
    if problem is None:
        return
    entries = {f"DID {spec.first}": spec for spec in plan.dids}
    first = problem.entry.removeprefix("DID ").split("-")[0]
    spec = entries.get(f"DID {first}")
    if spec is None:
        raise PlanFileError(path, [f"dids: {problem}"])
    field = {
        "first": "number" if not spec.values["last"] else "first",
        "forward_to": "forward",
        "trunk_host": "trunk",
    }.get(field_of(problem), field_of(problem))
    suffix = f".{field}" if field in {*schema.DID_FILE_KEYS, "number"} else ""
    raise PlanFileError(path, [f"{spec.where}{suffix}: {problem.message}"])


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
        raise PlanFileError(path, [f"(file): not UTF-8 text ({exc.reason})"]) from exc
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"(file) line {mark.line + 1}" if mark is not None else "(file)"
        problem = getattr(exc, "problem", None) or str(exc)
        raise PlanFileError(path, [f"{where}: not valid YAML: {problem}"]) from exc

    errors: list[str] = []
    plan = schema.parse(raw, path.parent, errors)
    counts = {kind: Counts() for kind in KINDS}
    with transaction.atomic():
        validation.check_references(plan, errors)
        validation.check_credit(plan, errors)
        validation.check_dids(plan, errors)
        if errors:
            raise PlanFileError(path, errors)
        before = config_version()
        # One bump for the whole load, and only if something changed.
        try:
            with config_batch():
                apply.apply(plan, realm, counts)
        except (ValidationError, IntegrityError) as exc:
            raise PlanApplyError(path, [f"(database): {_describe(exc)}"]) from exc
        _check_did_table(plan, path)
        warnings = _check_currencies(plan, path)
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
