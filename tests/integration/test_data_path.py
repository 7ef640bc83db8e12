"""The data path through the bus on the embedded stores: ingest -> preprocess -> Feast -> export."""

from __future__ import annotations

import pytest

from drl_trading.app.infrastructure import feature_set_for
from drl_trading.app.ingest import bootstrap_ingest, build_provider
from drl_trading.app.runtime import EmbeddedRuntime
from drl_trading.app.settings import AppSettings
from drl_trading.common.domain import Symbol, Timeframe, TimeRange
from drl_trading.common.events import PreprocessDataCompleted, Topic
from drl_trading.common.feature_dataset import load_feature_matrix
from drl_trading.ingest.core.service import TrainingDataRequest
from drl_trading.strategy.feature_view import view_for

pytestmark = pytest.mark.integration

SYMS = (Symbol("BTCUSDT"), Symbol("ETHUSDT"))
RANGE = TimeRange.parse("2024-01-01", "2024-01-21")


def test_offline_data_path_end_to_end(settings: AppSettings) -> None:
    with EmbeddedRuntime.open(settings) as rt:
        ingest = bootstrap_ingest(
            settings, build_provider(settings, "synthetic"), rt.market_data, rt.bus
        )
        request = TrainingDataRequest(SYMS, RANGE)
        ingest.ingest_history(request)
        handled = rt.run_until_idle()
        assert handled >= 1
        (done,) = rt.bus.messages(Topic.PREPROCESS_COMPLETED_OFFLINE)
        assert isinstance(done, PreprocessDataCompleted)
        assert done.correlation_id == request.request_id
        spec = feature_set_for(settings)
        assert done.feature_set_version == spec.version
        assert [o.symbol for o in done.outputs] == list(SYMS)
        for out in done.outputs:
            tf = {t.timeframe: t.bars for t in out.timeframes}
            assert tf[Timeframe.M5] == 20 * 288
            assert tf[Timeframe.H1] == 20 * 24
            assert tf[Timeframe.D1] == 20
            assert out.feature_rows + out.warmup_rows_dropped == 20 * 288
        # higher-timeframe bars were stored
        cov = rt.market_data.coverage(SYMS[0], Timeframe.H4)
        assert cov is not None
        assert cov.bars == 20 * 6
        # the feature matrix as training sees it, through Feast's point-in-time join
        ds = load_feature_matrix(
            rt.market_data, rt.feature_store, view_for(spec), list(SYMS), RANGE
        )
        frame = ds.frame
        assert set(frame["symbol"].unique()) == {"BTCUSDT", "ETHUSDT"}
        for tf in ("5m", "15m", "1h", "4h", "1d"):
            assert any(c.endswith(f"__{tf}") for c in frame.columns)
        assert frame.select(list(spec.columns)).null_count().sum_horizontal()[0] == 0
        assert frame.height == sum(o.feature_rows for o in done.outputs)
        assert sum(ds.missing_rows.values()) == sum(o.warmup_rows_dropped for o in done.outputs)


def test_preprocessing_twice_rewrites_the_same_rows(settings: AppSettings) -> None:
    small = TimeRange.parse("2024-01-01", "2024-01-09")
    with EmbeddedRuntime.open(settings) as rt:
        ingest = bootstrap_ingest(
            settings, build_provider(settings, "synthetic"), rt.market_data, rt.bus
        )
        ingest.ingest_history(TrainingDataRequest(SYMS[:1], small))
        rt.run_until_idle()
        view = view_for(feature_set_for(settings))
        first = load_feature_matrix(rt.market_data, rt.feature_store, view, [SYMS[0]], small).frame
        rt.bus.rewind("preprocess", Topic.PREPROCESS_REQUESTED)  # redelivery
        rt.run_until_idle()
        second = load_feature_matrix(rt.market_data, rt.feature_store, view, [SYMS[0]], small).frame
        assert second.drop("bar_open_time").equals(first.drop("bar_open_time"))
        assert len(rt.bus.messages(Topic.PREPROCESS_COMPLETED_OFFLINE)) == 2


def test_preprocess_without_data_ends_in_dlq_with_clear_error(settings: AppSettings) -> None:
    from drl_trading.app.offline_workflow import publish_preprocess_request

    with EmbeddedRuntime.open(settings) as rt:
        publish_preprocess_request(rt, [Symbol("NODATA")], RANGE.start, RANGE.end)
        rt.run_until_idle()
        (err,) = rt.bus.messages(Topic.error("preprocess"))
        assert "NODATA: no 1m bars stored" in getattr(err, "message", "")
        assert len(rt.bus.messages(Topic.dlq(Topic.PREPROCESS_REQUESTED))) == 1
        assert rt.bus.messages(Topic.PREPROCESS_COMPLETED_OFFLINE) == []
