"""Calibrating the promotion gate: how often it promotes luck, and how often a real edge.

The benchmark `benchmarks/gate_calibration.py` runs the whole offline pipeline (synthetic
ingest -> preprocess -> walk-forward training over folds and seeds -> the default gate) once per
dataset, each in a fresh home of its own, so that the trials the deflated Sharpe counts are only
that dataset's seeds. Null datasets are pure random walks (edge 0: nothing to learn), planted
ones carry the synthetic source's AR(1) edge on 1h bars (`drl_trading.ingest.adapter.
synthetic_edge`); datasets differ by ``ingest.synthetic.seed``, so they are independent draws.

The gate is the default one (the point is to measure it) and so are the costs (5 bps fee plus
2 bps slippage per unit of position changed). What is small is the training: the bars are
ingested as 1h bars and the features are a handful of 1h columns (`HOURLY_FEATURE_SET`: the
previous bar's log return, which carries the planted edge, among them), so that one dataset
trains in seconds.

Beside the gate's numbers each dataset gets the **oracle's** out-of-sample Sharpe: the rule that
holds the sign of the previous 1h bar's log return (what the planted edge rewards), after the
same costs, over the walk-forward validation span the gate judged. It says whether a model that
learned the edge perfectly could have passed there; on a null dataset it is noise around 0.
"""

from __future__ import annotations

import math
import platform
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

import numpy as np
import polars as pl
from scipy.stats import binomtest  # type: ignore[import-untyped]  # via arch and mlflow

from drl_trading.app.ingest import bootstrap_ingest, build_provider
from drl_trading.app.runtime import EmbeddedRuntime
from drl_trading.app.settings import AppSettings, load_settings
from drl_trading.common.domain import Symbol, Timeframe, TimeRange, parse_time
from drl_trading.evaluation.statistics import sharpe_ratio
from drl_trading.ingest.adapter.synthetic_edge import (
    oracle_returns,
    planted_sharpe,
)
from drl_trading.ingest.adapter.synthetic_provider import SyntheticProvider
from drl_trading.ingest.core.service import TrainingDataRequest
from drl_trading.training.core.service import TrainingRequest, TrainingResult

__all__ = [
    "HOURLY_FEATURE_SET",
    "CalibrationSetup",
    "Dataset",
    "DatasetOutcome",
    "Kind",
    "Rate",
    "calibrate",
    "calibration_report",
    "calibration_settings",
    "datasets",
    "oracle_sharpe",
    "promotion_rate",
    "run_dataset",
]

EDGE_TIMEFRAME = Timeframe.H1
HOURS_PER_YEAR = 365.0 * 24.0
"""Bars per year of 1h bars on a 24/7 market: the annualisation of the oracle's Sharpe."""

HOURLY_FEATURE_SET: dict[str, Any] = {
    "name": "calibration_1h",
    "base_timeframe": "1h",
    "time_encodings": False,
    "timeframes": [
        {
            "timeframe": "1h",
            "indicators": [
                {"kind": "log_return", "horizons": [1, 4]},
                {"kind": "rsi", "period": 14},
            ],
        }
    ],
}
"""Three 1h columns (log returns over 1 and 4 bars, RSI 14) on a 1h base: ``logret_1`` is the
predictor of the planted edge, the others are what a user would add beside it."""

Kind = Literal["null", "planted"]


@dataclass(frozen=True, slots=True)
class CalibrationSetup:
    """The training every dataset gets (all but the gate, which stays the default).

    ``days``: length of each dataset's range (of 1h bars, 24/7); ``timesteps``: PPO steps per
    fit (summed over ``n_envs``); ``folds`` x ``seeds`` fits per dataset."""

    days: int = 120
    timesteps: int = 6144
    folds: int = 2
    seeds: int = 2
    n_envs: int = 2
    episode_bars: int = 256
    n_steps: int = 256
    symbol: str = "BTCUSDT"
    start: str = "2024-01-01"

    @property
    def range(self) -> TimeRange:
        start = parse_time(self.start)
        return TimeRange(start, start + timedelta(days=self.days))


@dataclass(frozen=True, slots=True)
class Dataset:
    """One independent draw: the synthetic seed and the planted edge (0: a random walk)."""

    kind: Kind
    index: int
    data_seed: int
    edge: float


def datasets(m: int, edge: float, *, first_seed: int = 1000) -> list[Dataset]:
    """``m`` null datasets and ``m`` planted ones (``edge``), each with a seed of its own: the
    null ones ``first_seed, first_seed + 1, ...``, the planted ones from ``first_seed + m``."""
    if m < 1:
        raise ValueError(f"M must be at least 1, got {m}")
    if not 0.0 < edge < 1.0:
        raise ValueError(f"the planted edge must be in (0, 1), got {edge}")
    null = [Dataset("null", i, first_seed + i, 0.0) for i in range(m)]
    planted = [Dataset("planted", i, first_seed + m + i, edge) for i in range(m)]
    return null + planted


