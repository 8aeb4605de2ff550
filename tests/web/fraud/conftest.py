"""The admin at its test path and a signed-in superuser, as the admin tests have them."""

from __future__ import annotations

from tests.web.admin.conftest import admin_urls, client, superuser

__all__ = ["admin_urls", "client", "superuser"]
