"""Per-key rate limits: each :class:`ApiKey` carries its own requests per minute.

Counts live in Django's cache, so they are per process with the default local-memory
cache; a shared cache (Redis) makes them global across web workers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rest_framework.request import Request
from rest_framework.throttling import SimpleRateThrottle

from tollguard.web.api.models import ApiKey

if TYPE_CHECKING:
    # Importing DRF's views here would be circular: DRF imports this module from its settings.
    from rest_framework.views import APIView

_WINDOW_S = 60


class ApiKeyRateThrottle(SimpleRateThrottle):
    scope = "api_key"

    def __init__(self) -> None:
        # The rate is not a setting: it comes from the key of each request.
        self.rate = None
        self.num_requests = 0
        self.duration = _WINDOW_S

    def get_cache_key(self, request: Request, view: APIView) -> str | None:
        key = request.auth
        if not isinstance(key, ApiKey):
            return None
        return f"throttle_api_key_{key.pk}"

    def allow_request(self, request: Request, view: APIView) -> bool:
        key = request.auth
        if not isinstance(key, ApiKey):
            return True
        self.rate = f"{key.rate_per_minute}/min"
        self.num_requests, self.duration = key.rate_per_minute, _WINDOW_S
        return super().allow_request(request, view)
