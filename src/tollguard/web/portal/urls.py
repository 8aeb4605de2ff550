"""URLs of the customer portal, mounted at ``/portal/``."""

from __future__ import annotations

from django.urls import URLPattern, URLResolver, path

from tollguard.web.portal import views

app_name = "portal"

urlpatterns: list[URLPattern | URLResolver] = [
    path("", views.home, name="home"),
    path("login/", views.LoginView.as_view(), name="login"),
    path("logout/", views.LogoutView.as_view(), name="logout"),
    path("cdrs/", views.cdr_list, name="cdrs"),
    path("cdrs/export.csv", views.cdr_export, name="cdr_export"),
    path("ledger/", views.ledger, name="ledger"),
    path("ledger/export.csv", views.ledger_export, name="ledger_export"),
    path("rate-card.csv", views.rate_card, name="rate_card"),
    path("accounts/", views.account_list, name="accounts"),
    path("numbers/", views.did_list, name="numbers"),
    path("accounts/<int:pk>/reset/", views.account_reset, name="account_reset"),
    path("api-keys/", views.api_key_list, name="api_keys"),
    path("api-keys/<int:pk>/revoke/", views.api_key_revoke, name="api_key_revoke"),
    path("sessions/", views.session_list, name="sessions"),
    path("sessions/<int:pk>/end/", views.session_end, name="session_end"),
    path("sessions/end-others/", views.sessions_end_others, name="sessions_end_others"),
    path("password/", views.password_change, name="password"),
]
