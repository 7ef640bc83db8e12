"""The inference service against a real (tiny) PPO package served from the in-memory registry.

The reference for every decision is `Predictor.predict` on the window and agent state the
training environment would have built for that bar, so these tests pin the train/serve contract:
same window order, same state encoding, same model version as the registry alias says.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from drl_trading.app.inference import bootstrap_inference
from drl_trading.common.adapter.memory_bus import InMemoryBus
from drl_trading.common.adapter.memory_feature_store import InMemoryFeatureStore
from drl_trading.common.adapter.memory_positions import InMemoryPositions
from drl_trading.common.adapter.memory_registry import InMemoryRegistry
from drl_trading.common.adapter.system_clock import ManualClock
from drl_trading.common.agent_state import AgentPosition, agent_state
from drl_trading.common.domain import Action, Symbol, Timeframe
from drl_trading.common.events import (
    PredictionCompleted,
    PreprocessDataCompleted,
    ProcessingMode,
    Topic,
)
from drl_trading.common.market_series import MarketSeries
from drl_trading.common.ports import FeatureViewSpec
from drl_trading.inference.adapter.registry_model_source import RegistryModelSource
from drl_trading.inference.core.config import InferenceSettings
from drl_trading.inference.core.ports import LoadedModel
from drl_trading.inference.core.service import (
    InferenceService,
    ModelMismatchError,
    SkipReason,
    action_for,
)
from drl_trading.policy.package import ModelManifest, ObsNormalization, write_package
from drl_trading.policy.predictor import Predictor
from drl_trading.strategy.api import RewardContext
from drl_trading.training.adapter.sb3_trainer import build_model
from drl_trading.training.core.env import EnvConfig, TradingEnv

N_FEATURES = 4
WINDOW = 2
MODEL = "drl-test"
COLUMNS = tuple(f"f{i}" for i in range(N_FEATURES))
VIEW = FeatureViewSpec(
    name="test_view",
    feature_set_name="test",
    feature_set_version="v1",
    base_timeframe=Timeframe.M5,
    columns=COLUMNS,
)
STEP = Timeframe.M5.duration
T0 = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)
BTC = Symbol("BTCUSDT")
ETH = Symbol("ETHUSDT")


# -- a tiny real model ----------------------------------------------------------------------------


def _series(n: int = 200) -> MarketSeries:
    rng = np.random.default_rng(3)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.01, n)))
    open_ = np.concatenate(([100.0], close[:-1]))
    feats = rng.normal(0.0, 1.0, (n, N_FEATURES)).astype(np.float32)
    times = (np.datetime64("2024-01-01T00:05") + np.arange(n) * np.timedelta64(5, "m")).astype(
        "datetime64[us]"
    )
    return MarketSeries("TEST", times, feats, open_, close)


def _reward(ctx: RewardContext) -> float:
    return 100.0 * ctx.step_return


@pytest.fixture(scope="module")
def packages(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A PPO policy trained for 64 steps, packaged twice: as trained, and claiming another
    feature-set version (what a model trained before a feature change looks like)."""
    from stable_baselines3.common.running_mean_std import RunningMeanStd
    from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

    cfg = EnvConfig(window=WINDOW, episode_bars=64, feature_names=COLUMNS)
    series = _series()

    def make() -> TradingEnv:
        env = TradingEnv([series], _reward, cfg)
        env.reset(seed=1)
        return env

    venv = VecNormalize(DummyVecEnv([make]), norm_obs=True, norm_reward=False, clip_obs=10.0)
    model = build_model(
        "PPO",
        venv,
        policy=None,
        hyperparameters={"n_steps": 64, "batch_size": 32, "n_epochs": 1},
        net_arch=[16],
        seed=1,
        device="cpu",
    )
    model.learn(total_timesteps=64, progress_bar=False)
    rms = venv.obs_rms
    assert isinstance(rms, RunningMeanStd)
    norm = ObsNormalization(
        np.asarray(rms.mean, dtype=np.float64),
        np.asarray(rms.var, dtype=np.float64),
        float(venv.clip_obs),
        float(venv.epsilon),
    )
    manifest = ModelManifest(
        algorithm="PPO",
        policy="MlpPolicy",
        action_mode="discrete",
        window=WINDOW,
        feature_columns=list(COLUMNS),
        feature_set={},
        feature_set_version=VIEW.feature_set_version,
        feature_view=VIEW.name,
        base_timeframe="5m",
        strategy={"name": "test", "version": "0", "ref": "test"},
        max_position=1.0,
        allow_short=True,
        fee_bps=5.0,
        slippage_bps=2.0,
    )
    root = tmp_path_factory.mktemp("packages")
    other = dataclasses.replace(manifest, feature_set_version="v0")
    return {
        "good": write_package(root / "good", model, norm, manifest),
        "other_version": write_package(root / "other", model, norm, other),
    }


