"""The whole site with the admin at a fixed test path (the real one is set at init)."""

from __future__ import annotations

from django.contrib import admin
from django.urls import URLPattern, URLResolver, include, path

urlpatterns: list[URLPattern | URLResolver] = [
    path("hidden/", admin.site.urls),
    path("api/v1/", include("tollguard.web.api.urls")),
    path("portal/", include("tollguard.web.portal.urls")),
]
