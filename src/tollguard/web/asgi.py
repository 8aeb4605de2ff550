"""ASGI entry point for the web process (``tollguard serve`` runs it under uvicorn)."""

from __future__ import annotations

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tollguard.web.settings.prod")

application = get_asgi_application()
