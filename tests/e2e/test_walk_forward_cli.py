"""`drl-trading train --folds 2 --window rolling --seeds 1` as a user runs it on a tiny home:
two rolling folds trained, the protocol line printed, the rolling protocol in the run's
recorded settings and splits; bad protocol flags stop the command (exit 2) with one line."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from drl_trading.app.settings import load_settings
from drl_trading.testing.cli_process import run_cli, said
from drl_trading.testing.tiny_training import PERMISSIVE_GATE, tiny_quickstart_config

pytestmark = pytest.mark.e2e

ARGS = ("-s", "BTCUSDT", "--start", "2024-01-01", "--end", "2024-01-05")


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = tiny_quickstart_config(timesteps=32)
    data["training"]["gate"] = PERMISSIVE_GATE
    path = tmp_path_factory.mktemp("config") / "tiny.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_train_with_rolling_folds_prints_and_records_its_protocol(
    tmp_path: Path, config: Path
) -> None:
    home = tmp_path / "home"
    done = run_cli(home, "ingest", "--source", "synthetic", *ARGS, "--preprocess", config=config)
    assert done.returncode == 0, done.stderr[-4000:]
    done = run_cli(
        home, "train", *ARGS, "--folds", "2", "--window", "rolling", "--seeds", "1", config=config
    )
    assert done.returncode == 0, done.stderr[-4000:]
    line = next(s for s in done.stdout.splitlines() if s.startswith("protocol:"))
    assert line == (
        "protocol:      2 walk-forward folds (rolling training windows of 1 day 4 h 45 min), "
        "embargo 12 h, 1 seed = 2 trainings"
    )
    run_id = next(s for s in done.stdout.splitlines() if s.startswith("MLflow run id:")).split()[-1]

    import mlflow

    client = mlflow.MlflowClient(load_settings(home=home).mlflow_tracking_uri)
    params = client.get_run(run_id).data.params
    assert params["config.training.split.window"] == "rolling"
    assert params["config.training.split.walk_forward_folds"] == "2"
    assert params["config.training.seeds"] == "1"
    assert params["splits.window"] == "rolling"
    assert params["splits.train_length"] == "1 day 4 h 45 min"
    starts = [params[f"splits.fold{k}.train"].split(" .. ")[0] for k in (0, 1)]
    assert starts[0] < starts[1]  # the window rolled forward (ISO times sort as times)


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (
            ("--train-length", "30d"),
            "error: --train-length 30d sets rolling training windows, but they are expanding "
            "(training.split.window): add --window rolling",
        ),
        (
            ("--window", "rolling", "--train-length", "3x"),
            "error: cannot read the duration '3x': use a number and a unit (w, d, h, m, s), "
            "e.g. 30d, 12h or 1d12h, or ISO 8601 such as P30D",
        ),
        (("--folds", "0"), "Invalid value for '--folds'"),
        (("--seeds", "0"), "Invalid value for '--seeds'"),
        (("--window", "sliding"), "Invalid value for '--window'"),
    ],
)
def test_bad_protocol_flags_exit_2_with_one_line(
    tmp_path: Path, config: Path, flags: tuple[str, ...], message: str
) -> None:
    done = run_cli(tmp_path / "home", "train", *ARGS, *flags, config=config)
    assert done.returncode == 2, said(done)
    assert message in said(done)
    assert "Traceback" not in done.stderr


def test_quickstart_takes_the_same_flags(tmp_path: Path, config: Path) -> None:
    done = run_cli(tmp_path / "home", "quickstart", "--train-length", "12h", config=config)
    assert done.returncode == 2, said(done)
    assert "add --window rolling" in said(done)