def _register(registry: InMemoryRegistry, package: Path, champion: bool = True) -> str:
    with registry.start_run("train", {}) as run:
        version = registry.register_model(run, MODEL, package)
    if champion:
        registry.set_alias(MODEL, "champion", version.version)
    return version.version


# -- fakes ----------------------------------------------------------------------------------------


class CountingStore(InMemoryFeatureStore):
    def __init__(self) -> None:
        super().__init__()
        self.historical_reads = 0

    def historical_features(self, view: FeatureViewSpec, entities: pl.DataFrame) -> pl.DataFrame:
        self.historical_reads += 1
        return super().historical_features(view, entities)


class FlakySource:
    """The registry source, with loads that fail on demand and are counted."""

    def __init__(self, inner: RegistryModelSource) -> None:
        self.inner = inner
        self.fail = False
        self.loads = 0
        self.resolves = 0

    def resolve(self, ref: str) -> str:
        self.resolves += 1
        return self.inner.resolve(ref)

    def load(self, ref: str) -> LoadedModel:
        self.loads += 1
        if self.fail:
            raise OSError("artifact store unreachable")
        return self.inner.load(ref)


def row(symbol: Symbol, t: datetime) -> tuple[float, ...]:
    """A deterministic feature vector per (symbol, bar)."""
    seed = int(t.timestamp()) + sum(map(ord, symbol))
    return tuple(float(v) for v in np.random.default_rng(seed).normal(0.0, 1.0, N_FEATURES))


def write_offline(store: InMemoryFeatureStore, symbol: Symbol, times: Sequence[datetime]) -> None:
    frame = pl.DataFrame(
        {
            "event_time": list(times),
            **{c: [row(symbol, t)[i] for t in times] for i, c in enumerate(COLUMNS)},
        }
    )
    store.write_offline(VIEW, symbol, frame)


def completed(
    bar: datetime, symbols: Sequence[Symbol] = (BTC,), mode: ProcessingMode = ProcessingMode.ONLINE
) -> PreprocessDataCompleted:
    return PreprocessDataCompleted(
        mode=mode,
        request_event_id="request",
        symbols=list(symbols),
        start=bar - STEP,
        end=bar,
        feature_set_name=VIEW.feature_set_name,
        feature_set_version=VIEW.feature_set_version,
        feature_view=VIEW.name,
        outputs=[],
        bar_close_time=bar,
    )


class World:
    """Registry, stores, positions and clock around one service."""

    def __init__(self, tmp_path: Path, packages: dict[str, Path]) -> None:
        self.packages = packages
        self.registry = InMemoryRegistry(tmp_path / "registry")
        _register(self.registry, packages["good"])
        self.source = FlakySource(RegistryModelSource(self.registry, tmp_path / "work"))
        self.store = CountingStore()
        self.store.register(VIEW)
        self.positions = InMemoryPositions()
        self.prices: dict[Symbol, float] = {}
        self.clock = ManualClock(T0 + timedelta(seconds=10))
        for symbol in (BTC, ETH):
            write_offline(self.store, symbol, [T0 - STEP * k for k in range(1, 4)])

    def service(
        self,
        ref: str = f"{MODEL}@champion",
        view: FeatureViewSpec = VIEW,
        *,
        reload_between_events: bool = False,
    ) -> InferenceService:
        return InferenceService(
            self.store,
            view,
            self.source,
            self.positions,
            self.price,
            self.clock,
            model_ref=ref,
            max_feature_age=timedelta(minutes=10),
            reload_interval=timedelta(seconds=30),
            reload_between_events=reload_between_events,
        )

    def price(self, symbol: Symbol) -> float:
        return self.prices[symbol]

    def online(self, symbol: Symbol, t: datetime) -> None:
        self.store.write_online(VIEW, symbol, t, row(symbol, t))


