from __future__ import annotations

import ipaddress
import random
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tollguard.domain import routing
from tollguard.domain.errors import PlanError
from tollguard.domain.plan import (
    Account,
    AclEntry,
    Customer,
    Gateway,
    PlanData,
    Provider,
    Rate,
    RateCard,
    RoutingStrategy,
)
from tollguard.domain.routing import (
    CUSTOMER_DISABLED,
    NO_PROVIDER,
    NO_ROUTE,
    Plan,
    build_plan,
    failover_policy,
    rate_in_force,
)

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def _rate(prefix: str, price: str, **kwargs: object) -> Rate:
    return Rate(prefix, f"dest {prefix}", Decimal(price), **kwargs)  # type: ignore[arg-type]


SELL = RateCard(
    id=1,
    name="retail",
    rates=(
        _rate("44", "0.0200"),
        _rate("447", "0.0900"),
        _rate("33", "0.0150"),
        _rate("49", "0.0100"),
        _rate("1", "0.0050"),
    ),
)
COST_A = RateCard(
    id=2,
    name="carrier a",
    rates=(_rate("44", "0.0080"), _rate("447", "0.0500"), _rate("49", "0.0120")),
)
COST_B = RateCard(id=3, name="carrier b", rates=(_rate("44", "0.0060"), _rate("33", "0.0100")))
COST_C = RateCard(id=4, name="carrier c", rates=(_rate("4", "0.0060"), _rate("1", "0.0010")))

ACME = Customer(id=10, name="acme", sell_card_id=1)
PROVIDERS = (
    Provider(id=1, name="a", cost_card_id=2, priority=10, weight=1),
    Provider(id=2, name="b", cost_card_id=3, priority=20, weight=1),
    Provider(id=3, name="c", cost_card_id=4, priority=5, weight=1),
)
GATEWAYS = (
    Gateway(id=12, provider_id=1, name="a2", host="a2.example.net"),
    Gateway(id=11, provider_id=1, name="a1", host="a1.example.net", strip_digits=2, add_prefix="0"),
    Gateway(id=21, provider_id=2, name="b1", host="b1.example.net", add_prefix="+"),
    Gateway(id=31, provider_id=3, name="c1", host="c1.example.net", enabled=False),
    Gateway(id=32, provider_id=3, name="c2", host="c2.example.net", add_prefix="99#"),
)


def _data(**changes: object) -> PlanData:
    data = PlanData(
        version=7,
        customers=(ACME, Customer(id=11, name="off", enabled=False, sell_card_id=1)),
        accounts=(Account(id=1, customer_id=10, username="acme1", ha1_md5="m", ha1_sha256="s"),),
        acl=(
            AclEntry(id=1, customer_id=10, network=ipaddress.ip_network("192.0.2.0/24")),
            AclEntry(
                id=2,
                customer_id=11,
                network=ipaddress.ip_network("192.0.2.0/24"),
                tech_prefix="123#",
            ),
            AclEntry(id=3, customer_id=11, network=ipaddress.ip_network("192.0.2.7/32")),
            AclEntry(
                id=4, customer_id=10, network=ipaddress.ip_network("2001:db8::/32"), tech_prefix="9"
            ),
            AclEntry(
                id=5,
                customer_id=11,
                network=ipaddress.ip_network("198.51.100.0/24"),
                tech_prefix="55",
            ),
            AclEntry(
                id=6,
                customer_id=10,
                network=ipaddress.ip_network("198.51.100.0/24"),
                tech_prefix="5",
            ),
        ),
        providers=PROVIDERS,
        gateways=GATEWAYS,
        rate_cards=(SELL, COST_A, COST_B, COST_C),
    )
    return replace(data, **changes)  # type: ignore[arg-type]


@pytest.fixture
def plan() -> Plan:
    return build_plan(_data())


def test_lookups(plan: Plan) -> None:
    assert plan.version == 7
    assert plan.customer(10) == ACME
    assert plan.customer(99) is None
    account = plan.account_by_username("acme1")
    assert account is not None
    assert account.customer_id == 10
    assert plan.account_by_username("nobody") is None
    assert plan.rate_card(2) is COST_A
    assert plan.provider(3) == PROVIDERS[2]
    with pytest.raises(PlanError, match="rate card 42: not in this plan"):
        plan.rate_card(42)


