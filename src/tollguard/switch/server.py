"""The switch process: listeners, the routing plan, the B2BUA and the CDR writer, wired.

:func:`run_switch` serves until ``stop`` is set or the process gets SIGTERM/SIGINT, then
stops gracefully: new INVITEs get 503, calls in progress are ended (BYE on both legs of
answered calls, CANCEL and 503 for the others), and every CDR is written before it
returns.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tollguard.config import Settings, rtpengine_address
from tollguard.domain.cdr import CdrSink
from tollguard.domain.credit import (
    BalanceSource,
    CreditControl,
    CreditPolicy,
    catch_up,
    load_balances,
)
from tollguard.domain.fraud import FraudEventStore, SourceCountries, SuspensionStore
from tollguard.domain.plan import PlanSource
from tollguard.domain.routing import Plan
from tollguard.domain.shield import BanStore, Shield, policy_from_settings
from tollguard.media import MediaBackend
from tollguard.media.relay import EmbeddedRelay
from tollguard.media.rtpengine import Rtpengine
from tollguard.state import bindings_file
from tollguard.state.memory import (
    MemoryBans,
    MemoryCounters,
    MemoryReservations,
    MemorySuspensions,
)
from tollguard.state.sync import LiveStateSync
from tollguard.switch.b2bua import B2bua
from tollguard.switch.cdr_writer import CdrWriter
from tollguard.switch.guard import Guard
from tollguard.switch.loader import PlanLoader
from tollguard.switch.media import MediaHooks
from tollguard.switch.registrar import Registrar
from tollguard.switch.status import StatusPublisher, SwitchCounters
from tollguard.switch.timers import Scheduler
from tollguard.transport import StreamLimits, Transports, client_context, server_context

__all__ = ["LiveStores", "run_switch"]

log = logging.getLogger(__name__)
security_log = logging.getLogger("tollguard.security")

# How long a graceful stop waits for the BYEs and CANCELs it sent to be answered.
_DRAIN_TIMEOUT_S = 4.0
# Seconds between two saves of the UDP bindings (when they changed), and at the stop.
BINDINGS_SAVE_S = 10.0
# Allocations between two collections of the youngest generation (CPython: 700).
_GC_YOUNG_THRESHOLD = 20_000


def _nonce_secret(settings: Settings) -> bytes:
    secret = settings.secrets.nonce_secret
    if secret:
        return secret.encode()
    # No configured secret (tests, a first start): nonces from this process only.
    log.warning("no nonce secret configured; digest nonces will not survive a restart")
    return os.urandom(32)


@dataclass(frozen=True, slots=True)
class LiveStores:
    """Where the shield's bans, account locks and suspensions and the fraud events outlive
    the process (the database, through the web layer), the source-country lookup, and
    the customers' balances (the ledger) that credit control reserves against."""

    bans: BanStore
    suspensions: SuspensionStore
    events: FraudEventStore | None = None
    countries: SourceCountries | None = None
    balances: BalanceSource | None = None


class _Funds:
    """Credit control over memory reservations, kept in step with the ledger."""

    def __init__(self, settings: Settings, source: BalanceSource) -> None:
        billing = settings.billing
        self.source = source
        self.control = CreditControl(
            MemoryReservations(),
            CreditPolicy(
                slice_s=billing.slice_s,
                extend_before_s=billing.extend_before_s,
                setup_allowance_s=billing.setup_allowance_s,
                grace_s=billing.reservation_grace_s,
            ),
        )
        self.version = 0

    def load(self) -> None:
        self.version = load_balances(self.source, self.control.store)

    def sync(self, now: float) -> None:
        """Top-ups, adjustments and charges since the last sync; lapsed reservations."""
        self.version = catch_up(self.source, self.control.store, self.version)
        for lapsed in self.control.housekeeping(now):
            log.warning("reservation %s of customer %s lapsed", lapsed.key, lapsed.customer_id)


# How often the switch saves its bans and suspensions and reads back operators' changes.
_SYNC_INTERVAL_S = 1.0


def _guard(settings: Settings, stores: LiveStores | None) -> tuple[Guard, LiveStateSync | None]:
    """The shield and fraud engine over memory state, synced with ``stores`` when given."""
    bans, counters, locks = MemoryBans(), MemoryCounters(), MemorySuspensions()
    sync = None
    if stores is not None:
        sync = LiveStateSync(
            bans,
            stores.bans,
            locks,
            stores.suspensions,
            stores.events,
            offence_memory_s=settings.shield.offence_memory_s,
        )
    shield = None
    if settings.shield.enabled:
        shield = Shield(
            policy_from_settings(settings.shield),
            bans,
            counters,
            locks,
            on_ban=sync.ban_made if sync is not None else None,
            on_lock=sync.suspension_made if sync is not None else None,
        )
    guard = Guard(
        shield,
        counters,
        locks,
        trust_acl=settings.shield.trust_acl,
        countries=stores.countries if stores is not None else None,
        on_event=sync.event if sync is not None else None,
    )
    return guard, sync


