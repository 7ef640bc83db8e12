"""A backtest's report as documents: the HTML page a person reads and the JSON a program reads.

Rendering is pure (strings from the backtest's figures); where the documents go is a
`ReportSink`'s business.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from drl_trading.common.domain import Timeframe
from drl_trading.common.model_registry import ModelVersion
from drl_trading.evaluation.backtest import BacktestResult
from drl_trading.evaluation.report import BacktestReport
from drl_trading.evaluation.report_html import render_report, yes_no
from drl_trading.policy.package import ModelManifest
from drl_trading.training.core.gate import GateDecision
from drl_trading.training.core.ports import ReportDocuments


def backtest_documents(
    result: BacktestResult,
    version: ModelVersion,
    *,
    title: str,
    extra: dict[str, str],
    stem: str,
    manifest: ModelManifest,
    validation: BacktestResult | None = None,
    gate: GateDecision | None = None,
    warnings: Sequence[str] = (),
    details: Mapping[str, Any] | None = None,
) -> ReportDocuments:
    """The report of ``result``, a backtest of ``version``.

    ``extra`` adds lines to the report's metadata. With ``validation`` the result is the test
    part of a training run and the JSON holds both parts (keys ``test`` and ``validation``),
    otherwise the result alone (key ``backtest``); ``gate`` adds the promotion decision: a
    "champion" line in words for the reader, a boolean (``gate.promoted``) in the JSON.
    ``warnings`` head the HTML report and are the JSON's ``warnings`` list (always present);
    ``details`` add top-level JSON keys (e.g. a backtest's ``range_overlap``).
    """
    start = min(s.model.start for s in result.symbols)
    end = max(s.model.end for s in result.symbols)
    metadata = {
        "model": version.uri,
        "run id": version.run_id,
        "algorithm": manifest.algorithm,
        "strategy": f"{manifest.strategy.get('name')} {manifest.strategy.get('version')}",
        "feature set": f"{manifest.feature_set.get('name')} v{manifest.feature_set_version}",
        "costs": f"fee {manifest.fee_bps} bps + slippage {manifest.slippage_bps} bps per unit",
        "bars": str(result.bars),
        **({"champion": f"{yes_no(gate.promote)} ({gate.reason})"} if gate is not None else {}),
        **extra,
    }
    report = BacktestReport(
        title=title,
        subtitle=f"{start:%Y-%m-%d %H:%M} .. {end:%Y-%m-%d %H:%M} UTC",
        metadata=metadata,
        sections=[s.section() for s in result.symbols],
        warnings=tuple(warnings),
    )
    payload: dict[str, Any] = {
        "model": version.uri,
        "run_id": version.run_id,
        "metadata": metadata,
        "warnings": list(warnings),
        **(details or {}),
        "test" if validation is not None else "backtest": result.to_dict(),
    }
    if validation is not None:
        payload["validation"] = validation.to_dict()
    if gate is not None:
        payload["gate"] = {"promoted": gate.promote, "reason": gate.reason}
    return ReportDocuments(
        stem=stem,
        html=render_report(report),
        metrics_json=json.dumps(payload, indent=2, default=str),
    )


def annualisation_line(periods_per_year: float, calendar: str, base: Timeframe) -> str:
    """The report's line on how its figures were annualised: ``6,258 1h bars a year (market
    calendar fx)``; Sharpe, Sortino and volatility scale by the square root of this figure."""
    return f"{periods_per_year:,.6g} {base.value} bars a year (market calendar {calendar})"