@pytest.mark.parametrize(
    ("ip", "called", "entry_id", "number"),
    [
        ("192.0.2.10", "442079460000", 1, "442079460000"),
        ("192.0.2.10", "123#442079460000", 2, "442079460000"),
        ("192.0.2.7", "123#442079460000", 3, "123#442079460000"),
        ("::ffff:192.0.2.10", "442079460000", 1, "442079460000"),
        ("2001:db8::1", "9442079460000", 4, "442079460000"),
        ("198.51.100.1", "55442079460000", 5, "442079460000"),
        ("198.51.100.1", "5442079460000", 6, "442079460000"),
        ("2001:db8::1", "442079460000", None, ""),
        ("203.0.113.5", "442079460000", None, ""),
        ("198.51.100.1", "442079460000", None, ""),
        ("not-an-ip", "442079460000", None, ""),
    ],
    ids=[
        "network",
        "tech-prefix-beats-plain-entry",
        "longer-network-wins",
        "ipv4-mapped-ipv6",
        "ipv6-with-tech-prefix",
        "longest-tech-prefix",
        "shorter-tech-prefix",
        "tech-prefix-required",
        "unknown-address",
        "no-tech-prefix-matches",
        "garbage-address",
    ],
)
def test_match_acl(plan: Plan, ip: str, called: str, entry_id: int | None, number: str) -> None:
    match = plan.match_acl(ip, called)
    if entry_id is None:
        assert match is None
    else:
        assert match is not None
        assert (match[0].id, match[1]) == (entry_id, number)
    # A second lookup answers from the memo of parsed addresses, the same way.
    assert plan.match_acl(ip, called) == match


