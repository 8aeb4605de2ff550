"""Settings: one typed object read from ``<data dir>/tollguard.toml`` with defaults.

Secrets never live in ``tollguard.toml``: ``tollguard init`` writes them to
``<data dir>/secrets.toml`` (mode 0600). Nothing secret has a default.
"""

from __future__ import annotations

import ipaddress
import os
import tomllib
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any

DATA_DIR_ENV = "TOLLGUARD_HOME"
SETTINGS_FILE = "tollguard.toml"
SECRETS_FILE = "secrets.toml"


class ConfigError(Exception):
    """A settings file that cannot be used; the message names the file and the key."""


@dataclass(frozen=True, slots=True)
class Listen:
    transport: str  # udp | tcp | tls
    host: str
    port: int

    @classmethod
    def parse(cls, text: str) -> Listen:
        try:
            transport, rest = text.split(":", 1)
            host, port = rest.rsplit(":", 1)
            if transport not in {"udp", "tcp", "tls", "wss"}:
                raise ValueError(f"unknown transport {transport!r}")
            return cls(transport, host.strip("[]"), int(port))
        except ValueError as exc:
            raise ConfigError(f"sip.listen: {text!r} is not 'transport:host:port' ({exc})") from exc

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.transport}:{host}:{self.port}"


@dataclass(frozen=True, slots=True)
class SipSettings:
    realm: str = "tollguard"
    # Loopback until the operator opens it: nothing answers the Internet before the
    # accounts, limits and `tollguard check` are in order (docs/security.md).
    listen: tuple[str, ...] = (
        "udp:127.0.0.1:5060",
        "tcp:127.0.0.1:5060",
        "tls:127.0.0.1:5061",
    )
    # Address written into Via/Contact/SDP towards peers; empty: the listening address.
    advertised_host: str = ""
    # No provisional response from a gateway within this time: try the next gateway.
    gateway_setup_timeout_s: float = 4.0
    # Ringing without an answer for this long: try the next gateway.
    gateway_ring_timeout_s: float = 90.0
    # How long the registered contacts of one q value ring (together) before the
    # account's contacts of a lower q are tried instead (parallel forking by q,
    # docs/registrar.md); the last group rings up to gateway_ring_timeout_s.
    fork_ring_timeout_s: float = 20.0
    # Which final responses from a gateway make the switch try the next one.
    failover_codes: tuple[str, ...] = ("408", "5xx")
    max_forwards: int = 70
    # Digest algorithms offered in a 407, in order. SHA-256 only by default: RFC 8760 §2.1
    # keeps MD5 for backward compatibility alone. Add "MD5" for phones without SHA-256
    # (after it, or first for clients that answer only the first challenge, such as SIPp);
    # MD5 is then accepted only from accounts with allow_md5.
    digest_algorithms: tuple[str, ...] = ("SHA-256",)
    # Seconds a digest nonce stays valid.
    nonce_lifetime_s: int = 300
    # Session timers (RFC 4028): the interval offered to both sides of every call and the
    # most the switch accepts; each side is refreshed within it or the call is ended.
    # 0: offer none (a side that asks still gets one).
    session_expires_s: int = 1800
    # The shortest interval accepted (RFC 4028 §4: 90 s at least); 422 below it.
    session_min_se_s: int = 90
    # Digest nonces whose used counts are remembered (replay protection, RFC 7616
    # §3.4.5), about 150 bytes each. When full the oldest is forgotten, and a nonce that
    # may have been forgotten gets a fresh challenge instead of being accepted.
    nonce_counts_max: int = 100_000
    user_agent: str = "Tollguard"
    # Registrations (docs/registrar.md): the seconds a binding may last (a REGISTER asking
    # for less than the minimum gets 423 with Min-Expires; more is cut to the maximum),
    # what it gets when it names none, and the contacts one account may hold.
    register_min_expires_s: int = 60
    register_max_expires_s: int = 3600
    register_default_expires_s: int = 3600
    register_max_contacts: int = 10
    # Every this many seconds each phone registered over UDP gets an OPTIONS from the
    # switch, whose answer keeps the phone's NAT binding open for calls to come in; 0: none.
    register_nat_ping_s: float = 25.0
    # A binding whose pings go unanswered this many times in a row is removed (the phone
    # is gone: calls go to its other bindings); any answer starts the count again. 0:
    # never removed for silence.
    register_nat_ping_failures: int = 3
    # RFC 3261 timers, in seconds.
    t1: float = 0.5
    t2: float = 4.0
    t4: float = 5.0
    # Verify the TLS certificates of gateways reached over TLS (against the system CAs,
    # or tls_ca_file when set). Turn off only for a lab gateway with a self-signed one.
    tls_verify_gateways: bool = True
    tls_ca_file: str = ""
    # Share the UDP port between worker processes (SO_REUSEPORT). Off by default: it lets
    # another process silently take a share of the traffic.
    reuse_port: bool = False
    # TCP/TLS connections (docs/switch.md, "Connections"). Seconds: a TLS client must
    # finish its handshake, an incoming connection must deliver its first complete
    # message, and a message once begun must be complete within these; a connection
    # idle for idle_timeout_s is closed unless a live dialog or registration uses it.
    tls_handshake_timeout_s: float = 10.0
    first_message_timeout_s: float = 10.0
    message_timeout_s: float = 10.0
    idle_timeout_s: float = 180.0
    # Incoming connections in all, and from one source (an IPv4 address or an IPv6
    # /64); outgoing connections (to gateways) have a budget of their own.
    max_connections: int = 10_000
    max_connections_per_source: int = 100
    max_outgoing_connections: int = 1_000
    workers: int = 1

    @property
    def listeners(self) -> tuple[Listen, ...]:
        return tuple(Listen.parse(item) for item in self.listen)


