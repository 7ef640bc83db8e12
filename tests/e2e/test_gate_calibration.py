"""The gate-calibration benchmark's code path on M = 2 datasets of each kind, tiny trainings:
every dataset in a home of its own (its trials are its own seeds), both rates counted from the
verdicts, the report serialisable."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from drl_trading.testing.gate_calibration import (
    CalibrationSetup,
    Dataset,
    DatasetOutcome,
    Kind,
    calibrate,
    calibration_report,
    datasets,
    promotion_rate,
    run_dataset,
)

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

TINY = CalibrationSetup(
    days=20, timesteps=64, folds=2, seeds=1, n_envs=1, episode_bars=32, n_steps=32
)


def _outcome(kind: Kind, promote: bool) -> DatasetOutcome:
    nan = math.nan
    return DatasetOutcome(
        kind, 0, 1, 0.0, promote, nan, nan, nan, nan, 1, "flat", 0.0, (), 0.0, nan, 1.0, (), 0.0
    )


def test_rates_are_counted_with_exact_intervals() -> None:
    outcomes = [_outcome("null", False)] * 20 + [_outcome("planted", i < 15) for i in range(20)]
    null, planted = promotion_rate(outcomes, "null"), promotion_rate(outcomes, "planted")
    assert (null.k, null.n, planted.k, planted.n) == (0, 20, 15, 20)
    # 0 of n: the Clopper-Pearson upper bound is 1 - (alpha/2)^(1/n)
    assert null.low == 0.0 and null.high == pytest.approx(1 - 0.025 ** (1 / 20))
    assert planted.low < 0.75 < planted.high


def test_m2_runs_the_pipeline_per_dataset_in_fresh_homes(tmp_path: Path) -> None:
    todo = datasets(2, 0.5)
    assert [(d.kind, d.edge) for d in todo] == [
        ("null", 0.0),
        ("null", 0.0),
        ("planted", 0.5),
        ("planted", 0.5),
    ]
    seen: list[int] = []
    outcomes = calibrate(TINY, todo, tmp_path, on_outcome=lambda so_far: seen.append(len(so_far)))
    assert seen == [1, 2, 3, 4]
    assert list(tmp_path.iterdir()) == []  # every home removed after its dataset
    assert len({o.data_seed for o in outcomes}) == 4
    for o in outcomes:
        assert o.trials == TINY.seeds  # a fresh home: only this run's seeds are trials
        assert o.promote == (not o.failed), o.reason
        assert math.isfinite(o.sharpe) and o.ci_lower <= o.ci_upper
        assert 0.0 <= o.dsr <= 1.0 and math.isfinite(o.oracle_sharpe)
        assert o.oos_days == pytest.approx(2 * 0.15 * 20, abs=1.5)
    # the oracle's Sharpe after costs: the planted edge pays, the random walk's costs do not
    assert min(o.oracle_sharpe for o in outcomes[2:]) > max(o.oracle_sharpe for o in outcomes[:2])
    report = json.loads(json.dumps(calibration_report(TINY, 0.5, outcomes, 1.0)))
    assert report["false_promotion"]["datasets"] == report["detection"]["datasets"] == 2
    assert report["false_promotion"]["promoted"] == sum(o.promote for o in outcomes[:2])
    assert [d["kind"] for d in report["datasets"]] == ["null", "null", "planted", "planted"]


def test_a_dataset_refuses_a_used_home(tmp_path: Path) -> None:
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / "mlflow").mkdir()
    with pytest.raises(FileExistsError, match="fresh home"):
        run_dataset(tmp_path / "home", TINY, Dataset("null", 0, 1, 0.0))