def test_address_memo_is_bounded(plan: Plan, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(routing, "_ADDRESSES", {})
    monkeypatch.setattr(routing, "_ADDRESSES_MAX", 3)
    for last in range(10):
        assert plan.match_acl(f"203.0.113.{last}", "442079460000") is None
        assert len(routing._ADDRESSES) <= 3
    assert plan.match_acl("::ffff:192.0.2.10", "442079460000") is not None


def test_route_least_cost(plan: Plan) -> None:
    decision = plan.route(ACME, "442079460000", NOW)
    assert decision.rejection is None
    assert decision.sell_rate == SELL.rates[0]
    assert [(c.provider.id, c.gateway.id, c.dial_number) for c in decision.candidates] == [
        # b and c both cost 0.0060: priority 5 (c) before 20 (b).
        (3, 32, "99#442079460000"),
        (2, 21, "+442079460000"),
        (1, 11, "02079460000"),
        (1, 12, "442079460000"),
    ]
    assert [c.cost_rate.price_per_minute for c in decision.candidates] == [
        Decimal("0.0060"),
        Decimal("0.0060"),
        Decimal("0.0080"),
        Decimal("0.0080"),
    ]


def test_route_priority(plan: Plan) -> None:
    customer = replace(ACME, strategy=RoutingStrategy.PRIORITY)
    decision = plan.route(customer, "442079460000", NOW)
    assert [c.provider.id for c in decision.candidates] == [3, 1, 1, 2]


def test_route_uses_longest_cost_prefix_and_drops_negative_margin(plan: Plan) -> None:
    # Sell 0.09 for 447; a costs 0.05 there, c 0.006 on "4", b only has "44" at 0.006.
    decision = plan.route(ACME, "447400123456", NOW)
    assert decision.sell_rate == SELL.rates[1]
    assert [(c.provider.id, c.cost_rate.prefix) for c in decision.candidates] == [
        (3, "4"),
        (2, "44"),
        (1, "447"),
        (1, "447"),
    ]
    # Germany: sell 0.01, a costs 0.012 there (dropped), c 0.006.
    decision = plan.route(ACME, "4930123456", NOW)
    assert [c.provider.id for c in decision.candidates] == [3]
    loss_ok = replace(ACME, allow_negative_margin=True)
    decision = plan.route(loss_ok, "4930123456", NOW)
    assert [c.provider.id for c in decision.candidates] == [3, 1, 1]


def test_route_respects_customer_providers(plan: Plan) -> None:
    customer = replace(ACME, provider_ids=(1, 2))
    decision = plan.route(customer, "442079460000", NOW)
    assert [c.provider.id for c in decision.candidates] == [2, 1, 1]


def test_route_offers_only_providers_in_the_sell_cards_currency() -> None:
    # b's card is in USD: its 0.0060 would rank it first, but it cannot be compared with
    # prices in EUR, and a margin over it would subtract dollars from euros.
    usd_b = replace(COST_B, currency="USD")
    plan = build_plan(_data(rate_cards=(SELL, COST_A, usd_b, COST_C)))
    decision = plan.route(ACME, "442079460000", NOW)
    assert [c.provider.id for c in decision.candidates] == [3, 1, 1]
    # A USD customer gets b only, and a number only a EUR provider covers is refused.
    usd_sell = RateCard(id=5, name="retail usd", currency="USD", rates=SELL.rates)
    usd = Customer(id=12, name="usd", sell_card_id=5)
    plan = build_plan(
        _data(
            rate_cards=(SELL, COST_A, usd_b, COST_C, usd_sell),
            customers=(*_data().customers, usd),
        )
    )
    assert [c.provider.id for c in plan.route(usd, "442079460000", NOW).candidates] == [2]
    refused = plan.route(usd, "4930123456", NOW)
    assert refused.rejection == NO_PROVIDER
    assert refused.sell_rate is not None and refused.candidates == ()
    # Listing the provider for the customer does not override the rule.
    assert plan.route(replace(usd, provider_ids=(1,)), "442079460000", NOW).rejection == (
        NO_PROVIDER
    )


def test_route_skips_disabled_providers() -> None:
    providers = (PROVIDERS[0], replace(PROVIDERS[1], enabled=False), PROVIDERS[2])
    plan = build_plan(_data(providers=providers))
    customer = replace(ACME, provider_ids=(1, 2))
    decision = plan.route(customer, "442079460000", NOW)
    assert {c.provider.id for c in decision.candidates} == {1}


@pytest.mark.parametrize(
    ("customer", "number", "rejection"),
    [
        (replace(ACME, enabled=False), "442079460000", CUSTOMER_DISABLED),
        (ACME, "81312345678", NO_ROUTE),
        (replace(ACME, sell_card_id=None), "442079460000", NO_ROUTE),
        (ACME, "12125550100", NO_PROVIDER),
    ],
    ids=["customer-disabled", "no-sell-rate", "no-sell-card", "no-provider-but-c-over-margin"],
)
def test_route_rejections(plan: Plan, customer: Customer, number: str, rejection: object) -> None:
    customer_plan = plan
    if number == "12125550100":
        # Only provider c serves "1"; without it enabled nothing can carry the call.
        customer_plan = build_plan(
            _data(providers=(*PROVIDERS[:2], replace(PROVIDERS[2], enabled=False)))
        )
    decision = customer_plan.route(customer, number, NOW)
    assert decision.rejection == rejection
    assert decision.candidates == ()


def test_rejection_codes() -> None:
    assert (NO_ROUTE.status, NO_ROUTE.reason, NO_ROUTE.q850_cause) == (
        404,
        "No route to destination",
        3,
    )
    assert CUSTOMER_DISABLED.status == 403


def test_route_weight_is_seeded_and_weighted() -> None:
    providers = (
        replace(PROVIDERS[0], weight=90),
        replace(PROVIDERS[1], weight=10),
        replace(PROVIDERS[2], weight=0),
    )
    plan = build_plan(_data(providers=providers))
    customer = replace(ACME, strategy=RoutingStrategy.WEIGHT)
    first = [
        plan.route(customer, "442079460000", NOW, random.Random(seed)).candidates[0].provider.id
        for seed in range(2000)
    ]
    again = [
        plan.route(customer, "442079460000", NOW, random.Random(seed)).candidates[0].provider.id
        for seed in range(2000)
    ]
    assert first == again
    share_a = first.count(1) / len(first)
    assert 0.85 < share_a < 0.95
    assert 3 not in first
    order = plan.route(customer, "442079460000", NOW, random.Random(1)).candidates
    assert order[-1].provider.id == 3


def test_effective_dates() -> None:
    old = _rate("44", "0.0200", effective_until=NOW)
    new = _rate("44", "0.0300", effective_from=NOW)
    later = _rate("44", "0.0400", effective_from=NOW + timedelta(days=30))
    base = _rate("4", "0.5000")
    sell = replace(SELL, rates=(base, later, old, new))
    plan = build_plan(_data(rate_cards=(sell, COST_A, COST_B, COST_C)))
    assert plan.sell_rate(ACME, "4420", NOW - timedelta(seconds=1)) == old
    assert plan.sell_rate(ACME, "4420", NOW) == new
    assert plan.sell_rate(ACME, "4420", NOW + timedelta(days=31)) == later
    assert rate_in_force((later, new), NOW) == new


def test_expired_prefix_falls_back_to_shorter() -> None:
    expired = _rate("44", "0.0200", effective_until=NOW)
    sell = replace(SELL, rates=(expired, _rate("4", "0.5000")))
    plan = build_plan(_data(rate_cards=(sell, COST_A, COST_B, COST_C)))
    rate = plan.sell_rate(ACME, "4420", NOW)
    assert rate is not None
    assert rate.prefix == "4"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"gateways": (Gateway(id=1, provider_id=7, name="gw1", host="h"),)},
            "gateway 'gw1': unknown provider 7",
        ),
        (
            {"customers": (Customer(id=1, name="x", sell_card_id=9),)},
            "customer 'x': unknown rate card 9",
        ),
        (
            {"customers": (Customer(id=1, name="x", provider_ids=(8,)),)},
            "customer 'x': unknown provider 8",
        ),
        (
            {"customers": (ACME, replace(ACME, name="again"))},
            "customer 'again': defined twice",
        ),
        (
            {"providers": (Provider(id=1, name="p", cost_card_id=5),)},
            "provider 'p': unknown rate card 5",
        ),
        (
            {"accounts": (Account(id=1, customer_id=5, username="u", ha1_md5="", ha1_sha256=""),)},
            "account 'u': unknown customer 5",
        ),
        (
            {
                "accounts": (
                    Account(id=1, customer_id=10, username="u", ha1_md5="", ha1_sha256=""),
                    Account(id=2, customer_id=10, username="u", ha1_md5="", ha1_sha256=""),
                )
            },
            "account 'u': defined twice",
        ),
        (
            {"acl": (AclEntry(id=1, customer_id=5, network=ipaddress.ip_network("192.0.2.0/24")),)},
            r"acl entry 1 \(192.0.2.0/24\): unknown customer 5",
        ),
        (
            {"rate_cards": (replace(SELL, rates=(_rate("0044", "1"),)), COST_A, COST_B, COST_C)},
            "rate card 'retail' prefix '0044': a prefix is up to 15 digits",
        ),
        (
            {"rate_cards": (replace(SELL, rates=(_rate("44", "-1"),)), COST_A, COST_B, COST_C)},
            "rate card 'retail' prefix '44': prices must not be negative",
        ),
        (
            {
                "rate_cards": (
                    replace(SELL, rates=(_rate("44", "1"), _rate("44", "2"))),
                    COST_A,
                    COST_B,
                    COST_C,
                )
            },
            "rate card 'retail' prefix '44': several rates take effect at the same time",
        ),
        (
            {
                "rate_cards": (
                    replace(SELL, rates=(_rate("44", "1", effective_from=datetime(2026, 1, 1)),)),
                    COST_A,
                    COST_B,
                    COST_C,
                )
            },
            "rate card 'retail' prefix '44': effective dates must be UTC-aware",
        ),
        (
            {
                "rate_cards": (
                    replace(
                        SELL, rates=(_rate("44", "1", effective_from=NOW, effective_until=NOW),)
                    ),
                    COST_A,
                    COST_B,
                    COST_C,
                )
            },
            "effective_until is not after effective_from",
        ),
    ],
    ids=[
        "gateway-provider",
        "customer-card",
        "customer-provider",
        "customer-twice",
        "provider-card",
        "account-customer",
        "account-twice",
        "acl-customer",
        "bad-prefix",
        "negative-price",
        "same-start-twice",
        "naive-date",
        "empty-period",
    ],
)
def test_build_plan_rejects(changes: dict[str, object], message: str) -> None:
    with pytest.raises(PlanError, match=message):
        build_plan(_data(**changes))


