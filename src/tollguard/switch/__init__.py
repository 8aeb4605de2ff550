"""Call control: the B2BUA, inbound authentication, the plan loader and the CDR writer.

:func:`run_switch` is the entry point ``tollguard serve`` calls.
"""

from tollguard.switch.auth import Authenticated, Authenticator, Challenge, Rejected
from tollguard.switch.b2bua import B2bua, CallState
from tollguard.switch.cdr_writer import CdrWriter
from tollguard.switch.loader import PlanLoader
from tollguard.switch.q850 import q850_cause
from tollguard.switch.server import run_switch

__all__ = [
    "Authenticated",
    "Authenticator",
    "B2bua",
    "CallState",
    "CdrWriter",
    "Challenge",
    "PlanLoader",
    "Rejected",
    "q850_cause",
    "run_switch",
]
