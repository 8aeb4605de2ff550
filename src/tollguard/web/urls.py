"""URL configuration: the admin lives at the random path chosen by ``tollguard init``.

An empty ``web.admin_path`` means the admin is not mounted at all.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib import admin
from django.urls import URLPattern, URLResolver, path


def admin_prefix(admin_path: str) -> str:
    """``admin_path`` as a URL prefix (``"x7f/"``), or ``""`` when the admin is off."""
    cleaned = admin_path.strip("/")
    return f"{cleaned}/" if cleaned else ""


urlpatterns: list[URLPattern | URLResolver] = []

_prefix = admin_prefix(settings.TOLLGUARD.web.admin_path)
if _prefix:
    urlpatterns.append(path(_prefix, admin.site.urls))