@pytest.fixture
def world(tmp_path: Path, packages: dict[str, Path]) -> World:
    return World(tmp_path, packages)


def expected(
    predictor: Predictor, symbol: Symbol, bar: datetime, state: tuple[float, float, float]
) -> tuple[float, int, float]:
    window = np.asarray([[row(symbol, bar - STEP * k) for k in range(WINDOW - 1, -1, -1)]])
    return predictor.decide(window, np.asarray([state]))


# -- tests ----------------------------------------------------------------------------------------


def test_prediction_equals_predictor_on_the_training_window_and_state(
    world: World, packages: dict[str, Path]
) -> None:
    svc = world.service()
    world.positions.positions[BTC] = AgentPosition(1.0, entry_price=100.0, bars_in_position=3)
    world.prices[BTC] = 101.5
    world.online(BTC, T0)
    world.online(ETH, T0)
    event = completed(T0, [BTC, ETH])

    out = svc.on_features(event)

    reference = Predictor.load(packages["good"])
    assert [p.symbol for p in out] == [BTC, ETH]
    for p, state in zip(
        out, [agent_state(1.0, 100.0, 101.5, 3), agent_state(0.0, 0.0, 0.0, 0)], strict=True
    ):
        target, index, confidence = expected(reference, p.symbol, T0, state)
        assert (p.target_position, p.confidence) == (target, confidence)
        assert p.action is (Action.SHORT, Action.FLAT, Action.LONG)[index]
        assert p.correlation_id == event.correlation_id
        assert (p.model_name, p.model_version) == (MODEL, "1")
        assert p.feature_time == T0 and p.bar_close_time == T0
        assert p.created_at == world.clock.now()
    status = svc.status()
    assert status.predictions == 2 and status.last_predictions[BTC] == out[0]
    assert status.latency["predict"].count == 2 and status.latency["total"].count == 1
    assert status.latency["read_features"].max > 0.0


def test_window_backfills_from_offline_store_then_rolls_in_memory(
    world: World, packages: dict[str, Path]
) -> None:
    svc = world.service()
    reference = Predictor.load(packages["good"])
    flat = agent_state(0.0, 0.0, 0.0, 0)

    world.online(BTC, T0)
    (first,) = svc.on_features(completed(T0))
    assert world.store.historical_reads == 1  # start-up: the previous close from offline
    assert first.target_position == expected(reference, BTC, T0, flat)[0]

    # the next bar: the window is the buffered vector plus the new one, no offline read
    world.clock.advance(STEP)
    world.online(BTC, T0 + STEP)
    (second,) = svc.on_features(completed(T0 + STEP))
    assert world.store.historical_reads == 1
    assert second.confidence == expected(reference, BTC, T0 + STEP, flat)[2]

    # a gap (bar T0+2 never announced): the missing vector is read back, not skipped over
    gap = T0 + 2 * STEP
    write_offline(world.store, BTC, [gap])
    world.clock.advance(2 * STEP)
    world.online(BTC, T0 + 3 * STEP)
    (third,) = svc.on_features(completed(T0 + 3 * STEP))
    assert world.store.historical_reads == 2
    assert third.confidence == expected(reference, BTC, T0 + 3 * STEP, flat)[2]

    # a symbol with no offline history cannot fill its window: skipped, not padded
    new = Symbol("SOLUSDT")
    world.store.write_online(VIEW, new, T0 + 3 * STEP, row(new, T0 + 3 * STEP))
    assert svc.on_features(completed(T0 + 3 * STEP, [new])) == []
    assert svc.status().skips == {SkipReason.INSUFFICIENT_HISTORY.value: 1}


