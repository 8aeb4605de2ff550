"""Each user's signed-in sessions: recorded at sign-in, listed, ended (ASVS 7.5.2).

Django's session store cannot be searched by user, so sign-in writes a
:class:`~tollguard.web.security.models.UserSession` row and puts a reference to it in
the session. :class:`SessionRecordMiddleware` keeps the row's key and "last seen" time
current (at most one write a minute), and notices a password change in the session
(Django renews the key and the password hash) to end the user's other sessions at once
rather than at their next request (ASVS 7.4.3).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import import_module
from typing import Any

from django.conf import settings
from django.contrib.auth import HASH_SESSION_KEY, SESSION_KEY, logout
from django.contrib.auth.signals import user_logged_in, user_logged_out
from django.contrib.sessions.backends.base import SessionBase
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.utils.crypto import constant_time_compare

from tollguard.web.security import events
from tollguard.web.security.models import UserSession
from tollguard.web.security.network import client_address, parse_address

logger = logging.getLogger(__name__)

# Session key holding {"id": row id, "key": session key, "hash": auth hash, "seen": time}.
RECORD_KEY = "tollguard_session_record"
# "Last seen" is written at most this often, so a busy page costs no extra write.
LAST_SEEN_STEP = 60.0
USER_AGENT_MAX = 256

type GetResponse = Callable[[HttpRequest], HttpResponse]


def session_store(session_key: str | None = None) -> SessionBase:
    """A session of the configured engine (``SESSION_ENGINE``)."""
    engine = import_module(settings.SESSION_ENGINE)
    store: SessionBase = engine.SessionStore(session_key)
    return store


@dataclass(frozen=True, slots=True)
class ActiveSession:
    """One live session as its owner sees it."""

    id: int
    created_at: datetime
    last_seen_at: datetime
    address: str
    user_agent: str
    current: bool


def _stamp(request: HttpRequest, row: UserSession, now: float) -> None:
    request.session[RECORD_KEY] = {
        "id": row.pk,
        "key": row.session_key,
        "hash": request.session.get(HASH_SESSION_KEY, ""),
        "seen": now,
    }


def record(request: HttpRequest, user: Any, now: float | None = None) -> UserSession | None:
    """Write the row for ``request``'s freshly signed-in session."""
    session = getattr(request, "session", None)
    if session is None:
        return None
    if session.session_key is None:
        session.save()
    key = session.session_key
    if key is None:
        return None
    _forget_dead_sessions(user, keep=key)
    address = parse_address(client_address(request))
    row, _ = UserSession.objects.update_or_create(
        session_key=key,
        defaults={
            "user_id": user.pk,
            "created_at": timezone.now(),
            "last_seen_at": timezone.now(),
            "address": str(address) if address is not None else None,
            "user_agent": request.headers.get("user-agent", "")[:USER_AGENT_MAX],
        },
    )
    _stamp(request, row, time.time() if now is None else now)
    return row


def _alive(row: UserSession, user: Any) -> bool:
    """Whether ``row``'s session is still in the store and still ``user``'s."""
    data = session_store(row.session_key).load()
    if str(data.get(SESSION_KEY, "")) != str(user.pk):
        return False
    return constant_time_compare(str(data.get(HASH_SESSION_KEY, "")), user.get_session_auth_hash())


def _forget_dead_sessions(user: Any, keep: str) -> None:
    # The new session is not in the store with its user yet (login() saves it after
    # the signal), so it is left alone.
    for row in UserSession.objects.filter(user_id=user.pk).exclude(session_key=keep):
        if not _alive(row, user):
            session_store(row.session_key).delete()
            row.delete()


def current_id(request: HttpRequest) -> int | None:
    ref = request.session.get(RECORD_KEY)
    return int(ref["id"]) if isinstance(ref, dict) and "id" in ref else None


