"""The ``tollguard`` command, run as a user runs it: in a child process."""

from __future__ import annotations

import json
import re
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tollguard import config

pytestmark = pytest.mark.integration


def tollguard(*args: str, data_dir: Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-m", "tollguard.cli", "--data-dir", str(data_dir), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"tollguard {' '.join(args)} failed:\n{result.stderr}")
    return result


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("cli") / "data"
    result = tollguard("init", "--bind", "127.0.0.1", "--sip-port", "0", data_dir=path)
    assert "password:" in result.stdout
    assert re.search(r"user:\s+admin-[0-9a-f]{6}\n", result.stdout)
    return path


def test_init_generates_private_secrets_and_a_random_admin_path(data_dir: Path) -> None:
    settings = config.load(data_dir)
    assert stat.S_IMODE(settings.secrets_path.stat().st_mode) == 0o600
    assert stat.S_IMODE(settings.tls_key_path.stat().st_mode) == 0o600
    assert stat.S_IMODE(data_dir.stat().st_mode) == 0o700
    assert len(settings.secrets.django_secret_key) >= 50
    assert len(settings.secrets.nonce_secret) == 64
    assert settings.web.admin_path.strip("/") not in {"", "admin"}
    assert settings.database_path.exists()
    # Nothing secret is written into the settings file.
    assert settings.secrets.django_secret_key not in settings.settings_path.read_text()


def test_the_first_administrator_has_no_well_known_name(data_dir: Path, tmp_path: Path) -> None:
    result = tollguard(
        "init", "--admin-user", "Admin", "--sip-port", "0", data_dir=tmp_path / "x", check=False
    )
    assert result.returncode == 1
    assert "attackers try first" in result.stderr
    assert not (tmp_path / "x").exists()


def test_two_inits_never_share_secrets(tmp_path: Path, data_dir: Path) -> None:
    other = tmp_path / "other"
    tollguard("init", "--bind", "127.0.0.1", "--sip-port", "0", data_dir=other)
    first, second = config.load(data_dir), config.load(other)
    assert first.secrets.django_secret_key != second.secrets.django_secret_key
    assert first.secrets.nonce_secret != second.secrets.nonce_secret
    assert first.web.admin_path != second.web.admin_path


def test_check_passes_on_a_fresh_data_dir_and_warns_about_the_certificate(
    data_dir: Path,
) -> None:
    result = tollguard("check", data_dir=data_dir)
    assert "no problems found" in result.stdout
    assert "self-signed" in result.stdout


EXAMPLE_PLAN = Path(__file__).parents[1] / "docs" / "examples" / "plan.yaml"


def test_the_readme_example_passes_the_check(tmp_path: Path) -> None:
    """README: init, load docs/examples/plan.yaml, check. The example once enabled MD5
    for an account while the switch does not offer it, and the check failed at once."""
    fresh = tmp_path / "example"
    tollguard("init", "--bind", "127.0.0.1", "--sip-port", "0", data_dir=fresh)
    loaded = tollguard("load", str(EXAMPLE_PLAN), data_dir=fresh)
    assert "warning" not in loaded.stdout
    result = tollguard("check", data_dir=fresh, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no problems found" in result.stdout


def test_check_fails_on_a_weakened_configuration(tmp_path: Path) -> None:
    weak = tmp_path / "weak"
    tollguard("init", "--bind", "127.0.0.1", "--sip-port", "0", data_dir=weak)
    settings_path = weak / config.SETTINGS_FILE
    text = settings_path.read_text()
    admin_line = next(line for line in text.splitlines() if line.startswith("admin_path"))
    settings_path.write_text(text.replace(admin_line, 'admin_path = "admin/"'))
    result = tollguard("check", data_dir=weak, check=False)
    assert result.returncode == 1
    assert "security.E" in result.stdout


def test_check_names_a_customer_paying_in_another_currency(tmp_path: Path) -> None:
    money = tmp_path / "money"
    tollguard("init", "--bind", "127.0.0.1", "--sip-port", "0", data_dir=money)
    # Written around the validation (an old database, a raw edit): the check finds it.
    tollguard(
        "manage",
        "shell",
        "-c",
        "from tollguard.web.customers.models import Customer\n"
        "from tollguard.web.rating.models import RateCard\n"
        "card = RateCard.objects.create(name='usd', currency='USD')\n"
        "Customer.objects.create(name='acme', sell_card=card, currency='EUR')\n",
        data_dir=money,
    )
    result = tollguard("check", data_dir=money, check=False)
    assert result.returncode == 1
    assert "billing.E002" in result.stdout
    assert "acme pays EUR, card USD" in result.stdout


def test_init_refuses_an_initialised_dir(data_dir: Path) -> None:
    result = tollguard("init", data_dir=data_dir, check=False)
    assert result.returncode == 1
    assert "already initialised" in result.stderr


def test_commands_refuse_an_uninitialised_dir(tmp_path: Path) -> None:
    result = tollguard("cdr", "export", data_dir=tmp_path / "nothing", check=False)
    assert result.returncode == 1
    assert "run 'tollguard init' first" in result.stderr


def test_load_reports_every_error_and_changes_nothing(data_dir: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "rate_cards:\n"
        "  - name: retail\n"
        "    kind: sell\n"
        "    rates:\n"
        "      - {prefix: '44', destination: UK, price_per_minute: abc}\n"
        "customers:\n"
        "  - name: acme\n"
        "    sell_card: nowhere\n"
    )
    result = tollguard("load", str(bad), data_dir=data_dir, check=False)
    assert result.returncode == 1
    assert "nothing was changed" in result.stderr
    # Each error starts with the file and line it is about, as editors read them.
    assert (
        "  bad.yaml:5: rate_cards[0] 'retail'.rates[0]: price_per_minute 'abc' is not a decimal"
        in result.stderr.splitlines()
    )
    assert (
        "  bad.yaml:8: customers[0] 'acme'.sell_card: unknown rate card 'nowhere'"
        in result.stderr.splitlines()
    )
    exported = tollguard("cdr", "export", "--format", "json", data_dir=data_dir)
    assert json.loads(exported.stdout) == []


def test_load_then_cdr_export_of_an_empty_database(data_dir: Path) -> None:
    example = Path(__file__).parents[1] / "docs" / "examples" / "plan.yaml"
    result = tollguard("load", str(example), data_dir=data_dir)
    assert "created" in result.stdout
    again = tollguard("load", str(example), data_dir=data_dir)
    assert "unchanged" in again.stdout
    csv_out = tollguard("cdr", "export", "--format", "csv", data_dir=data_dir)
    assert csv_out.stdout.splitlines()[0].startswith("call_id,")


def test_bench_rating_prints_one_json_object(data_dir: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "tollguard.cli",
            "bench",
            "lcr",
            "--json",
            "--prefixes",
            "20000",
            "--lookups",
            "20000",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    figures = json.loads(result.stdout)
    assert figures["name"] == "lcr"
    assert figures["prefixes"] == 20000
    assert figures["lookup_us"] > 0


def test_demo_places_calls_that_fail_over_and_are_rated(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "tollguard.cli", "demo", "--no-web", "--sip-port", "0", "--once"],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "5 calls completed, 0 failed" in result.stdout
    # Every call went to the answering carrier after the cheap one's 503.
    assert result.stdout.count("backupcarrier") == 5


def test_status_shows_the_running_switchs_calls_and_registrations(tmp_path: Path) -> None:
    data = tmp_path / "data"
    stopped = tollguard("status", data_dir=data, check=False)
    assert (stopped.returncode, stopped.stderr) == (
        1,
        "tollguard status: the switch is not running\n",
    )
    path = config.load(data).switch_status_path
    path.parent.mkdir(parents=True)
    document = {
        "pid": 4242, "active_calls": 3, "calls_total": 120, "calls_per_second": 1.5,
        "handler_errors": 0, "bindings": 12, "registered_accounts": 9,
        "started_at": 0.0, "updated_at": time.time(), "interval_s": 1.0,
    }  # fmt: skip
    path.write_text(json.dumps(document))
    shown = tollguard("status", data_dir=data).stdout
    assert "calls: 3 in progress, 120 since start, 1.50/s" in shown
    assert "registrations: 12 bindings, 9 accounts registered" in shown
    assert json.loads(tollguard("status", "--json", data_dir=data).stdout)["bindings"] == 12
    # A switch that stopped without removing its document (killed) is not "running".
    path.write_text(json.dumps(document | {"updated_at": time.time() - 3600}))
    stale = tollguard("status", data_dir=data, check=False)
    assert stale.returncode == 1
    assert re.search(r"has not reported for 36\d\d s; it is probably stopped", stale.stderr)
