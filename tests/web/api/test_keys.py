"""API keys: stored hashed, shown once, and refused when revoked, expired, out of scope,
over their rate or used from outside their networks."""

from __future__ import annotations

import hashlib
import logging
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone
from hypothesis import given
from hypothesis import strategies as st

from tollguard.web.api import keys
from tollguard.web.api.errors import (
    KeyAddressError,
    KeyExpiredError,
    KeyInvalidError,
    KeyRequestError,
    KeyRevokedError,
)
from tollguard.web.api.models import ApiKey, Scope
from tollguard.web.api.throttles import ApiKeyRateThrottle

from . import people

CDRS = "/api/v1/cdrs/"


@pytest.fixture
def admin() -> object:
    return people.user("root", is_staff=True, is_superuser=True)


def test_key_is_stored_as_sha256_and_shown_once(admin: object) -> None:
    issued = people.key(admin, Scope.READ_CDR)
    stored = ApiKey.objects.get(pk=issued.key.pk)
    assert issued.secret.startswith(f"tg_{stored.prefix}_")
    assert len(issued.secret) > 40
    assert stored.key_hash == hashlib.sha256(issued.secret.encode()).hexdigest()
    # The secret appears in no column of the row.
    row = ApiKey.objects.filter(pk=stored.pk).values().get()
    assert all(issued.secret not in str(v) for v in row.values())


def test_two_keys_differ(admin: object) -> None:
    first, second = people.key(admin, Scope.READ_CDR), people.key(admin, Scope.READ_CDR)
    assert first.secret != second.secret
    assert first.key.prefix != second.key.prefix


@pytest.mark.parametrize(
    ("mutate", "error"),
    [
        (lambda s: s[:-1] + ("A" if s[-1] != "A" else "B"), KeyInvalidError),
        (lambda s: s.replace("tg_", "xx_", 1), KeyInvalidError),
        (lambda s: "tg_short_x", KeyInvalidError),
        (lambda s: "", KeyInvalidError),
    ],
    ids=["wrong-secret", "wrong-marker", "unknown-prefix", "empty"],
)
def test_altered_keys_are_refused(admin: object, mutate: object, error: type[Exception]) -> None:
    issued = people.key(admin, Scope.READ_CDR)
    with pytest.raises(error):
        keys.check_key(mutate(issued.secret), address="127.0.0.1", now=timezone.now())  # type: ignore[operator]


@given(st.text(max_size=80))
def test_check_key_refuses_any_text_with_a_key_error(text: str) -> None:
    # Malformed text fails before the lookup, well-formed text finds no row.
    with pytest.raises(KeyInvalidError):
        keys.check_key(text, address="127.0.0.1", now=timezone.now())


def test_revoked_key_is_refused(admin: object) -> None:
    issued = people.key(admin, Scope.READ_CDR)
    keys.revoke_api_key(issued.key, now=timezone.now())
    with pytest.raises(KeyRevokedError):
        keys.check_key(issued.secret, address="127.0.0.1", now=timezone.now())
    response = Client().get(CDRS, **people.bearer(issued))
    assert response.status_code == 401


def test_expired_key_is_refused_at_its_expiry(admin: object) -> None:
    now = timezone.now()
    issued = people.key(admin, Scope.READ_CDR, expires_at=now + timedelta(hours=1))
    keys.check_key(issued.secret, address="127.0.0.1", now=now + timedelta(minutes=59))
    with pytest.raises(KeyExpiredError):
        keys.check_key(issued.secret, address="127.0.0.1", now=now + timedelta(hours=1))


def test_expired_key_gets_401(admin: object) -> None:
    issued = people.key(admin, Scope.READ_CDR, expires_at=timezone.now() - timedelta(seconds=1))
    assert Client().get(CDRS, **people.bearer(issued)).status_code == 401


@pytest.mark.parametrize(
    ("address", "allowed"),
    [
        ("198.51.100.7", True),
        ("198.51.101.7", False),
        ("2001:db8::1", True),
        ("2001:db9::1", False),
        ("not-an-address", False),
    ],
    ids=["v4-inside", "v4-outside", "v6-inside", "v6-outside", "garbage"],
)
def test_address_restriction(admin: object, address: str, allowed: bool) -> None:
    issued = people.key(
        admin, Scope.READ_CDR, allowed_networks=["198.51.100.0/24", "2001:db8::/32"]
    )
    if allowed:
        keys.check_key(issued.secret, address=address, now=timezone.now())
    else:
        with pytest.raises(KeyAddressError):
            keys.check_key(issued.secret, address=address, now=timezone.now())


def test_address_restriction_over_http(admin: object, caplog: pytest.LogCaptureFixture) -> None:
    issued = people.key(admin, Scope.READ_CDR, allowed_networks=["198.51.100.0/24"])
    inside = Client(REMOTE_ADDR="198.51.100.7").get(CDRS, **people.bearer(issued))
    with caplog.at_level(logging.WARNING, logger="tollguard.security"):
        outside = Client(REMOTE_ADDR="192.0.2.7").get(CDRS, **people.bearer(issued))
    assert inside.status_code == 200
    assert outside.status_code == 403
    assert "api key refused: ip=192.0.2.7 reason=KeyAddressError" in caplog.text


