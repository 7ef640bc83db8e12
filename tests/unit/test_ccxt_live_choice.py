"""Which ccxt live source the settings build: websocket candles unless told or unable."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from drl_trading.app.ingest import build_live_source
from drl_trading.app.settings import load_settings
from drl_trading.common.adapter.memory_market_data import InMemoryMarketData
from drl_trading.common.adapter.system_clock import ManualClock
from drl_trading.common.domain import Symbol
from drl_trading.ingest.adapter.ccxt_live_source import CcxtLiveSource
from drl_trading.ingest.adapter.ccxt_provider import CcxtProvider
from drl_trading.ingest.adapter.ccxt_ws_source import CcxtWsSource, pro_exchange

START = datetime(2024, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("ccxt", "kind"),
    [
        ({}, CcxtWsSource),
        ({"websocket": False}, CcxtLiveSource),
        ({"base_url": "http://127.0.0.1:9"}, CcxtLiveSource),  # the stream would be another host
        ({"base_url": "http://127.0.0.1:9", "ws_url": "ws://127.0.0.1:9/stream"}, CcxtWsSource),
    ],
)
def test_settings_choose_the_ccxt_live_source(
    tmp_path: Path, ccxt: dict[str, Any], kind: type
) -> None:
    settings = load_settings(home=tmp_path, ingest={"ccxt": ccxt})
    clock = ManualClock(START)
    live, history = build_live_source(
        settings, "ccxt-live", [Symbol("BTCUSDT")], InMemoryMarketData(), clock, START
    )
    assert isinstance(live, kind) and history is not None


def test_the_websocket_client_talks_to_the_configured_hosts() -> None:
    provider = CcxtProvider(base_url="http://127.0.0.1:9")
    client = pro_exchange(provider, "ws://127.0.0.1:9/stream")
    assert client is not None and client.has["watchOHLCV"]
    assert client.urls["api"]["ws"]["spot"] == "ws://127.0.0.1:9/stream/ws"
    assert client.urls["api"]["public"].startswith("http://127.0.0.1:9/")
    assert pro_exchange(CcxtProvider(exchange_id="bitso")) is None  # ccxt.pro has no bitso


def test_a_ws_url_without_a_host_is_refused_at_construction() -> None:
    with pytest.raises(ValueError, match=r"ws_url 'stream\.example' needs a scheme and a host"):
        CcxtWsSource(CcxtProvider(), ["BTCUSDT"], ManualClock(START), ws_url="stream.example")
