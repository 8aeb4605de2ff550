"""Refuse passwords known from data breaches, offline (ASVS 6.2.12, NIST SP 800-63B).

Two sources, neither reached over the network (the admin may have no outside access,
and a password, even hashed and truncated, should not leave the operator's machine):

* bundled: the 30,000 most common passwords of Mark Burnett's corpus of ten million
  breached passwords, as shipped in the ``zxcvbn`` package's frequency lists (Django's
  :class:`~django.contrib.auth.password_validation.CommonPasswordValidator` checks its
  own 20,000 next to it);
* optional, ``[web] breached_passwords_file``: a file in the format of Have I Been
  Pwned's downloadable "Pwned Passwords" list ordered by hash, one
  ``SHA1-IN-UPPER-HEX[:COUNT]`` per line, sorted. It is searched in place by
  bisection on byte offsets, so a list of hundreds of millions of lines costs a few
  dozen reads per password change and no memory.
"""

from __future__ import annotations

import hashlib
import logging
import os
from functools import cache
from pathlib import Path
from typing import Any, BinaryIO

from django.conf import settings
from django.core.exceptions import ValidationError

log = logging.getLogger(__name__)

_HASH_LENGTH = 40  # hex digits of a SHA-1


class BreachedFileError(Exception):
    """The configured breached-password file cannot be searched."""


@cache
def bundled_passwords() -> frozenset[str]:
    """The bundled breached passwords, lower-cased."""
    from zxcvbn.frequency_lists import FREQUENCY_LISTS

    return frozenset(word.casefold() for word in FREQUENCY_LISTS["passwords"])


def sha1_hex(password: str) -> bytes:
    """The upper-case hex SHA-1 of ``password`` as the Pwned Passwords list spells it."""
    # SHA-1 is the list's own key, not a password hash we store.
    return hashlib.sha1(password.encode(), usedforsecurity=False).hexdigest().upper().encode()


def _line_at(handle: BinaryIO, offset: int) -> bytes:
    """The first whole line that starts at or after byte ``offset`` (b"" past the end)."""
    if offset:
        # Reading from the byte before lands exactly at ``offset`` when a line ends
        # there, and at the next line start otherwise.
        handle.seek(offset - 1)
        handle.readline()
    else:
        handle.seek(0)
    return handle.readline()


def in_sorted_file(path: str | os.PathLike[str], digest: bytes) -> bool:
    """Whether ``digest`` keys a line of the sorted hash file at ``path``.

    The key of "the first line starting at or after offset o" never decreases as o
    grows, so bisection finds the smallest offset whose line sorts at or above
    ``digest``; lines may have any length (the counts after the colon differ).
    """
    try:
        with Path(path).open("rb") as handle:
            low, high = 0, handle.seek(0, os.SEEK_END)
            while low < high:
                middle = (low + high) // 2
                line = _line_at(handle, middle)
                if not line or line[:_HASH_LENGTH].upper() >= digest:
                    high = middle
                else:
                    low = middle + 1
            line = _line_at(handle, low).rstrip(b"\r\n")
    except OSError as exc:
        raise BreachedFileError(f"{path}: {exc.strerror or exc}") from exc
    key, _, _count = line.partition(b":")
    return key.upper() == digest


def configured_file() -> str:
    return str(settings.TOLLGUARD.web.breached_passwords_file)


class BreachedPasswordValidator:
    """Refuse a password found in the bundled list or in the configured hash file."""

    def validate(self, password: str, user: Any = None) -> None:
        breached = password.casefold() in bundled_passwords()
        path = configured_file()
        if not breached and path:
            try:
                breached = in_sorted_file(path, sha1_hex(password))
            except BreachedFileError as exc:
                # Fail closed: an unchecked password is what the list is there to stop.
                log.error("breached-password list unreadable: %s", exc)
                raise ValidationError(
                    "The list of breached passwords cannot be read, so no password can be"
                    " set now; tell the operator.",
                    code="password_list_unavailable",
                ) from exc
        if breached:
            raise ValidationError(
                "This password appears in lists of passwords stolen in data breaches.",
                code="password_breached",
            )

    def get_help_text(self) -> str:
        return "Your password can't be one known from data breaches."
