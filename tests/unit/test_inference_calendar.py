"""Inference on a market calendar: the window of ``W`` base bars is consecutive in the market's
bars (Friday's last bar then Sunday's first, across an FX weekend), and a model trained on one
calendar refuses symbols that trade on another, naming both and the setting that says which."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from drl_trading.common.adapter.always_open_calendar import AlwaysOpenCalendar
from drl_trading.common.adapter.fx_calendar import FxCalendar
from drl_trading.common.adapter.memory_positions import InMemoryPositions
from drl_trading.common.adapter.memory_registry import InMemoryRegistry
from drl_trading.common.adapter.system_clock import ManualClock
from drl_trading.common.agent_state import agent_state
from drl_trading.common.calendar import CalendarBook
from drl_trading.common.domain import Symbol
from drl_trading.inference.adapter.registry_model_source import RegistryModelSource
from drl_trading.inference.core.service import InferenceService, ModelMismatchError, SkipReason
from drl_trading.policy.package import MANIFEST_FILE
from drl_trading.policy.predictor import Predictor
from tests.unit.test_inference_service import (
    MODEL,
    VIEW,
    CountingStore,
    _register,
    completed,
    packages,
    row,
    write_offline,
)

__all__ = ["packages"]  # the module-scoped fixture this module's own builds on

EURUSD = Symbol("EURUSD")
BTC = Symbol("BTCUSDT")
FRIDAY_LAST = datetime(2024, 6, 7, 21, 0, tzinfo=UTC)
"""FX closes at 17:00 New York time: the last 5m bar of the week closes at 21:00 UTC (summer)."""
SUNDAY_FIRST = datetime(2024, 6, 9, 21, 5, tzinfo=UTC)
"""...and opens Sunday 21:00 UTC: the first 5m bar closes at 21:05."""
STEP = timedelta(minutes=5)
FX_BOOK = CalendarBook(AlwaysOpenCalendar(), {EURUSD: FxCalendar()})


@pytest.fixture(scope="module")
def fx_package(packages: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model's package, its manifest saying it was trained on the FX calendar."""
    dst = tmp_path_factory.mktemp("fx") / "package"
    shutil.copytree(packages["good"], dst)
    manifest = json.loads((dst / MANIFEST_FILE).read_text())
    manifest["training"] = {"calendar": "fx", "data_timeframe": "1m"}
    (dst / MANIFEST_FILE).write_text(json.dumps(manifest))
    return dst


class Desk:
    def __init__(self, tmp_path: Path, package: Path, now: datetime) -> None:
        self.registry = InMemoryRegistry(tmp_path / "registry")
        _register(self.registry, package)
        self.source = RegistryModelSource(self.registry, tmp_path / "work")
        self.store = CountingStore()
        self.store.register(VIEW)
        self.clock = ManualClock(now + timedelta(seconds=10))

    def service(
        self, calendars: CalendarBook | None = FX_BOOK, symbols: tuple[Symbol, ...] = ()
    ) -> InferenceService:
        return InferenceService(
            self.store,
            VIEW,
            self.source,
            InMemoryPositions(),
            lambda s: 100.0,
            self.clock,
            model_ref=f"{MODEL}@champion",
            calendars=calendars,
            symbols=symbols,
        )

    def online(self, symbol: Symbol, t: datetime) -> None:
        self.store.write_online(VIEW, symbol, t, row(symbol, t))


def test_the_window_spans_the_fx_weekend(tmp_path: Path, fx_package: Path) -> None:
    desk = Desk(tmp_path, fx_package, SUNDAY_FIRST)
    write_offline(desk.store, EURUSD, [FRIDAY_LAST - STEP, FRIDAY_LAST])
    svc = desk.service(symbols=(EURUSD,))
    desk.online(EURUSD, SUNDAY_FIRST)

    (first,) = svc.on_features(completed(SUNDAY_FIRST, [EURUSD]))

    # the window is Friday's last bar and Sunday's first: 48 hours apart, consecutive bars
    reference = Predictor.load(fx_package)
    window = np.asarray([[row(EURUSD, FRIDAY_LAST), row(EURUSD, SUNDAY_FIRST)]])
    flat = np.asarray([agent_state(0.0, 0.0, 0.0, 0)])
    assert (first.target_position, first.confidence) == reference.decide(window, flat)[::2]
    assert desk.store.historical_reads == 1
    # the next bar rolls the window in memory, as on a 24/7 market
    desk.clock.advance(STEP)
    desk.online(EURUSD, SUNDAY_FIRST + STEP)
    (second,) = svc.on_features(completed(SUNDAY_FIRST + STEP, [EURUSD]))
    window = np.asarray([[row(EURUSD, SUNDAY_FIRST), row(EURUSD, SUNDAY_FIRST + STEP)]])
    assert second.confidence == reference.decide(window, flat)[2]
    assert desk.store.historical_reads == 1
    assert svc.status().skips == {}


def test_a_vector_at_no_close_of_the_calendar_is_skipped(tmp_path: Path, fx_package: Path) -> None:
    saturday = datetime(2024, 6, 8, 12, 0, tzinfo=UTC)
    desk = Desk(tmp_path, fx_package, saturday)
    svc = desk.service()
    desk.online(EURUSD, saturday)  # features made as if the market traded on Saturday
    assert svc.on_features(completed(saturday, [EURUSD])) == []
    assert svc.status().skips == {SkipReason.OFF_CALENDAR.value: 1}


def test_a_model_of_another_calendar_is_refused_naming_both_and_the_setting(
    tmp_path: Path, fx_package: Path, packages: dict[str, Path]
) -> None:
    desk = Desk(tmp_path, fx_package, SUNDAY_FIRST)
    with pytest.raises(ModelMismatchError) as caught:
        desk.service(calendars=None, symbols=(EURUSD,))  # EURUSD left on the 24/7 default
    message = str(caught.value)
    assert "\n" not in message and caught.value.retryable is False
    assert "trained on the fx calendar, EURUSD trades on 24/7" in message
    assert "markets.symbols.EURUSD.calendar: fx" in message
    # a package without a calendar in its manifest was trained 24/7
    plain = Desk(tmp_path / "plain", packages["good"], SUNDAY_FIRST)
    with pytest.raises(
        ModelMismatchError, match="trained on the 24/7 calendar, EURUSD trades on fx"
    ):
        plain.service(symbols=(EURUSD, BTC))
    assert plain.service(symbols=(BTC,)).model.version == "1"


def test_a_symbol_first_seen_in_an_event_on_another_calendar_is_skipped(
    tmp_path: Path, fx_package: Path
) -> None:
    desk = Desk(tmp_path, fx_package, SUNDAY_FIRST)
    write_offline(desk.store, BTC, [SUNDAY_FIRST - STEP])
    write_offline(desk.store, EURUSD, [FRIDAY_LAST])
    svc = desk.service(symbols=(EURUSD,))
    desk.online(BTC, SUNDAY_FIRST)
    desk.online(EURUSD, SUNDAY_FIRST)
    out = svc.on_features(completed(SUNDAY_FIRST, [BTC, EURUSD]))
    assert [p.symbol for p in out] == [EURUSD]
    assert svc.status().skips == {SkipReason.CALENDAR_MISMATCH.value: 1}