PRIVATE_NETWORKS: tuple[str, ...] = (
    "127.0.0.0/8",
    "::1/128",
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "fc00::/7",
)


@dataclass(frozen=True, slots=True)
class WebSettings:
    listen_host: str = "127.0.0.1"
    listen_port: int = 8443
    # The admin lives at a path chosen at init; the default path is a honeypot.
    admin_path: str = ""
    allowed_hosts: tuple[str, ...] = ("localhost", "127.0.0.1")
    # HSTS preload binds the whole domain in browsers for months: operators opt in.
    hsts_preload: bool = False
    # Who may reach the admin (CIDR): loopback and private ranges by default, so a
    # public address must be allowed on purpose.
    admin_allow: tuple[str, ...] = PRIVATE_NETWORKS
    # Who may reach the REST API (CIDR). Customers call it from their own networks and
    # every API key carries its own address list, so the default is everyone.
    api_allow: tuple[str, ...] = ("0.0.0.0/0", "::/0")
    # Optional country rules (ISO 3166-1 alpha-2) through a MaxMind country database.
    geoip_database: str = ""
    allow_countries: tuple[str, ...] = ()
    deny_countries: tuple[str, ...] = ()
    # Words refused inside passwords besides the built-in ones (product, realm, host
    # names, the user's own names): brand names, the operator's city, its street.
    password_words: tuple[str, ...] = ()
    # Optional sorted list of breached passwords' SHA-1 hashes (Have I Been Pwned's
    # "ordered by hash" download) checked on every password change, besides the
    # bundled list.
    breached_passwords_file: str = ""


