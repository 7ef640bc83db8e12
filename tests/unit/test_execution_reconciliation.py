"""Reconciliation of the local book with the venue's account (pure core, no service)."""

from __future__ import annotations

from datetime import timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from drl_trading.common.domain import Order, Side, Symbol, parse_time
from drl_trading.execution.core.accounting import signed
from drl_trading.execution.core.reconciliation import (
    LocalBook,
    ReconcileTolerance,
    VenueFill,
    VenueOrder,
    VenueState,
    adopt,
    fill_record_id,
    reconcile,
)
from drl_trading.execution.core.records import (
    PortfolioSnapshot,
    Position,
    RecordKind,
    TradeRecord,
)

S = Symbol("BTCUSDT")
E = Symbol("ETHUSDT")
T0 = parse_time("2024-01-01T00:00")
SINCE = T0 - timedelta(hours=1)


def fill(
    n: int,
    coid: str | None,
    qty: float = 0.1,
    price: float = 100.0,
    side: Side = Side.BUY,
    fee: float = 0.005,
    symbol: Symbol = S,
) -> VenueFill:
    return VenueFill(
        f"t{n}", coid, f"o-{coid}", symbol, side, qty, price, fee, T0 + timedelta(seconds=n)
    )


def order_record(coid: str, qty: float = 0.1, side: Side = Side.BUY) -> TradeRecord:
    return TradeRecord(
        f"order:{coid}",
        RecordKind.ORDER,
        S,
        T0,
        client_order_id=coid,
        signal_id="ev-" + coid,
        side=side,
        quantity=qty,
        model_version="7",
        risk_check="accepted",
    )


def fill_record(f: VenueFill) -> TradeRecord:
    assert f.client_order_id is not None
    return TradeRecord(
        fill_record_id(f.client_order_id, f.at),
        RecordKind.FILL,
        f.symbol,
        f.at,
        client_order_id=f.client_order_id,
        side=f.side,
        quantity=f.quantity,
        price=f.price,
    )


def venue(
    cash: float,
    positions: dict[Symbol, float],
    fills: tuple[VenueFill, ...] = (),
    orders: tuple[VenueOrder, ...] = (),
) -> VenueState:
    return VenueState(T0 + timedelta(minutes=5), SINCE, orders, fills, positions, cash)


def after(cash: float, *fills: VenueFill) -> float:
    return cash - sum(signed(f.side, f.quantity) * f.price + f.fee for f in fills)


def test_clean_account_is_ok_and_adopts_nothing() -> None:
    f = fill(1, "sig-a")
    local = LocalBook.of(
        PortfolioSnapshot(after(1000, f), {S: Position(0.1, 100.0)}),
        [order_record("sig-a"), fill_record(f)],
    )
    rec = reconcile(local, venue(after(1000, f), {S: 0.1}, (f,)))
    assert rec.ok and not rec.adopts_anything
    assert rec.already_recorded == 1
    assert [d.within for d in rec.differences] == [True, True]
    assert adopt(rec, local.orders, T0).records == ()


def test_crash_after_send_adopts_the_order_and_its_fill_once() -> None:
    f = fill(1, "sig-lost")
    local = LocalBook.of(PortfolioSnapshot(1000.0), [])
    state = venue(after(1000, f), {S: 0.1}, (f,))
    rec = reconcile(local, state)
    assert rec.ok, rec.halt_reasons
    assert [a.fill.trade_id for a in rec.adopted_fills] == ["t1"]
    assert [(o.client_order_id, o.amount, o.status) for o in rec.adopted_orders] == [
        ("sig-lost", 0.1, "closed")
    ]
    assert rec.portfolio.positions[S].quantity == 0.1
    assert rec.portfolio.cash == after(1000, f)
    adoption = adopt(rec, local.orders, T0)
    assert [r.kind for r in adoption.records] == [RecordKind.ORDER, RecordKind.FILL]
    again = reconcile(LocalBook.of(adoption.portfolio, adoption.records), state)
    assert again.ok and not again.adopts_anything