def calibration_settings(home: Path, setup: CalibrationSetup, dataset: Dataset) -> AppSettings:
    """Embedded settings in ``home`` for ``dataset``: its synthetic seed and edge (on 1h bars),
    `HOURLY_FEATURE_SET`, the small training of ``setup``, the default gate and costs."""
    return load_settings(
        home=home,
        ingest={
            "synthetic": {
                "seed": dataset.data_seed,
                "edge": dataset.edge,
                "edge_timeframe": EDGE_TIMEFRAME.value,
                "chunk_days": 31,
            }
        },
        preprocess={"feature_set": HOURLY_FEATURE_SET},
        training={
            "total_timesteps": setup.timesteps,
            "seeds": setup.seeds,
            "split": {"walk_forward_folds": setup.folds},
            "env": {"n_envs": setup.n_envs, "episode_bars": setup.episode_bars},
            "algorithm": {
                "hyperparameters": {
                    "n_steps": setup.n_steps,
                    "batch_size": min(64, setup.n_steps * setup.n_envs),
                    "n_epochs": 10,  # as calibrated (PPO's default was 10 then)
                }
            },
        },
    )


@dataclass(frozen=True, slots=True)
class DatasetOutcome:
    """What the gate said about one dataset, with the figures it judged (annualised Sharpes)."""

    kind: Kind
    index: int
    data_seed: int
    edge: float
    promote: bool
    sharpe: float
    ci_lower: float
    ci_upper: float
    dsr: float
    trials: int
    best_baseline: str
    best_baseline_sharpe: float
    seed_sharpes: tuple[float, ...]
    max_drawdown: float
    oracle_sharpe: float
    oos_days: float
    failed: tuple[str, ...]
    """Keys of the gate's checks that failed (`GateCheck.key`)."""
    seconds: float
    reason: str = field(repr=False, default="")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _ingest_and_train(settings: AppSettings, symbol: Symbol, rng: TimeRange) -> TrainingResult:
    """Ingest 1h synthetic bars of ``symbol`` over ``rng``, preprocess and train, all on one
    embedded runtime (as `tiny_training.ingest_and_train`, with 1h data)."""
    request = TrainingDataRequest((symbol,), rng, timeframe=EDGE_TIMEFRAME)
    with EmbeddedRuntime.open(settings) as runtime:
        training = runtime.enable_training()
        training.expect(
            TrainingRequest((symbol,), rng, request.request_id, data_timeframe=EDGE_TIMEFRAME)
        )
        provider = build_provider(settings, "synthetic")
        bootstrap_ingest(settings, provider, runtime.market_data, runtime.bus).ingest_history(
            request
        )
        runtime.run_until_idle()
        dead = runtime.bus.messages("dlq.completed.preprocess-data.offline")
        if dead or request.request_id not in training.results:
            raise RuntimeError(
                f"training of dataset in {settings.home} did not finish ({len(dead)} dead "
                f"letters); see {settings.home}/logs/drl-trading.log"
            )
        return training.results[request.request_id]


def oracle_sharpe(
    dataset: Dataset, symbol: Symbol, span: TimeRange, cost_bps: float
) -> tuple[float, float]:
    """The oracle rule's annualised Sharpe over ``span`` after ``cost_bps`` per unit of
    position changed, on the 1h bars ``dataset`` generates (bit for bit those ingested), and the
    span's length in days. The rule holds ``sign(previous bar's log return)`` (-1, 0 or +1)."""
    provider = SyntheticProvider(
        seed=dataset.data_seed, chunk_days=31, edge=dataset.edge, edge_timeframe=EDGE_TIMEFRAME
    )
    hour = timedelta(hours=1)
    # two bars before the span give the first in-span bar its signal
    bars = pl.concat(list(provider.fetch(symbol, EDGE_TIMEFRAME, span.start - 2 * hour, span.end)))
    close = bars["close"].to_numpy()
    gross = oracle_returns(close)
    position = np.sign(np.diff(np.log(close)))[:-1]
    turnover = np.abs(np.diff(position, prepend=0.0))
    net = gross - turnover * cost_bps / 1e4
    days = (span.end - span.start).total_seconds() / 86400.0
    return sharpe_ratio(net, HOURS_PER_YEAR), days


