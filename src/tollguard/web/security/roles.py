"""Staff roles as groups with explicit permissions.

=============  ===============================================================
role           may
=============  ===============================================================
administrator  everything, users and roles included
operator       manage customers, accounts, ACLs, providers, gateways, rate
               cards, API keys, the ban lists, fraud rules, suspensions and
               fraud events; read CDRs, the ledger, lockouts, the security
               events, the honeypot record and the audit trail
billing        manage rate cards and rates; change customers (credit, limits);
               post top-ups and adjustments, manage balance alerts; read
               accounts, carriers, fraud records, CDRs and the audit trail
read-only      read the configuration, fraud records, CDRs, the ledger and the
               audit trail
=============  ===============================================================

A grant names an app label, a model (``*``: every model of the app) and actions.
:func:`sync_roles` makes each group hold exactly these permissions: it runs in the
data migration and after every ``migrate``, so models added later join their roles.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

ALL = frozenset({"add", "change", "delete", "view"})
VIEW = frozenset({"view"})

ADMINISTRATOR = "administrator"
OPERATOR = "operator"
BILLING = "billing"
READ_ONLY = "read-only"


@dataclass(frozen=True, slots=True)
class Grant:
    app_label: str
    model: str  # a model name, or "*" for every model of the app
    actions: frozenset[str]


_CONFIG_APPS = ("customers", "carriers", "rating")

ROLES: Mapping[str, tuple[Grant, ...]] = {
    ADMINISTRATOR: (Grant("*", "*", ALL),),
    OPERATOR: (
        *(Grant(app, "*", ALL) for app in _CONFIG_APPS),
        Grant("api", "*", ALL),
        Grant("security", "bannedaddress", ALL),
        Grant("security", "honeypotattempt", VIEW),
        Grant("security", "securityevent", VIEW),
        Grant("fraud", "*", ALL),
        Grant("cdr", "*", VIEW),
        Grant("billing", "*", VIEW),
        Grant("core", "configversion", VIEW),
        Grant("axes", "*", VIEW),
        Grant("auditlog", "*", VIEW),
    ),
    BILLING: (
        Grant("rating", "*", ALL),
        Grant("customers", "customer", frozenset({"change", "view"})),
        Grant("customers", "account", VIEW),
        Grant("carriers", "*", VIEW),
        Grant("fraud", "*", VIEW),
        Grant("cdr", "*", VIEW),
        # Entries are only ever added: nobody changes or deletes one.
        Grant("billing", "ledgerentry", frozenset({"add", "view"})),
        Grant("billing", "balancealerts", ALL),
        Grant("billing", "alertdelivery", VIEW),
        Grant("auditlog", "*", VIEW),
    ),
    READ_ONLY: (
        *(Grant(app, "*", VIEW) for app in _CONFIG_APPS),
        Grant("fraud", "*", VIEW),
        Grant("cdr", "*", VIEW),
        Grant("billing", "*", VIEW),
        Grant("core", "configversion", VIEW),
        Grant("auditlog", "*", VIEW),
    ),
}


def _matches(grant: Grant, app_label: str, codename: str) -> bool:
    action, _, model = codename.partition("_")
    if action not in grant.actions:
        return False
    if grant.app_label not in {"*", app_label}:
        return False
    return grant.model in {"*", model}


def granted(role: str, permissions: Iterable[tuple[str, str]]) -> set[tuple[str, str]]:
    """Which ``(app_label, codename)`` pairs of ``permissions`` ``role`` holds."""
    return granted_by(ROLES[role], permissions)


def granted_by(
    grants: Iterable[Grant], permissions: Iterable[tuple[str, str]]
) -> set[tuple[str, str]]:
    """Which ``(app_label, codename)`` pairs of ``permissions`` ``grants`` cover."""
    grants = tuple(grants)
    return {
        (app, codename)
        for app, codename in permissions
        if any(_matches(grant, app, codename) for grant in grants)
    }


def sync_roles(apps: Any, using: str = "default") -> None:
    """Create the role groups and give each exactly its permissions.

    ``apps`` is the migration state's registry or ``django.apps.apps``.
    """
    group_model = apps.get_model("auth", "Group")
    permission_model = apps.get_model("auth", "Permission")
    permissions = list(
        permission_model.objects.using(using).values_list(
            "pk", "content_type__app_label", "codename"
        )
    )
    pairs = [(app, codename) for _, app, codename in permissions]
    for role in ROLES:
        held = granted(role, pairs)
        group, _ = group_model.objects.using(using).get_or_create(name=role)
        group.permissions.set([pk for pk, app, code in permissions if (app, code) in held])
