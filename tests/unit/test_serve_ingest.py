"""`serve ingest` at `serve.timeframe` on a market that closes: the stream starts where the market
next opens a base bar, the catch-up is of the data timeframe, and a feature set finer than the
data is refused before anything is fetched."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from drl_trading.app.services import build_service
from drl_trading.app.settings import AppSettings, load_settings
from drl_trading.common.domain import Timeframe, parse_time
from drl_trading.common.events import PreprocessDataRequested, ProcessingMode, Topic
from drl_trading.preprocess.core.checks import BaseTimeframeError

HOURLY_SET: dict[str, Any] = {
    "name": "hourly",
    "base_timeframe": "1h",
    "time_encodings": False,
    "timeframes": [{"timeframe": "1h", "indicators": [{"kind": "log_return", "horizons": [1]}]}],
}


def serve_settings(home: Path, **preprocess: Any) -> AppSettings:
    return load_settings(
        home=home,
        bus={"kind": "memory"},
        market_data={"kind": "memory"},
        markets={"calendar": "fx"},
        preprocess=preprocess,
        serve={
            "source": "synthetic-live",
            "timeframe": "1h",
            "symbols": ["EURUSD"],
            "start": "2024-01-06T12:00:00Z",  # a Saturday: FX reopens Sunday 22:00 UTC
            "clock": "market",
        },
    )


def test_serve_ingest_streams_the_data_timeframe_from_the_next_open_bar(tmp_path: Path) -> None:
    process = build_service("ingest", serve_settings(tmp_path / "home", feature_set=HOURLY_SET))
    try:
        (catchup,) = process.bus.inner.messages(Topic.PREPROCESS_REQUESTED)  # type: ignore[attr-defined]
        assert isinstance(catchup, PreprocessDataRequested)
        assert catchup.mode is ProcessingMode.CATCHUP and catchup.timeframe is Timeframe.H1
        assert catchup.end == parse_time("2024-01-07T22:00")
        # the warm-up counted in the market's bars (a day back from Sunday 22:00 would be the
        # closed Saturday): Friday's hours, from the UTC day they begin
        assert catchup.start == parse_time("2024-01-05")
    finally:
        for close in process.on_close:
            close()


def test_serve_ingest_refuses_a_base_finer_than_its_timeframe(tmp_path: Path) -> None:
    with pytest.raises(BaseTimeframeError, match="finer than the data's 1h"):
        build_service("ingest", serve_settings(tmp_path / "home"))  # the default 5m base