def test_crash_after_send_of_an_order_still_open_adopts_it_with_its_partial_fill() -> None:
    f = fill(1, "sig-open", qty=0.04)
    vo = VenueOrder("sig-open", "o-sig-open", S, Side.BUY, 0.1, 0.04, 99.0)
    rec = reconcile(
        LocalBook.of(PortfolioSnapshot(1000.0), []), venue(after(1000, f), {S: 0.04}, (f,), (vo,))
    )
    assert rec.ok and rec.adopted_orders == (vo,)
    assert rec.portfolio.open_orders == (Order("sig-open", S, Side.BUY, 0.1 - 0.04, 99.0),)
    records = adopt(rec, {}, T0).records
    assert [(r.kind, r.quantity) for r in records] == [
        (RecordKind.ORDER, 0.1),
        (RecordKind.FILL, 0.04),
    ]


def test_a_fill_recorded_before_is_never_adopted_and_a_repeated_trade_counts_once() -> None:
    a, b = fill(1, "sig-a"), fill(2, "sig-a")
    local = LocalBook.of(
        PortfolioSnapshot(after(1000, a), {S: Position(0.1, 100.0)}),
        [order_record("sig-a", 0.2), fill_record(a)],
    )
    rec = reconcile(local, venue(after(1000, a, b), {S: 0.2}, (a, b, b, a)))
    assert rec.ok, rec.halt_reasons
    assert [x.fill.trade_id for x in rec.adopted_fills] == ["t2"]
    assert rec.already_recorded == 1
    fr = adopt(rec, local.orders, T0).records[0]
    assert (fr.kind, fr.signal_id, fr.model_version) == (RecordKind.FILL, "ev-sig-a", "7")


def test_a_fill_before_the_window_is_not_adopted() -> None:
    old = VenueFill(
        "t0", "sig-old", "o", S, Side.BUY, 0.1, 100.0, 0.0, SINCE - timedelta(seconds=1)
    )
    rec = reconcile(LocalBook.of(PortfolioSnapshot(1000.0), []), venue(1000.0, {}, (old,)))
    assert rec.adopted_fills == () and rec.ok


def test_foreign_orders_are_reported_and_left_alone() -> None:
    mine = VenueOrder("sig-a", "1", S, Side.BUY, 0.1, limit_price=90.0)
    manual = VenueOrder(None, "2", S, Side.SELL, 1.0, limit_price=200.0)
    other = VenueOrder("web-123", "3", E, Side.BUY, 2.0, limit_price=10.0)
    local = LocalBook.of(
        PortfolioSnapshot(1000.0, {}, (Order("sig-a", S, Side.BUY, 0.1, 90.0),)),
        [order_record("sig-a")],
    )
    rec = reconcile(local, venue(1000.0, {}, (), (mine, manual, other)))
    assert rec.ok and not rec.adopts_anything
    assert rec.foreign_orders == (manual, other)
    assert rec.portfolio.open_orders == local.portfolio.open_orders


def test_a_position_changed_behind_our_back_halts_with_the_numbers() -> None:
    local = LocalBook.of(PortfolioSnapshot(1000.0, {S: Position(0.1, 100.0)}), [])
    manual = fill(1, None, qty=0.05, side=Side.SELL)
    rec = reconcile(local, venue(1000.0, {S: 0.05}, (manual,)))
    assert not rec.ok
    assert rec.foreign_fills == (manual,) and rec.adopted_fills == ()
    (reason,) = rec.halt_reasons
    assert "BTCUSDT position: local 0.1, venue 0.05" in reason
    assert "difference -0.05" in reason and "50.0000%" in reason
    assert "HALT" in rec.summary()


def test_cash_changed_behind_our_back_halts() -> None:
    rec = reconcile(LocalBook.of(PortfolioSnapshot(1000.0), []), venue(900.0, {}))
    assert not rec.ok and "cash: local 1000, venue 900" in rec.halt_reasons[0]


def test_differences_within_tolerance_are_ok() -> None:
    local = LocalBook.of(PortfolioSnapshot(1000.0, {S: Position(0.1, 100.0)}), [])
    assert reconcile(local, venue(1000.0 - 0.05, {S: 0.1 + 5e-9})).ok  # fee and amount rounding
    assert not reconcile(local, venue(1000.0 - 0.5, {S: 0.1})).ok
    assert not reconcile(local, venue(1000.0, {S: 0.1001})).ok
    loose = ReconcileTolerance(position_units={S: 1e-3})
    assert reconcile(local, venue(1000.0, {S: 0.1001}), tolerance=loose).ok
    assert reconcile(
        local, venue(1000.0, {S: 0.1001}), tolerance=ReconcileTolerance(position_relative=1e-2)
    ).ok


