"""The training service on a market that closes: a tiny run over FX hourly bars (1h data, base
1h: the ingested bars are the base bars) trains on whole weeks, annualises by the calendar's bars
per year, says so in its report and records the calendar and data timeframe in the model's
manifest; symbols on different calendars are refused before any work."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from drl_trading.common.adapter.always_open_calendar import AlwaysOpenCalendar
from drl_trading.common.adapter.exchange_calendars_calendar import ExchangeCalendarsCalendar
from drl_trading.common.adapter.memory_feature_store import InMemoryFeatureStore
from drl_trading.common.adapter.memory_market_data import InMemoryMarketData
from drl_trading.common.adapter.memory_registry import InMemoryRegistry
from drl_trading.common.bar_windows import bar_slots
from drl_trading.common.calendar import CalendarBook, MixedCalendarsError
from drl_trading.common.domain import Symbol, Timeframe, TimeRange
from drl_trading.evaluation.metrics import periods_per_year
from drl_trading.strategy import BaseStrategy
from drl_trading.strategy.feature_set import FeatureSetSpec
from drl_trading.testing.tiny_training import PERMISSIVE_GATE
from drl_trading.training.adapter.fixed_revision import FixedRevision
from drl_trading.training.adapter.fixed_versions import FixedVersions
from drl_trading.training.adapter.registry_packages import RegistryPackages
from drl_trading.training.adapter.report_files import ReportFiles
from drl_trading.training.adapter.sb3_trainer import SB3Trainer
from drl_trading.training.core.config import TrainingSettings
from drl_trading.training.core.dataset import SplitError
from drl_trading.training.core.service import TrainingRequest, TrainingService
from tests.unit.test_dataset_calendar import EURUSD, FX, base_spec, stored_features

RANGE = TimeRange(datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 1, 31, tzinfo=UTC))
"""Four FX weeks and two days of hourly bars (a test part of 15% crosses the last weekend)."""
TINY = TrainingSettings.model_validate(
    {
        "total_timesteps": 32,
        "random_agent_seeds": 1,
        "env": {"n_envs": 1, "episode_bars": 32},
        "algorithm": {"hyperparameters": {"n_steps": 32, "batch_size": 32, "n_epochs": 1}},
        "gate": PERMISSIVE_GATE,
    }
)
FX_BOOK = CalendarBook(AlwaysOpenCalendar(), {EURUSD: FX})


def _service(
    tmp_path: Path,
    market: InMemoryMarketData,
    store: InMemoryFeatureStore,
    spec: FeatureSetSpec,
    calendars: CalendarBook | None,
    **kw: object,
) -> TrainingService:
    registry = InMemoryRegistry(tmp_path / "registry")
    return TrainingService(
        market,
        store,
        registry,
        BaseStrategy(),
        spec,
        TINY,
        model_name="tiny",
        trainer=SB3Trainer(),
        revision=FixedRevision(None),
        reports=ReportFiles(tmp_path / "reports"),
        packages=RegistryPackages(registry),
        libraries=FixedVersions({"drl-trading": "0"}),
        calendars=calendars,
        **kw,  # type: ignore[arg-type]
    )


def test_an_fx_training_follows_the_calendar_and_records_it(tmp_path: Path) -> None:
    market, store, spec = stored_features(FX, Timeframe.H1, RANGE)
    service = _service(tmp_path, market, store, spec, FX_BOOK)
    result = service.train(TrainingRequest((EURUSD,), RANGE, "c1", data_timeframe=Timeframe.H1))

    training = result.predictor.manifest.training
    assert training["calendar"] == "fx"
    assert training["data_timeframe"] == "1h"
    # the test part crosses a weekend and is still one series: every bar in it backtested
    test = result.splits.test
    assert test.start < datetime(2024, 1, 26, 22, tzinfo=UTC) < test.end
    (sym,) = result.test.symbols
    assert sym.skipped_bars == 0
    assert result.test.bars == bar_slots(FX, Timeframe.H1, test.start, test.end).size
    # 2024 has 262 weekdays, FX 24 hours each: the annualisation of every figure
    ppy = 262 * 24
    assert service.periods_per_year(FX, RANGE) == ppy
    report = json.loads(result.metrics_path.read_text())
    assert report["metadata"]["annualisation"] == "6,288 1h bars a year (market calendar fx)"
    registry = service.registry
    assert isinstance(registry, InMemoryRegistry)
    params = registry.runs[result.run_id].params
    assert params["calendar"] == "fx"
    assert params["data_timeframe"] == "1h"
    assert float(params["periods_per_year"]) == ppy


def test_a_24_7_training_records_24_7_and_1m_and_the_closed_form_annualisation(
    tmp_path: Path,
) -> None:
    rng = TimeRange(datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 1, 15, tzinfo=UTC))
    market, store, spec = stored_features(AlwaysOpenCalendar(), Timeframe.H1, rng)
    service = _service(tmp_path, market, store, spec, None)
    result = service.train(TrainingRequest((EURUSD,), rng, "c1"))
    training = result.predictor.manifest.training
    assert (training["calendar"], training["data_timeframe"]) == ("24/7", "1m")
    assert service.periods_per_year(None, rng) == periods_per_year(60) == 8760
    assert service.periods_per_year(AlwaysOpenCalendar(), rng) == 8760
    report = json.loads(result.metrics_path.read_text())
    assert report["metadata"]["annualisation"] == "8,760 1h bars a year (market calendar 24/7)"


def test_the_data_timeframe_comes_from_the_lookup_when_the_request_does_not_say(
    tmp_path: Path,
) -> None:
    asked: list[tuple[tuple[Symbol, ...], datetime, datetime]] = []

    def lookup(symbols: tuple[Symbol, ...], start: datetime, end: datetime) -> Timeframe:
        asked.append((symbols, start, end))
        return Timeframe.H1

    market, store, spec = stored_features(FX, Timeframe.H1, RANGE)
    service = _service(tmp_path, market, store, spec, FX_BOOK, data_timeframe=lookup)
    result = service.train(TrainingRequest((EURUSD,), RANGE, "c1"))
    assert result.predictor.manifest.training["data_timeframe"] == "1h"
    assert asked == [((EURUSD,), RANGE.start, RANGE.end)]


def test_daily_xnys_bars_annualise_by_its_sessions(tmp_path: Path) -> None:
    market, store, _ = stored_features(FX, Timeframe.H1, RANGE)
    service = _service(tmp_path, market, store, base_spec(Timeframe.D1), None)
    xnys = ExchangeCalendarsCalendar("XNYS")
    two_years = TimeRange(datetime(2022, 3, 1, tzinfo=UTC), datetime(2023, 9, 1, tzinfo=UTC))
    assert service.periods_per_year(xnys, two_years) == (251 + 250) / 2


def test_symbols_on_different_calendars_are_refused(tmp_path: Path) -> None:
    market, store, spec = stored_features(FX, Timeframe.H1, RANGE)
    service = _service(tmp_path, market, store, spec, FX_BOOK)
    with pytest.raises(MixedCalendarsError, match=r"24/7: BTCUSDT; fx: EURUSD"):
        service.train(TrainingRequest((EURUSD, Symbol("BTCUSDT")), RANGE, "c1"))


def test_too_little_data_names_the_bars_of_the_data_timeframe(tmp_path: Path) -> None:
    short = TimeRange(datetime(2024, 1, 8, tzinfo=UTC), datetime(2024, 1, 9, 12, tzinfo=UTC))
    market, store, spec = stored_features(FX, Timeframe.H1, short)
    service = _service(tmp_path, market, store, spec, FX_BOOK)
    with pytest.raises(SplitError) as err:
        service.train(TrainingRequest((EURUSD,), short, "c1", data_timeframe=Timeframe.H1))
    assert (
        "(1h bars stored: EURUSD 2024-01-08 00:00..2024-01-09 12:00 UTC) cover "
        "2024-01-08 00:00..2024-01-09 12:00 UTC, 36 1h bars of market calendar fx"
    ) in str(err.value)


def test_the_composition_passes_the_calendars_and_the_stored_data_timeframe(
    tmp_path: Path,
) -> None:
    from drl_trading.app.settings import load_settings
    from drl_trading.app.training import build_training_service

    settings = load_settings(
        home=tmp_path / "home", markets={"symbols": {"EURUSD": {"calendar": "fx"}}}
    )
    market, store, _ = stored_features(FX, Timeframe.H1, RANGE)
    service = build_training_service(
        settings, market, store, InMemoryRegistry(tmp_path / "registry")
    )
    assert service.calendar_of((EURUSD,)).name == "fx"  # type: ignore[union-attr]
    assert service.data_timeframe is not None
    assert service.data_timeframe((EURUSD,), RANGE.start, RANGE.end) is Timeframe.H1
