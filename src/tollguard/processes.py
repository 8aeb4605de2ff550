"""The web process that ``tollguard serve`` supervises: how it is started and stopped.

The web app runs under uvicorn in a child process, over HTTPS with the data directory's
certificate and Mozilla's "intermediate" TLS configuration (see docs/architecture.md,
"Processes"). Browser tests start it through :func:`start_web` too, so what they test is
exactly what ``serve`` runs.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tollguard import config

__all__ = ["WEB_OPENSSL_CONF", "WEB_STOP_TIMEOUT_S", "WEB_TLS_CIPHERS", "start_web", "stop_web"]

# Mozilla's "intermediate" TLS configuration (ssl-config.mozilla.org, guideline 5.7):
# TLS 1.2 suites with forward secrecy and AEAD only (TLS 1.3 suites are all fine). The
# key-exchange groups cannot be set through uvicorn or Python's ssl module before 3.15,
# so an OpenSSL configuration for the web process limits them.
WEB_TLS_CIPHERS = ":".join(
    (
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        "ECDHE-RSA-AES128-GCM-SHA256",
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        "ECDHE-RSA-AES256-GCM-SHA384",
        "ECDHE-ECDSA-CHACHA20-POLY1305",
        "ECDHE-RSA-CHACHA20-POLY1305",
        "DHE-RSA-AES128-GCM-SHA256",
        "DHE-RSA-AES256-GCM-SHA384",
        "DHE-RSA-CHACHA20-POLY1305",
    )
)
WEB_OPENSSL_CONF = Path(__file__).with_name("openssl_web.cfg")
WEB_STOP_TIMEOUT_S = 10


def start_web(settings: config.Settings) -> subprocess.Popen[bytes]:
    """Start the web app for ``settings.data_dir`` as a child process (uvicorn, HTTPS)."""
    env = dict(os.environ)
    env["OPENSSL_CONF"] = str(WEB_OPENSSL_CONF)
    env[config.DATA_DIR_ENV] = str(settings.data_dir)
    env["DJANGO_SETTINGS_MODULE"] = "tollguard.web.settings.prod"
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        "tollguard.web.asgi:application",
        "--host",
        settings.web.listen_host,
        "--port",
        str(settings.web.listen_port),
        "--ssl-certfile",
        str(settings.tls_cert_path),
        "--ssl-keyfile",
        str(settings.tls_key_path),
        "--ssl-ciphers",
        WEB_TLS_CIPHERS,
        "--no-server-header",
        "--log-level",
        "warning",
    ]
    return subprocess.Popen(command, env=env)


def stop_web(process: subprocess.Popen[bytes]) -> None:
    """Ask the web process to stop; kill it if it has not within ``WEB_STOP_TIMEOUT_S``."""
    process.terminate()
    try:
        process.wait(timeout=WEB_STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
