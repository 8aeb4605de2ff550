"""The set-up shared by ``scripts/quickstart`` and ``scripts/test`` (``scripts/_env.sh``).

A fresh clone must install the locks whatever pip the chosen Python bundles and whatever
the newest releases on the index are: the interpreter search must cope with pyenv shims
that fail, and a venv made exactly as the scripts make one must accept both locks.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.test_dependencies import BOOTSTRAP_LOCK, DEV_LOCK, RUNTIME_LOCK, read_lock

ROOT = Path(__file__).resolve().parents[1]
ENV_SH = ROOT / "scripts" / "_env.sh"


def bash(script: str, env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["/bin/bash", "-c", f'source "{ENV_SH}"; {script}'],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def fake_python(directory: Path, name: str, version: str | None) -> Path:
    """A stand-in interpreter that reports ``version``, or fails as a pyenv shim does.

    It answers the probe of ``python_version`` as a real one would: an interpreter
    older than 3.12 prints nothing.
    """
    path = directory / name
    if version is not None and tuple(map(int, version.split("."))) < (3, 12):
        path.write_text("#!/bin/sh\nexit 0\n")
    elif version is None:
        path.write_text(f"#!/bin/sh\necho 'pyenv: {name}: command not found' >&2\nexit 127\n")
    else:
        path.write_text(f"#!/bin/sh\necho {version}\n")
    path.chmod(0o755)
    return path


@pytest.fixture
def fake_bin(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("dirname", "sed", "cut"):
        (bin_dir / tool).symlink_to(shutil.which(tool) or f"/usr/bin/{tool}")
    env = {
        # Only the fakes: no real interpreter of this machine is found.
        "PATH": str(bin_dir),
        "HOME": str(tmp_path / "home"),  # no pyenv versions
        "TOLLGUARD_VENV": str(tmp_path / "venv"),
    }
    return bin_dir, env


def test_broken_shims_are_skipped_and_the_newest_python_is_chosen(
    fake_bin: tuple[Path, dict[str, str]],
) -> None:
    bin_dir, env = fake_bin
    fake_python(bin_dir, "python3.19", None)  # a shim naming an uninstalled version
    fake_python(bin_dir, "python3.17", "3.17.2")
    newest = fake_python(bin_dir, "python3.18", "3.18.0")
    fake_python(bin_dir, "python3", "3.11.7")  # too old
    result = bash("find_python", env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(newest)


def test_the_same_choice_on_every_run(fake_bin: tuple[Path, dict[str, str]]) -> None:
    bin_dir, env = fake_bin
    fake_python(bin_dir, "python3.16", "3.16.1")
    fake_python(bin_dir, "python3.15", "3.15.9")
    choices = {bash("find_python", env).stdout for _ in range(3)}
    assert choices == {f"{bin_dir / 'python3.16'}\n"}


def test_a_python_set_by_hand_must_work(fake_bin: tuple[Path, dict[str, str]]) -> None:
    bin_dir, env = fake_bin
    broken = fake_python(bin_dir, "python3.13", None)
    result = bash("find_python", {**env, "PYTHON": str(broken)})
    assert result.returncode != 0
    assert f"PYTHON={broken} is not a working CPython >= 3.12" in result.stderr
    chosen = fake_python(bin_dir, "py-chosen", "3.12.4")
    fake_python(bin_dir, "python3.18", "3.18.0")
    assert bash("find_python", {**env, "PYTHON": str(chosen)}).stdout.strip() == str(chosen)


def test_no_usable_python_is_a_clear_error(fake_bin: tuple[Path, dict[str, str]]) -> None:
    bin_dir, env = fake_bin
    fake_python(bin_dir, "python3", "3.11.7")
    fake_python(bin_dir, "python3.12", None)
    result = bash("find_python", env)
    assert result.returncode != 0
    assert "Python >= 3.12 with venv is required" in result.stderr


@pytest.mark.integration
def test_a_new_venv_accepts_both_locks(tmp_path: Path) -> None:
    """A venv made exactly as the scripts make one installs both locks (index needed).

    Before the pinned pip was bootstrapped, Python 3.12.1's bundled pip 23.2.1 refused
    the dev lock as soon as the index had a coverage newer than the locked one, because
    pytest-cov asks for ``coverage[toml]``.
    """
    venv = tmp_path / "venv"
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHON", "VIRTUAL_ENV")}
    env["TOLLGUARD_VENV"] = str(venv)
    made = bash("make_venv", env, timeout=300)
    assert made.returncode == 0, made.stderr
    assert "tollguard: making" in made.stderr  # says which Python and which pip
    pip = str(read_lock(BOOTSTRAP_LOCK)["pip"].version)
    version = subprocess.run(
        [venv / "bin" / "python", "-m", "pip", "--version"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert version.stdout.split()[1] == pip
    for lock in (DEV_LOCK, RUNTIME_LOCK):
        result = subprocess.run(
            [
                venv / "bin" / "python",
                *("-m", "pip", "install", "--dry-run", "--quiet"),
                *("--disable-pip-version-check", "--ignore-installed", "--require-hashes"),
                *("-r", str(lock)),
            ],
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        assert result.returncode == 0, f"{lock.name}: {result.stderr[-2000:]}"
    again = bash("make_venv", env)  # an existing venv is reused, its pip kept
    assert again.returncode == 0
    assert again.stderr == ""