async def _keep_in_sync(
    sync: LiveStateSync | None, guard: Guard, funds: _Funds | None, stop: asyncio.Event
) -> None:
    """Save and reload the live state every second, in a worker thread."""

    def once() -> None:
        now = time.time()
        if funds is not None:
            funds.sync(now)
        if sync is not None:
            sync.sync(now)
        if guard.shield is not None:
            guard.shield.prune(now)

    while not stop.is_set():
        try:
            await asyncio.to_thread(once)
        except Exception:
            # The database is down or a store failed: what was decided stays queued.
            log.exception("cannot sync bans and suspensions; retrying")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), _SYNC_INTERVAL_S)
    with contextlib.suppress(Exception):
        await asyncio.to_thread(once)  # what the last second decided


def _restore_bindings(
    registrar: Registrar, path: Path, text: str | None, plan: Plan, now: float
) -> str:
    """Take back the bindings the last run kept (``text``: the file's, None when there
    is none); returns what is saved now."""
    if text is None:
        return ""
    found, problems = bindings_file.parse(text, now)
    for problem in problems:
        log.warning("%s: %s; re-learnt at the next REGISTER instead", path, problem)
    taken = registrar.restore(found, plan)
    log.info(
        "registrar: %d bindings taken back from %s (%d more were expired, or of accounts "
        "gone or disabled)",
        taken,
        path,
        len(found) - taken,
    )
    return text


async def _keep_bindings(registrar: Registrar, path: Path, saved: str, stop: asyncio.Event) -> None:
    """Save the UDP bindings when they changed, every few seconds and once at the stop."""
    while True:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), BINDINGS_SAVE_S)
        text = bindings_file.dump(registrar.persistent())
        if text != saved:
            try:
                await asyncio.to_thread(bindings_file.write, path, text)
                saved = text
            except OSError:
                log.exception("cannot save the bindings to %s; retrying", path)
        if stop.is_set():
            return


def _media_backends(settings: Settings) -> tuple[EmbeddedRelay, Rtpengine | None]:
    """The embedded relay (always: a customer may be switched to it at any time) and
    rtpengine when its control address is configured."""
    media = settings.media
    listeners = settings.sip.listeners
    relay = EmbeddedRelay(
        media, settings.sip.advertised_host, listeners[0].host if listeners else ""
    )
    address = rtpengine_address(media)
    engine = Rtpengine(address, media) if address is not None else None
    return relay, engine


