"""The offline workflow as the e2e tests and benchmarks set it up: synthetic bars → bus →
preprocess → a short training run that registers (and, with the permissive gate, promotes) a
model, in one embedded runtime."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from drl_trading.app.ingest import bootstrap_ingest, build_provider
from drl_trading.app.offline_workflow import ingest_history
from drl_trading.app.runtime import EmbeddedRuntime
from drl_trading.app.settings import AppSettings, load_settings
from drl_trading.common.domain import Symbol, TimeRange
from drl_trading.ingest.core.service import TrainingDataRequest
from drl_trading.training.core.service import TrainingRequest, TrainingResult

PERMISSIVE_GATE = {
    "min_sharpe": None,
    "beat_buy_and_hold": False,
    "max_drawdown": 1.0,
    "min_deflated_sharpe": None,
    "ci_above_best_baseline": False,
    "max_seed_sharpe_spread": None,
}
"""A gate every model passes (every check that can fail switched off), so that a tiny run also
exercises promotion to champion."""


def tiny_training_settings(home: Path, timesteps: int) -> AppSettings:
    """Embedded settings in ``home``: ``timesteps`` PPO steps on 2 envs, the permissive gate."""
    return load_settings(
        home=home,
        training={"total_timesteps": timesteps, "env": {"n_envs": 2}, "gate": PERMISSIVE_GATE},
    )


def tiny_quickstart_config(timesteps: int = 32) -> dict[str, Any]:
    """The ``preprocess`` and ``training`` sections of a configuration file that trains in
    seconds: one feature set of one indicator (RSI over 7 5m bars, no time encodings, so a day of
    1m bars has feature rows), ``timesteps`` PPO steps on one env in 32-bar episodes and one
    random-agent seed. A new dict each call, free to change."""
    return {
        "preprocess": {
            "store_timeframes": ["5m"],
            "feature_set": {
                "name": "tiny",
                "base_timeframe": "5m",
                "time_encodings": False,
                "timeframes": [{"timeframe": "5m", "indicators": [{"kind": "rsi", "period": 7}]}],
            },
        },
        "training": {
            "total_timesteps": timesteps,
            "random_agent_seeds": 1,
            "env": {"n_envs": 1, "episode_bars": 32},
            "algorithm": {"hyperparameters": {"n_steps": 32, "batch_size": 32, "n_epochs": 1}},
        },
    }


def write_tiny_quickstart_config(path: Path, timesteps: int = 32) -> Path:
    """`tiny_quickstart_config` written to ``path`` as YAML (for ``--config``); ``path``."""
    path.write_text(yaml.safe_dump(tiny_quickstart_config(timesteps)))
    return path


def ingest_and_train(
    settings: AppSettings,
    symbols: tuple[Symbol, ...],
    rng: TimeRange,
    *,
    with_warmup: bool = False,
) -> TrainingResult:
    """Ingest synthetic 1m bars of ``symbols`` over ``rng``, preprocess them and train on them,
    all on one embedded runtime; the training result (registered, champion or not).

    ``with_warmup``: ingest as every command does (`offline_workflow.ingest_history`: the
    features' look-back before ``rng`` too), for a test that compares with a command's result;
    by default only ``rng`` is stored (a smaller, faster home whose stored range is ``rng``)."""
    request = TrainingDataRequest(symbols, rng)
    with EmbeddedRuntime.open(settings) as runtime:
        training = runtime.enable_training()
        training.expect(TrainingRequest(symbols, rng, request.request_id))
        if with_warmup:
            ingest_history(
                settings,
                runtime.bus,
                runtime.market_data,
                "synthetic",
                None,
                request,
                request_preprocessing=True,
            )
        else:
            provider = build_provider(settings, "synthetic")
            ingest = bootstrap_ingest(settings, provider, runtime.market_data, runtime.bus)
            ingest.ingest_history(request)
        runtime.run_until_idle()
        assert runtime.bus.messages("dlq.completed.preprocess-data.offline") == []
        return training.results[request.request_id]
