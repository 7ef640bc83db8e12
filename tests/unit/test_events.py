from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from drl_trading.common.domain import Action, Symbol, Timeframe
from drl_trading.common.events import (
    DeadLetter,
    ErrorOccurred,
    Event,
    EventDecodeError,
    PredictionCompleted,
    PreprocessDataCompleted,
    PreprocessDataRequested,
    ProcessingMode,
    ResampledBar,
    StoreResampledDataRequested,
    SymbolOutput,
    TimeframeOutput,
    decode,
    encode,
)

T0 = datetime(2024, 1, 1, tzinfo=UTC)
T1 = datetime(2024, 1, 2, tzinfo=UTC)

EVENTS: list[Event] = [
    PreprocessDataRequested(
        mode=ProcessingMode.OFFLINE, symbols=[Symbol("BTCUSDT")], start=T0, end=T1
    ),
    PreprocessDataCompleted(
        mode=ProcessingMode.CATCHUP,
        request_event_id="abc",
        symbols=[Symbol("BTCUSDT")],
        start=T0,
        end=T1,
        feature_set_name="core",
        feature_set_version="0123456789ab",
        feature_view="core__0123456789ab",
        outputs=[
            SymbolOutput(
                symbol=Symbol("BTCUSDT"),
                feature_rows=10,
                warmup_rows_dropped=2,
                first_feature_time=T0,
                last_feature_time=T1,
                timeframes=[TimeframeOutput(timeframe=Timeframe.H1, bars=24)],
            )
        ],
    ),
    StoreResampledDataRequested(
        symbol=Symbol("ETHUSDT"),
        timeframe=Timeframe.M5,
        bars=[ResampledBar(open_time=T0, open=1, high=2, low=0.5, close=1.5, volume=3)],
    ),
    PredictionCompleted(
        symbol=Symbol("ETHUSDT"),
        action=Action.LONG,
        target_position=1.0,
        confidence=0.8,
        model_name="m",
        model_version="3",
        feature_time=T0,
        bar_close_time=T0,
    ),
    ErrorOccurred(
        service="s", topic="t", failed_event_id=None, error_type="E", message="m", attempts=1
    ),
    DeadLetter(
        service="s",
        topic="t",
        key="k",
        payload="{}",
        headers={},
        error_type="E",
        message="m",
        attempts=3,
    ),
]


@pytest.mark.parametrize("event", EVENTS, ids=lambda e: type(e).__name__)
def test_every_event_round_trips(event: Event) -> None:
    assert decode(encode(event)) == event


def test_completed_topic_follows_mode() -> None:
    done = EVENTS[1]
    assert isinstance(done, PreprocessDataCompleted)
    assert done.topic == "completed.preprocess-data.catchup"


@pytest.mark.parametrize("event", EVENTS, ids=lambda e: type(e).__name__)
def test_newer_schema_version_is_refused(event: Event) -> None:
    known = type(event).SCHEMA_VERSION
    payload = encode(event).replace(
        f'"schema_version":{known}'.encode(), f'"schema_version":{known + 1}'.encode()
    )
    with pytest.raises(EventDecodeError, match="newer than this build"):
        decode(payload)


def test_preprocess_request_is_version_2_and_carries_the_data_timeframe() -> None:
    request = PreprocessDataRequested(
        mode=ProcessingMode.OFFLINE,
        symbols=[Symbol("EURUSD")],
        timeframe=Timeframe.H1,
        start=T0,
        end=T1,
    )
    assert PreprocessDataRequested.SCHEMA_VERSION == 2
    assert request.schema_version == 2
    assert decode(encode(request)) == request
    assert EVENTS[1].schema_version == 1  # the other events keep their version


@pytest.mark.parametrize("timeframe", [None, "1m", "1h"])
def test_a_version_1_preprocess_request_means_1m_bars(timeframe: str | None) -> None:
    """Version 1 consumers read 1m bars whatever the field said: so does its decoding."""
    fields = {
        "schema_version": 1,
        "event_type": "preprocess-data.requested",
        "mode": "offline",
        "symbols": ["BTCUSDT"],
        "start": T0.isoformat(),
        "end": T1.isoformat(),
    }
    if timeframe is not None:
        fields["timeframe"] = timeframe
    event = decode(json.dumps(fields).encode())
    assert isinstance(event, PreprocessDataRequested)
    assert event.schema_version == 1
    assert event.timeframe is Timeframe.M1


def test_unknown_fields_are_refused() -> None:
    payload = encode(EVENTS[0]).replace(b'"mode"', b'"surprise":1,"mode"')
    with pytest.raises(EventDecodeError):
        decode(payload)


def test_naive_times_become_utc() -> None:
    e = PreprocessDataRequested(
        mode=ProcessingMode.OFFLINE,
        symbols=[Symbol("x")],
        start=datetime(2024, 1, 1),
        end=datetime(2024, 1, 2),
    )
    assert e.start.tzinfo is not None
    assert e.symbols == ["X"]