def run_dataset(home: Path, setup: CalibrationSetup, dataset: Dataset) -> DatasetOutcome:
    """The whole pipeline on ``dataset`` in the fresh ``home`` and the gate's verdict on it."""
    if home.exists() and any(home.iterdir()):
        raise FileExistsError(
            f"{home} is not empty: each dataset needs a fresh home (its trials must be its own)"
        )
    began = time.perf_counter()
    settings = calibration_settings(home, setup, dataset)
    symbol = Symbol(setup.symbol)
    result = _ingest_and_train(settings, symbol, setup.range)
    evidence, gate = result.evidence, result.gate
    if evidence is None or gate is None:
        raise RuntimeError(f"training in {home} returned no walk-forward evidence or verdict")
    span = TimeRange(evidence.folds[0].validation.start, evidence.folds[-1].validation.end)
    env = settings.training.env
    oracle, days = oracle_sharpe(dataset, symbol, span, env.fee_bps + env.slippage_bps)
    return DatasetOutcome(
        kind=dataset.kind,
        index=dataset.index,
        data_seed=dataset.data_seed,
        edge=dataset.edge,
        promote=gate.promote,
        sharpe=evidence.sharpe,
        ci_lower=evidence.ci_lower,
        ci_upper=evidence.ci_upper,
        dsr=evidence.dsr,
        trials=evidence.trials,
        best_baseline=evidence.best_baseline,
        best_baseline_sharpe=evidence.best_baseline_sharpe,
        seed_sharpes=evidence.seed_sharpes,
        max_drawdown=evidence.max_drawdown,
        oracle_sharpe=oracle,
        oos_days=days,
        failed=tuple(c.key for c in gate.checks if not c.passed),
        seconds=time.perf_counter() - began,
        reason=gate.reason,
    )


@dataclass(frozen=True, slots=True)
class Rate:
    """``k`` of ``n`` with its exact (Clopper-Pearson) two-sided interval at ``confidence``."""

    k: int
    n: int
    low: float
    high: float
    confidence: float

    @property
    def value(self) -> float:
        return self.k / self.n if self.n else math.nan

    def text(self) -> str:
        return (
            f"{self.k}/{self.n} = {self.value:.1%} "
            f"({self.confidence:.0%} CI {self.low:.1%}..{self.high:.1%}, Clopper-Pearson)"
        )


def promotion_rate(outcomes: list[DatasetOutcome], kind: Kind, confidence: float = 0.95) -> Rate:
    """The share of ``kind``'s datasets the gate promoted, with its Clopper-Pearson interval."""
    of_kind = [o for o in outcomes if o.kind == kind]
    k, n = sum(o.promote for o in of_kind), len(of_kind)
    if n == 0:
        return Rate(0, 0, math.nan, math.nan, confidence)
    ci = binomtest(k, n).proportion_ci(confidence_level=confidence, method="exact")
    return Rate(k, n, float(ci.low), float(ci.high), confidence)


def calibrate(
    setup: CalibrationSetup,
    todo: Sequence[Dataset],
    root: Path,
    *,
    keep_homes: bool = False,
    on_outcome: Callable[[list[DatasetOutcome]], None] | None = None,
) -> list[DatasetOutcome]:
    """`run_dataset` on each of ``todo`` in its own home under ``root`` (``<kind>-<index>``),
    in order; each home is removed after its dataset unless ``keep_homes``. ``on_outcome`` is
    called with the outcomes so far after every dataset (to print or save as they come)."""
    outcomes: list[DatasetOutcome] = []
    for d in todo:
        home = root / f"{d.kind}-{d.index:02d}"
        outcomes.append(run_dataset(home, setup, d))
        if not keep_homes:
            shutil.rmtree(home, ignore_errors=True)
        if on_outcome is not None:
            on_outcome(outcomes)
    return outcomes


def calibration_report(
    setup: CalibrationSetup, edge: float, outcomes: list[DatasetOutcome], seconds: float
) -> dict[str, Any]:
    """The benchmark's JSON: settings, both rates with their 95% intervals, every dataset."""

    def rate(r: Rate) -> dict[str, float | int]:
        return {"promoted": r.k, "datasets": r.n, "rate": r.value, "low": r.low, "high": r.high}

    return {
        "setup": asdict(setup),
        "edge": edge,
        "edge_timeframe": EDGE_TIMEFRAME.value,
        "planted_sharpe_before_costs": planted_sharpe(edge, EDGE_TIMEFRAME),
        "gate": "default (training.gate)",
        "interval": "Clopper-Pearson, 95%",
        "false_promotion": rate(promotion_rate(outcomes, "null")),
        "detection": rate(promotion_rate(outcomes, "planted")),
        "seconds": seconds,
        "python": platform.python_version(),
        "datasets": [o.to_dict() for o in outcomes],
    }
