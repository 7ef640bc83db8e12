"""`ReportSink` fake: reports kept in memory, nothing written to disk.

The returned paths name the documents (``<root>/<stem>.html``, ``<root>/<stem>.json``, as
`ReportFiles` would) and are the keys of `files`; no file exists at them, so this sink suits
tests whose registry does not copy artifacts from the file system.
"""

from __future__ import annotations

from pathlib import Path

from drl_trading.training.core.ports import ReportDocuments, ReportPaths


class InMemoryReports:
    def __init__(self, root: Path = Path("memory-reports")) -> None:
        self.root = root
        self.files: dict[Path, str] = {}
        """Text of every document written, by the path `write` returned for it."""

    def write(self, documents: ReportDocuments) -> ReportPaths:
        paths = ReportPaths(
            self.root / f"{documents.stem}.html", self.root / f"{documents.stem}.json"
        )
        self.files[paths.html] = documents.html
        self.files[paths.metrics] = documents.metrics_json
        return paths