@pytest.mark.parametrize(
    ("codes", "status", "expected"),
    [
        (("408", "5xx"), 408, True),
        (("408", "5xx"), 503, True),
        (("408", "5xx"), 500, True),
        (("408", "5xx"), 404, False),
        (("408", "5xx"), 486, False),
        (("408", "5xx"), 603, False),
        (("408", "5xx"), 200, False),
        (("4xx",), 486, False),
        (("4xx",), 480, True),
        (("486",), 486, True),
        (("6xx",), 603, True),
        (("603",), 603, True),
        (("603",), 600, False),
        ((), 503, False),
        ((" 5XX ",), 502, True),
    ],
    ids=[
        "listed-code",
        "class",
        "class-500",
        "unlisted",
        "busy-never-by-class",
        "6xx-never-by-default",
        "success",
        "4xx-class-still-not-busy",
        "4xx-class",
        "busy-listed-exactly",
        "6xx-listed",
        "603-listed",
        "other-6xx",
        "empty",
        "case-and-space",
    ],
)
def test_failover_policy(codes: tuple[str, ...], status: int, expected: bool) -> None:
    assert failover_policy(codes).should_failover(status) is expected


@pytest.mark.parametrize("code", ["5x", "2xx", "abc", "200", "5xxx", "7xx", "\u0665\u0660\u0663"])
def test_failover_policy_rejects(code: str) -> None:
    with pytest.raises(PlanError, match="expected a final status"):
        failover_policy([code])


