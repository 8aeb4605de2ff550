"""Two-factor sign-in: staff enrol a TOTP device (RFC 6238) before anything else, get
backup codes once (stored hashed), and pass the second step at every sign-in."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.test import Client
from django.utils import timezone
from django_otp.plugins.otp_totp.models import TOTPDevice

from tollguard.web.security.models import BackupCode, BackupCodeDevice

from .conftest import ADMIN, PASSWORD, FakeClock, code_for


def sign_in(client: Client, username: str = "root", password: str = PASSWORD) -> str:
    response = client.post(
        f"{ADMIN}login/", {"username": username, "password": password, "next": ADMIN}
    )
    assert response.status_code == 302, response.content
    return str(response["Location"])


def enrol(client: Client, clock: FakeClock) -> list[str]:
    page = client.get(f"{ADMIN}otp/enrol/")
    assert page.status_code == 200
    device = TOTPDevice.objects.get(confirmed=False)
    done = client.post(f"{ADMIN}otp/enrol/", {"token": code_for(device, clock)})
    assert done.status_code == 200
    return re.findall(r"<code>([a-z0-9-]{29})</code>", done.content.decode())


def test_staff_without_a_device_must_enrol_first(staff: AbstractBaseUser) -> None:
    client = Client()
    assert sign_in(client) == ADMIN
    for page in (ADMIN, f"{ADMIN}auth/user/", f"{ADMIN}password_change/"):
        response = client.get(page)
        assert response.status_code == 302
        assert response["Location"] == f"{ADMIN}otp/enrol/"


def test_enrolment_shows_a_local_qr_code_and_the_secret(staff: AbstractBaseUser) -> None:
    client = Client()
    sign_in(client)
    html = client.get(f"{ADMIN}otp/enrol/").content.decode()
    device = TOTPDevice.objects.get(user=staff, confirmed=False)
    assert "<svg" in html
    assert "<img" not in html
    secret = re.search(r'<code id="otp-secret">([A-Z2-7 ]+)</code>', html)
    assert secret is not None
    import base64

    assert base64.b32decode(secret.group(1).replace(" ", "")) == device.bin_key


def test_enrolment_gives_backup_codes_once_and_verifies_the_session(
    staff: AbstractBaseUser, clock: FakeClock
) -> None:
    client = Client()
    sign_in(client)
    codes = enrol(client, clock)
    assert len(codes) == 10
    assert len(set(codes)) == 10
    assert TOTPDevice.objects.get(user=staff).confirmed
    # Stored only as hashes.
    stored = set(BackupCode.objects.values_list("code_hash", flat=True))
    assert len(stored) == 10
    assert not any(code.replace("-", "") in "".join(stored) for code in codes)
    assert client.get(ADMIN).status_code == 200
    # A second visit does not show codes again: a device exists, so it asks to verify.
    other = Client()
    sign_in(other)
    assert other.get(f"{ADMIN}otp/enrol/")["Location"] == f"{ADMIN}otp/verify/"


def test_wrong_enrolment_code_confirms_nothing(staff: AbstractBaseUser, clock: FakeClock) -> None:
    client = Client()
    sign_in(client)
    client.get(f"{ADMIN}otp/enrol/")
    response = client.post(f"{ADMIN}otp/enrol/", {"token": "000000"})
    assert response.status_code == 200
    assert "not valid" in response.content.decode()
    assert not TOTPDevice.objects.filter(confirmed=True).exists()
    assert client.get(ADMIN).status_code == 302


def test_sign_in_needs_password_then_code(
    staff: AbstractBaseUser, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    sign_in(enrolled := Client())
    enrol(enrolled, clock)
    clock.now += 60

    client = Client(REMOTE_ADDR="10.20.30.4")
    sign_in(client)
    response = client.get(ADMIN)
    assert response["Location"] == f"{ADMIN}otp/verify/"
    assert client.get(f"{ADMIN}auth/user/")["Location"] == f"{ADMIN}otp/verify/"

    device = TOTPDevice.objects.get(user=staff)
    with caplog.at_level("INFO", logger="tollguard.security"):
        wrong = client.post(f"{ADMIN}otp/verify/", {"token": "123456"})
        assert wrong.status_code == 200
        # Throttled right after a failure, even with the right code (django-otp backoff).
        assert (
            client.post(f"{ADMIN}otp/verify/", {"token": code_for(device, clock)}).status_code
            == 200
        )
        TOTPDevice.objects.update(
            throttling_failure_timestamp=timezone.now() - timedelta(seconds=5)
        )
        right = client.post(f"{ADMIN}otp/verify/", {"token": code_for(device, clock)})
    assert right.status_code == 302
    assert client.get(ADMIN).status_code == 200
    lines = [r.getMessage() for r in caplog.records if r.name == "tollguard.security"]
    assert lines[0] == 'otp failure: ip=10.20.30.4 user="root"'
    assert lines[-1] == 'otp verified: ip=10.20.30.4 user="root"'


def test_a_totp_code_works_once_and_only_in_its_step(
    staff: AbstractBaseUser, clock: FakeClock
) -> None:
    sign_in(first := Client())
    enrol(first, clock)
    device = TOTPDevice.objects.get(user=staff)
    clock.now += 30
    code = code_for(device, clock)

    client = Client()
    sign_in(client)
    assert client.post(f"{ADMIN}otp/verify/", {"token": code}).status_code == 302
    replay = Client()
    sign_in(replay)
    TOTPDevice.objects.update(throttling_failure_timestamp=None, throttling_failure_count=0)
    assert replay.post(f"{ADMIN}otp/verify/", {"token": code}).status_code == 200

    late = Client()
    sign_in(late)
    clock.now += 60
    stale = code_for(device, FakeClock(clock.now - 30))
    TOTPDevice.objects.update(throttling_failure_timestamp=None, throttling_failure_count=0)
    assert late.post(f"{ADMIN}otp/verify/", {"token": stale}).status_code == 200
    TOTPDevice.objects.update(throttling_failure_timestamp=None, throttling_failure_count=0)
    assert late.post(f"{ADMIN}otp/verify/", {"token": code_for(device, clock)}).status_code == 302


def test_a_backup_code_works_once(staff: AbstractBaseUser, clock: FakeClock) -> None:
    sign_in(first := Client())
    codes = enrol(first, clock)

    client = Client()
    sign_in(client)
    assert client.post(f"{ADMIN}otp/verify/", {"token": codes[3]}).status_code == 302
    assert client.get(ADMIN).status_code == 200
    assert BackupCode.objects.count() == 9

    again = Client()
    sign_in(again)
    assert again.post(f"{ADMIN}otp/verify/", {"token": codes[3]}).status_code == 200
    assert again.get(ADMIN).status_code == 302


def test_verify_redirects_only_to_local_pages(staff: AbstractBaseUser, clock: FakeClock) -> None:
    sign_in(first := Client())
    codes = enrol(first, clock)
    client = Client()
    sign_in(client)
    response = client.post(
        f"{ADMIN}otp/verify/", {"token": codes[0], "next": "https://evil.example/"}
    )
    assert response["Location"] == ADMIN


def test_non_staff_users_are_not_asked_for_a_second_factor(hardened: None) -> None:
    customer = get_user_model().objects.create_user("customer", password=PASSWORD)
    client = Client()
    client.force_login(customer)  # signed in elsewhere, e.g. the customer portal
    assert not BackupCodeDevice.objects.exists()
    response = client.get(ADMIN)
    # The admin itself still refuses them: back to its login form.
    assert response.status_code == 302
    assert response["Location"].startswith(f"{ADMIN}login/")
    # Nor may they enrol a device or enter codes.
    for page in ("otp/enrol/", "otp/verify/"):
        assert client.get(f"{ADMIN}{page}")["Location"] == f"{ADMIN}login/"
    from django_otp.plugins.otp_totp.models import TOTPDevice as Device

    assert not Device.objects.exists()


@pytest.mark.parametrize(
    "page", ["login/", "otp/enrol/", "otp/verify/"], ids=["login", "enrol", "verify"]
)
def test_login_flow_loads_nothing_from_outside(staff: AbstractBaseUser, page: str) -> None:
    client = Client()
    if page != "login/":
        sign_in(client)
    if page == "otp/verify/":
        TOTPDevice.objects.create(user=staff, name="x", confirmed=True)
    response = client.get(f"{ADMIN}{page}")
    assert response.status_code == 200
    html = response.content.decode()
    urls = re.findall(r'(?:src|href|action)="([^"]*)"', html)
    assert urls
    assert all(url.startswith("/") or url.startswith("#") or url == "" for url in urls), urls


def test_first_administrator_enrols_then_changes_the_one_time_password(
    hardened: None, clock: FakeClock
) -> None:
    from tollguard.web import bootstrap

    password = bootstrap.create_admin("first")
    client = Client()
    sign_in(client, "first", password)
    assert client.get(ADMIN)["Location"] == f"{ADMIN}password_change/"
    assert client.get(f"{ADMIN}password_change/")["Location"] == f"{ADMIN}otp/enrol/"
    assert len(enrol(client, clock)) == 10
    assert client.get(ADMIN)["Location"] == f"{ADMIN}password_change/"
    new = "my own long passphrase 31"
    response = client.post(
        f"{ADMIN}password_change/",
        {"old_password": password, "new_password1": new, "new_password2": new},
    )
    assert response.status_code == 302
    assert client.get(ADMIN).status_code == 200


def test_the_api_ignores_a_staff_session_without_the_second_factor(
    staff: AbstractBaseUser, clock: FakeClock
) -> None:
    client = Client()
    sign_in(client)
    assert client.get("/api/v1/customers/").status_code in {401, 403}
    enrol(client, clock)
    assert client.get("/api/v1/customers/").status_code == 200
