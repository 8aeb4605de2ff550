"""Staff change their own second factors only after entering the password again within
five minutes (ASVS 7.5.1); each change is a security event."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth.models import AbstractBaseUser
from django.test import Client
from django_otp.plugins.otp_totp.models import TOTPDevice

from tollguard.web.security.models import BackupCodeDevice

from .conftest import ADMIN, PASSWORD, FakeClock, code_for
from .test_headers import InlineCode, nonce_of

CONFIRM = f"{ADMIN}otp/confirm-password/"
DEVICES = f"{ADMIN}otp/devices/"
ADD = f"{ADMIN}otp/devices/add/"
BACKUP = f"{ADMIN}otp/devices/backup-codes/"


def confirm(client: Client, password: str = PASSWORD, next_url: str = DEVICES) -> object:
    return client.post(CONFIRM, {"password": password, "next": next_url})


def remove_url(device: TOTPDevice) -> str:
    return f"{ADMIN}otp/devices/{device.pk}/remove/"


@pytest.mark.parametrize(
    ("method", "target"),
    [("GET", ADD), ("POST", BACKUP), ("POST", "remove")],
    ids=["add-authenticator", "replace-backup-codes", "remove-authenticator"],
)
def test_factor_changes_ask_for_the_password_first(
    verified_client: Client, staff: AbstractBaseUser, clock: FakeClock, method: str, target: str
) -> None:
    spare = TOTPDevice.objects.create(user=staff, name="spare", confirmed=True)
    url = remove_url(spare) if target == "remove" else target
    response = verified_client.generic(method, url)
    assert response.status_code == 302
    assert response["Location"].startswith(f"{CONFIRM}?next=")
    assert TOTPDevice.objects.filter(user=staff, confirmed=True).count() == 2
    assert not BackupCodeDevice.objects.filter(user=staff).exists()
    assert not TOTPDevice.objects.filter(confirmed=False).exists()


def test_a_wrong_password_opens_nothing_and_is_logged(
    verified_client: Client, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level("INFO", logger="tollguard.security"):
        response = confirm(verified_client, "not the password")
    assert response.status_code == 200  # type: ignore[attr-defined]
    assert "not correct" in response.content.decode()  # type: ignore[attr-defined]
    assert verified_client.get(ADD).status_code == 302
    assert any(
        r.getMessage().startswith('reauthentication failure: ip=127.0.0.1 user="root"')
        for r in caplog.records
    )


def test_the_password_opens_factor_changes_for_five_minutes(
    verified_client: Client, staff: AbstractBaseUser, clock: FakeClock
) -> None:
    response = confirm(verified_client, next_url=ADD)
    assert response["Location"] == ADD  # type: ignore[index]
    assert verified_client.get(ADD).status_code == 200
    clock.now += 5 * 60
    assert verified_client.get(ADD).status_code == 200
    clock.now += 1
    assert verified_client.get(ADD)["Location"].startswith(CONFIRM)


def test_confirm_goes_on_to_local_pages_only(verified_client: Client, clock: FakeClock) -> None:
    response = confirm(verified_client, next_url="https://attacker.example/")
    assert response["Location"] == DEVICES  # type: ignore[index]


def test_adding_an_authenticator_needs_a_code_from_it(
    verified_client: Client,
    staff: AbstractBaseUser,
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    confirm(verified_client)
    page = verified_client.get(ADD)
    assert "<svg" in page.content.decode()
    pending = TOTPDevice.objects.get(user=staff, confirmed=False)
    assert pending.name == "authenticator 2"
    assert pending.tolerance == 0
    with caplog.at_level("INFO", logger="tollguard.security"):
        done = verified_client.post(ADD, {"token": code_for(pending, clock)})
    assert done["Location"] == DEVICES
    assert TOTPDevice.objects.filter(user=staff, confirmed=True).count() == 2
    assert any(
        r.getMessage()
        == 'otp device change: ip=127.0.0.1 user="root" action=added device="authenticator 2"'
        for r in caplog.records
    )


def test_a_wrong_code_adds_no_authenticator(
    verified_client: Client, staff: AbstractBaseUser, clock: FakeClock
) -> None:
    confirm(verified_client)
    verified_client.get(ADD)
    pending = TOTPDevice.objects.get(user=staff, confirmed=False)
    right = code_for(pending, clock)
    wrong = f"{(int(right) + 1) % 1_000_000:06d}"
    response = verified_client.post(ADD, {"token": wrong})
    assert response.status_code == 200
    assert "not valid" in response.content.decode()
    assert not TOTPDevice.objects.get(pk=pending.pk).confirmed


def test_backup_codes_are_replaced_and_shown_once(
    verified_client: Client, staff: AbstractBaseUser, clock: FakeClock
) -> None:
    old = BackupCodeDevice.objects.create(user=staff, name="backup codes", confirmed=True)
    old_codes = old.replace_codes()
    confirm(verified_client)
    response = verified_client.post(BACKUP)
    assert response.status_code == 200
    codes = re.findall(r"<code>([a-z0-9-]{29})</code>", response.content.decode())
    assert len(codes) == 10
    device = BackupCodeDevice.objects.get(user=staff)
    # The new code first: a failure starts the device's back-off.
    assert device.verify_token(codes[0])
    assert not device.verify_token(old_codes[0])
    assert codes[1] not in verified_client.get(DEVICES).content.decode()


def test_the_last_authenticator_stays(
    verified_client: Client, staff: AbstractBaseUser, clock: FakeClock
) -> None:
    only = TOTPDevice.objects.get(user=staff)
    confirm(verified_client)
    response = verified_client.post(remove_url(only), follow=True)
    assert "before removing the last one" in response.content.decode()
    assert TOTPDevice.objects.filter(pk=only.pk).exists()


def test_removing_an_authenticator_keeps_the_session_verified(
    verified_client: Client,
    staff: AbstractBaseUser,
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    used = TOTPDevice.objects.get(user=staff)  # the session passed with this one
    kept = TOTPDevice.objects.create(user=staff, name="authenticator 2", confirmed=True)
    confirm(verified_client)
    with caplog.at_level("INFO", logger="tollguard.security"):
        response = verified_client.post(remove_url(used))
    assert response["Location"] == DEVICES
    assert list(TOTPDevice.objects.filter(user=staff)) == [kept]
    assert verified_client.get(ADMIN).status_code == 200
    assert any("action=removed" in r.getMessage() for r in caplog.records)


def test_another_users_authenticator_is_not_found(
    verified_client: Client, clock: FakeClock
) -> None:
    from django.contrib.auth import get_user_model

    other = get_user_model().objects.create_user("ops", is_staff=True)
    theirs = TOTPDevice.objects.create(user=other, name="phone", confirmed=True)
    TOTPDevice.objects.create(user=other, name="tablet", confirmed=True)
    confirm(verified_client)
    assert verified_client.post(remove_url(theirs)).status_code == 404
    assert TOTPDevice.objects.filter(pk=theirs.pk).exists()


def test_factor_pages_need_the_second_factor_first(staff: AbstractBaseUser) -> None:
    TOTPDevice.objects.create(user=staff, name="t", confirmed=True)
    client = Client()
    client.force_login(staff)
    for url in (DEVICES, CONFIRM, ADD):
        assert client.get(url)["Location"] == f"{ADMIN}otp/verify/"


def test_factor_pages_follow_the_policy(verified_client: Client, clock: FakeClock) -> None:
    confirm(verified_client)
    for page in (DEVICES, ADD, CONFIRM):
        response = verified_client.get(page, secure=True)
        assert response.status_code == 200, page
        policy = response["Content-Security-Policy"]
        checker = InlineCode(nonce_of(policy) if "'nonce-" in policy else "")
        checker.feed(response.content.decode())
        assert checker.problems == [], page
