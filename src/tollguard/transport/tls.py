"""TLS contexts for SIP over TLS (RFC 3261 §26.2.1, RFC 5630).

The server side presents the data directory's certificate; the client side (towards
provider gateways) verifies the peer unless the operator turns verification off for a
gateway with a self-signed certificate.
"""

from __future__ import annotations

import ssl
from pathlib import Path


def server_context(cert_path: Path, key_path: Path) -> ssl.SSLContext:
    """A TLS 1.2+ server context presenting ``cert_path``/``key_path``."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(str(cert_path), str(key_path))
    return context


def client_context(*, verify: bool = True, cafile: Path | None = None) -> ssl.SSLContext:
    """A TLS 1.2+ client context; ``verify=False`` accepts any certificate."""
    context = ssl.create_default_context(
        ssl.Purpose.SERVER_AUTH, cafile=str(cafile) if cafile else None
    )
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context
