"""The dashboard's pages in the admin, under the CDR admin.

The dashboard reads CDRs, so its pages sit with them: behind the admin's sign-in,
second factor and address rules, and the permission to view CDRs. The dashboard extends
the CDR admin rather than the CDR admin importing the dashboard, so the CDR app does not
depend on the dashboard and the dashboard stays optional. Whichever of the two admin
modules the admin's discovery imports first, importing the CDR admin here registers it,
and its extension then takes its place.
"""

from __future__ import annotations

from django.contrib import admin
from django.urls import URLPattern

from tollguard.web.cdr.admin import CdrAdmin
from tollguard.web.cdr.models import Cdr
from tollguard.web.dashboard.views import admin_urls

__all__ = ["CdrDashboardAdmin"]


class CdrDashboardAdmin(CdrAdmin):
    """The CDR admin with the dashboard page and its data at ``dashboard/``."""

    def get_urls(self) -> list[URLPattern]:
        return admin_urls(self) + super().get_urls()


admin.site.unregister(Cdr)
admin.site.register(Cdr, CdrDashboardAdmin)
