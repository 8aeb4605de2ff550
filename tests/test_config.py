"""Settings: defaults, validation with errors that name the key, round trip."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tollguard import config
from tollguard.switch.auth import Authenticator
from tollguard.transport import StreamLimits


def test_missing_files_mean_defaults(tmp_path: Path) -> None:
    settings = config.load(tmp_path)
    assert settings.data_dir == tmp_path.resolve()
    assert settings.sip.realm == "tollguard"
    assert settings.secrets.django_secret_key == ""  # no secret has a default


def test_dump_then_load_round_trips(tmp_path: Path) -> None:
    settings = config.load(tmp_path)
    (tmp_path / config.SETTINGS_FILE).write_text(config.dump(settings))
    again = config.load(tmp_path)
    assert again == settings


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[sip]\nrealm = 5\n", "sip.realm: expected a string"),
        ("[sip]\nmax_forwards = 'x'\n", "sip.max_forwards: expected a number"),
        ("[sip]\nreuse_port = 1\n", "sip.reuse_port: expected true or false"),
        ("[sip]\nlisten = 'udp:1.2.3.4:5'\n", "sip.listen: expected a list"),
        ("[sip]\nrelam = 'x'\n", "sip: unknown setting 'relam'"),
        ("[nope]\n", "unknown section [nope]"),
        ("[sip]\nlisten = ['sctp:127.0.0.1:5']\n", "unknown transport 'sctp'"),
        ("[sip]\nlisten = ['udp:127.0.0.1']\n", "is not 'transport:host:port'"),
        ("[sip\n", "tollguard.toml"),
    ],
    ids=[
        "str",
        "number",
        "bool",
        "list",
        "unknown-key",
        "unknown-section",
        "transport",
        "listen-shape",
        "toml-syntax",
    ],
)
def test_bad_settings_name_the_key(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / config.SETTINGS_FILE).write_text(text)
    with pytest.raises(config.ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        config.load(tmp_path)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("udp:127.0.0.1:5060", config.Listen("udp", "127.0.0.1", 5060)),
        ("tls:[::1]:5061", config.Listen("tls", "::1", 5061)),
        ("tcp:0.0.0.0:0", config.Listen("tcp", "0.0.0.0", 0)),
    ],
    ids=["udp", "ipv6", "port-0"],
)
def test_listen_parse_and_format(text: str, expected: config.Listen) -> None:
    assert config.Listen.parse(text) == expected
    assert str(expected) == text


def test_data_dir_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(config.DATA_DIR_ENV, str(tmp_path))
    assert config.default_data_dir() == tmp_path.resolve()


@pytest.mark.parametrize(
    "value",
    ["[]", "['SHA-512']", "['MD5', 'MD5']"],
    ids=["empty", "unknown", "duplicate"],
)
def test_digest_algorithms_are_checked(tmp_path: Path, value: str) -> None:
    (tmp_path / config.SETTINGS_FILE).write_text(f"[sip]\ndigest_algorithms = {value}\n")
    with pytest.raises(config.ConfigError, match=r"sip\.digest_algorithms"):
        config.load(tmp_path)


def test_digest_defaults_to_sha256_only(tmp_path: Path) -> None:
    # ASVS 11.4.1: MD5 (RFC 8760 §2.1, backward compatibility only) is an opt-in.
    assert config.load(tmp_path).sip.digest_algorithms == ("SHA-256",)


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("", "prefer"),
        ("/var/run/postgresql", "prefer"),
        ("localhost", "prefer"),
        ("127.0.0.1", "prefer"),
        ("::1", "prefer"),
        ("[::1]", "prefer"),
        ("db.example.net", "verify-full"),
        ("10.0.0.5", "verify-full"),
        ("2001:db8::5", "verify-full"),
        ("db1,db2", "verify-full"),
    ],
    ids=[
        "unix-default",
        "unix-dir",
        "localhost",
        "ipv4-loopback",
        "ipv6-loopback",
        "ipv6-brackets",
        "remote-name",
        "private-address",
        "remote-ipv6",
        "host-list",
    ],
)
def test_database_sslmode_defaults_by_host(host: str, expected: str) -> None:
    assert config.DatabaseSettings(engine="postgresql", host=host).effective_sslmode == expected


def test_an_explicit_sslmode_wins(tmp_path: Path) -> None:
    (tmp_path / config.SETTINGS_FILE).write_text(
        '[database]\nhost = "db.example.net"\nsslmode = "verify-ca"\n'
        'sslrootcert = "/etc/tollguard/db-ca.pem"\n'
    )
    db = config.load(tmp_path).database
    assert (db.effective_sslmode, db.sslrootcert) == ("verify-ca", "/etc/tollguard/db-ca.pem")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('sslmode = "verify"\n', r"database\.sslmode: 'verify' is not one of disable, allow"),
        ('sslcert = "/etc/c.pem"\n', r"database\.sslcert and database\.sslkey"),
        ('sslkey = "/etc/k.pem"\n', r"database\.sslcert and database\.sslkey"),
        ("sslmode = 1\n", r"database\.sslmode: expected a string"),
    ],
    ids=["unknown-mode", "cert-without-key", "key-without-cert", "not-a-string"],
)
def test_database_tls_settings_are_checked(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / config.SETTINGS_FILE).write_text(f"[database]\n{text}")
    with pytest.raises(config.ConfigError, match=message):
        config.load(tmp_path)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("idle_timeout_s = 0", r"sip\.idle_timeout_s: must be positive"),
        ("tls_handshake_timeout_s = -1", r"sip\.tls_handshake_timeout_s: must be positive"),
        ("nonce_counts_max = 0", r"sip\.nonce_counts_max: must be at least 1"),
        ("max_outgoing_connections = 0", r"sip\.max_outgoing_connections: must be at least 1"),
        (
            "max_connections = 10\nmax_connections_per_source = 11",
            r"sip\.max_connections_per_source: must not exceed sip\.max_connections",
        ),
        ('message_timeout_s = "10"', r"sip\.message_timeout_s: expected a number"),
        ("register_max_contacts = 0", r"sip\.register_max_contacts: must be at least 1"),
        (
            "register_min_expires_s = 120\nregister_default_expires_s = 60",
            r"sip\.register_\*_expires_s: must be 1 <= min <= default <= max \(120, 60, 3600\)",
        ),
        ("register_min_expires_s = 0", r"sip\.register_\*_expires_s: must be 1 <= min"),
        ("register_nat_ping_s = -1", r"sip\.register_nat_ping_s: must be 0 \(off\) or positive"),
        (
            "register_nat_ping_failures = -1",
            r"sip\.register_nat_ping_failures: must be 0 \(never\) or positive",
        ),
    ],
    ids=[
        "idle",
        "handshake",
        "nonce-counts",
        "outgoing",
        "per-source",
        "type",
        "register-contacts",
        "register-order",
        "register-min",
        "nat-ping",
        "nat-ping-failures",
    ],
)
def test_connection_and_nonce_limits_are_checked(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / config.SETTINGS_FILE).write_text(f"[sip]\n{text}\n")
    with pytest.raises(config.ConfigError, match=message):
        config.load(tmp_path)


def test_connection_limits_reach_the_transports(tmp_path: Path) -> None:
    (tmp_path / config.SETTINGS_FILE).write_text(
        "[sip]\nidle_timeout_s = 60\nmax_connections_per_source = 7\nnonce_counts_max = 500\n"
    )
    sip = config.load(tmp_path).sip
    limits = StreamLimits.from_settings(sip)
    assert (limits.idle_timeout_s, limits.max_connections_per_source) == (60.0, 7)
    assert limits.max_connections == sip.max_connections
    # One set of defaults: the settings' are the transport's.
    assert StreamLimits.from_settings(config.SipSettings()) == StreamLimits()
    assert Authenticator.from_settings(sip, b"k" * 32).nonces.counts.max_entries == 500


def test_billing_and_mail_sections(tmp_path: Path) -> None:
    (tmp_path / config.SETTINGS_FILE).write_text(
        "[billing]\nslice_s = 30\nextend_before_s = 5\nwebhook_ca_file = '/etc/ca.pem'\n"
        "credit_control = false\n"
        "[mail]\nhost = 'smtp.example.net'\nport = 465\nstarttls = false\nssl = true\n"
        "from_address = 'billing@example.net'\n"
    )
    (tmp_path / config.SECRETS_FILE).write_text("mail_password = 's3cret'\n")
    settings = config.load(tmp_path)
    assert (settings.billing.slice_s, settings.billing.extend_before_s) == (30, 5)
    assert settings.billing.webhook_ca_file == "/etc/ca.pem"
    assert settings.billing.credit_control is False
    assert config.BillingSettings().credit_control is True  # on unless turned off
    assert "credit_control = false" in config.dump(settings)
    assert (settings.mail.host, settings.mail.port, settings.mail.ssl) == (
        "smtp.example.net",
        465,
        True,
    )
    assert settings.secrets.mail_password == "s3cret"
    assert "s3cret" not in config.dump(settings)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[billing]\nslice_s = 0\n", "slice_s must be >= 1"),
        ("[billing]\nslice_s = 10\nextend_before_s = 10\n", "extend_before_s below it"),
        ("[billing]\nalert_max_attempts = 0\n", "alert_max_attempts"),
        ("[mail]\nhost = 'smtp.example.net'\n", "from_address is required"),
        ("[mail]\nssl = true\n", "starttls and ssl exclude each other"),
    ],
    ids=["no-slice", "lead-too-long", "no-attempts", "no-sender", "tls-twice"],
)
def test_bad_billing_and_mail_settings(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / config.SETTINGS_FILE).write_text(text)
    with pytest.raises(config.ConfigError, match=message):
        config.load(tmp_path)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[media]\ndefault = "proxy"\n', "media.default: 'proxy' is not one of bypass, relay"),
        ("[media]\nport_min = 30000\nport_max = 30002\n", "not a range of at least 4 ports"),
        ("[media]\nport_min = 80\n", "not a range of at least 4 ports within 1024-65535"),
        ("[media]\ntimeout_s = -1\n", "media.timeout_s and media.latch_window_s must be >= 0"),
        ('[media]\nrtpengine = "localhost"\n', "media.rtpengine: 'localhost' is not 'host:port'"),
        ('[media]\nrtpengine = "127.0.0.1:99999"\n', "is not 'host:port'"),
    ],
    ids=["backend", "short-range", "low-ports", "negative-timeout", "no-port", "port-range"],
)
def test_media_settings_are_checked(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "tollguard.toml").write_text(text)
    with pytest.raises(config.ConfigError, match=re.escape(message)):
        config.load(tmp_path)


def test_rtpengine_address(tmp_path: Path) -> None:
    (tmp_path / "tollguard.toml").write_text('[media]\nrtpengine = "[::1]:2223"\n')
    assert config.rtpengine_address(config.load(tmp_path).media) == ("::1", 2223)
    assert config.rtpengine_address(config.MediaSettings()) is None