@given(st.integers(min_value=600, max_value=699))
def test_6xx_never_fails_over_unless_listed(status: int) -> None:
    assert not failover_policy(["3xx", "4xx", "5xx"]).should_failover(status)


def _big_card(card_id: int, count: int, rng: random.Random) -> RateCard:
    prefixes: set[str] = set()
    while len(prefixes) < count:
        prefixes.add(str(rng.randrange(1, 10 ** rng.randint(1, 9))))
    return RateCard(
        id=card_id,
        name=f"card {card_id}",
        rates=tuple(
            Rate(p, f"dest {p[:3]}", Decimal(rng.randrange(1, 9999)).scaleb(-4)) for p in prefixes
        ),
    )


def test_build_plan_with_100k_rates_routes_every_prefix() -> None:
    rng = random.Random(5)
    sell = _big_card(1, 50_000, rng)
    cost = _big_card(2, 50_000, rng)
    data = PlanData(
        version=1,
        customers=(replace(ACME, allow_negative_margin=True),),
        providers=(Provider(id=1, name="a", cost_card_id=2),),
        gateways=(Gateway(id=1, provider_id=1, name="g", host="h"),),
        rate_cards=(sell, cost),
    )
    plan = build_plan(data)  # its time is measured by `tollguard bench lcr`, not here
    customer = data.customers[0]
    for rate in sell.rates[:2000]:
        found = plan.sell_rate(customer, rate.prefix + "000", NOW)
        assert found is not None
        assert found.prefix.startswith(rate.prefix)


@given(
    st.lists(
        st.tuples(
            st.integers(min_value=0, max_value=50),  # cost in 1/1000 per minute
            st.integers(min_value=1, max_value=3),  # priority
            st.booleans(),  # enabled
        ),
        min_size=1,
        max_size=8,
    ),
    st.sampled_from(RoutingStrategy),
    st.integers(min_value=0, max_value=2**32),
)
def test_route_orders_every_usable_provider_once(
    offers: list[tuple[int, int, bool]], strategy: RoutingStrategy, seed: int
) -> None:
    cards = [
        RateCard(id=100 + i, name=f"cost {i}", rates=(_rate("44", str(Decimal(cost) / 1000)),))
        for i, (cost, _, _) in enumerate(offers)
    ]
    providers = tuple(
        Provider(id=i + 1, name=f"p{i}", cost_card_id=100 + i, priority=prio, enabled=on)
        for i, (_, prio, on) in enumerate(offers)
    )
    gateways = tuple(
        Gateway(id=i + 1, provider_id=i + 1, name=f"g{i}", host="h") for i in range(len(offers))
    )
    sell = RateCard(id=1, name="sell", rates=(_rate("44", "0.030"),))
    plan = build_plan(
        PlanData(
            version=1,
            customers=(ACME,),
            providers=providers,
            gateways=gateways,
            rate_cards=(sell, *cards),
        )
    )
    customer = replace(ACME, strategy=strategy)
    decision = plan.route(customer, "442079460000", NOW, random.Random(seed))
    chosen = [c.provider for c in decision.candidates]
    usable = [p for p, (cost, _, on) in zip(providers, offers, strict=True) if on and cost <= 30]
    assert sorted(p.id for p in chosen) == sorted(p.id for p in usable)
    costs = [c.cost_rate.price_per_minute for c in decision.candidates]
    if strategy is RoutingStrategy.LEAST_COST:
        assert costs == sorted(costs)
    if strategy is RoutingStrategy.PRIORITY:
        assert [p.priority for p in chosen] == sorted(p.priority for p in chosen)
    if not usable:
        assert decision.rejection == NO_PROVIDER
