"""Anchoring a session description on a relay: what each side announced, and the rewrite.

Pure functions over :class:`tollguard.sip.sdp.SessionDescription`:

* :func:`announced` reads, per media line, where that side will send from and expects
  to receive (RFC 8866 ``c=``/``m=``, the RTCP port of RFC 3605 ``a=rtcp`` or RTP + 1);
* :func:`direction` reads the stream direction (RFC 3264 §5.1, §8.4; ``c=0.0.0.0`` is the
  old RFC 2543 hold);
* :func:`anchor` points every relayed stream at the relay's address and ports, drops
  what would let the two sides reach each other around the relay (ICE candidates, RTCP
  multiplexing, which the relay does not do), and names the relay in ``o=``.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass, replace

from tollguard.sip.sdp import Attribute, Connection, MediaDescription, SessionDescription

__all__ = [
    "RELAYED_PROTOCOLS",
    "Announced",
    "RelayPorts",
    "anchor",
    "announced",
    "direction",
    "is_ip",
    "on_hold",
]

# RTP over UDP, with or without SRTP and feedback (RFC 3551, 3711, 4585, 5124).
RELAYED_PROTOCOLS = frozenset({"RTP/AVP", "RTP/AVPF", "RTP/SAVP", "RTP/SAVPF"})
_DIRECTIONS = frozenset({"sendrecv", "sendonly", "recvonly", "inactive"})
# Attributes that would let the sides find each other around the relay (RFC 8839 ICE,
# RFC 5761 RTCP multiplexing, which needs RTP and RTCP on one port).
_DROPPED_ATTRIBUTES = frozenset(
    {
        "candidate",
        "remote-candidates",
        "end-of-candidates",
        "ice-ufrag",
        "ice-pwd",
        "ice-options",
        "ice-lite",
        "ice-mismatch",
        "ice-pacing",
        "rtcp-mux",
        "rtcp-mux-only",
        "rtcp",
    }
)
_UNSPECIFIED = frozenset({"0.0.0.0", "::"})  # noqa: S104 (compared against, not bound)


@dataclass(frozen=True, slots=True)
class Announced:
    """Where one side's stream is: its RTP and RTCP addresses (hosts are IP literals)."""

    host: str
    rtp_port: int
    rtcp_host: str
    rtcp_port: int


@dataclass(frozen=True, slots=True)
class RelayPorts:
    """The relay's RTP port for one stream as seen by one side (RTCP is the next port)."""

    rtp: int

    @property
    def rtcp(self) -> int:
        return self.rtp + 1


def is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def relayable(media: MediaDescription) -> bool:
    return media.port != 0 and media.proto in RELAYED_PROTOCOLS


def announced(sdp: SessionDescription) -> list[Announced | None]:
    """Per media line, where that side's media is; None for a line not relayed.

    A stream is not relayed when it is rejected (port 0), not RTP over UDP, or has no
    usable unicast address (none, a host name, or the unspecified address of a hold).
    """
    result: list[Announced | None] = []
    for media in sdp.media:
        connection = media.connection or sdp.connection
        host = connection.address if connection is not None else ""
        if not relayable(media) or not is_ip(host) or host in _UNSPECIFIED:
            result.append(None)
            continue
        rtcp_host, rtcp_port = host, media.port + 1
        value = media.attribute("rtcp")
        if value:
            # RFC 3605: a=rtcp:<port> [IN IP4 <address>]
            parts = value.split()
            if parts[0].isdigit() and 0 < int(parts[0]) < 65536:
                rtcp_port = int(parts[0])
            if len(parts) == 4 and is_ip(parts[3]) and parts[3] not in _UNSPECIFIED:
                rtcp_host = parts[3]
        result.append(Announced(host, media.port, rtcp_host, rtcp_port))
    return result


def direction(sdp: SessionDescription) -> str:
    """The direction of the first relayed stream (media level, else session level)."""
    session_level = next(
        (a.name for a in sdp.attributes if a.name in _DIRECTIONS and a.value is None),
        "sendrecv",
    )
    for media in sdp.media:
        if not relayable(media):
            continue
        connection = media.connection or sdp.connection
        if connection is not None and connection.address in _UNSPECIFIED:
            return "inactive"  # RFC 2543 hold
        for attribute in media.attributes:
            if attribute.name in _DIRECTIONS and attribute.value is None:
                return attribute.name
        return session_level
    return session_level


def on_hold(sdp: SessionDescription) -> bool:
    """Whether this side does not both send and receive (hold, RFC 3264 §8.4)."""
    return direction(sdp) != "sendrecv"


def anchor(
    sdp: SessionDescription,
    host: str,
    ports: Sequence[RelayPorts | None],
    *,
    protocols: Sequence[str | None] = (),
    extra: Sequence[tuple[Attribute, ...]] = (),
) -> SessionDescription:
    """``sdp`` pointed at the relay: ``host``, and ``ports[i]`` for media line ``i``.

    A line without relay ports is rejected (port 0) unless it was already. ``protocols``
    may replace a line's transport protocol (``RTP/SAVP`` <-> ``RTP/AVP`` where the relay
    terminates SRTP) and ``extra`` adds attributes to it (the relay's ``a=crypto``);
    every ``a=crypto`` line of the original is dropped, since its keys are not the ones
    the relay uses towards this side.
    """
    if len(ports) != len(sdp.media):
        raise ValueError(f"{len(ports)} port pairs for {len(sdp.media)} media lines")
    addrtype = "IP6" if ":" in host else "IP4"
    connection = Connection("IN", addrtype, host)
    media: list[MediaDescription] = []
    for index, item in enumerate(sdp.media):
        relay = ports[index]
        if relay is None:
            media.append(replace(item, port=0, port_count=None))
            continue
        attributes = [
            a for a in item.attributes if a.name not in _DROPPED_ATTRIBUTES and a.name != "crypto"
        ]
        attributes.append(Attribute("rtcp", f"{relay.rtcp} IN {addrtype} {host}"))
        if index < len(extra):
            attributes.extend(extra[index])
        proto = protocols[index] if index < len(protocols) else None
        media.append(
            replace(
                item,
                port=relay.rtp,
                port_count=None,
                proto=proto or item.proto,
                connection=connection if item.connection is not None else None,
                attributes=tuple(attributes),
            )
        )
    session_attributes = tuple(a for a in sdp.attributes if a.name not in _DROPPED_ATTRIBUTES)
    origin = replace(sdp.origin, addrtype=addrtype, address=host)
    return replace(
        sdp,
        origin=origin,
        connection=connection,
        attributes=session_attributes,
        media=tuple(media),
    )