def test_stale_missing_and_superseded_features_are_skipped_with_reasons(world: World) -> None:
    svc = world.service()
    world.online(BTC, T0 - STEP)  # preprocess announced T0 but BTC's vector is one bar older
    assert svc.on_features(completed(T0, [BTC, ETH])) == []  # ETH has no online vector at all

    world.online(BTC, T0)
    world.clock.set(T0 + timedelta(minutes=11))  # older than max_feature_age by the clock
    assert svc.on_features(completed(T0)) == []

    world.clock.set(T0 + STEP + timedelta(seconds=5))
    world.online(BTC, T0 + STEP)  # a late event for T0 after T0+5m was written
    assert svc.on_features(completed(T0)) == []

    status = svc.status()
    assert status.predictions == 0
    assert status.skips == {
        SkipReason.FEATURES_BEHIND_BAR.value: 1,
        SkipReason.MISSING_FEATURES.value: 1,
        SkipReason.FEATURES_EXPIRED.value: 1,
        SkipReason.SUPERSEDED.value: 1,
    }
    # the current bar still gets its decision
    assert len(svc.on_features(completed(T0 + STEP))) == 1


def test_open_position_without_price_is_skipped(world: World) -> None:
    svc = world.service()
    world.positions.positions[BTC] = AgentPosition(-1.0, entry_price=100.0, bars_in_position=2)
    world.online(BTC, T0)
    assert svc.on_features(completed(T0)) == []
    assert svc.status().skips == {SkipReason.NO_PRICE.value: 1}


def test_model_of_another_feature_set_is_refused(world: World) -> None:
    version = _register(world.registry, world.packages["other_version"], champion=False)
    with pytest.raises(ModelMismatchError, match="feature set version 'v0'") as err:
        world.service(ref=f"{MODEL}/{version}")
    assert err.value.retryable is False

    reordered = dataclasses.replace(VIEW, columns=tuple(reversed(COLUMNS)))
    world.store.register(reordered)
    with pytest.raises(ModelMismatchError, match="different order"):
        world.service(view=reordered)


def test_alias_move_is_picked_up_after_reload_interval_without_dropping_events(
    world: World,
) -> None:
    svc = world.service()
    bars = [T0 + STEP * i for i in range(7)]
    versions: list[str] = []

    def step(i: int, advance: timedelta) -> None:
        world.clock.advance(advance)
        world.online(BTC, bars[i])
        (prediction,) = svc.on_features(completed(bars[i]))
        versions.append(prediction.model_version)

    step(0, timedelta(0))
    _register(world.registry, world.packages["good"])  # version 2 becomes champion
    step(1, timedelta(seconds=10))  # 20 s since start: the registry is not asked yet
    world.source.fail = True
    step(2, timedelta(seconds=30))  # version 2 seen, its download fails: version 1 serves on
    world.source.fail = False
    step(3, timedelta(seconds=30))  # retried: version 2 swapped in before this event
    bad = _register(world.registry, world.packages["other_version"])
    step(4, timedelta(seconds=30))  # version 3 is incompatible: refused, 2 serves on
    step(5, timedelta(seconds=30))  # ...and not downloaded again
    assert versions == ["1", "1", "1", "2", "2", "2"]
    assert world.source.loads == 1 + 2 + 1
    status = svc.status()
    assert (status.model_version, status.reloads, status.reload_failures) == ("2", 1, 2)
    assert status.predictions == 6 and bad == "3"


def test_between_events_the_decisions_never_ask_the_registry(world: World) -> None:
    """With ``reload_between_events`` the registry poll is the loop's, after a decision is
    out: no decision waits for it, however long the interval has passed, and the version the
    loop's poll swapped in serves the next decision."""
    svc = world.service(reload_between_events=True)
    asked_at_start = world.source.resolves
    bars = [T0 + STEP * i for i in range(4)]

    def decide(i: int) -> str:
        world.online(BTC, bars[i])
        (prediction,) = svc.on_features(completed(bars[i]))
        return prediction.model_version

    assert decide(0) == "1"
    _register(world.registry, world.packages["good"])  # version 2 becomes champion
    world.clock.advance(timedelta(minutes=5))
    assert decide(1) == "1"  # due for a poll, but a decision does not poll
    assert world.source.resolves == asked_at_start
    assert svc.maybe_reload() is True  # the loop, between events
    assert (world.source.resolves, world.source.loads) == (asked_at_start + 1, 2)
    assert svc.maybe_reload() is False  # not due again before the interval
    assert decide(2) == "2"
    assert world.source.resolves == asked_at_start + 1