@dataclass(frozen=True, slots=True)
class ShieldSettings:
    """The SIP shield (docs/security.md, "SIP shield"); read by domain.shield.ShieldPolicy."""

    # Off only to measure what the shield costs (tollguard bench calls --shield off).
    enabled: bool = True

    # Never banned, never rate-limited per source (CIDR). The operator's own networks
    # and monitoring; with trust_acl, every customer's IP list joins it.
    allow: tuple[str, ...] = ()
    trust_acl: bool = True
    # Failed authentications from one address within auth_window_s that ban it.
    auth_failures: int = 5
    auth_window_s: float = 600.0
    # The first ban; each repeat within offence_memory_s lasts ban_factor times longer.
    ban_s: float = 900.0
    ban_factor: float = 4.0
    max_ban_s: float = 604800.0
    offence_memory_s: float = 2592000.0
    # A SIP user name failing from this many addresses within lock_window_s is locked
    # until an operator releases it.
    lock_sources: int = 5
    lock_window_s: float = 3600.0
    # User agents of scanners (substrings, any case); empty: the built-in list.
    scanner_agents: tuple[str, ...] = ()
    scanner_ban_s: float = 86400.0
    # Requests per second one address may send (sustained, burst) before a flood ban.
    source_rate: float = 30.0
    source_burst: float = 150.0
    flood_ban_s: float = 600.0
    # Requests per second from all addresses not on the allow-list together.
    global_rate: float = 2000.0
    global_burst: float = 4000.0
    max_message_bytes: int = 16384
    max_headers: int = 100
    # Server transactions open at once per address.
    max_transactions: int = 200
    # IPv6 sources are counted and banned by this prefix (a host holds a /64 at least).
    ipv6_prefix: int = 64


# libpq's sslmode values (PostgreSQL documentation, "SSL Support", table 32.1).
SSL_MODES: tuple[str, ...] = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
VERIFYING_SSL_MODES: frozenset[str] = frozenset({"verify-ca", "verify-full"})


@dataclass(frozen=True, slots=True)
class DatabaseSettings:
    # "sqlite" (embedded default, file in the data dir) or "postgresql".
    engine: str = "sqlite"
    name: str = "tollguard.sqlite3"
    host: str = ""
    port: int = 5432
    user: str = ""
    # PostgreSQL TLS, handed to libpq. Empty: "verify-full" for a remote host, "prefer"
    # (libpq's own default) for a Unix socket or a loopback address (see effective_sslmode).
    sslmode: str = ""
    # CA certificate(s) that signed the server's certificate; empty: libpq's
    # ~/.postgresql/root.crt, or "system" for the operating system's store (libpq 16+).
    sslrootcert: str = ""
    # Client certificate and key: certificate authentication instead of a password.
    sslcert: str = ""
    sslkey: str = ""

    def __post_init__(self) -> None:
        if self.sslmode and self.sslmode not in SSL_MODES:
            raise ConfigError(
                f"database.sslmode: {self.sslmode!r} is not one of {', '.join(SSL_MODES)}"
            )
        if bool(self.sslcert) != bool(self.sslkey):
            raise ConfigError("database.sslcert and database.sslkey must be set together")

    @property
    def is_local(self) -> bool:
        """Whether the server is reached over a Unix socket or a loopback address."""
        return is_local_host(self.host)

    @property
    def effective_sslmode(self) -> str:
        """``sslmode``, or the default for the host: nothing leaves the machine unverified."""
        if self.sslmode:
            return self.sslmode
        return "prefer" if self.is_local else "verify-full"


def is_local_host(host: str) -> bool:
    """Whether libpq reaches ``host`` without leaving the machine.

    An empty host or an absolute path is a Unix-socket directory; ``localhost`` and
    loopback addresses stay on the machine. Anything else, a list of hosts included,
    counts as remote.
    """
    if not host or host.startswith("/") or host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True, slots=True)
class CdrSettings:
    batch_size: int = 500
    flush_interval_s: float = 1.0


MEDIA_BACKENDS: tuple[str, ...] = ("bypass", "relay", "rtpengine")