def active_sessions(request: HttpRequest) -> list[ActiveSession]:
    """The signed-in user's live sessions, the current one first. Reads only."""
    user: Any = request.user
    current = current_id(request)
    found = [
        ActiveSession(
            id=row.pk,
            created_at=row.created_at,
            last_seen_at=row.last_seen_at,
            address=row.address or "",
            user_agent=row.user_agent,
            current=row.pk == current,
        )
        for row in UserSession.objects.filter(user_id=user.pk)
        if row.pk == current or _alive(row, user)
    ]
    return sorted(found, key=lambda s: (not s.current, -s.last_seen_at.timestamp()))


def _end(row: UserSession) -> None:
    session_store(row.session_key).delete()
    row.delete()


def end_session(request: HttpRequest, session_id: int) -> bool:
    """End one of the signed-in user's sessions; ``False`` when it is not one of theirs.

    Ending the current session signs the user out.
    """
    user: Any = request.user
    row = UserSession.objects.filter(pk=session_id, user_id=user.pk).first()
    if row is None:
        return False
    events.session_ended(request, user, 1, "one")
    if row.pk == current_id(request):
        logout(request)
    else:
        _end(row)
    return True


def end_other_sessions(request: HttpRequest, user: Any = None, reason: str = "others") -> int:
    """End every session of ``user`` (default: the signed-in user) but this one;
    returns how many."""
    user = request.user if user is None else user
    rows = UserSession.objects.filter(user_id=user.pk)
    current = current_id(request)
    if current is not None:
        rows = rows.exclude(pk=current)
    ended = 0
    for row in rows:
        _end(row)
        ended += 1
    events.session_ended(request, user, ended, reason)
    return ended


def _on_login(sender: Any, request: HttpRequest | None, user: Any, **kwargs: Any) -> None:
    if request is not None:
        record(request, user)


def _on_logout(sender: Any, request: HttpRequest | None, user: Any, **kwargs: Any) -> None:
    session = getattr(request, "session", None)
    if request is None or session is None:
        return
    session_id = current_id(request)
    if session_id is not None:
        UserSession.objects.filter(pk=session_id).delete()


def connect() -> None:
    user_logged_in.connect(_on_login, dispatch_uid="tollguard.security.session_record")
    user_logged_out.connect(_on_logout, dispatch_uid="tollguard.security.session_forget")


class SessionRecordMiddleware:
    """Keep the signed-in session's row current; after a password change in this
    session, end the user's other sessions."""

    def __init__(self, get_response: GetResponse, clock: Callable[[], float] = time.time) -> None:
        self.get_response = get_response
        self.clock = clock

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        session = getattr(request, "session", None)
        if session is None or SESSION_KEY not in session:
            return response
        user = getattr(request, "user", None)
        # A staff session before its second factor counts as anonymous outside the
        # admin (OTPRequiredMiddleware); its row waits for a signed-in request.
        if user is not None and user.is_authenticated:
            self.touch(request, user)
        return response

    def touch(self, request: HttpRequest, user: Any) -> None:
        session = request.session
        now = self.clock()
        ref = session.get(RECORD_KEY)
        if not isinstance(ref, dict):
            # Signed in before sessions were recorded: record it now.
            record(request, user, now)
            return
        key = session.session_key
        row_id = ref.get("id")
        if key is None or not isinstance(row_id, int):
            return
        key_changed = ref.get("key") != key
        hash_changed = ref.get("hash") != session.get(HASH_SESSION_KEY, "")
        if not key_changed and now - float(ref.get("seen", 0)) < LAST_SEEN_STEP:
            return
        seen = datetime.fromtimestamp(now, UTC)
        updated = UserSession.objects.filter(pk=row_id, user_id=user.pk).update(
            session_key=key, last_seen_at=seen
        )
        if not updated:
            record(request, user, now)
            return
        row = UserSession(pk=row_id, session_key=key)
        _stamp(request, row, now)
        if key_changed and hash_changed:
            # update_session_auth_hash(): the password changed in this session.
            end_other_sessions(request, user, reason="password change")