def test_redelivered_event_gets_the_same_prediction(world: World) -> None:
    svc = world.service()
    world.online(BTC, T0)
    event = completed(T0)
    first = svc.on_features(event)

    world.clock.advance(timedelta(minutes=4))
    world.online(BTC, T0 + STEP)  # the store moved on; the redelivery must not notice
    again = svc.on_features(event)

    assert again == first and again[0].event_id == first[0].event_id
    status = svc.status()
    assert (status.predictions, status.duplicates, status.skips) == (1, 1, {})
    (following,) = svc.on_features(completed(T0 + STEP))
    assert following.event_id != first[0].event_id
    assert world.store.historical_reads == 1  # the duplicate did not disturb the window buffer


def test_non_online_and_foreign_feature_set_events_are_ignored(world: World) -> None:
    svc = world.service()
    world.online(BTC, T0)
    assert svc.on_features(completed(T0, mode=ProcessingMode.CATCHUP)) == []
    foreign = completed(T0).model_copy(update={"feature_set_version": "v9"})
    assert svc.on_features(foreign) == []
    assert svc.status().skips == {SkipReason.FEATURE_SET_MISMATCH.value: 1}


def test_handler_publishes_predictions_on_completed_predict(world: World) -> None:
    bus = InMemoryBus()
    settings = InferenceSettings()
    components = bootstrap_inference(
        settings,
        world.store,
        VIEW,
        world.source,
        world.positions,
        world.price,
        world.clock,
        bus,
        model_name=MODEL,
    )
    assert components.service.status().model_ref == f"{MODEL}@champion"
    world.online(BTC, T0)
    world.online(ETH, T0)
    event = completed(T0, [BTC, ETH])
    bus.publish(Topic.PREPROCESS_COMPLETED_ONLINE, event, key=str(BTC))
    bus.publish(
        Topic.PREPROCESS_COMPLETED_OFFLINE, completed(T0, mode=ProcessingMode.OFFLINE), key="x"
    )
    bus.poll()

    published = bus.messages(Topic.PREDICT_COMPLETED)
    assert {p.symbol for p in published if isinstance(p, PredictionCompleted)} == {BTC, ETH}
    assert all(p.correlation_id == event.correlation_id for p in published)

    bus.rewind("inference", Topic.PREPROCESS_COMPLETED_ONLINE)  # redelivery after a crash
    bus.poll()
    again = bus.messages(Topic.PREDICT_COMPLETED)
    assert sorted(p.event_id for p in again) == sorted(2 * [p.event_id for p in published])
    assert not bus.messages(Topic.dlq(Topic.PREPROCESS_COMPLETED_ONLINE))


def test_settings_reference() -> None:
    assert InferenceSettings().reference("drl-x") == "drl-x@champion"
    assert (
        InferenceSettings(model_ref="challenger", model_name="m").reference("x") == "m@challenger"
    )
    assert InferenceSettings(model_ref="m/3").reference() == "m/3"
    with pytest.raises(ValueError, match="alias"):
        InferenceSettings().reference()
    assert InferenceSettings(max_feature_age=120).max_feature_age == timedelta(minutes=2)


def test_action_for_continuous_policies_reads_the_target_sign() -> None:
    assert action_for(-1, 0.4) is Action.LONG
    assert action_for(-1, -0.1) is Action.SHORT
    assert action_for(-1, 0.0) is Action.FLAT
    assert action_for(0, -1.0) is Action.SHORT and action_for(2, 1.0) is Action.LONG


def test_agent_position_rejects_out_of_range_targets() -> None:
    with pytest.raises(ValueError, match="outside"):
        AgentPosition(1.5, 100.0, 1)
