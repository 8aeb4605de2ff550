"""``tollguard check`` findings about SIP digest algorithms and the PostgreSQL link."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from django.conf import settings
from django.core.checks import Warning, registry
from django.test import override_settings

from tollguard.config import DatabaseSettings
from tollguard.web.customers import checks as account_checks
from tollguard.web.security import checks

from .. import factories


def with_sip(*algorithms: str) -> Any:
    tollguard = settings.TOLLGUARD
    sip = dataclasses.replace(tollguard.sip, digest_algorithms=algorithms)
    return override_settings(TOLLGUARD=dataclasses.replace(tollguard, sip=sip))


def with_database(**values: Any) -> Any:
    database = DatabaseSettings(engine="postgresql", **values)
    return override_settings(TOLLGUARD=dataclasses.replace(settings.TOLLGUARD, database=database))


def test_new_accounts_do_not_allow_md5(db: None) -> None:
    account = factories.account(factories.customer())
    assert account.allow_md5 is False


@pytest.mark.parametrize(
    ("algorithms", "md5_accounts", "warned"),
    [
        (("SHA-256",), 1, True),
        (("SHA-256",), 0, False),
        (("SHA-256", "MD5"), 1, False),
        (("MD5", "SHA-256"), 1, False),
    ],
    ids=["md5-account-not-offered", "no-md5-account", "md5-offered-second", "md5-offered-first"],
)
def test_md5_accounts_without_md5_offered_are_warned_about(
    db: None, algorithms: tuple[str, ...], md5_accounts: int, warned: bool
) -> None:
    customer = factories.customer()
    factories.account(customer, "sha-phone")
    for n in range(md5_accounts):
        old = factories.account(customer, f"old-phone-{n}")
        old.allow_md5 = True
        old.save()
    with with_sip(*algorithms):
        found = account_checks.check_md5_accounts()
    assert [m.id for m in found] == (["security.W101"] if warned else [])
    if warned:
        assert isinstance(found[0], Warning)
        assert "old-phone-0" in found[0].msg
        assert "sha-phone" not in found[0].msg


def test_md5_warning_lists_a_bounded_number_of_accounts(db: None) -> None:
    customer = factories.customer()
    for n in range(account_checks.MD5_ACCOUNTS_SHOWN + 3):
        account = factories.account(customer, f"old-{n:02d}")
        account.allow_md5 = True
        account.save()
    with with_sip("SHA-256"):
        (found,) = account_checks.check_md5_accounts()
    assert found.msg.count("old-") == account_checks.MD5_ACCOUNTS_SHOWN
    assert found.msg.endswith(", ....")


@pytest.mark.parametrize(
    ("values", "warned"),
    [
        ({"host": "db.example.net"}, False),
        ({"host": "db.example.net", "sslmode": "verify-ca"}, False),
        ({"host": "db.example.net", "sslmode": "require"}, True),
        ({"host": "db.example.net", "sslmode": "disable"}, True),
        ({"host": "127.0.0.1", "sslmode": "disable"}, False),
        ({"host": "/run/postgresql"}, False),
    ],
    ids=[
        "remote-default",
        "remote-verify-ca",
        "remote-require",
        "remote-disable",
        "loopback-disable",
        "unix-socket",
    ],
)
def test_unverified_remote_database_is_warned_about(values: dict[str, str], warned: bool) -> None:
    with with_database(**values):
        found = checks.check_database_tls()
    assert [m.id for m in found] == (["security.W102"] if warned else [])


def test_sqlite_needs_no_tls() -> None:
    assert checks.check_database_tls() == []


def test_both_checks_run_in_tollguard_check() -> None:
    deploy = {id(c) for c in registry.registry.get_checks(include_deployment_checks=True)}
    start = {id(c) for c in registry.registry.get_checks(include_deployment_checks=False)}
    for check in (account_checks.check_md5_accounts, checks.check_database_tls):
        assert id(check) in deploy - start
