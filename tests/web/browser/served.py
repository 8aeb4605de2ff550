"""A real served web app in a throw-away data directory, for browser and scanner tests.

:func:`serve` runs ``tollguard init`` (loopback only, SIP port 0, a free web port), then
starts the web process as ``tollguard serve`` does (:func:`tollguard.processes.start_web`:
uvicorn over HTTPS with the data directory's self-signed certificate and the production
settings), waits until it answers, and stops it afterwards. Nothing here touches the test
process's own Django.
"""

from __future__ import annotations

import json
import os
import re
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from tollguard import config, processes

SEED_SCRIPT = Path(__file__).with_name("seed.py")
TOLLGUARD = Path(sys.executable).with_name("tollguard")
START_TIMEOUT_S = 30.0


@dataclass(frozen=True, slots=True)
class ServedApp:
    """Where a served app answers and what its data directory holds."""

    data_dir: Path
    port: int
    admin_path: str
    admin_user: str
    admin_password: str
    seed: dict[str, object] = field(default_factory=dict)

    @property
    def base_url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def admin_url(self) -> str:
        return f"{self.base_url}/{self.admin_path}"

    @property
    def cert_path(self) -> Path:
        return self.data_dir / "tls" / "cert.pem"

    def manage(self, *args: str) -> subprocess.CompletedProcess[str]:
        """``tollguard manage ARGS`` against this data directory."""
        return subprocess.run(
            [str(TOLLGUARD), "manage", *args],
            env=_env(self.data_dir),
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        )


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def _env(data_dir: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["TOLLGUARD_HOME"] = str(data_dir)
    env["DJANGO_SETTINGS_MODULE"] = "tollguard.web.settings.prod"
    return env


def _init(data_dir: Path, port: int) -> tuple[str, str, str]:
    done = subprocess.run(
        [
            str(TOLLGUARD),
            "init",
            "--bind",
            "127.0.0.1",
            "--sip-port",
            "0",
            "--web-port",
            str(port),
        ],
        env=_env(data_dir),
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    admin = re.search(r"admin:\s+https://[^/]+/(\S+)", done.stdout)
    user = re.search(r"user:\s+(\S+)", done.stdout)
    password = re.search(r"password:\s+(\S+)", done.stdout)
    assert admin and user and password, done.stdout
    return admin.group(1), user.group(1), password.group(1)


def _wait_until_up(process: subprocess.Popen[bytes], url: str) -> None:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the web process exited with {process.returncode}")
        try:
            with urllib.request.urlopen(url, context=context, timeout=2):
                return
        except urllib.error.HTTPError:
            return  # it answered; the status does not matter here
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"the web process did not answer {url} in {START_TIMEOUT_S} s")


@contextmanager
def serve(data_dir: Path, *, seed: bool = False) -> Iterator[ServedApp]:
    """Initialise ``data_dir``, optionally seed it, and serve it until the block ends."""
    port = free_port()
    admin_path, user, password = _init(data_dir, port)
    seeded: dict[str, object] = {}
    if seed:
        done = subprocess.run(
            [sys.executable, str(SEED_SCRIPT), str(data_dir)],
            env=_env(data_dir),
            capture_output=True,
            text=True,
            check=True,
            timeout=120,
        )
        seeded = json.loads(done.stdout.strip().splitlines()[-1])
    # Exactly how ``tollguard serve`` starts it, TLS options included.
    process = processes.start_web(config.load(data_dir))
    try:
        app = ServedApp(
            data_dir=data_dir,
            port=port,
            admin_path=admin_path,
            admin_user=user,
            admin_password=password,
            seed=seeded,
        )
        _wait_until_up(process, f"{app.base_url}/portal/login/")
        yield app
    finally:
        processes.stop_web(process)
