"""The offline workflow as the e2e tests and benchmarks set it up: synthetic bars → bus →
preprocess → a short training run that registers (and, with the permissive gate, promotes) a
model, in one embedded runtime."""

from __future__ import annotations

from pathlib import Path

from drl_trading.app.offline_workflow import ingest_history
from drl_trading.app.runtime import EmbeddedRuntime
from drl_trading.app.settings import AppSettings, load_settings
from drl_trading.common.domain import Symbol, TimeRange
from drl_trading.ingest.core.service import TrainingDataRequest
from drl_trading.training.core.service import TrainingRequest, TrainingResult

PERMISSIVE_GATE = {"min_sharpe": -1e9, "beat_buy_and_hold": False, "max_drawdown": 1.0}
"""A gate every model passes, so that a tiny run also exercises promotion to champion."""


def tiny_training_settings(home: Path, timesteps: int) -> AppSettings:
    """Embedded settings in ``home``: ``timesteps`` PPO steps on 2 envs, the permissive gate."""
    return load_settings(
        home=home,
        training={"total_timesteps": timesteps, "env": {"n_envs": 2}, "gate": PERMISSIVE_GATE},
    )


def ingest_and_train(
    settings: AppSettings, symbols: tuple[Symbol, ...], rng: TimeRange
) -> TrainingResult:
    """Ingest synthetic 1m bars of ``symbols`` over ``rng`` (with the features' warm-up before
    it, as every command does), preprocess them and train on them, all on one embedded runtime;
    the training result (registered, champion or not)."""
    request = TrainingDataRequest(symbols, rng)
    with EmbeddedRuntime.open(settings) as runtime:
        training = runtime.enable_training()
        training.expect(TrainingRequest(symbols, rng, request.request_id))
        ingest_history(
            settings,
            runtime.bus,
            runtime.market_data,
            "synthetic",
            None,
            request,
            request_preprocessing=True,
        )
        runtime.run_until_idle()
        assert runtime.bus.messages("dlq.completed.preprocess-data.offline") == []
        return training.results[request.request_id]
