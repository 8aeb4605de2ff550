"""Settings for the whole suite.

Hypothesis judges speed by wall-clock time by default (a 200 ms deadline per example and
a health check that fails slow data generation). On a shared or loaded machine that
fails tests whose behaviour is right, and tests assert behaviour, never time: both are
off for every property test. Each test still sets its own number of examples.
"""

from __future__ import annotations

from hypothesis import HealthCheck, settings

settings.register_profile(
    "tollguard",
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile("tollguard")
