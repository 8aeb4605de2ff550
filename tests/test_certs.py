from __future__ import annotations

import ssl
import stat
from pathlib import Path

from tollguard import certs


def test_self_signed_certificate_loads_into_tls_context(tmp_path: Path) -> None:
    cert, key = tmp_path / "tls" / "cert.pem", tmp_path / "tls" / "key.pem"
    certs.write_self_signed(cert, key, hostnames=["switch.example.net"])
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert certs.is_self_signed(cert)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)  # raises if the pair does not match
