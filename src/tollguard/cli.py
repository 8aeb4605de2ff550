"""The ``tollguard`` command: the product's surface (see ARCHITECTURE.md, "Command line").

Only the command lives here: arguments, what each command prints, its exit status.
Nothing imports this module (an import contract checks it); what the demo, the
benchmarks and the tests share with it is in :mod:`tollguard.datadir` (data
directories) and :mod:`tollguard.processes` (the web process).
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import os
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from tollguard import certs, config, datadir, processes

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
    try:
        datadir.require_initialised(settings)
    except datadir.DataDirError as exc:
        fail(str(exc))


def _setup_django(settings: config.Settings) -> None:
    from tollguard.web import bootstrap

    bootstrap.setup(settings)


# --- init -------------------------------------------------------------------------------


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def cmd_init(args: argparse.Namespace) -> int:
    admin_user = args.admin_user or datadir.default_admin_user()
    try:
        settings, password = datadir.init_data_dir(
            args.data_dir or config.default_data_dir(),
            bind=args.bind,
            sip_port=args.sip_port,
            tls_port=args.tls_port,
            web_port=args.web_port,
            realm=args.realm,
            admin_user=admin_user,
            force=args.force,
        )
    except datadir.DataDirError as exc:
        fail(str(exc))
    print(f"Initialised {settings.data_dir}")
    print(f"  settings:   {settings.settings_path}")
    print(f"  secrets:    {settings.secrets_path} (mode 0600, keep it out of backups you share)")
    print(f"  database:   {settings.database_path}")
    print(f"  TLS:        {settings.tls_cert_path} (self-signed: replace before going live)")
    print(f"  SIP:        {', '.join(settings.sip.listen)} (realm {settings.sip.realm!r})")
    if all(_is_loopback(listen.host) for listen in settings.sip.listeners):
        print(
            "              loopback only: set sip.listen (or init --bind 0.0.0.0) to serve "
            "the network, after 'tollguard check' (docs/security.md, 'Going public')"
        )
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


# --- bans: the SIP shield's ban list -----------------------------------------------------------

_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str) -> int | None:
    """``30m``, ``12h``, ``7d``, ``2w`` or plain seconds; ``never`` or ``0``: no end."""
    value = text.strip().lower()
    if value in {"never", "0", "forever"}:
        return None
    unit = value[-1:] if value[-1:] in _DURATION_UNITS else "s"
    number = value[:-1] if unit != "s" or value.endswith("s") else value
    if not number.isdigit() or int(number) == 0:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a duration such as 30m, 12h, 7d, 2w or never"
        )
    return int(number) * _DURATION_UNITS[unit]


def _bans_setup(args: argparse.Namespace) -> None:
    settings = _settings(args)
    _require_initialised(settings)
    _setup_django(settings)


def _by() -> str:
    return f"cli:{os.environ.get('USER', '?')}"


def cmd_bans_list(args: argparse.Namespace) -> int:
    _bans_setup(args)
    from django.utils import timezone

    from tollguard.web.fraud.models import SipBan

    rows = SipBan.objects.order_by("network")
    if not args.all:
        rows = rows.exclude(expires_at__lte=timezone.now())
    if args.json:
        print(
            json.dumps(
                [
                    {
                        "network": row.network,
                        "reason": row.reason,
                        "mode": row.mode,
                        "offences": row.offences,
                        "created_at": row.created_at.isoformat(),
                        "expires_at": row.expires_at.isoformat() if row.expires_at else None,
                        "note": row.note,
                    }
                    for row in rows
                ],
                indent=1,
            )
        )
        return 0
    count = 0
    for row in rows:
        expires = f"{row.expires_at:%Y-%m-%d %H:%M}Z" if row.expires_at else "never"
        print(
            f"{row.network:<43} {row.reason:<13} {row.mode:<6} x{row.offences:<3} "
            f"until {expires:<17} {row.note}".rstrip()
        )
        count += 1
    print(f"{count} bans", file=sys.stderr)
    return 0


def cmd_bans_add(args: argparse.Namespace) -> int:
    _bans_setup(args)
    from datetime import timedelta

    from tollguard.domain.shield import BanMode
    from tollguard.web.fraud import services

    try:
        row = services.add_ban(
            args.address,
            duration=None if args.duration is None else timedelta(seconds=args.duration),
            mode=BanMode(args.mode),
            note=args.note,
            by=_by(),
        )
    except ValueError as exc:
        fail(str(exc))
    expires = f"{row.expires_at:%Y-%m-%d %H:%M}Z" if row.expires_at else "released"
    print(f"{row.network} banned until {expires}")
    return 0


def cmd_bans_remove(args: argparse.Namespace) -> int:
    _bans_setup(args)
    from tollguard.web.fraud import services

    try:
        removed = services.remove_ban(args.address, by=_by())
    except ValueError as exc:
        fail(str(exc))
    if not removed:
        fail(f"{args.address} is not on the ban list")
    print(f"{args.address} released")
    return 0


def cmd_bans_import(args: argparse.Namespace) -> int:
    _bans_setup(args)
    from datetime import timedelta

    from tollguard.web.fraud import services

    try:
        text = sys.stdin.read() if args.file == "-" else Path(args.file).read_text()
    except (OSError, UnicodeDecodeError) as exc:
        fail(f"{args.file}: {exc}")
    try:
        report = services.import_bans(
            text,
            duration=None if args.duration is None else timedelta(seconds=args.duration),
            note=args.note or f"imported from {Path(args.file).name}",
            by=_by(),
        )
    except services.BanListError as exc:
        print(f"tollguard: {args.file}: nothing was changed:", file=sys.stderr)
        for error in exc.errors:
            print(f"  {error}", file=sys.stderr)
        return EXIT_FAILURE
    print(report.summary())
    return 0


def cmd_bans_export(args: argparse.Namespace) -> int:
    _bans_setup(args)
    from tollguard.web.fraud import services

    text = services.export_bans(args.format)
    if args.output:
        Path(args.output).write_text(text)
        print(
            f"{text.count(chr(10)) if args.format == 'text' else 'JSON'} written to {args.output}",
            file=sys.stderr,
        )
    else:
        sys.stdout.write(text)
    return 0


# --- serve / demo -----------------------------------------------------------------------------


def serve(settings: config.Settings, *, web: bool = True) -> int:
    _require_initialised(settings)
    _setup_django(settings)
    from tollguard.switch.server import LiveStores, run_switch
    from tollguard.transport import loop_factory
    from tollguard.web import adapters
    from tollguard.web.billing.alerts import AlertSender
    from tollguard.web.billing.did_fees import DidFeeCharger
    from tollguard.web.fraud.stores import DbBanStore, DbFraudEventStore, DbSuspensionStore

    web_process = processes.start_web(settings) if web else None
    # Low-balance alerts go out from a thread of this process, off the call path.
    alerts = AlertSender(settings.billing.alert_interval_s)
    alerts.start()
    # DIDs' monthly fees: charged at start and every hour, once per DID and month.
    did_fees = DidFeeCharger()
    did_fees.start()
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
        countries = None
        if settings.web.geoip_database:
            from tollguard.state.geoip import MaxMindCountries

            countries = MaxMindCountries(settings.web.geoip_database)
        stores = LiveStores(
            DbBanStore(),
            DbSuspensionStore(),
            DbFraudEventStore(),
            countries,
            adapters.DbBalanceSource(),
        )
        await run_switch(
            settings,
            adapters.DbPlanSource(),
            adapters.DbCdrSink(),
            on_ready=ready,
            stop=stop,
            live_stores=stores,
        )

    try:
        with asyncio.Runner(loop_factory=loop_factory()) as runner:
            runner.run(main())
    finally:
        alerts.stop()
        did_fees.stop()
        if web_process is not None:
            processes.stop_web(web_process)
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
            duration_s=args.duration if args.duration is not None else 20.0,
            max_rate=args.max_rate,
            references=not args.no_references,
            auth=args.auth,
            hold_retries=args.hold_retries,
            shield=args.shield,
            credit=args.credit,
        )
    elif args.name == "relay":
        from tollguard.bench import relay

        result = relay.run(
            duration_s=args.duration if args.duration is not None else 5.0,
            relay_steps=_steps(args.relay_steps) or relay.RELAY_STEPS,
            rtpengine_steps=_steps(args.rtpengine_steps) or relay.RTPENGINE_STEPS,
            rtpengine=not args.no_rtpengine,
            separate_cpus=not args.shared_cpus,
            python_reference=not args.no_python_reference,
            log=lambda line: print(line, file=sys.stderr, flush=True),
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


def _steps(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(item) for item in text.split(",") if item.strip())
    except ValueError:
        fail(f"not a comma-separated list of call counts: {text!r}", EXIT_USAGE)


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


def cmd_status(args: argparse.Namespace) -> int:
    from tollguard.switch.status import read_status

    settings = _settings(args)
    document, why = read_status(settings.switch_status_path, time.time())
    if document is None:
        print(f"tollguard status: {why}", file=sys.stderr)
        return EXIT_FAILURE
    if args.json:
        print(json.dumps(document, sort_keys=True))
        return 0
    print(f"switch: running, pid {document['pid']}")
    print(
        f"calls: {document['active_calls']} in progress, {document['calls_total']} since "
        f"start, {document['calls_per_second']:.2f}/s"
    )
    print(
        f"registrations: {document['bindings']} bindings, "
        f"{document['registered_accounts']} accounts registered"
    )
    print(f"handler errors: {document['handler_errors']} (anything but 0: see the switch's log)")
    return 0


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
    p.add_argument(
        "--bind",
        default="127.0.0.1",
        help="address the SIP listeners bind to (default loopback: open it with 0.0.0.0 "
        "once accounts, limits and 'tollguard check' are in order)",
    )
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

    p = sub.add_parser("bans", help="the SIP shield's ban list")
    bans_sub = p.add_subparsers(dest="bans_command", required=True, metavar="ACTION")
    b = bans_sub.add_parser("list", help="active bans (--all: expired ones still remembered)")
    b.add_argument("--all", action="store_true")
    b.add_argument("--json", action="store_true")
    b.set_defaults(func=cmd_bans_list)
    b = bans_sub.add_parser("add", help="ban an address or CIDR network")
    b.add_argument("address")
    b.add_argument(
        "--duration", type=parse_duration, default=None, help="30m, 12h, 7d, 2w (default never)"
    )
    b.add_argument(
        "--mode",
        choices=("drop", "refuse"),
        default="drop",
        help="drop: silently (default); refuse: every authentication fails",
    )
    b.add_argument("--note", default="")
    b.set_defaults(func=cmd_bans_add)
    b = bans_sub.add_parser("remove", help="release the ban of an address or network")
    b.add_argument("address")
    b.set_defaults(func=cmd_bans_remove)
    b = bans_sub.add_parser(
        "import", help="ban every address of a file: one per line, or APIBAN JSON ('-': stdin)"
    )
    b.add_argument("file")
    b.add_argument(
        "--duration", type=parse_duration, default=7 * 86400, help="default 7d; never: no end"
    )
    b.add_argument("--note", default="")
    b.set_defaults(func=cmd_bans_import)
    b = bans_sub.add_parser("export", help="the active bans, one per line or as APIBAN JSON")
    b.add_argument("--format", choices=("text", "json"), default="text")
    b.add_argument("-o", "--output", default=None, help="file (default standard output)")
    b.set_defaults(func=cmd_bans_export)

    p = sub.add_parser("bench", help="benchmarks (machine-readable with --json)")
    p.add_argument("name", choices=("calls", "lcr", "rating", "relay", "web"))
    p.add_argument("--json", action="store_true")
    p.add_argument("--prefixes", type=int, default=5_000_000, help="lcr: index size")
    p.add_argument("--lookups", type=int, default=1_000_000, help="lcr: lookups to time")
    p.add_argument(
        "--duration",
        type=float,
        default=None,
        help="calls: seconds to hold a rate (20); relay: seconds per step (5)",
    )
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
    p.add_argument(
        "--shield",
        choices=("on", "off", "compare"),
        default="on",
        help="calls: the SIP shield as shipped, off, or both in one run (BENCHMARKS.md)",
    )
    p.add_argument(
        "--credit",
        choices=("off", "prepaid", "both"),
        default="both",
        help="calls: measure Tollguard without credit control, with a prepaid customer, "
        "or both in one run (default)",
    )
    p.add_argument(
        "--relay-steps", default="", help="relay: call counts for the embedded relay, e.g. 250,500"
    )
    p.add_argument("--rtpengine-steps", default="", help="relay: call counts for rtpengine")
    p.add_argument("--no-rtpengine", action="store_true", help="relay: skip rtpengine")
    p.add_argument(
        "--no-python-reference",
        action="store_true",
        help="relay: skip the embedded relay with every packet on its Python path",
    )
    p.add_argument(
        "--shared-cpus",
        action="store_true",
        help="relay: let the generators and the relay share every CPU (default: apart)",
    )
    p.add_argument("--cdrs", type=int, default=5_000_000, help="web: CDRs in the database")
    p.add_argument("--requests", type=int, default=50, help="web: requests per page to time")
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("check", help="configuration and security self-check")
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("status", help="the running switch: calls, registrations, errors")
    p.add_argument("--json", action="store_true", help="the switch's status document as JSON")
    p.set_defaults(func=cmd_status)

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
