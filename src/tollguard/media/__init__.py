"""Media backends: what happens to a call's RTP, behind one interface.

A backend sees the session descriptions (RFC 8866) the switch passes between the two
sides of a call and may rewrite them to anchor the media on itself. ``bypass`` leaves
them untouched: the two sides' RTP flows directly between them.
"""

from tollguard.media.backend import Bypass, MediaBackend

__all__ = ["Bypass", "MediaBackend"]