def _settle_heap() -> None:
    """Take what was loaded at start out of the cyclic garbage collector's sight.

    The process has imported its libraries (Django for the adapters among them) and
    built its first plan: hundreds of thousands of long-lived objects that every full
    collection would walk again while calls wait. ``gc.freeze`` moves them to the
    permanent generation (reference counting still frees them), before the first call
    so that no call's objects are frozen. Collections then run less often too: a call
    allocates a few hundred objects, and CPython's default (700) would collect the
    youngest generation at nearly every call.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(_GC_YOUNG_THRESHOLD, *gc.get_threshold()[1:])


async def run_switch(
    settings: Settings,
    plan_source: PlanSource,
    cdr_sink: CdrSink,
    *,
    on_ready: Callable[[list[str]], None] | None = None,
    stop: asyncio.Event | None = None,
    settle_heap: bool = True,
    scheduler: Scheduler | None = None,
    wall_clock: Callable[[], float] = time.time,
    live_stores: LiveStores | None = None,
) -> None:
    """Serve SIP until ``stop`` is set (or SIGTERM/SIGINT), then stop gracefully.

    ``on_ready`` gets one line per listener with its bound port, e.g.
    ``udp:127.0.0.1:40123``, once the plan is loaded and every listener is up.
    ``settle_heap`` tunes the process's garbage collector for the switch (see
    :func:`settle_heap`); a caller that shares its process with other work (a test
    run) passes False. ``scheduler`` and ``wall_clock`` replace the event loop's timer
    wheel and the time of day (tests move a manual clock instead of waiting).
    ``live_stores`` keep the shield's bans and the fraud engine's suspensions and events
    across restarts (without them they live in memory only) and, with ``balances``, turn
    credit control on.
    """
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    loader = PlanLoader(plan_source)
    await loader.load()
    guard, sync = _guard(settings, live_stores)
    # The allow-list comes from the plan: in force before the first request, and at
    # every swap (not only once a call reaches admission).
    guard.use_plan(loader.plan)
    loader.on_swap = lambda plan, _version: guard.use_plan(plan)
    if sync is not None:
        await asyncio.to_thread(sync.load)
    funds = None
    if live_stores is not None and live_stores.balances is not None:
        if settings.billing.credit_control:
            funds = _Funds(settings, live_stores.balances)
            await asyncio.to_thread(funds.load)
        else:
            security_log.warning(
                "credit control is off (billing.credit_control = false): "
                "calls are neither refused nor cut for money"
            )
    writer = CdrWriter(
        cdr_sink, batch_size=settings.cdr.batch_size, flush_interval_s=settings.cdr.flush_interval_s
    )
    relay, rtpengine = _media_backends(settings)
    backends: dict[str, MediaBackend] = {"relay": relay}
    if rtpengine is not None:
        backends["rtpengine"] = rtpengine
    b2bua = B2bua(
        settings,
        lambda: loader.plan,
        writer,
        nonce_secret=_nonce_secret(settings),
        wall_clock=wall_clock,
        scheduler=scheduler,
        guard=guard,
        credit=funds.control if funds is not None else None,
        media=MediaHooks(backends, settings.media.default),
    )
    if settle_heap:
        _settle_heap()
    listens = settings.sip.listeners
    server_ssl = None
    if any(listen.transport == "tls" for listen in listens):
        server_ssl = server_context(settings.tls_cert_path, settings.tls_key_path)
    transports = Transports(
        b2bua.on_message,
        reuse_port=settings.sip.reuse_port,
        server_ssl=server_ssl,
        client_ssl=client_context(
            verify=settings.sip.tls_verify_gateways,
            cafile=Path(settings.sip.tls_ca_file) if settings.sip.tls_ca_file else None,
        ),
        on_send_error=b2bua.on_send_error,
        limits=StreamLimits.from_settings(settings.sip),
    )
    installed: list[signal.Signals] = []
    publishing: asyncio.Task[None] | None = None
    syncing: asyncio.Task[None] | None = None
    keeping: asyncio.Task[None] | None = None
    kept_text = await asyncio.to_thread(bindings_file.read, settings.bindings_path)
    try:
        listeners = await transports.start(
            listen for listen in listens if listen.transport != "wss"
        )
        host = settings.sip.advertised_host
        if not host:
            wildcard = {"0.0.0.0", "::"}  # noqa: S104 (compared against, not bound)
            bound = next((item.host for item in listeners if item.host not in wildcard), "")
            host = bound or "127.0.0.1"
            if not bound:
                log.warning("sip.advertised_host is not set; advertising %s", host)
        b2bua.bind(
            transports.send,
            {item.transport: item.port for item in reversed(listeners)},
            host,
            connections=transports,
        )
        # The registrar exists once bound; a REGISTER that came first keeps what it made.
        saved = _restore_bindings(
            b2bua.registrar, settings.bindings_path, kept_text, loader.plan, wall_clock()
        )
        relay.advertise(host)
        relay.start()
        if rtpengine is not None:
            rtpengine.start()
        for signum in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(signum, stop.set)
                installed.append(signum)
        lines = [str(item) for item in listeners]
        log.info("switch ready: %s", ", ".join(lines))
        if on_ready is not None:
            on_ready(lines)

        def counters() -> SwitchCounters:
            bindings, accounts = b2bua.registrar.registered()
            return SwitchCounters(
                b2bua.active_calls, b2bua.calls_total, b2bua.handler_errors, bindings, accounts
            )

        status = StatusPublisher(settings.switch_status_path, counters)
        publishing = asyncio.create_task(status.run(stop))
        syncing = asyncio.create_task(_keep_in_sync(sync, guard, funds, stop))
        keeping = asyncio.create_task(
            _keep_bindings(b2bua.registrar, settings.bindings_path, saved, stop)
        )
        await loader.run(stop)
        await publishing
        await syncing
        await keeping
        log.info("switch stopping: %d calls in progress", b2bua.active_calls)
        b2bua.drain()
        await b2bua.wait_settled(_DRAIN_TIMEOUT_S)
    finally:
        for task in (publishing, syncing, keeping):
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        b2bua.close()
        relay.close()
        if rtpengine is not None:
            rtpengine.close()
        for signum in installed:
            loop.remove_signal_handler(signum)
        await transports.close()
        await asyncio.to_thread(writer.close)
        log.info("switch stopped: %d CDRs written", writer.written)
