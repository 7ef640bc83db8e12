"""Backtest reports as files: ``<stem>.html`` and ``<stem>.json`` in one reports folder.

The folder is where a person looks for reports (``<home>/reports`` by default); the files are
also logged as artifacts of the run, so they outlive a cleaned-up folder.
"""

from __future__ import annotations

from pathlib import Path

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
