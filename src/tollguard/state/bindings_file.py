"""Bindings kept in a file across restarts of the switch (docs/registrar.md, "Restart").

Only bindings made over UDP are kept: a TCP, TLS or WebSocket binding belongs to its
connection, which a restart closes (the phone registers again over a new one, RFC 5626
§4.2). A UDP binding holds the address the REGISTER came from, which is where a call
to the phone goes (through the phone's NAT binding, which a restart of the switch does
not close), so after a restart a phone is reachable again at once instead of at its
next refresh.

The file is JSON, written whole to a temporary file and renamed over the old one (a
reader never sees half of it), readable by the switch's user only: it holds where each
phone is. A file that cannot be read back (damaged, another format) is reported and
ignored: the phones are then re-learnt at their next refresh, as without the file.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from tollguard.domain.registration import Q_MAX, Binding

__all__ = ["FORMAT", "dump", "kept", "parse", "read", "write"]

FORMAT = 1
_STR_FIELDS = ("contact", "call_id", "instance", "user_agent")
_INT_FIELDS = ("account_id", "cseq", "reg_id", "q")


def kept(binding: Binding) -> bool:
    """Whether a binding survives a restart: made over UDP."""
    return binding.transport == "udp" and binding.connection == 0


def dump(bindings: Iterable[Binding]) -> str:
    """The file's text for the bindings that survive a restart, in a stable order."""
    records = [
        {
            "account_id": b.account_id,
            "contact": b.contact,
            "expires_at": b.expires_at,
            "call_id": b.call_id,
            "cseq": b.cseq,
            "source": [b.source[0], b.source[1]],
            "instance": b.instance,
            "user_agent": b.user_agent,
            "reg_id": b.reg_id,
            "q": b.q,
        }
        for b in sorted(
            (b for b in bindings if kept(b)), key=lambda b: (b.account_id, b.contact, b.reg_id)
        )
    ]
    return json.dumps({"format": FORMAT, "bindings": records}, separators=(",", ":"))


def parse(text: str, now: float) -> tuple[list[Binding], list[str]]:
    """The bindings of a file's text that have not expired at ``now``, and what was wrong.

    A file that is not this format gives no bindings and one problem; a record that is
    wrong is skipped with a problem naming its position.
    """
    try:
        document = json.loads(text)
    except ValueError as exc:
        return [], [f"not JSON: {exc}"]
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        return [], [f"not a bindings file of format {FORMAT}"]
    records = document.get("bindings")
    if not isinstance(records, list):
        return [], ["no list of bindings"]
    found: list[Binding] = []
    problems: list[str] = []
    for index, record in enumerate(records, 1):
        try:
            binding = _binding(record)
        except KeyError as exc:
            problems.append(f"binding {index}: {exc.args[0]} is missing")
            continue
        except (TypeError, ValueError) as exc:
            problems.append(f"binding {index}: {exc}")
            continue
        if binding.expires_at > now:
            found.append(binding)
    return found, problems


def _binding(record: Any) -> Binding:
    if not isinstance(record, dict):
        raise TypeError("not an object")
    for name in _STR_FIELDS:
        if not isinstance(record[name], str):
            raise TypeError(f"{name} is not a string")
    for name in _INT_FIELDS:
        if type(record[name]) is not int:
            raise TypeError(f"{name} is not an integer")
    expires_at = record["expires_at"]
    if type(expires_at) not in (int, float):
        raise TypeError("expires_at is not a number")
    source = record["source"]
    if (
        not isinstance(source, list)
        or len(source) != 2
        or not isinstance(source[0], str)
        or type(source[1]) is not int
        or not 0 < source[1] < 65536
    ):
        raise ValueError("source is not [host, port]")
    if not 0 <= record["q"] <= Q_MAX or record["reg_id"] < 0 or record["account_id"] <= 0:
        raise ValueError("q, reg_id or account_id out of range")
    if not record["contact"]:
        raise ValueError("empty contact")
    return Binding(
        account_id=record["account_id"],
        contact=record["contact"],
        expires_at=float(expires_at),
        call_id=record["call_id"],
        cseq=record["cseq"],
        source=(source[0], source[1]),
        transport="udp",
        connection=0,
        instance=record["instance"],
        user_agent=record["user_agent"],
        reg_id=record["reg_id"],
        q=record["q"],
    )


def read(path: Path) -> str | None:
    """The file's text, or None when there is no file."""
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None


def write(path: Path, text: str) -> None:
    """Replace the file with ``text`` at once (mode 0600)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            temporary.unlink()
        raise
