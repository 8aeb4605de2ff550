# The C module's interface (src/tollguard/bench/_rtpgen.c).
from typing import Any

def play(
    fd: int,
    dests: list[tuple[str, int]],
    start: float,
    duration: float,
    slots: int,
    interval: float,
    /,
) -> dict[str, Any]: ...
