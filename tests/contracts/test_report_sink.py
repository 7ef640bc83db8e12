"""Contract of the report-sink port over the report files and the in-memory fake: a report is
kept under its stem, exactly as rendered, and a new report of the same stem replaces it."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from drl_trading.training.adapter.memory_reports import InMemoryReports
from drl_trading.training.adapter.report_files import ReportFiles
from drl_trading.training.core.ports import ReportDocuments, ReportSink

# the sink, and how to read a document back without going through the sink
Sink = tuple[ReportSink, Callable[[Path], str]]


@pytest.fixture(params=["files", "memory"])
def sink(request: pytest.FixtureRequest, tmp_path: Path) -> Sink:
    if request.param == "files":
        return ReportFiles(tmp_path / "home" / "reports"), lambda p: p.read_text()
    memory = InMemoryReports(tmp_path / "reports")
    return memory, lambda p: memory.files[p]


def documents(stem: str, title: str = "Backtest") -> ReportDocuments:
    html = f"<!doctype html><html><head><title>{title}</title></head><body>é €</body></html>"
    metrics = json.dumps({"model": "models:/drl-x/1", "title": title}, indent=2)
    return ReportDocuments(stem, html, metrics)


def test_a_report_is_kept_under_its_stem_exactly_as_rendered(sink: Sink) -> None:
    reports, read = sink
    docs = documents("drl-x-v1-test")
    paths = reports.write(docs)
    assert (paths.html.name, paths.metrics.name) == ("drl-x-v1-test.html", "drl-x-v1-test.json")
    assert paths.html.parent == paths.metrics.parent
    assert read(paths.html) == docs.html
    assert read(paths.metrics) == docs.metrics_json
    assert json.loads(read(paths.metrics))["model"] == "models:/drl-x/1"


def test_a_report_of_the_same_stem_replaces_the_old_one(sink: Sink) -> None:
    reports, read = sink
    first = reports.write(documents("r", "first"))
    second = reports.write(documents("r", "second"))
    assert second == first
    assert "second" in read(second.html) and "first" not in read(second.html)
    assert json.loads(read(second.metrics))["title"] == "second"


def test_reports_of_different_stems_are_kept_side_by_side(sink: Sink) -> None:
    reports, read = sink
    a = reports.write(documents("a", "report a"))
    b = reports.write(documents("b", "report b"))
    assert len({a.html, a.metrics, b.html, b.metrics}) == 4
    assert "report a" in read(a.html) and "report b" in read(b.html)


def test_report_files_create_the_reports_folder_on_first_write(tmp_path: Path) -> None:
    folder = tmp_path / "a" / "b" / "reports"
    paths = ReportFiles(folder).write(documents("r"))
    assert paths.html == folder / "r.html" and paths.metrics == folder / "r.json"
    assert sorted(p.name for p in folder.iterdir()) == ["r.html", "r.json"]
