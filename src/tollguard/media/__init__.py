"""Media backends: what happens to a call's RTP, behind one interface.

A backend sees the session descriptions (RFC 8866) the switch passes between the two
sides of a call and may rewrite them to anchor the media on itself: ``bypass`` leaves
them untouched (the two sides' RTP flows directly between them), ``relay`` anchors the
media on the switch's embedded relay (:mod:`tollguard.media.relay`), ``rtpengine`` on an
rtpengine driven over its ng control protocol (:mod:`tollguard.media.rtpengine`).
"""

from tollguard.media.backend import (
    Bypass,
    MediaBackend,
    MediaCounters,
    MediaError,
    MediaRefused,
    Party,
)

__all__ = ["Bypass", "MediaBackend", "MediaCounters", "MediaError", "MediaRefused", "Party"]
