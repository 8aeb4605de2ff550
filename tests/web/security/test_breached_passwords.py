"""Breached passwords refused offline (ASVS 6.2.12): the bundled list and a hash file."""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import random
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.test import override_settings
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from tollguard.web.security.breached import (
    BreachedFileError,
    bundled_passwords,
    in_sorted_file,
    sha1_hex,
)

# From the bundled list, long enough for every other rule (12+ characters), and not in
# Django's common-password list, so that only the breached-password check refuses it.
BUNDLED = "chickenwing101"
BOTH = "1qaz2wsx3edc"  # in both lists
# A passphrase no list holds, and one only the test's hash file holds.
FRESH = "lantern quarry velvet 1987 orbit"
LISTED = "tram maple hollow cinder 5521"


def deployment(**web: Any) -> Any:
    base = settings.TOLLGUARD
    return dataclasses.replace(base, web=dataclasses.replace(base.web, **web))


def codes(password: str) -> set[str]:
    try:
        validate_password(password)
    except ValidationError as caught:
        return {str(error.code) for error in caught.error_list}
    return set()


def hash_file(
    tmp_path: Path, passwords: list[str], *, noise: int = 500, crlf: bool = False
) -> Path:
    """A file shaped like the Pwned Passwords download: sorted ``HASH:COUNT`` lines."""
    rng = random.Random(7)
    keys = [sha1_hex(password).decode() for password in passwords]
    keys += [f"{rng.getrandbits(160):040X}" for _ in range(noise)]
    end = "\r\n" if crlf else "\n"
    lines = [f"{key}:{rng.randrange(1, 10**7)}{end}" for key in sorted(keys)]
    path = tmp_path / "pwned.txt"
    path.write_text("".join(lines), newline="")
    return path


def test_the_bundled_list_is_the_breach_corpus_top() -> None:
    passwords = bundled_passwords()
    assert len(passwords) >= 29_000
    assert {"password", "dragon", BUNDLED, BOTH} <= passwords


def test_a_bundled_breached_password_is_refused() -> None:
    assert BUNDLED in bundled_passwords()
    assert codes(BUNDLED) == {"password_breached"}
    assert codes(BUNDLED.upper()) == {"password_breached"}
    assert codes(FRESH) == set()
    assert codes(BOTH) == {"password_breached", "password_too_common"}


def test_the_hash_is_the_lists_own_spelling() -> None:
    # SHA-1("password"), as the Pwned Passwords list writes it.
    assert sha1_hex("password") == b"5BAA61E4C9B93F3F0682250B6CF8331B7EE68FD8"


@pytest.mark.parametrize("crlf", [False, True], ids=["lf", "crlf"])
def test_a_password_in_the_configured_file_is_refused(tmp_path: Path, crlf: bool) -> None:
    path = hash_file(tmp_path, [LISTED], crlf=crlf)
    with override_settings(TOLLGUARD=deployment(breached_passwords_file=str(path))):
        assert codes(LISTED) == {"password_breached"}
        assert codes(FRESH) == set()
    # Without the file the same password passes: the file is what knew it.
    assert codes(LISTED) == set()


@pytest.mark.parametrize("where", ["first", "last", "only"])
def test_the_search_finds_the_ends_of_the_file(tmp_path: Path, where: str) -> None:
    digest = sha1_hex(LISTED)
    below, above = b"0" * 40, b"F" * 40
    lines = {"first": [digest, above], "last": [below, digest], "only": [digest]}[where]
    path = tmp_path / "ends.txt"
    path.write_bytes(b"".join(key + b":3\n" for key in lines))
    assert in_sorted_file(path, digest)
    assert not in_sorted_file(path, sha1_hex(FRESH))


def test_an_empty_file_holds_nothing(tmp_path: Path) -> None:
    path = tmp_path / "empty.txt"
    path.write_bytes(b"")
    assert not in_sorted_file(path, sha1_hex(LISTED))


def test_a_prefix_of_a_listed_hash_is_not_a_match(tmp_path: Path) -> None:
    path = tmp_path / "short.txt"
    path.write_bytes(sha1_hex(LISTED)[:39] + b":1\n")
    assert not in_sorted_file(path, sha1_hex(LISTED))


@hypothesis_settings(max_examples=40, deadline=None)
@given(
    listed=st.lists(st.text(min_size=1, max_size=12), min_size=1, max_size=60, unique=True),
    probe=st.text(min_size=1, max_size=12),
    counts=st.lists(st.integers(1, 10**9), min_size=60, max_size=60),
)
def test_the_bisection_agrees_with_a_set(
    tmp_path_factory: pytest.TempPathFactory, listed: list[str], probe: str, counts: list[int]
) -> None:
    # Lines of every length (the counts differ), probed for members and non-members.
    keys = sorted(sha1_hex(password) for password in listed)
    path = tmp_path_factory.mktemp("bisect") / "list.txt"
    lines = (key + b":%d\n" % count for key, count in zip(keys, counts[: len(keys)], strict=True))
    path.write_bytes(b"".join(lines))
    for password in [*listed, probe]:
        assert in_sorted_file(path, sha1_hex(password)) == (sha1_hex(password) in keys)


def test_an_unreadable_file_refuses_every_change_and_is_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    missing = tmp_path / "gone.txt"
    with pytest.raises(BreachedFileError):
        in_sorted_file(missing, sha1_hex(FRESH))
    with (
        override_settings(TOLLGUARD=deployment(breached_passwords_file=str(missing))),
        caplog.at_level(logging.ERROR, "tollguard.web.security.breached"),
    ):
        assert codes(FRESH) == {"password_list_unavailable"}
    assert "gone.txt" in caplog.text


def test_the_check_reports_an_unreadable_file(tmp_path: Path) -> None:
    missing = tmp_path / "gone.txt"
    with (
        override_settings(TOLLGUARD=deployment(breached_passwords_file=str(missing))),
        pytest.raises(SystemCheckError, match=r"security\.E011"),
    ):
        call_command("check", tags=["security"])
    path = hash_file(tmp_path, [LISTED])
    with override_settings(TOLLGUARD=deployment(breached_passwords_file=str(path))):
        call_command("check", tags=["security"])


def test_the_real_download_format_matches(tmp_path: Path) -> None:
    # The published list is upper-case SHA-1, a colon and a count, sorted by hash.
    digest = hashlib.sha1(b"hunter2", usedforsecurity=False).hexdigest().upper()
    path = tmp_path / "pwned.txt"
    path.write_text(f"{'0' * 40}:1\n{digest}:24230\n{'F' * 40}:2\n")
    assert in_sorted_file(path, sha1_hex("hunter2"))