@dataclass(frozen=True, slots=True)
class MediaSettings:
    # The backend of a call whose customer and providers leave the choice to the switch:
    # "bypass" (RTP flows directly between the two sides), "relay" (the embedded relay)
    # or "rtpengine".
    default: str = "bypass"
    # The embedded relay: the address its RTP sockets bind to (empty: where SIP listens,
    # so a switch on loopback relays on loopback), the address written into session
    # descriptions (empty: the bind address, or the SIP advertised host when binding to
    # every address), and the port range (RTP on even ports, RTCP above).
    relay_host: str = ""  # empty: the address of the first SIP listener
    relay_advertised_host: str = ""
    port_min: int = 20000
    port_max: int = 29999
    # Run the relay's packet loop in its own process (true), or in a thread of the
    # switch process (false: for tests and small installations).
    relay_process: bool = True
    # Move the steady state's packets (a locked source, no SRTP) in C when the C module
    # was built at install (true), or every packet in Python (false: about twice the CPU
    # per packet; for comparison, or should the C path misbehave).
    relay_native: bool = True
    # An answered call, not on hold, that carried no RTP for this long is ended (BYE on
    # both legs). 0 turns the check off.
    timeout_s: float = 30.0
    # A peer behind NAT announces a private address: its media may lock on the first
    # packet from its signalling address within this many seconds of its description.
    latch_window_s: float = 10.0
    # rtpengine's ng control address (host:port over UDP), and how long to wait for it.
    rtpengine: str = ""
    rtpengine_timeout_s: float = 0.5

    def __post_init__(self) -> None:
        if self.default not in MEDIA_BACKENDS:
            raise ConfigError(
                f"media.default: {self.default!r} is not one of {', '.join(MEDIA_BACKENDS)}"
            )
        low, high = self.port_min, self.port_max
        if not 1024 <= low < high <= 65535 or high - low < 3:
            raise ConfigError(
                f"media.port_min/port_max: {self.port_min}-{self.port_max} is not a range of "
                "at least 4 ports within 1024-65535"
            )
        if self.timeout_s < 0 or self.latch_window_s < 0 or self.rtpengine_timeout_s <= 0:
            raise ConfigError(
                "media.timeout_s and media.latch_window_s must be >= 0, "
                "media.rtpengine_timeout_s > 0"
            )
        if self.rtpengine and not _host_port(self.rtpengine):
            raise ConfigError(f"media.rtpengine: {self.rtpengine!r} is not 'host:port'")


def _host_port(text: str) -> tuple[str, int] | None:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        return None
    return host.strip("[]"), int(port)


def rtpengine_address(settings: MediaSettings) -> tuple[str, int] | None:
    """rtpengine's ng control address, or None when none is configured."""
    return _host_port(settings.rtpengine) if settings.rtpengine else None


@dataclass(frozen=True, slots=True)
class BillingSettings:
    # Reserve every call's money before it is routed and cut it when the money runs out
    # (docs/billing.md). Off, calls are never refused or cut for money (charges are still
    # posted): for measuring its cost, or an operator who bills by invoice only;
    # tollguard check warns (billing.W102).
    credit_control: bool = True
    # Talk time one reservation step pays for, and how long before it runs out the
    # switch extends it (docs/billing.md).
    slice_s: int = 60
    extend_before_s: int = 10
    # A reservation neither extended nor settled lapses this long after its reserved
    # time ends (the call must be gone); set-up may take this long before the answer.
    reservation_grace_s: int = 60
    setup_allowance_s: int = 900
    # Low-balance alerts: how often the sender looks for due ones, how often a failed
    # one is tried before it is given up, and the webhook request timeout.
    alert_interval_s: float = 5.0
    alert_max_attempts: int = 10
    webhook_timeout_s: float = 5.0
    # CA certificates that sign webhook receivers' certificates; empty: the system's.
    webhook_ca_file: str = ""

    def __post_init__(self) -> None:
        if self.slice_s < 1 or not 0 <= self.extend_before_s < self.slice_s:
            raise ConfigError("billing: slice_s must be >= 1 and extend_before_s below it")
        if self.reservation_grace_s < 1 or self.setup_allowance_s < 1:
            raise ConfigError("billing: reservation_grace_s and setup_allowance_s must be >= 1")
        if self.alert_max_attempts < 1 or self.alert_interval_s <= 0:
            raise ConfigError("billing: alert_max_attempts and alert_interval_s must be > 0")


