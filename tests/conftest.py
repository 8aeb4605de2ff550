"""Settings for the whole suite.

Hypothesis judges speed by wall-clock time by default (a 200 ms deadline per example and
a health check that fails slow data generation). On a shared or loaded machine that
fails tests whose behaviour is right, and tests assert behaviour, never time: both are
off for every property test. Each test still sets its own number of examples.

With pytest-xdist (``scripts/test`` runs ``-n auto``), tests are handed to the workers
one at a time, except the units of ``SERIAL_UNITS``: each goes whole to one worker, one
test after another, before anything else. The SIPp suites start real switches and
flood them, and the browser tests share one served app; they are the longest units of
work, and two of them at once on a small machine would only slow each other down.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "tollguard",
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile("tollguard")

# Node ids start with the path from the repository root.
SERIAL_UNITS = {
    "sipp": ("tests/integration/", "tests/bench/"),
    "browser": ("tests/web/browser/",),
}


def work_unit(nodeid: str) -> str:
    """The unit a test is scheduled in: the name of its serial unit, or its own id."""
    for unit, dirs in SERIAL_UNITS.items():
        if nodeid.startswith(dirs):
            return unit
    return nodeid


@pytest.hookimpl(tryfirst=True, optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """xdist's default (``-n`` alone, ``--dist load``) hands out single tests; here it
    hands out the units of :func:`work_unit`, the serial ones first. Any other
    ``--dist`` is left to xdist."""
    if config.getvalue("dist") != "load":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class ByUnit(LoadScopeScheduling):
        def __init__(self, config: pytest.Config, log: Any) -> None:
            super().__init__(config, log)
            # Units in collection order, not by test count.
            config.option.loadscopereorder = False

        def _split_scope(self, nodeid: str) -> str:
            return work_unit(nodeid)

        def _assign_work_unit(self, node: Any) -> None:
            # The serial units go out first (the workers' collections keep their order:
            # work is sent as indexes into them).
            for unit in SERIAL_UNITS:
                if unit in self.workqueue:
                    self.workqueue.move_to_end(unit, last=False)
                    break
            super()._assign_work_unit(node)

    return ByUnit(config, log)