def test_an_order_gone_while_away_is_resolved_from_the_fills() -> None:
    f = fill(1, "sig-done")
    local = LocalBook.of(
        PortfolioSnapshot(
            1000.0,
            {},
            (Order("sig-done", S, Side.BUY, 0.1), Order("sig-gone", S, Side.BUY, 0.2, 90.0)),
        ),
        [order_record("sig-done"), order_record("sig-gone", 0.2)],
    )
    rec = reconcile(local, venue(after(1000, f), {S: 0.1}, (f,)))
    assert rec.ok, rec.halt_reasons
    assert [(r.order.client_order_id, r.resolution) for r in rec.resolved_orders] == [
        ("sig-done", "filled"),
        ("sig-gone", "cancelled"),
    ]
    assert rec.portfolio.open_orders == () and rec.adopted_orders == ()
    records = adopt(rec, local.orders, T0).records
    assert [(r.kind, r.client_order_id, r.quantity) for r in records] == [
        (RecordKind.FILL, "sig-done", 0.1),
        (RecordKind.CANCEL, "sig-gone", 0.2),
    ]


def test_an_order_open_on_the_venue_but_closed_here_halts() -> None:
    vo = VenueOrder("sig-a", "1", S, Side.BUY, 0.1, limit_price=90.0)
    rec = reconcile(
        LocalBook.of(PortfolioSnapshot(1000.0), [order_record("sig-a")]),
        venue(1000.0, {}, (), (vo,)),
    )
    assert (
        not rec.ok
        and "order sig-a (BTCUSDT) is open on the venue but closed here" in rec.halt_reasons[0]
    )


def test_a_realised_pnl_is_booked_as_a_normal_fill() -> None:
    sell = fill(1, "flat-1", qty=0.1, price=110.0, side=Side.SELL, fee=0.0)
    local = LocalBook.of(
        PortfolioSnapshot(1000.0, {S: Position(0.1, 100.0)}),
        [order_record("flat-1", side=Side.SELL)],
    )
    rec = reconcile(local, venue(1011.0, {}, (sell,)))
    assert rec.ok and rec.portfolio.positions[S] == Position(
        0.0, 0.0, realised_pnl=1.0, fees_paid=0.0
    )
    assert adopt(rec, local.orders, T0).records[0].realised_pnl == 1.0


_FILLS = st.lists(
    st.tuples(
        st.sampled_from(["sig-a", "sig-b", "flat-c", "web-x"]),
        st.sampled_from([Side.BUY, Side.SELL]),
        st.floats(0.001, 1.0),
        st.floats(10.0, 1000.0),
        st.integers(0, 3),  # seconds: several trades of one order may share a time
        st.booleans(),  # recorded already
    ),
    max_size=12,
)


@settings(max_examples=60, deadline=None)
@given(_FILLS)
def test_reconciling_twice_adopts_nothing_the_second_time(
    spec: list[tuple[str, Side, float, float, int, bool]],
) -> None:
    fills = tuple(
        VenueFill(f"t{i}", coid, "o", S, side, q, p, 0.01, T0 + timedelta(seconds=s))
        for i, (coid, side, q, p, s, _) in enumerate(spec)
    )
    recorded = [
        fill_record(f)
        for f, row in zip(fills, spec, strict=True)
        if row[5] and f.client_order_id != "web-x"
    ]
    state = venue(after(1000, *fills), {S: sum(signed(f.side, f.quantity) for f in fills)}, fills)
    local = LocalBook.of(PortfolioSnapshot(1000.0), recorded)
    first = reconcile(local, state)
    ids = [a.record_id for a in first.adopted_fills]
    assert len(ids) == len(set(ids))
    adoption = adopt(first, local.orders, T0)
    second = reconcile(LocalBook.of(adoption.portfolio, [*recorded, *adoption.records]), state)
    assert second.adopted_fills == () and second.adopted_orders == ()
    assert second.portfolio == adoption.portfolio
