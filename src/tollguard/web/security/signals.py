"""Signal handlers: the absolute session limit starts at sign-in."""

from __future__ import annotations

import time
from typing import Any

from django.contrib.auth.signals import user_logged_in
from django.http import HttpRequest

from tollguard.web.security.middleware import SESSION_STARTED_KEY


def _stamp_session(sender: Any, request: HttpRequest | None, user: Any, **kwargs: Any) -> None:
    if request is not None and hasattr(request, "session"):
        request.session[SESSION_STARTED_KEY] = time.time()


def connect() -> None:
    user_logged_in.connect(_stamp_session, dispatch_uid="tollguard.security.session_start")
