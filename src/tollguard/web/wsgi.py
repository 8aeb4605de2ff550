"""WSGI entry point, for operators who run the admin behind a WSGI server."""

from __future__ import annotations

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tollguard.web.settings.prod")

application = get_wsgi_application()
