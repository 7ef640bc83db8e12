"""A tiny training over 2 walk-forward folds x 2 seeds writes the evaluation report next to the
test backtest's and logs it to MLflow (the embedded file store) under ``evaluation/``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from drl_trading.app.settings import load_settings
from drl_trading.common.domain import Symbol, TimeRange
from drl_trading.testing.tiny_training import ingest_and_train, tiny_quickstart_config

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

SYMBOLS = (Symbol("BTCUSDT"), Symbol("ETHUSDT"))
RANGE = TimeRange.parse("2024-01-01", "2024-01-05")


def test_a_two_fold_two_seed_run_writes_and_logs_the_evaluation_report(tmp_path: Path) -> None:
    config = tiny_quickstart_config(32)
    config["training"] |= {"seeds": 2, "split": {"walk_forward_folds": 2}}
    path = tmp_path / "config.yaml"
    path.write_text(json.dumps(config | {"home": str(tmp_path / "home")}))
    settings = load_settings(config_file=path)
    result = ingest_and_train(settings, SYMBOLS, RANGE)

    report = result.evaluation_report_path
    assert report is not None and report.exists()
    assert report.parent == result.report_path.parent
    html = report.read_text()
    for heading in (
        "Gate",
        "Per fold",
        "Out-of-sample equity",
        "Monthly returns",
        "Rolling Sharpe",
    ):
        assert f"<h2>{heading}</h2>" in html, heading
    assert "min..max of 2 seeds" in html and "BTCUSDT" in html and "ETHUSDT" in html
    assert "2 walk-forward folds (expanding training windows), embargo" in html
    assert "2 seeds = 4 trainings" in html
    assert "<script" not in html and "http" not in html
    assert html.count("<svg") == 3 + len(SYMBOLS)
    figures = json.loads(report.with_suffix(".json").read_text())
    assert len(figures["evidence"]["folds"]) == 2 and len(figures["evidence"]["seed_sharpes"]) == 2

    import mlflow

    client = mlflow.MlflowClient(settings.mlflow_tracking_uri)
    logged = {a.path for a in client.list_artifacts(result.run_id, "evaluation")}
    assert f"evaluation/{report.name}" in logged
    assert f"evaluation/{report.with_suffix('.json').name}" in logged
    assert "evaluation/evidence.json" in logged
    downloaded = Path(client.download_artifacts(result.run_id, f"evaluation/{report.name}"))
    assert downloaded.read_text() == html
