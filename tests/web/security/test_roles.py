"""Roles: four groups made by the data migration, each with explicit permissions."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group

from tollguard.web.security import roles

pytestmark = pytest.mark.usefixtures("db")


def perms(role: str) -> set[str]:
    group = Group.objects.get(name=role)
    return {
        f"{app}.{code}"
        for app, code in group.permissions.values_list("content_type__app_label", "codename")
    }


def test_the_four_roles_exist() -> None:
    names = set(Group.objects.values_list("name", flat=True))
    assert {"administrator", "operator", "billing", "read-only"} <= names


@pytest.mark.parametrize(
    ("role", "may", "may_not"),
    [
        (
            "administrator",
            {
                "auth.add_user",
                "auth.change_group",
                "customers.delete_customer",
                "security.delete_bannedaddress",
            },
            set(),
        ),
        (
            "operator",
            {
                "customers.add_customer",
                "customers.change_account",
                "carriers.delete_gateway",
                "rating.add_rate",
                "security.add_bannedaddress",
                "cdr.view_cdr",
                "auditlog.view_logentry",
                "axes.view_accessattempt",
                "fraud.add_sipban",
                "fraud.delete_suspension",
                "fraud.change_fraudpolicy",
                "fraud.delete_fraudevent",
            },
            {
                "auth.add_user",
                "auth.change_group",
                "cdr.change_cdr",
                "security.delete_honeypotattempt",
                "auditlog.delete_logentry",
            },
        ),
        (
            "billing",
            {
                "rating.add_rate",
                "rating.change_ratecard",
                "customers.change_customer",
                "customers.view_account",
                "cdr.view_cdr",
            },
            {
                "customers.delete_customer",
                "customers.change_account",
                "carriers.change_gateway",
                "auth.view_user",
                "security.view_bannedaddress",
                "fraud.add_sipban",
                "fraud.change_fraudpolicy",
            },
        ),
        (
            "read-only",
            {
                "customers.view_customer",
                "carriers.view_provider",
                "rating.view_rate",
                "cdr.view_cdr",
                "fraud.view_sipban",
                "fraud.view_fraudevent",
            },
            {
                "customers.change_customer",
                "rating.add_rate",
                "fraud.delete_sipban",
                "fraud.delete_fraudevent",
                "auth.view_user",
                "security.view_bannedaddress",
            },
        ),
    ],
    ids=["administrator", "operator", "billing", "read-only"],
)
def test_role_permissions(role: str, may: set[str], may_not: set[str]) -> None:
    held = perms(role)
    assert may <= held
    assert not (may_not & held)


def test_read_only_can_only_view() -> None:
    assert all(p.split(".", 1)[1].startswith("view_") for p in perms("read-only"))


def test_sync_restores_a_tampered_role() -> None:
    from django.apps import apps

    group = Group.objects.get(name="read-only")
    group.permissions.clear()
    roles.sync_roles(apps)
    assert "customers.view_customer" in perms("read-only")


@pytest.mark.parametrize(
    ("grant", "app", "codename", "expected"),
    [
        (roles.Grant("*", "*", roles.ALL), "auth", "add_user", True),
        (roles.Grant("rating", "*", roles.VIEW), "rating", "view_rate", True),
        (roles.Grant("rating", "*", roles.VIEW), "rating", "change_rate", False),
        (roles.Grant("customers", "customer", roles.ALL), "customers", "add_account", False),
        (roles.Grant("customers", "customer", roles.ALL), "carriers", "add_customer", False),
    ],
    ids=["everything", "view", "view-not-change", "other-model", "other-app"],
)
def test_grant_matching(grant: roles.Grant, app: str, codename: str, expected: bool) -> None:
    assert bool(roles.granted_by((grant,), [(app, codename)])) is expected
