"""SIPp scenarios shipped with Tollguard, used by the call benchmark and the SIPp tests.

Callers (``uac_*``) and gateways (``uas_*``); each file's header comment says what it
does and which ``-s``/``-key``/``-d``/``-au``/``-ap`` values it reads.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

__all__ = ["SCENARIOS", "scenario_path"]

SCENARIOS = (
    "uac_basic",
    "uac_auth",
    "uac_expect_code",
    "uac_auth_expect_code",
    "uac_cancel",
    "uac_callee_hangup",
    "uac_session_timer",
    "uac_credit_cut",
    "uac_until_bye",
    "uac_media",
    "uac_media_timeout",
    "uac_register",
    "uac_register_expect_code",
    "uac_register_wait",
    "uas_answer",
    "uas_answer_media",
    "uas_reject",
    "uas_ring_cancel",
    "uas_silent",
    "uas_trying",
    "uas_hangup",
)


def scenario_path(name: str) -> Path:
    """The file of scenario ``name`` (with or without ``.xml``); KeyError if unknown."""
    stem = name.removesuffix(".xml")
    if stem not in SCENARIOS:
        raise KeyError(f"unknown SIPp scenario {name!r}; known: {', '.join(SCENARIOS)}")
    path = Path(str(resources.files(__package__).joinpath(f"{stem}.xml")))
    if not path.is_file():
        raise KeyError(f"SIPp scenario {stem!r} is not installed at {path}")
    return path
