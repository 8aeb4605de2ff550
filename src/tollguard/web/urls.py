"""URL configuration: the admin lives at the random path chosen by ``tollguard init``.

An empty ``web.admin_path`` means the admin is not mounted at all. ``/admin/`` is a
honeypot that looks like the admin's login page. ``/`` leads to the customer portal
and ``/favicon.ico`` is the site icon (:mod:`tollguard.web.core.views`).
"""

from __future__ import annotations

from django.conf import settings
from django.contrib import admin
from django.urls import URLPattern, URLResolver, include, path

from tollguard.web.core import views as core_views


def admin_prefix(admin_path: str) -> str:
    """``admin_path`` as a URL prefix (``"x7f/"``), or ``""`` when the admin is off."""
    cleaned = admin_path.strip("/")
    return f"{cleaned}/" if cleaned else ""


urlpatterns: list[URLPattern | URLResolver] = [
    path("", core_views.root, name="root"),
    path("favicon.ico", core_views.favicon, name="favicon"),
    path("api/v1/", include("tollguard.web.api.urls")),
    path("portal/", include("tollguard.web.portal.urls")),
]

_prefix = admin_prefix(settings.TOLLGUARD.web.admin_path)
if _prefix:
    urlpatterns.append(path(_prefix, admin.site.urls))
if _prefix != "admin/":
    # The default admin path is a decoy that records and bans (security.urls).
    urlpatterns.append(path("", include("tollguard.web.security.urls")))

# Permission denials are security events (tollguard.security logger).
handler403 = "tollguard.web.security.views.permission_denied"
