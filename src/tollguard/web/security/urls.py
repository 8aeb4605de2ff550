"""The honeypot's URLs: the default admin path, which the real admin never uses."""

from __future__ import annotations

from django.urls import URLPattern, URLResolver, path, re_path

from tollguard.web.security import views

app_name = "honeypot"

urlpatterns: list[URLPattern | URLResolver] = [
    path("admin/login/", views.honeypot_login, name="login"),
    re_path(r"^admin/", views.honeypot_redirect, name="any"),
]