def test_last_used_is_recorded_once_per_minute(admin: object) -> None:
    issued = people.key(admin, Scope.READ_CDR)
    now = timezone.now()
    keys.check_key(issued.secret, address="127.0.0.1", now=now)
    keys.check_key(issued.secret, address="127.0.0.1", now=now + timedelta(seconds=30))
    assert ApiKey.objects.get(pk=issued.key.pk).last_used_at == now
    later = now + timedelta(minutes=2)
    keys.check_key(issued.secret, address="127.0.0.1", now=later)
    assert ApiKey.objects.get(pk=issued.key.pk).last_used_at == later


@pytest.mark.parametrize(
    ("scope", "path", "status"),
    [
        (Scope.READ_CDR, "/api/v1/cdrs/", 200),
        (Scope.READ_CDR, "/api/v1/customers/", 403),
        (Scope.READ_PROVISIONING, "/api/v1/customers/", 200),
        (Scope.READ_PROVISIONING, "/api/v1/cdrs/", 403),
        (
            Scope.READ_STATS,
            "/api/v1/stats/?since=2026-01-01T00:00Z&until=2026-02-01T00:00Z&group_by=customer",
            200,
        ),
        (
            Scope.READ_CDR,
            "/api/v1/stats/?since=2026-01-01T00:00Z&until=2026-02-01T00:00Z&group_by=customer",
            403,
        ),
    ],
    ids=["cdr-cdr", "cdr-customers", "prov-customers", "prov-cdr", "stats-stats", "cdr-stats"],
)
def test_scopes_gate_reads(admin: object, scope: Scope, path: str, status: int) -> None:
    issued = people.key(admin, scope)
    assert Client().get(path, **people.bearer(issued)).status_code == status


def test_write_needs_write_scope(admin: object) -> None:
    reader = people.key(admin, Scope.READ_PROVISIONING)
    writer = people.key(admin, Scope.WRITE_PROVISIONING)
    body = {"name": "new-carrier"}
    denied = Client().post("/api/v1/providers/", body, "application/json", **people.bearer(reader))
    created = Client().post("/api/v1/providers/", body, "application/json", **people.bearer(writer))
    assert denied.status_code == 403
    assert created.status_code == 201


def test_key_acts_with_its_owners_permissions() -> None:
    # A key cannot do more than the user who owns it: a staff user without model
    # permissions gets nothing, whatever the key's scopes.
    owner = people.user("clerk", is_staff=True)
    issued = people.key(owner, Scope.READ_CDR)
    assert Client().get(CDRS, **people.bearer(issued)).status_code == 403


def test_inactive_owner_key_is_refused(admin: object) -> None:
    issued = people.key(admin, Scope.READ_CDR)
    admin.is_active = False  # type: ignore[attr-defined]
    admin.save()  # type: ignore[attr-defined]
    assert Client().get(CDRS, **people.bearer(issued)).status_code == 401


def test_per_key_rate_limit(admin: object, monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [1_000_000.0]
    monkeypatch.setattr(ApiKeyRateThrottle, "timer", lambda self: clock[0])
    slow = people.key(admin, Scope.READ_CDR, rate_per_minute=3, name="slow")
    other = people.key(admin, Scope.READ_CDR, rate_per_minute=3, name="other")
    client = Client()
    statuses = [client.get(CDRS, **people.bearer(slow)).status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    # Limits are per key: another key of the same owner still has its budget.
    assert client.get(CDRS, **people.bearer(other)).status_code == 200
    clock[0] += 61
    assert client.get(CDRS, **people.bearer(slow)).status_code == 200


def test_anonymous_gets_401_with_bearer_challenge() -> None:
    response = Client().get(CDRS)
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"scopes": ["read:everything"]}, "unknown scopes"),
        ({"scopes": []}, "at least one scope"),
        ({"scopes": [Scope.READ_CDR], "name": "  "}, "needs a name"),
        ({"scopes": [Scope.READ_CDR], "allowed_networks": ["10.0.0.1/8"]}, "CIDR"),
    ],
    ids=["unknown-scope", "no-scope", "no-name", "host-bits"],
)
def test_bad_key_requests(admin: object, values: dict[str, object], message: str) -> None:
    values.setdefault("name", "k")
    with pytest.raises(KeyRequestError, match=message):
        keys.create_api_key(owner=admin, **values)  # type: ignore[arg-type]


def test_customer_user_keys_are_confined_and_read_only() -> None:
    w = people.world()
    owner = people.customer_user("cust-a", w.a)
    issued = people.key(owner, Scope.READ_CDR)
    assert issued.key.customer_id == w.a.pk
    with pytest.raises(KeyRequestError, match="own customer"):
        people.key(owner, Scope.READ_CDR, customer=w.b)
    with pytest.raises(KeyRequestError, match="cannot write"):
        people.key(owner, Scope.WRITE_PROVISIONING)


def test_customer_key_dies_with_its_owners_link() -> None:
    w = people.world()
    owner = people.customer_user("cust-a", w.a)
    issued = people.key(owner, Scope.READ_CDR)
    client = Client(**people.bearer(issued))
    assert client.get(CDRS).status_code == 200
    link = owner.customer_link
    link.customer = w.b
    link.save()
    assert client.get(CDRS).status_code == 401
    link.delete()
    assert client.get(CDRS).status_code == 401


def test_a_plain_user_key_without_customer_is_refused() -> None:
    # Neither staff nor a customer user: nothing the key could be confined to.
    owner = people.user("nobody")
    issued = people.key(owner, Scope.READ_CDR)
    assert Client().get(CDRS, **people.bearer(issued)).status_code == 401
