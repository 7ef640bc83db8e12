"""The evaluation report rendered from hand-built walk-forward evidence: every section is there,
caller text is escaped, nothing is fetched or run, and the evidence's stitched series is what the
folds and seeds gave (the statistics are unchanged by keeping it)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from drl_trading.common.domain import TimeRange
from drl_trading.common.model_registry import ModelVersion
from drl_trading.evaluation.oos_series import TradeMarks
from drl_trading.training.core.config import GateSettings
from drl_trading.training.core.evaluation_report import evaluation_documents
from drl_trading.training.core.evidence import Evidence, FoldOutcome, walk_forward_evidence
from drl_trading.training.core.gate import evaluate_gate

PPY = 8760.0
STEPS = 24 * 45  # per fold: 45 days of hourly bars, so the range spans calendar months
START = datetime(2024, 1, 10, tzinfo=UTC)
HOSTILE = '<script>alert("x")</script> & "q"'
BASELINES = {"buy-and-hold": 0.3, "flat": 0.0, HOSTILE: 0.5}


def _marks(symbol: str, fold: int, times: np.ndarray, rng: np.random.Generator) -> TradeMarks:
    n = len(times)
    bar_times = np.concatenate(([times[0] - np.timedelta64(1, "h")], times))
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n + 1)))
    units = np.repeat(rng.choice([-1.0, 0.0, 1.0], size=n // 24 + 1), 24)[:n]
    return TradeMarks.from_path(symbol, fold, bar_times, close * 0.999, close, units)


def _outcomes(seeds: int = 3, folds: int = 2) -> list[FoldOutcome]:
    rng = np.random.default_rng(7)
    out = []
    for k in range(folds):
        lo = START + timedelta(hours=k * STEPS)
        times = np.datetime64(lo.replace(tzinfo=None), "us") + np.arange(1, STEPS + 1) * (
            np.timedelta64(1, "h")
        )
        out.append(
            FoldOutcome(
                k,
                TimeRange(lo, lo + timedelta(hours=STEPS)),
                tuple(rng.normal(0.0004 + 0.0001 * s, 0.01, STEPS) for s in range(seeds)),
                BASELINES,
                times=times,
                baseline_returns={name: rng.normal(0, 0.01, STEPS) for name in BASELINES},
                marks=(_marks("BTC<USDT>", k, times, rng), _marks("ETHUSDT", k, times, rng)),
            )
        )
    return out


def _render(evidence: Evidence) -> tuple[str, dict[str, object]]:
    gate = evaluate_gate(GateSettings(), evidence)
    docs = evaluation_documents(
        evidence,
        gate,
        ModelVersion("drl-<b>x</b>", "3", "run&1"),
        symbols=["BTC<USDT>", "ETHUSDT"],
        protocol="2 walk-forward folds (expanding training windows), embargo 1:00:00",
        annualisation="8,760 1h bars a year (market calendar 24/7)",
        costs=f"costs: {HOSTILE}",
        stem="drl-x-v3-evaluation",
    )
    assert docs.stem == "drl-x-v3-evaluation"
    return docs.html, json.loads(docs.metrics_json)


def test_every_section_is_rendered_self_contained_and_escaped() -> None:
    evidence = walk_forward_evidence(_outcomes(), PPY)
    html, payload = _render(evidence)
    for heading in (
        "<h2>Run</h2>",
        "<h2>Gate</h2>",
        "<h2>Headline</h2>",
        "<h2>Per fold</h2>",
        "<h2>Out-of-sample equity</h2>",
        "<h2>Drawdown</h2>",
        "<h2>Rolling Sharpe</h2>",
        "<h2>Monthly returns</h2>",
        "<h2>Trades on the price (seed 0)</h2>",
    ):
        assert heading in html, heading
    assert "<script" not in html and "http" not in html
    assert "&lt;script&gt;" in html and "BTC&lt;USDT&gt;" in html and "drl-&lt;b&gt;x" in html
    # the gate table names every check with its text
    for check in evaluate_gate(GateSettings(), evidence).checks:
        assert f"<td>{check.key}</td>" in html
    assert "deflated Sharpe (DSR)" in html and "3 trials" in html
    assert "min..max of 3 seeds" in html and "fold 1" in html
    assert "30-day window (720 bars)" not in html  # 90 days: fewer than four 30-day windows
    assert "a tenth of the series (216 bars" in html
    # months: Jan 10 .. Apr 9; January and April partly covered
    assert payload["figures"]["monthly_returns"]["2024-01"]["partial"] is True  # type: ignore[index]
    assert payload["figures"]["monthly_returns"]["2024-02"]["partial"] is False  # type: ignore[index]
    assert "Jan" in html and html.count('title="month only partly covered"') == 2
    assert html.count("<svg") == 3 + 2  # equity, drawdown, rolling Sharpe; a price per symbol
    assert payload["evidence"]["sharpe"] == pytest.approx(evidence.sharpe)  # type: ignore[index]
    assert payload["gate"]["checks"][0]["key"] == "deflated_sharpe"  # type: ignore[index]


def test_the_series_is_the_stitched_folds_and_leaves_the_statistics_alone() -> None:
    outcomes = _outcomes()
    evidence = walk_forward_evidence(outcomes, PPY)
    plain = walk_forward_evidence(
        [FoldOutcome(o.fold, o.validation, o.seed_returns, o.baseline_sharpes) for o in outcomes],
        PPY,
    )
    assert evidence == plain and plain.series is None
    series = evidence.series
    assert series is not None and series.steps == evidence.steps == 2 * STEPS
    assert series.fold_starts == (0, STEPS)
    for s in range(3):
        np.testing.assert_array_equal(
            series.seed_returns[s], np.concatenate([o.seed_returns[s] for o in outcomes])
        )
    np.testing.assert_array_equal(series.times[STEPS:], outcomes[1].times)
    assert list(series.baseline_returns) == list(BASELINES)
    assert [m.symbol for m in series.marks] == ["BTC<USDT>", "ETHUSDT"] * 2


def test_evidence_without_a_series_renders_its_tables() -> None:
    outcomes = [
        FoldOutcome(o.fold, o.validation, o.seed_returns, o.baseline_sharpes) for o in _outcomes()
    ]
    html, payload = _render(walk_forward_evidence(outcomes, PPY))
    assert "<h2>Per fold</h2>" in html and "charts unavailable" in html
    assert "<svg" not in html and payload["figures"] == {}