@dataclass(frozen=True, slots=True)
class MailSettings:
    # The SMTP server alerts go through; empty: no e-mail (tollguard check warns when
    # a customer has an alert address). The password is secrets.mail_password.
    host: str = ""
    port: int = 587
    user: str = ""
    starttls: bool = True
    ssl: bool = False  # implicit TLS (port 465) instead of STARTTLS
    from_address: str = ""
    timeout_s: float = 10.0

    def __post_init__(self) -> None:
        if self.starttls and self.ssl:
            raise ConfigError("mail: starttls and ssl exclude each other")
        if self.host and not self.from_address:
            raise ConfigError("mail: from_address is required with a host")


@dataclass(frozen=True, slots=True)
class Secrets:
    django_secret_key: str = ""
    nonce_secret: str = ""
    database_password: str = ""
    mail_password: str = ""
    # Error reports go to Sentry only when a DSN is set; the DSN carries a key.
    sentry_dsn: str = ""


@dataclass(frozen=True, slots=True)
class Settings:
    data_dir: Path
    sip: SipSettings = field(default_factory=SipSettings)
    web: WebSettings = field(default_factory=WebSettings)
    database: DatabaseSettings = field(default_factory=DatabaseSettings)
    cdr: CdrSettings = field(default_factory=CdrSettings)
    shield: ShieldSettings = field(default_factory=ShieldSettings)
    billing: BillingSettings = field(default_factory=BillingSettings)
    mail: MailSettings = field(default_factory=MailSettings)
    media: MediaSettings = field(default_factory=MediaSettings)
    secrets: Secrets = field(default_factory=Secrets)

    @property
    def settings_path(self) -> Path:
        return self.data_dir / SETTINGS_FILE

    @property
    def secrets_path(self) -> Path:
        return self.data_dir / SECRETS_FILE

    @property
    def database_path(self) -> Path:
        return self.data_dir / self.database.name

    @property
    def tls_cert_path(self) -> Path:
        return self.data_dir / "tls" / "cert.pem"

    @property
    def tls_key_path(self) -> Path:
        return self.data_dir / "tls" / "key.pem"

    @property
    def bindings_path(self) -> Path:
        """Where the switch keeps its UDP bindings across restarts (docs/registrar.md)."""
        return self.data_dir / "bindings.json"

    @property
    def switch_status_path(self) -> Path:
        """Where the running switch publishes its live state for the web process."""
        return self.data_dir / "run" / "switch-status.json"


def default_data_dir() -> Path:
    return Path(os.environ.get(DATA_DIR_ENV, "tollguard-data")).resolve()


def _section(cls: type[Any], table: dict[str, Any], where: str) -> Any:
    known = {f.name: f for f in fields(cls)}
    values: dict[str, Any] = {}
    for key, raw in table.items():
        value = raw
        if key not in known:
            raise ConfigError(f"{where}: unknown setting {key!r}")
        default = getattr(cls(), key)
        if isinstance(default, tuple):
            if not isinstance(value, list):
                raise ConfigError(f"{where}.{key}: expected a list")
            value = tuple(str(v) for v in value)
        elif isinstance(default, bool):
            if not isinstance(value, bool):
                raise ConfigError(f"{where}.{key}: expected true or false")
        elif isinstance(default, int | float) and not isinstance(default, bool):
            if not isinstance(value, int | float) or isinstance(value, bool):
                raise ConfigError(f"{where}.{key}: expected a number")
            value = type(default)(value)
        elif isinstance(default, str) and not isinstance(value, str):
            raise ConfigError(f"{where}.{key}: expected a string")
        values[key] = value
    return cls(**values)


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        return {}
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: {exc}") from exc


_SECTIONS: dict[str, type[Any]] = {
    "sip": SipSettings,
    "web": WebSettings,
    "database": DatabaseSettings,
    "cdr": CdrSettings,
    "shield": ShieldSettings,
    "billing": BillingSettings,
    "mail": MailSettings,
    "media": MediaSettings,
}


