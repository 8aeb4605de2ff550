"""The shield's and fraud engine's modules export exactly what they define."""

from __future__ import annotations

import importlib

import pytest


@pytest.mark.parametrize(
    "module",
    [
        "tollguard.domain.events",
        "tollguard.domain.fraud",
        "tollguard.domain.limits",
        "tollguard.domain.shield",
        "tollguard.state.geoip",
        "tollguard.state.memory",
        "tollguard.state.sync",
    ],
)
def test_all_names_exist_once(module: str) -> None:
    loaded = importlib.import_module(module)
    names = loaded.__all__
    assert len(set(names)) == len(names)
    for name in names:
        assert hasattr(loaded, name), f"{module}.{name}"
