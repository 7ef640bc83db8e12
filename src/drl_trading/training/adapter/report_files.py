"""Backtest reports as files: ``<stem>.html`` and ``<stem>.json`` in one reports folder.

The folder is where a person looks for reports (``<home>/reports`` by default); the files are
also logged as artifacts of the run, so they outlive a cleaned-up folder.
"""

from __future__ import annotations

from pathlib import Path

from drl_trading.common.model_registry import ModelVersion
from drl_trading.evaluation.backtest import BacktestResult
from drl_trading.policy.package import ModelManifest
from drl_trading.training.core.backtest_report import backtest_documents
from drl_trading.training.core.gate import GateDecision
from drl_trading.training.core.ports import ReportDocuments, ReportPaths


class ReportFiles:
    """`ReportSink` over a folder, created on the first write."""

    def __init__(self, reports_dir: Path) -> None:
        self.reports_dir = reports_dir

    def write(self, documents: ReportDocuments) -> ReportPaths:
        self.reports_dir.mkdir(parents=True, exist_ok=True)
        html_path = self.reports_dir / f"{documents.stem}.html"
        json_path = self.reports_dir / f"{documents.stem}.json"
        html_path.write_text(documents.html)
        json_path.write_text(documents.metrics_json)
        return ReportPaths(html_path, json_path)


def write_backtest_files(
    reports_dir: Path,
    result: BacktestResult,
    version: ModelVersion,
    *,
    title: str,
    extra: dict[str, str],
    stem: str,
    manifest: ModelManifest,
    validation: BacktestResult | None = None,
    gate: GateDecision | None = None,
) -> ReportPaths:
    """The HTML report and the JSON metrics file of one backtest, under ``reports_dir`` (what
    ``drl-trading backtest`` writes; see `backtest_documents` for the arguments)."""
    documents = backtest_documents(
        result,
        version,
        title=title,
        extra=extra,
        stem=stem,
        manifest=manifest,
        validation=validation,
        gate=gate,
    )
    return ReportFiles(reports_dir).write(documents)
