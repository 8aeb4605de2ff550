"""Users see their signed-in sessions and end any of them (ASVS 7.5.2); a password
change ends the others at once (ASVS 7.4.3)."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.contrib.sessions.models import Session
from django.http import HttpRequest, HttpResponse
from django.test import Client, RequestFactory
from django_otp import DEVICE_ID_SESSION_KEY
from django_otp.plugins.otp_totp.models import TOTPDevice

from tollguard.web.customers.models import Customer
from tollguard.web.portal.models import CustomerUser
from tollguard.web.security.models import UserSession
from tollguard.web.security.sessions import (
    LAST_SEEN_STEP,
    RECORD_KEY,
    SessionRecordMiddleware,
    session_store,
)

from .conftest import ADMIN, PASSWORD

SESSIONS = f"{ADMIN}sessions/"
FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:140.0) Gecko/20100101 Firefox/140.0"
CURL = "curl/8.5.0"


def verified(user: AbstractBaseUser, **headers: str) -> Client:
    """A client signed in as ``user`` with the second factor passed."""
    device, _ = TOTPDevice.objects.get_or_create(user=user, name="t", confirmed=True)
    client = Client(**headers)
    client.force_login(user)
    session = client.session
    session[DEVICE_ID_SESSION_KEY] = device.persistent_id
    session.save()
    return client


def alive(client: Client) -> bool:
    return Session.objects.filter(pk=client.session.session_key).exists()


def row_of(client: Client) -> UserSession:
    return UserSession.objects.get(pk=client.session[RECORD_KEY]["id"])


def test_sign_in_records_the_session(staff: AbstractBaseUser) -> None:
    client = Client(REMOTE_ADDR="10.1.2.7", HTTP_USER_AGENT=FIREFOX)
    client.post(f"{ADMIN}login/", {"username": "root", "password": PASSWORD})
    row = UserSession.objects.get(user=staff)
    assert row.session_key == client.session.session_key
    assert row.address == "10.1.2.7"
    assert row.user_agent == FIREFOX
    assert row.created_at == row.last_seen_at or row.created_at < row.last_seen_at


def test_staff_see_their_sessions(staff: AbstractBaseUser) -> None:
    here = verified(staff, HTTP_USER_AGENT=FIREFOX)
    verified(staff, HTTP_USER_AGENT=CURL, REMOTE_ADDR="198.51.100.9")
    other = get_user_model().objects.create_user("ops", is_staff=True)
    verified(other, HTTP_USER_AGENT="Other-Browser/1.0")
    html = here.get(SESSIONS).content.decode()
    assert html.count("<tr><td>") == 2
    assert "Sign out (this session)" in html
    assert "Other-Browser" not in html


def test_ending_a_session_removes_it_from_the_store(
    staff: AbstractBaseUser, caplog: pytest.LogCaptureFixture
) -> None:
    here = verified(staff)
    there = verified(staff)
    assert there.get(ADMIN).status_code == 200
    with caplog.at_level("INFO", logger="tollguard.security"):
        response = here.post(f"{ADMIN}sessions/{row_of(there).pk}/end/")
    assert response["Location"] == SESSIONS
    assert not alive(there)
    assert there.get(ADMIN).status_code == 302
    assert here.get(ADMIN).status_code == 200
    assert 'session ended: ip=127.0.0.1 user="root" count=1 reason="one"' in caplog.messages


def test_ending_all_others_keeps_this_one(staff: AbstractBaseUser) -> None:
    here = verified(staff)
    others = [verified(staff) for _ in range(3)]
    other_user = get_user_model().objects.create_user("ops", is_staff=True)
    theirs = verified(other_user)
    response = here.post(f"{ADMIN}sessions/end-others/", follow=True)
    assert "3 other sessions ended." in response.content.decode()
    assert alive(here)
    assert alive(theirs)
    assert not any(alive(client) for client in others)
    assert UserSession.objects.filter(user=staff).count() == 1


def test_ending_the_current_session_signs_out(staff: AbstractBaseUser) -> None:
    here = verified(staff)
    response = here.post(f"{ADMIN}sessions/{row_of(here).pk}/end/")
    assert response["Location"] == f"{ADMIN}login/"
    assert here.get(ADMIN).status_code == 302
    assert not UserSession.objects.filter(user=staff).exists()


def test_another_users_session_cannot_be_ended(staff: AbstractBaseUser) -> None:
    here = verified(staff)
    other = get_user_model().objects.create_user("ops", is_staff=True)
    theirs = verified(other)
    assert here.post(f"{ADMIN}sessions/{row_of(theirs).pk}/end/").status_code == 404
    assert here.post(f"{ADMIN}sessions/end-others/").status_code == 302
    assert alive(theirs)


def test_ending_needs_post(staff: AbstractBaseUser) -> None:
    here = verified(staff)
    there = verified(staff)
    assert here.get(f"{ADMIN}sessions/{row_of(there).pk}/end/").status_code == 405
    assert here.get(f"{ADMIN}sessions/end-others/").status_code == 405
    assert alive(there)


def test_a_password_change_removes_the_other_sessions_at_once(
    staff: AbstractBaseUser, caplog: pytest.LogCaptureFixture
) -> None:
    here = verified(staff)
    there = verified(staff)
    stale_key = there.session.session_key
    new = "another long passphrase 77"
    with caplog.at_level("INFO", logger="tollguard.security"):
        response = here.post(
            f"{ADMIN}password_change/",
            {"old_password": PASSWORD, "new_password1": new, "new_password2": new},
        )
    assert response.status_code == 302
    # Gone from the store before the other browser makes any request.
    assert not Session.objects.filter(pk=stale_key).exists()
    assert 'reason="password change"' in caplog.text
    # This session got a new key (Django renews it) and its row followed.
    assert row_of(here).session_key == here.session.session_key
    assert here.get(ADMIN).status_code == 200
    assert len(here.get(SESSIONS).content.decode().split("<tr><td>")) == 2


def test_sign_out_forgets_the_session(staff: AbstractBaseUser) -> None:
    here = verified(staff)
    here.post(f"{ADMIN}logout/")
    assert not UserSession.objects.filter(user=staff).exists()


def test_sessions_that_ended_elsewhere_are_not_listed(staff: AbstractBaseUser) -> None:
    here = verified(staff)
    gone = verified(staff)
    Session.objects.filter(pk=gone.session.session_key).delete()
    html = here.get(SESSIONS).content.decode()
    assert html.count("<tr><td>") == 1
    # The next sign-in clears the rows of sessions that no longer exist.
    verified(staff)
    assert UserSession.objects.filter(user=staff).count() == 2


class FakeClock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_last_seen_is_written_at_most_once_a_minute(hardened: None) -> None:
    from django.contrib.auth import login

    user = get_user_model().objects.create_user("walker")
    request = RequestFactory().get("/")
    request.session = session_store()
    login(request, user, backend="django.contrib.auth.backends.ModelBackend")
    row = UserSession.objects.get(user=user)
    started = request.session[RECORD_KEY]["seen"]
    clock = FakeClock(started)

    def view(request: HttpRequest) -> HttpResponse:
        return HttpResponse()

    middleware = SessionRecordMiddleware(view, clock=clock)
    request.user = user
    seen = []
    for step in (LAST_SEEN_STEP - 1, 2, 30):
        clock.now += step
        middleware(request)
        seen.append(UserSession.objects.get(pk=row.pk).last_seen_at.timestamp())
    assert seen[0] == row.last_seen_at.timestamp()
    assert seen[1] == pytest.approx(started + LAST_SEEN_STEP + 1)
    assert seen[2] == seen[1]


# --- the portal --------------------------------------------------------------------------


@pytest.fixture
def customer_user(db: None) -> Any:
    customer = Customer.objects.create(name="Sessions Test Co")
    user = get_user_model().objects.create_user("cust-s", password=PASSWORD)
    CustomerUser.objects.create(user=user, customer=customer)
    return user


def portal_client(user: Any, **headers: str) -> Client:
    client = Client(**headers)
    if headers:
        signed_in = client.post(
            "/portal/login/", {"username": user.get_username(), "password": PASSWORD}
        )
        assert signed_in.status_code == 302
    else:
        client.force_login(user)
    return client


def test_portal_users_see_and_end_their_sessions(
    customer_user: Any, caplog: pytest.LogCaptureFixture
) -> None:
    here = portal_client(customer_user, HTTP_USER_AGENT=FIREFOX)
    there = portal_client(customer_user, HTTP_USER_AGENT=CURL)
    page = here.get("/portal/sessions/")
    html = page.content.decode()
    assert page.status_code == 200
    assert CURL in html and FIREFOX in html
    assert page["Cache-Control"].count("no-store") == 1
    home = here.get("/portal/").content.decode()
    assert 'href="/portal/sessions/"' in home
    with caplog.at_level("INFO", logger="tollguard.security"):
        response = here.post(f"/portal/sessions/{row_of(there).pk}/end/")
    assert response["Location"] == "/portal/sessions/"
    assert not alive(there)
    assert there.get("/portal/").status_code == 302
    assert 'user="cust-s" count=1' in caplog.text


def test_portal_users_end_all_other_sessions(customer_user: Any) -> None:
    here = portal_client(customer_user)
    others = [portal_client(customer_user) for _ in range(2)]
    response = here.post("/portal/sessions/end-others/")
    assert response["Location"] == "/portal/sessions/"
    assert alive(here)
    assert not any(alive(client) for client in others)


def test_portal_cannot_end_another_customers_session(customer_user: Any) -> None:
    here = portal_client(customer_user)
    stranger = get_user_model().objects.create_user("cust-t")
    CustomerUser.objects.create(user=stranger, customer=Customer.objects.create(name="Stranger Co"))
    theirs = portal_client(stranger)
    assert here.post(f"/portal/sessions/{row_of(theirs).pk}/end/").status_code == 404
    assert alive(theirs)


def test_the_admin_home_links_to_the_users_own_account_pages(staff: AbstractBaseUser) -> None:
    html = verified(staff).get(ADMIN).content.decode()
    for page in ("sessions/", "otp/devices/", "password_change/"):
        assert f'href="{ADMIN}{page}"' in html
