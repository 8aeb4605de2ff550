"""Settings: defaults, validation with errors that name the key, round trip."""

from __future__ import annotations

from pathlib import Path

import pytest

from tollguard import config


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
