"""The ``tollguard`` command: the product's surface (see ARCHITECTURE.md, "Command line")."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, NoReturn

from tollguard import certs, config

EXIT_USAGE = 2
EXIT_FAILURE = 1


def fail(message: str, code: int = EXIT_FAILURE) -> NoReturn:
    print(f"tollguard: error: {message}", file=sys.stderr)
    raise SystemExit(code)


def _settings(args: argparse.Namespace) -> config.Settings:
    try:
        return config.load(args.data_dir)
    except config.ConfigError as exc:
        fail(str(exc))


def _require_initialised(settings: config.Settings) -> None:
    if not settings.settings_path.exists() or not settings.secrets.django_secret_key:
        fail(f"{settings.data_dir} is not initialised: run 'tollguard init' first")


def _setup_django(settings: config.Settings) -> None:
    from tollguard.web import bootstrap

    bootstrap.setup(settings)


# --- init -------------------------------------------------------------------------------


def _write_secrets(path: Path) -> None:
    values = {
        "django_secret_key": secrets.token_urlsafe(64),
        "nonce_secret": secrets.token_hex(32),
    }
    text = "".join(f'{key} = "{value}"\n' for key, value in values.items())
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)


# Account names every credential-stuffing list starts with.
WELL_KNOWN_ACCOUNT_NAMES = frozenset(
    {"admin", "administrator", "root", "sa", "superuser", "sysadmin", "operator", "test"}
)


def default_admin_user() -> str:
    return f"admin-{secrets.token_hex(3)}"


def init_data_dir(
    data_dir: Path,
    *,
    bind: str = "0.0.0.0",
    sip_port: int = 5060,
    tls_port: int | None = None,
    web_port: int = 8443,
    realm: str = "tollguard",
    admin_user: str | None = None,
    force: bool = False,
) -> tuple[config.Settings, str]:
    """Create a data directory; return its settings and the admin's one-time password.

    The first administrator is ``admin_user``, or ``admin-<random>`` when none is given:
    no install has an account under a name an attacker would try first (ASVS 6.3.2).
    """
    data_dir = data_dir.resolve()
    admin_user = admin_user or default_admin_user()
    if admin_user.lower() in WELL_KNOWN_ACCOUNT_NAMES:
        fail(f"--admin-user {admin_user!r} is a name attackers try first; choose another")
    if (data_dir / config.SETTINGS_FILE).exists() and not force:
        fail(f"{data_dir} is already initialised (use --force to start over)")
    if force and data_dir.exists():
        shutil.rmtree(data_dir)
    created = not data_dir.exists()
    try:
        return _init(
            data_dir,
            bind=bind,
            sip_port=sip_port,
            tls_port=tls_port,
            web_port=web_port,
            realm=realm,
            admin_user=admin_user,
        )
    except BaseException:
        # A failed init leaves nothing behind, so it can simply be run again.
        if created:
            shutil.rmtree(data_dir, ignore_errors=True)
        else:
            for name in (config.SETTINGS_FILE, config.SECRETS_FILE):
                (data_dir / name).unlink(missing_ok=True)
        raise


def _init(
    data_dir: Path,
    *,
    bind: str,
    sip_port: int,
    tls_port: int | None,
    web_port: int,
    realm: str,
    admin_user: str,
) -> tuple[config.Settings, str]:
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(data_dir, 0o700)
    tls_port = tls_port if tls_port is not None else (sip_port + 1 if sip_port else 0)
    defaults = config.Settings(data_dir=data_dir)
    settings = replace(
        defaults,
        sip=replace(
            defaults.sip,
            realm=realm,
            listen=(
                str(config.Listen("udp", bind, sip_port)),
                str(config.Listen("tcp", bind, sip_port)),
                str(config.Listen("tls", bind, tls_port)),
            ),
        ),
        web=replace(
            defaults.web,
            listen_host="127.0.0.1" if bind in {"0.0.0.0", "::"} else bind,
            listen_port=web_port,
            # Unguessable admin path; the well-known /admin/ is left for the honeypot.
            admin_path=f"manage-{secrets.token_hex(6)}/",
        ),
    )
    _write_secrets(settings.secrets_path)
    certs.write_self_signed(settings.tls_cert_path, settings.tls_key_path)
    settings.settings_path.write_text(config.dump(settings))
    settings = config.load(data_dir)

    from tollguard.web import bootstrap

    bootstrap.setup(settings)
    bootstrap.migrate()
    password = bootstrap.create_admin(admin_user)
    return settings, password


def cmd_init(args: argparse.Namespace) -> int:
    admin_user = args.admin_user or default_admin_user()
    settings, password = init_data_dir(
        args.data_dir or config.default_data_dir(),
        bind=args.bind,
        sip_port=args.sip_port,
        tls_port=args.tls_port,
        web_port=args.web_port,
        realm=args.realm,
        admin_user=admin_user,
        force=args.force,
    )
    print(f"Initialised {settings.data_dir}")
    print(f"  settings:   {settings.settings_path}")
    print(f"  secrets:    {settings.secrets_path} (mode 0600, keep it out of backups you share)")
    print(f"  database:   {settings.database_path}")
    print(f"  TLS:        {settings.tls_cert_path} (self-signed: replace before going live)")
    print(f"  SIP:        {', '.join(settings.sip.listen)} (realm {settings.sip.realm!r})")
    print(
        f"  admin:      https://{settings.web.listen_host}:{settings.web.listen_port}"
        f"/{settings.web.admin_path}"
    )
    print(f"  user:       {admin_user}")
    print(f"  password:   {password}   (shown once: change it at first login)")
    return 0


# --- load / cdr export ------------------------------------------------------------------------


def cmd_load(args: argparse.Namespace) -> int:
    settings = _settings(args)
    _require_initialised(settings)
    _setup_django(settings)
    from tollguard.web import provisioning

    try:
        report = provisioning.load_plan_file(
            Path(args.file), realm=settings.sip.realm, dry_run=args.dry_run
        )
    except provisioning.ProvisioningError as exc:
        print(f"tollguard: {args.file}: nothing was changed:", file=sys.stderr)
        for error in exc.errors:
            print(f"  {error}", file=sys.stderr)
        return EXIT_FAILURE
    print(report.summary())
    return 0


def cmd_cdr_export(args: argparse.Namespace) -> int:
    settings = _settings(args)
    _require_initialised(settings)
    _setup_django(settings)
    from tollguard.web import adapters

    out = open(args.output, "w", newline="") if args.output else sys.stdout  # noqa: SIM115
    try:
        count = adapters.export_cdrs(args.format, args.since, args.until, out)
    finally:
        if args.output:
            out.close()
    if args.output:
        print(f"{count} CDRs written to {args.output}", file=sys.stderr)
    return 0


# --- serve / demo -----------------------------------------------------------------------------


# Mozilla's "intermediate" TLS configuration (ssl-config.mozilla.org, guideline 5.7):
# TLS 1.2 suites with forward secrecy and AEAD only (TLS 1.3 suites are all fine). The
# key-exchange groups cannot be set through uvicorn or Python's ssl module before 3.15,
# so an OpenSSL configuration for the web process limits them.
WEB_TLS_CIPHERS = ":".join(
    (
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        "ECDHE-RSA-AES128-GCM-SHA256",
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        "ECDHE-RSA-AES256-GCM-SHA384",
        "ECDHE-ECDSA-CHACHA20-POLY1305",
        "ECDHE-RSA-CHACHA20-POLY1305",
        "DHE-RSA-AES128-GCM-SHA256",
        "DHE-RSA-AES256-GCM-SHA384",
        "DHE-RSA-CHACHA20-POLY1305",
    )
)
WEB_OPENSSL_CONF = Path(__file__).with_name("openssl_web.cfg")


def _start_web(settings: config.Settings) -> subprocess.Popen[bytes]:
    env = dict(os.environ)
    env["OPENSSL_CONF"] = str(WEB_OPENSSL_CONF)
    env[config.DATA_DIR_ENV] = str(settings.data_dir)
    env["DJANGO_SETTINGS_MODULE"] = "tollguard.web.settings.prod"
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        "tollguard.web.asgi:application",
        "--host",
        settings.web.listen_host,
        "--port",
        str(settings.web.listen_port),
        "--ssl-certfile",
        str(settings.tls_cert_path),
        "--ssl-keyfile",
        str(settings.tls_key_path),
        "--ssl-ciphers",
        WEB_TLS_CIPHERS,
        "--no-server-header",
        "--log-level",
        "warning",
    ]
    return subprocess.Popen(command, env=env)


def serve(settings: config.Settings, *, web: bool = True) -> int:
    _require_initialised(settings)
    _setup_django(settings)
    from tollguard.switch.server import run_switch
    from tollguard.transport import loop_factory
    from tollguard.web import adapters

    web_process = _start_web(settings) if web else None
    if web_process is not None:
        print(
            f"web listening on https://{settings.web.listen_host}:{settings.web.listen_port}/",
            flush=True,
        )

    def ready(lines: list[str]) -> None:
        for line in lines:
            print(f"switch listening on {line}", flush=True)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await run_switch(
            settings, adapters.DbPlanSource(), adapters.DbCdrSink(), on_ready=ready, stop=stop
        )

    try:
        with asyncio.Runner(loop_factory=loop_factory()) as runner:
            runner.run(main())
    finally:
        if web_process is not None:
            web_process.terminate()
            try:
                web_process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                web_process.kill()
    print("tollguard stopped", flush=True)
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    return serve(_settings(args), web=not args.no_web)


def cmd_demo(args: argparse.Namespace) -> int:
    from tollguard import demo

    return demo.run(
        sip_port=args.sip_port, web_port=args.web_port, web=not args.no_web, once=args.once
    )


# --- bench / manage ---------------------------------------------------------------------------


def cmd_bench(args: argparse.Namespace) -> int:
    result: dict[str, Any]
    if args.name == "lcr":
        from tollguard.bench import lcr

        result = lcr.run(prefixes=args.prefixes, lookups=args.lookups)
    elif args.name == "rating":
        from tollguard.bench import rating

        result = rating.run()
    elif args.name == "calls":
        from tollguard.bench import calls

        result = calls.run(
            duration_s=args.duration,
            max_rate=args.max_rate,
            references=not args.no_references,
            auth=args.auth,
            hold_retries=args.hold_retries,
        )
    elif args.name == "web":
        from tollguard.bench import web

        result = web.run(cdrs=args.cdrs, requests=args.requests)
    else:  # argparse restricts the choices
        fail(f"unknown benchmark {args.name!r}", EXIT_USAGE)
    if args.json:
        print(json.dumps(result, default=str))
    else:
        for key, value in result.items():
            print(f"{key:>20}: {value}")
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    settings = _settings(args)
    _require_initialised(settings)
    _setup_django(settings)
    from tollguard.web.security import selfcheck

    status = selfcheck.run(sys.stdout)
    if certs.is_self_signed(settings.tls_cert_path):
        print(
            f"warning: {settings.tls_cert_path} is the self-signed certificate made by "
            "'tollguard init': replace it with one a browser and your peers trust"
        )
    if status == 0:
        print("tollguard check: no problems found")
    return status


def cmd_manage(args: argparse.Namespace) -> int:
    settings = _settings(args)
    _require_initialised(settings)
    _setup_django(settings)
    from django.core.management import execute_from_command_line

    execute_from_command_line(["tollguard manage", *args.args])
    return 0


# --- parser -----------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tollguard", description="Secure class-4 VoIP softswitch."
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help=f"data directory (default ${config.DATA_DIR_ENV} or ./tollguard-data)",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("init", help="create the data dir, secrets, database, TLS cert, admin")
    p.add_argument("--bind", default="0.0.0.0", help="address the SIP listeners bind to")
    p.add_argument("--sip-port", type=int, default=5060, help="UDP and TCP port")
    p.add_argument("--tls-port", type=int, default=None, help="TLS port (default SIP port + 1)")
    p.add_argument("--web-port", type=int, default=8443)
    p.add_argument("--realm", default="tollguard", help="digest realm (fixed once accounts exist)")
    p.add_argument(
        "--admin-user", default=None, help="first administrator (default admin-<random>)"
    )
    p.add_argument("--force", action="store_true", help="wipe an existing data dir first")
    p.set_defaults(func=cmd_init)

    p = sub.add_parser("serve", help="run the switch and the web app")
    p.add_argument("--no-web", action="store_true", help="run the switch only")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("demo", help="a throw-away data dir with sample data, then serve")
    p.add_argument("--sip-port", type=int, default=5080)
    p.add_argument("--web-port", type=int, default=8443)
    p.add_argument("--no-web", action="store_true")
    p.add_argument("--once", action="store_true", help="exit after the demo calls")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("load", help="declarative provisioning from a YAML plan")
    p.add_argument("file")
    p.add_argument("--dry-run", action="store_true", help="validate only")
    p.set_defaults(func=cmd_load)

    p = sub.add_parser("cdr", help="call detail records")
    cdr_sub = p.add_subparsers(dest="cdr_command", required=True, metavar="ACTION")
    e = cdr_sub.add_parser("export", help="export CDRs as CSV or JSON")
    e.add_argument("--format", choices=("csv", "json"), default="csv")
    e.add_argument("--since", default=None, help="ISO date/time (UTC), inclusive")
    e.add_argument("--until", default=None, help="ISO date/time (UTC), exclusive")
    e.add_argument("-o", "--output", default=None, help="file (default standard output)")
    e.set_defaults(func=cmd_cdr_export)

    p = sub.add_parser("bench", help="benchmarks (machine-readable with --json)")
    p.add_argument("name", choices=("calls", "lcr", "rating", "web"))
    p.add_argument("--json", action="store_true")
    p.add_argument("--prefixes", type=int, default=5_000_000, help="lcr: index size")
    p.add_argument("--lookups", type=int, default=1_000_000, help="lcr: lookups to time")
    p.add_argument("--duration", type=float, default=20.0, help="calls: seconds to hold a rate")
    p.add_argument("--max-rate", type=int, default=3000, help="calls: highest rate to try")
    p.add_argument("--no-references", action="store_true", help="calls: skip sippy/Kamailio")
    p.add_argument(
        "--auth",
        choices=("digest", "acl"),
        default="digest",
        help="calls: authenticate the customer by digest (MD5) or by source address",
    )
    p.add_argument(
        "--hold-retries",
        type=int,
        choices=range(4),
        default=1,
        metavar="{0..3}",
        help="calls: run a failed full-length hold again this many times (default 1)",
    )
    p.add_argument("--cdrs", type=int, default=5_000_000, help="web: CDRs in the database")
    p.add_argument("--requests", type=int, default=50, help="web: requests per page to time")
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("check", help="configuration and security self-check")
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("manage", help="Django management commands")
    p.add_argument("args", nargs=argparse.REMAINDER)
    p.set_defaults(func=cmd_manage)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    raise SystemExit(main())
