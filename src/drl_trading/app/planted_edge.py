"""What the quickstart planted against what its agent recovered (README command 1).

The synthetic source can plant an edge of known size (`drl_trading.ingest.adapter.
synthetic_edge`): the log return of each bar of the edge timeframe predicts the next one's by an
AR(1) coefficient. Its nominal size is the oracle rule's Sharpe before costs over about 60 days
(`planted_sharpe`). What a model can keep of it on one test range depends on that range and on
the costs, so the oracle is also run here on the test backtest's own bars, through the same
simulator and costs as the model and its baselines (`drl_trading.evaluation.trace.simulate`):
the known rule's figure the recovered Sharpe is to be read against (a learner that trades only
the moves large enough to pay the costs can beat it after costs).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from drl_trading.common.costs import CostModel
from drl_trading.common.domain import Timeframe
from drl_trading.evaluation.metrics import compute_metrics
from drl_trading.evaluation.trace import SimulationTrace, simulate
from drl_trading.ingest.adapter.synthetic_edge import planted_sharpe

if TYPE_CHECKING:
    from drl_trading.policy.package import ModelManifest
    from drl_trading.training.core.service import TrainingResult

__all__ = ["PlantedEdge", "oracle_positions", "planted_edge"]


@dataclass(frozen=True, slots=True)
class PlantedEdge:
    """The planted edge and the oracle's figures on one test range (annualised Sharpes)."""

    edge: float
    timeframe: Timeframe
    planted_sharpe: float
    """The oracle's nominal Sharpe before costs over about 60 days (`planted_sharpe`)."""
    oracle_before_costs: float | None
    """The oracle on the test range's bars without costs (mean over symbols); None where the
    base bars are coarser than the edge timeframe, so the rule cannot be run on them."""
    oracle_after_costs: float | None
    """The same with the test backtest's costs: what a perfect learner would have kept."""


def oracle_positions(
    times: np.ndarray,
    close: np.ndarray,
    timeframe: Timeframe,
    allow_short: bool = True,
    max_position: float = 1.0,
) -> np.ndarray:
    """The oracle's targets on base bars: ``positions[i]`` (decided at close ``times[i]``, held
    over step i, i.e. base bar i+1) is the sign of the log return of the last *completed* bar
    of ``timeframe`` before the edge bar that base bar i+1 falls in, as `oracle_returns` holds
    it on the edge bars themselves. ``times``: the n+1 close times (datetime64) of the trace;
    0 where either close of that edge bar is not among them (range start, gaps); targets are
    ``±max_position`` (fraction of equity), and without ``allow_short`` a short reads flat."""
    width = np.timedelta64(timeframe.minutes, "m")
    t = times.astype("datetime64[us]")
    start = (t[:-1] - np.datetime64(0, "us")) // width * width + np.datetime64(0, "us")
    earlier = start - width
    at_start = np.searchsorted(t, start)
    at_earlier = np.searchsorted(t, earlier)
    clipped_start = np.minimum(at_start, len(t) - 1)
    clipped_earlier = np.minimum(at_earlier, len(t) - 1)
    known = (t[clipped_start] == start) & (t[clipped_earlier] == earlier)
    move = np.log(close[clipped_start] / close[clipped_earlier])
    positions = np.where(known, np.sign(move) * max_position, 0.0)
    return positions if allow_short else np.maximum(positions, 0.0)


def _oracle_sharpe(
    trace: SimulationTrace,
    timeframe: Timeframe,
    costs: CostModel,
    ppy: float,
    manifest: ModelManifest,
) -> float:
    positions = oracle_positions(
        trace.times, trace.close, timeframe, manifest.allow_short, manifest.max_position
    )
    replay = simulate(trace.symbol, trace.times, trace.open, trace.close, positions, costs)
    return compute_metrics(replay, ppy).sharpe


def planted_edge(edge: float, timeframe: Timeframe, result: TrainingResult) -> PlantedEdge:
    """The planted edge and its oracle on ``result``'s test bars, annualised as the test
    backtest (base bars a year of the walk-forward evidence). The oracle pays the test
    backtest's costs (the model's own) and keeps within the model's position limits (its
    manifest's ``max_position`` and ``allow_short``)."""
    nominal = planted_sharpe(edge, timeframe)
    manifest = result.predictor.manifest
    base = Timeframe(manifest.base_timeframe)
    test = result.test
    runnable = timeframe.minutes >= base.minutes and timeframe.minutes % base.minutes == 0
    if not runnable or not test.symbols or result.evidence is None:
        return PlantedEdge(edge, timeframe, nominal, None, None)
    ppy = result.evidence.periods_per_year
    costs = test.costs if test.costs is not None else CostModel()
    free = CostModel(0.0, 0.0, costs.min_order_notional)
    traces = [s.trace for s in test.symbols]
    before = [_oracle_sharpe(t, timeframe, free, ppy, manifest) for t in traces]
    after = [_oracle_sharpe(t, timeframe, costs, ppy, manifest) for t in traces]
    return PlantedEdge(edge, timeframe, nominal, float(np.mean(before)), float(np.mean(after)))
