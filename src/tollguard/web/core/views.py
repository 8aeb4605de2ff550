"""The site root and the favicon, so neither answers 404.

``/`` leads to the customer portal: its login page for visitors, its home page for
anyone signed in (which refuses staff, as every portal page does). It never points at
the admin, whose path stays known only to those who were given it. ``/favicon.ico`` is
where browsers look for an icon unasked; it is answered from the app's static files.
"""

from __future__ import annotations

from functools import cache

from django.contrib.staticfiles import finders
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.views.decorators.http import require_safe

FAVICON = "core/favicon.ico"
# A week: long enough that browsers do not ask on every page, short enough that a new
# icon shows up without a renamed file (the URL is fixed, so it cannot be immutable).
FAVICON_MAX_AGE = 7 * 24 * 3600


@require_safe
def root(request: HttpRequest) -> HttpResponseRedirect:
    """Send visitors to the portal's login and signed-in users to its home page."""
    target = "portal:home" if request.user.is_authenticated else "portal:login"
    response = HttpResponseRedirect(reverse(target))
    # The target depends on the session: no shared cache may keep one user's answer.
    response["Cache-Control"] = "private, no-cache"
    response["Vary"] = "Cookie"
    return response


@cache
def _favicon() -> bytes | None:
    found = finders.find(FAVICON)
    if not isinstance(found, str):
        return None
    with open(found, "rb") as icon:
        return icon.read()


@require_safe
def favicon(request: HttpRequest) -> HttpResponse:
    """The site icon, cacheable by anyone for :data:`FAVICON_MAX_AGE` seconds."""
    icon = _favicon()
    if icon is None:
        raise Http404("no favicon")
    response = HttpResponse(icon, content_type="image/x-icon")
    response["Cache-Control"] = f"public, max-age={FAVICON_MAX_AGE}"
    return response
