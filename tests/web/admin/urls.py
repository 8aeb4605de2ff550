"""The admin at a fixed test path (the real one is chosen at ``tollguard init``)."""

from __future__ import annotations

from django.contrib import admin
from django.urls import URLPattern, URLResolver, path

urlpatterns: list[URLPattern | URLResolver] = [path("hidden/", admin.site.urls)]
