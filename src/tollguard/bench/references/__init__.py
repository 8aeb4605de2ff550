"""The reference systems the call benchmark measures Tollguard against.

* **Kamailio** as a transaction-stateful, record-routing proxy relaying every call to
  one gateway (``kamailio.cfg``, a template filled by :func:`kamailio_config`);
* the **sippy B2BUA** (``sippy.b2bua_simple`` from PyPI, started through
  :mod:`.sippy_b2bua`): a pure-Python back-to-back user agent that bridges every call
  to one next hop, with no authentication and no accounting.

Both listen on UDP loopback and forward to the SIPp gateway. Neither authenticates or
rates, so they bound from above what a Python (sippy) or C (Kamailio) SIP stack costs
for the same call shape.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from importlib import resources
from pathlib import Path

__all__ = [
    "KAMAILIO_MODULE_DIRS",
    "ReferenceUnavailable",
    "kamailio_binary",
    "kamailio_config",
    "start_kamailio",
    "start_sippy",
]

KAMAILIO_MODULE_DIRS = (
    "/usr/lib/x86_64-linux-gnu/kamailio/modules",
    "/usr/lib/aarch64-linux-gnu/kamailio/modules",
    "/usr/lib/kamailio/modules",
    "/usr/local/lib64/kamailio/modules",
    "/usr/local/lib/kamailio/modules",
)


_PLACEHOLDER = re.compile(r"@([A-Z_]+)@")


class ReferenceUnavailable(Exception):
    """A reference system is not installed on this machine."""


def kamailio_binary() -> str:
    path = os.environ.get("KAMAILIO") or shutil.which("kamailio") or "/usr/sbin/kamailio"
    if not Path(path).is_file():
        raise ReferenceUnavailable("kamailio is not installed (apt-get install kamailio)")
    return path


def _module_dir() -> str:
    configured = os.environ.get("KAMAILIO_MODULES")
    for candidate in (configured, *KAMAILIO_MODULE_DIRS):
        if candidate and (Path(candidate) / "tm.so").is_file():
            return candidate
    raise ReferenceUnavailable("no Kamailio module directory with tm.so found")


def kamailio_config(
    *,
    listen_host: str,
    listen_port: int,
    gateway_host: str,
    gateway_port: int,
    children: int = 2,
    module_path: str | None = None,
) -> str:
    """The reference proxy's configuration for these addresses."""
    template = resources.files(__package__).joinpath("kamailio.cfg").read_text()
    values = {
        "LISTEN_HOST": listen_host,
        "LISTEN_PORT": str(listen_port),
        "GATEWAY_HOST": gateway_host,
        "GATEWAY_PORT": str(gateway_port),
        "CHILDREN": str(children),
        "MODULE_PATH": module_path or _module_dir(),
    }
    text = _PLACEHOLDER.sub(lambda m: values[m.group(1)], template)
    return text


def start_kamailio(
    workdir: Path,
    *,
    listen_host: str,
    listen_port: int,
    gateway_host: str,
    gateway_port: int,
    children: int = 2,
    shared_memory_mb: int = 256,
) -> subprocess.Popen[bytes]:
    """Kamailio in the foreground (``-DD``); its workers are children of the process.

    Transactions live on in shared memory for their wait time after each call; at a few
    hundred calls a second 64 MB runs out and Kamailio answers 500, hence the default.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    cfg = workdir / "kamailio.cfg"
    cfg.write_text(
        kamailio_config(
            listen_host=listen_host,
            listen_port=listen_port,
            gateway_host=gateway_host,
            gateway_port=gateway_port,
            children=children,
        )
    )
    command = [
        kamailio_binary(),
        "-DD",
        "-E",
        "-f",
        str(cfg),
        "-m",
        str(shared_memory_mb),
        "-M",
        "8",
        "-w",
        str(workdir),
        "-Y",
        str(workdir),
        "-P",
        str(workdir / "kamailio.pid"),
    ]
    with (workdir / "kamailio.log").open("wb") as log:
        return subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=log)


def start_sippy(
    workdir: Path,
    *,
    listen_host: str,
    listen_port: int,
    gateway_host: str,
    gateway_port: int,
) -> subprocess.Popen[bytes]:
    """The sippy B2BUA in the foreground, bridging every call to the gateway."""
    try:
        import sippy  # noqa: F401 - only to report a missing package clearly
    except ImportError as exc:
        raise ReferenceUnavailable(
            "the sippy package is not installed (pip install sippy)"
        ) from exc
    workdir.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    # Per-message logging would dominate its CPU time; keep errors only.
    env.update({"SIPLOG_BEND": "stderr", "SIPLOG_LVL": "ERR"})
    command = [
        sys.executable,
        "-m",
        "tollguard.bench.references.sippy_b2bua",
        "-f",
        "-l",
        listen_host,
        "-p",
        str(listen_port),
        "-n",
        f"{gateway_host}:{gateway_port}",
    ]
    with (workdir / "sippy.log").open("wb") as log:
        return subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env, cwd=workdir
        )
