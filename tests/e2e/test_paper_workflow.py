"""The online workflow end to end on replayed data: a trained champion, catch-up before
streaming, features → predictions → orders → fills, and the paper command's session report."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from drl_trading.app.runtime import EmbeddedRuntime
from drl_trading.app.settings import AppSettings
from drl_trading.common.adapter.system_clock import ManualClock
from drl_trading.common.domain import Symbol, TimeRange
from drl_trading.common.events import ProcessingMode, Topic
from drl_trading.evaluation.baselines import random_baseline_name
from drl_trading.execution.core.records import RecordKind
from drl_trading.ingest.adapter.replay_source import ReplaySource
from drl_trading.testing.tiny_training import ingest_and_train, tiny_training_settings

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

SYMBOLS = (Symbol("BTCUSDT"), Symbol("ETHUSDT"))
RANGE = TimeRange.parse("2024-01-01", "2024-01-16")
REPLAY = TimeRange.parse("2024-01-15", "2024-01-16")


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> AppSettings:
    settings = tiny_training_settings(tmp_path_factory.mktemp("paper"), timesteps=256)
    assert ingest_and_train(settings, SYMBOLS, RANGE).champion
    return settings


def test_replay_through_all_services(home: AppSettings) -> None:
    settings = home.model_copy(
        update={"execution": home.execution.model_copy(update={"store": "memory"})}
    )
    clock = ManualClock(REPLAY.start)
    with EmbeddedRuntime.open(settings) as runtime:
        source = ReplaySource(runtime.market_data, SYMBOLS, REPLAY.start, REPLAY.end)
        online = runtime.enable_online(source, clock=clock, symbols=SYMBOLS)
        online.ingest.start(
            SYMBOLS, TimeRange.parse("2024-01-14", "2024-01-15").start, live_from=REPLAY.start
        )
        runtime.run_until_idle()
        bars = 0
        while bars < 2 * 240:  # four hours of both symbols
            if online.ingest.pump(1) == 0:
                break
            bars += 1
            clock.set(REPLAY.start + (bars // 2 + 1) * (REPLAY.end - REPLAY.start) / 1440)
            runtime.run_until_idle()
        bus = runtime.bus
        # the bus lists partition by partition: order by creation time across partitions
        requests = sorted(bus.messages(Topic.PREPROCESS_REQUESTED), key=lambda e: e.created_at)
        # the design's order: one catch-up request, then one online request per live bar
        assert requests[0].mode is ProcessingMode.CATCHUP  # type: ignore[attr-defined]
        assert all(r.mode is ProcessingMode.ONLINE for r in requests[1:])  # type: ignore[attr-defined]
        assert len(requests) == 1 + bars
        assert len(bus.messages(Topic.PREPROCESS_COMPLETED_CATCHUP)) == 1
        completed = bus.messages(Topic.PREPROCESS_COMPLETED_ONLINE)
        assert len(completed) == bars // 5  # one feature vector per 5m bar and symbol
        predictions = bus.messages(Topic.PREDICT_COMPLETED)
        assert len(predictions) == len(completed)
        assert {p.model_version for p in predictions} == {"1"}  # type: ignore[attr-defined]
        assert len(bus.messages(Topic.STORE_RESAMPLED_REQUESTED)) > 0
        for topic in bus.topics():
            assert not topic.startswith("dlq."), (topic, bus.messages(topic)[:1])
        status = online.execution.service.status()
        counts = status.counts
        assert counts[RecordKind.ORDER] + counts[RecordKind.SKIP] + counts[
            RecordKind.REJECTION
        ] == len(predictions)
        assert counts[RecordKind.FILL] <= counts[RecordKind.ORDER]
        assert status.equity > 0


def test_paper_command_report(home: AppSettings, tmp_path: Path) -> None:
    cli = str(Path(sys.executable).with_name("drl-trading"))
    out = tmp_path / "session.json"
    rec = tmp_path / "features.parquet"
    args = [cli, "--home", str(home.home), "paper", "-s", "BTCUSDT,ETHUSDT", "--start",
            "2024-01-15", "--end", "2024-01-16", "--max-bars", "300", "--fresh",
            "--out", str(out), "--record-features", str(rec)]  # fmt: skip
    proc = subprocess.run(
        args, capture_output=True, text=True, timeout=600, check=False,
        env={**os.environ, "COLUMNS": "200"},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-4000:]
    report = json.loads(out.read_text())
    assert report["bars"] == 300
    assert report["model"] == "drl-example/1"
    assert report["predictions"] == 60
    assert report["latency_ms"]["bar_to_ack"]["count"] == 300
    # the chain's stamps: every decided signal has each stage's latency
    stages = report["latency_ms"]["stages"]
    assert set(stages) == {"ingest", "preprocess", "inference", "execution", "total"}
    assert all(stages[s]["count"] == 60 for s in stages)
    assert stages["total"]["p50"] >= stages["inference"]["p50"]
    # the backtest's equity-curve metrics over the session's 5m closes, for the account and
    # per symbol (with the baselines on the same bars), and an HTML report
    assert report["metrics"]["n_steps"] == 29
    assert {"sharpe", "max_drawdown", "total_return", "exposure"} <= set(report["metrics"])
    assert set(report["per_symbol"]) == {"BTCUSDT", "ETHUSDT"}
    btc = report["per_symbol"]["BTCUSDT"]
    assert btc["model"]["n_steps"] == 29
    # the backtest's columns, the simple rules with training.baselines' lookbacks included
    rules = home.training.baselines.lookbacks
    assert list(btc["baselines"]) == [
        "buy-and-hold", "flat", random_baseline_name(home.training.random_agent_seeds),
        rules.momentum_name, rules.sma_cross_name,
    ]  # fmt: skip
    assert report["capital"] == {"BTCUSDT": 5000.0, "ETHUSDT": 5000.0}
    html = out.with_suffix(".html").read_text()
    assert "Paper session" in html and "BTCUSDT" in html and "<svg" in html
    assert rec.exists()
    assert "paper session" in proc.stdout


def test_trades_and_kill_switch(home: AppSettings, tmp_path: Path) -> None:
    cli = str(Path(sys.executable).with_name("drl-trading"))
    env = {**os.environ, "COLUMNS": "200"}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [cli, "--home", str(home.home), *args],
            capture_output=True, text=True, timeout=300, check=False, env=env,
        )  # fmt: skip

    if not (home.home / "paper" / "default" / "execution.sqlite").exists():
        assert run("paper", "-s", "BTCUSDT", "--start", "2024-01-15", "--end", "2024-01-16",
                   "--max-bars", "60").returncode == 0  # fmt: skip
    out = tmp_path / "t.csv"
    listed = run("trades", "--since", "2024-01-01", "--csv", str(out))
    assert listed.returncode == 0, listed.stderr[-2000:]
    header = out.read_text().splitlines()[0]
    assert header.startswith("at,kind,symbol,side,quantity,price,fee,realised_pnl")
    killed = run("kill", "--reason", "operator test")
    assert killed.returncode == 0, killed.stderr[-2000:]
    assert "halted" in killed.stdout
    assert "active" in run("resume").stdout
    assert run("trades", "--session", "nope").returncode == 1


def _replay(settings: AppSettings, start: str, end: str, bars: int) -> tuple[int, object]:
    """Replay ``bars`` 1m bars of both symbols from ``start``; returns (bars, final status)."""
    rng = TimeRange.parse(start, end)
    clock = ManualClock(rng.start)
    with EmbeddedRuntime.open(settings) as runtime:
        source = ReplaySource(runtime.market_data, SYMBOLS, rng.start, rng.end)
        online = runtime.enable_online(source, clock=clock, symbols=SYMBOLS)
        # the same warm-up anchor for every run: the online state is then rebuilt identically
        online.ingest.start(SYMBOLS, TimeRange.parse("2024-01-14", "2024-01-15").start,
                            live_from=rng.start)  # fmt: skip
        runtime.run_until_idle()
        done = 0
        while done < bars and online.ingest.pump(1):
            done += 1
            clock.set(rng.start + timedelta(minutes=(done + 1) // 2))
            runtime.run_until_idle()
        return done, online.execution.service.status()


def test_restart_mid_replay_resumes_the_same_portfolio(home: AppSettings, tmp_path: Path) -> None:
    def account(name: str) -> AppSettings:
        return home.model_copy(
            update={
                "execution": home.execution.model_copy(
                    update={"store": "sqlite", "store_path": tmp_path / f"{name}.sqlite"}
                ),
                # trade on every signal, so that there is a portfolio to resume
                "strategy": home.strategy.model_copy(update={"params": {"min_confidence": 0.0}}),
            }
        )

    n, whole = _replay(account("whole"), "2024-01-15T00:00", "2024-01-15T04:00", 480)
    assert n == 480
    first, _ = _replay(account("split"), "2024-01-15T00:00", "2024-01-15T02:00", 240)
    second, resumed = _replay(account("split"), "2024-01-15T02:00", "2024-01-15T04:00", 240)
    assert first + second == 480
    a, b = whole, resumed  # type: ignore[assignment]
    assert a.counts[RecordKind.FILL] > 0  # type: ignore[attr-defined]
    assert b.counts == a.counts  # type: ignore[attr-defined]
    assert b.cash == pytest.approx(a.cash, rel=1e-12)  # type: ignore[attr-defined]
    assert b.equity == pytest.approx(a.equity, rel=1e-12)  # type: ignore[attr-defined]
    assert {s: p.quantity for s, p in b.positions.items()} == pytest.approx(  # type: ignore[attr-defined]
        {s: p.quantity for s, p in a.positions.items()}  # type: ignore[attr-defined]
    )


def test_event_driven_replay_equals_the_vectorised_backtest(home: AppSettings) -> None:
    """One engine: a day replayed bar by bar through ingest → preprocess → inference →
    execution (paper broker, per-symbol capital) trades what the fast backtest computes for the
    same model and bars: the same targets, units and equity up to float rounding."""
    import numpy as np

    from drl_trading.app.infrastructure import build_registry, build_strategy, feature_set_for
    from drl_trading.common.costs import CostModel
    from drl_trading.common.feature_dataset import load_feature_matrix
    from drl_trading.evaluation.trace import simulate
    from drl_trading.execution.core.session_recorder import SessionRecorder
    from drl_trading.ingest.adapter.clocked_source import ClockedSource
    from drl_trading.policy.predictor import Predictor
    from drl_trading.policy.run import run_policy
    from drl_trading.strategy.feature_view import view_for
    from drl_trading.strategy.signals import signal_rules
    from drl_trading.training.core.dataset import series_from_frame

    # daily-loss and drawdown states have no counterpart in the backtest: out of the way here
    execution = home.execution.model_copy(
        update={"store": "memory", "max_daily_loss": 1.0, "max_drawdown": 1.0}
    )
    # the tiny model's confidences sit near 1/3: below the example's 0.4 nothing would trade
    # (rejections themselves are compared with the backtest in the predictor's unit tests)
    strategy_cfg = home.strategy.model_copy(update={"params": {"min_confidence": 0.0}})
    settings = home.model_copy(update={"execution": execution, "strategy": strategy_cfg})
    spec = feature_set_for(settings)
    costs = CostModel(execution.fee_bps, execution.slippage_bps, execution.min_order_notional)
    clock = ManualClock(REPLAY.start)
    with EmbeddedRuntime.open(settings) as runtime:
        source = ClockedSource(
            ReplaySource(runtime.market_data, SYMBOLS, REPLAY.start, REPLAY.end), clock
        )
        online = runtime.enable_online(source, clock=clock, symbols=SYMBOLS)
        recorder = SessionRecorder(
            online.execution.service,
            list(SYMBOLS),
            spec.base_timeframe,
            costs,
            execution.initial_cash,
        )
        source.observers.append(recorder.on_bar)
        online.ingest.start(SYMBOLS, REPLAY.start - timedelta(days=1), live_from=REPLAY.start)
        runtime.run_until_idle()
        while online.ingest.pump(1):
            runtime.run_until_idle()
            recorder.after_processing()
        paper = recorder.traces()
        orders = online.execution.service.status().counts[RecordKind.ORDER]

        registry = build_registry(settings)
        version = registry.resolve("drl-example@champion")
        predictor = Predictor.load(registry.download_package(version, home.home / "pkg-parity"))
        data = load_feature_matrix(
            runtime.market_data, runtime.feature_store, view_for(spec), list(SYMBOLS), RANGE
        )
    strategy = build_strategy(settings)
    assert orders > 10  # the model trades: the comparison is not between two flat books
    assert set(paper) == set(SYMBOLS)
    compared = []
    for s in series_from_frame(data.frame, spec.columns, spec.base_timeframe):
        live = paper[Symbol(s.symbol)]
        times = s.times.astype("datetime64[us]")
        k0 = int(np.searchsorted(times, live.times[0]))
        if k0 >= len(times) or times[k0] != live.times[0]:
            continue  # an earlier run of the symbol's bars, before the replayed day
        m = min(len(live.times), len(times) - k0)
        assert m > 200
        np.testing.assert_array_equal(times[k0 : k0 + m], live.times[:m])
        np.testing.assert_allclose(s.close[k0 : k0 + m], live.close[:m], rtol=1e-12)
        np.testing.assert_allclose(s.open[k0 : k0 + m], live.open[:m], rtol=1e-12)
        rules = signal_rules(strategy, s.symbol)
        run = run_policy(predictor, s.slice(0, k0 + m), start=k0, rules=rules)
        fast = simulate(
            s.symbol,
            s.times[k0 : k0 + m],
            s.open[k0 : k0 + m],
            s.close[k0 : k0 + m],
            run.positions[k0 : k0 + m - 1],
            costs,
            initial_equity=float(live.equity[0]),
        )
        np.testing.assert_array_equal(live.position[: m - 1], fast.position)
        np.testing.assert_allclose(live.units[: m - 1], fast.units, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(live.equity[:m], fast.equity, rtol=1e-9)
        np.testing.assert_allclose(live.cost[: m - 1], fast.cost, rtol=1e-6, atol=1e-9)
        assert (fast.units != 0).any() and len(np.unique(fast.position)) > 1
        worst = float(np.max(np.abs(live.equity[:m] / fast.equity - 1.0)))
        print(f"{s.symbol}: {m} bars, {len(fast.units)} steps, equity max rel diff {worst:.2e}")
        compared.append(s.symbol)
    assert sorted(compared) == sorted(SYMBOLS)