def load(data_dir: Path | None = None) -> Settings:
    """Read the settings and secrets of ``data_dir`` (missing files mean defaults)."""
    data_dir = (data_dir or default_data_dir()).resolve()
    raw = _read_toml(data_dir / SETTINGS_FILE)
    sections: dict[str, Any] = {}
    for name, table in raw.items():
        if name not in _SECTIONS:
            raise ConfigError(f"{data_dir / SETTINGS_FILE}: unknown section [{name}]")
        if not isinstance(table, dict):
            raise ConfigError(f"{data_dir / SETTINGS_FILE}: [{name}] must be a table")
        sections[name] = _section(_SECTIONS[name], table, name)
    secrets = _section(Secrets, _read_toml(data_dir / SECRETS_FILE), "secrets")
    settings = Settings(data_dir=data_dir, secrets=secrets, **sections)
    for listen in settings.sip.listen:
        Listen.parse(listen)
    sip = settings.sip
    if sip.session_min_se_s < 1 or sip.session_expires_s < 0:
        raise ConfigError("sip.session_min_se_s must be positive and sip.session_expires_s >= 0")
    if sip.session_expires_s and sip.session_expires_s < sip.session_min_se_s:
        raise ConfigError(
            f"sip.session_expires_s ({sip.session_expires_s}) is below sip.session_min_se_s "
            f"({sip.session_min_se_s})"
        )
    _check_sip_limits(settings.sip)
    algorithms = settings.sip.digest_algorithms
    if (
        not algorithms
        or not set(algorithms) <= {"SHA-256", "MD5"}
        or len(set(algorithms)) != len(algorithms)
    ):
        raise ConfigError(
            f"sip.digest_algorithms: {list(algorithms)!r} must name 'SHA-256' and/or 'MD5' once"
        )
    return settings


_POSITIVE_SIP_SETTINGS = (
    "nonce_lifetime_s",
    "tls_handshake_timeout_s",
    "first_message_timeout_s",
    "message_timeout_s",
    "idle_timeout_s",
)
_COUNT_SIP_SETTINGS = (
    "nonce_counts_max",
    "max_connections",
    "max_connections_per_source",
    "max_outgoing_connections",
    "register_max_contacts",
)


def _check_sip_limits(sip: SipSettings) -> None:
    for name in _POSITIVE_SIP_SETTINGS:
        if not getattr(sip, name) > 0:
            raise ConfigError(f"sip.{name}: must be positive")
    for name in _COUNT_SIP_SETTINGS:
        if getattr(sip, name) < 1:
            raise ConfigError(f"sip.{name}: must be at least 1")
    if not (
        1
        <= sip.register_min_expires_s
        <= sip.register_default_expires_s
        <= sip.register_max_expires_s
    ):
        raise ConfigError(
            "sip.register_*_expires_s: must be 1 <= min <= default <= max "
            f"({sip.register_min_expires_s}, {sip.register_default_expires_s}, "
            f"{sip.register_max_expires_s})"
        )
    if sip.register_nat_ping_s < 0:
        raise ConfigError("sip.register_nat_ping_s: must be 0 (off) or positive")
    if sip.register_nat_ping_failures < 0:
        raise ConfigError("sip.register_nat_ping_failures: must be 0 (never) or positive")
    if sip.max_connections_per_source > sip.max_connections:
        raise ConfigError(
            "sip.max_connections_per_source: must not exceed sip.max_connections "
            f"({sip.max_connections_per_source} > {sip.max_connections})"
        )


def dump(settings: Settings) -> str:
    """``tollguard.toml`` text for ``settings`` (secrets excluded)."""
    lines: list[str] = []
    for name in _SECTIONS:
        section = getattr(settings, name)
        assert is_dataclass(section)
        lines.append(f"[{name}]")
        for f in fields(section):
            lines.append(f"{f.name} = {_toml_value(getattr(section, f.name))}")
        lines.append("")
    return "\n".join(lines)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    text = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{text}"'
