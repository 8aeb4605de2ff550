"""Run Debian's rtpengine (``rtpengine-daemon``) on loopback for the tests and benchmarks.

rtpengine is started in the foreground, userspace only (``--table=-1``: no kernel
module here), with no configuration file (Debian's ``/etc/rtpengine/rtpengine.conf``
would bind its HTTP and CLI ports), its ng control port and media ports on 127.0.0.1
at ports chosen at run time, and stopped with SIGTERM.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path
from types import TracebackType
from typing import Self

from tollguard.config import MediaSettings
from tollguard.media.rtpengine import NgClient, NgError

__all__ = ["RtpengineNotFound", "RtpengineProcess", "rtpengine_binary"]

LOOPBACK = "127.0.0.1"


class RtpengineNotFound(RuntimeError):
    """rtpengine is not installed (Debian package ``rtpengine-daemon``)."""


def rtpengine_binary() -> str:
    """Path of ``rtpengine`` (``$RTPENGINE`` overrides); raises RtpengineNotFound."""
    path = os.environ.get("RTPENGINE") or shutil.which("rtpengine") or "/usr/bin/rtpengine"
    if not Path(path).exists():
        raise RtpengineNotFound("rtpengine is not installed (apt-get install rtpengine-daemon)")
    return path


class RtpengineProcess:
    """One rtpengine on loopback: ng control on ``ng_port``, media in the port range."""

    def __init__(
        self,
        ng_port: int,
        port_min: int,
        port_max: int,
        *,
        threads: int = 2,
        log_path: Path | None = None,
    ) -> None:
        self.ng_port = ng_port
        self.port_min = port_min
        self.port_max = port_max
        self.log_path = log_path
        self.args = [
            rtpengine_binary(),
            "--config-file=none",
            "--foreground",
            "--log-stderr",
            "--log-level=4",
            "--table=-1",
            "--no-fallback",
            f"--interface={LOOPBACK}",
            f"--listen-ng={LOOPBACK}:{ng_port}",
            f"--port-min={port_min}",
            f"--port-max={port_max}",
            f"--num-threads={threads}",
            # Tollguard ends calls on its own media timeout; rtpengine's is a backstop.
            "--timeout=600",
            "--endpoint-learning=off",
        ]
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    @property
    def address(self) -> tuple[str, int]:
        return (LOOPBACK, self.ng_port)

    def start(self, timeout_s: float = 30.0) -> Self:
        """Start rtpengine and wait until it answers ``ping``.

        It takes a few seconds on a busy machine (more with a large port range).
        """
        stderr = self.log_path.open("wb") if self.log_path else subprocess.DEVNULL
        try:
            self._process = subprocess.Popen(
                self.args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr
            )
        finally:
            if self.log_path and not isinstance(stderr, int):
                stderr.close()
        client = NgClient(self.address, 0.2)
        deadline = time.monotonic() + timeout_s
        try:
            while time.monotonic() < deadline:
                if self._process.poll() is not None:
                    raise RuntimeError(f"rtpengine exited with {self._process.returncode}")
                try:
                    client.request({"command": "ping"})
                except NgError:
                    continue
                return self
        finally:
            client.close()
        self.stop()
        raise RuntimeError(f"rtpengine did not answer on {self.address} in {timeout_s} s")

    def settings(self, **overrides: object) -> dict[str, object]:
        """The ``[media]`` settings that point Tollguard at this rtpengine."""
        return {"rtpengine": f"{LOOPBACK}:{self.ng_port}", **overrides}

    def media_settings(self, **overrides: object) -> MediaSettings:
        return MediaSettings(**self.settings(**overrides))  # type: ignore[arg-type]

    def stop(self) -> None:
        process = self._process
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
