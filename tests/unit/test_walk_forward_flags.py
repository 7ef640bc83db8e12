"""`train` and `quickstart`'s walk-forward flags (--folds, --seeds, --window, --train-length)
beat the environment and the file like every flag, a bad value is one line naming what to
change, the protocol line says what ran, and a rolling run's recorded settings rebuild it."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from drl_trading.app.reproduce import rebuilt_settings
from drl_trading.app.settings import AppSettings, ConfigError, load_settings
from drl_trading.cli.context import CliState
from drl_trading.cli.durations import parse_duration
from drl_trading.cli.training import _with_protocol, protocol_line
from drl_trading.common.domain import Timeframe, TimeRange
from drl_trading.common.logs import configure_logging
from drl_trading.training.core.dataset import make_splits
from tests.unit.test_provenance import _record


@pytest.fixture(autouse=True)
def _clean(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in list(os.environ):
        if name.upper().startswith("DRL_TRADING_"):
            monkeypatch.delenv(name)
    yield
    configure_logging()


@pytest.mark.parametrize(
    ("text", "span"),
    [
        ("30d", timedelta(days=30)),
        ("12h", timedelta(hours=12)),
        ("90m", timedelta(minutes=90)),
        ("1d12h", timedelta(days=1, hours=12)),
        ("2w", timedelta(days=14)),
        ("1.5h", timedelta(minutes=90)),
        (" 45S ", timedelta(seconds=45)),
        ("P30D", timedelta(days=30)),
        ("pt12h", timedelta(hours=12)),
    ],
)
def test_durations_read_short_and_iso_forms(text: str, span: timedelta) -> None:
    assert parse_duration(text) == span


@pytest.mark.parametrize("text", ["30", "30 days", "3x", "d", "", "P", "-1d"])
def test_an_unreadable_duration_names_the_forms(text: str) -> None:
    with pytest.raises(ValueError, match=r"use a number and a unit \(w, d, h, m, s\)"):
        parse_duration(text)


def test_a_zero_duration_is_refused() -> None:
    with pytest.raises(ValueError, match="must be longer than 0"):
        parse_duration("0d")


def _settings(tmp_path: Path, split: dict[str, object] | None = None) -> AppSettings:
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"training": {"seeds": 3, "split": split or {}}}))
    return CliState(config=config).settings()


def test_flags_beat_the_environment_and_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    file = _settings(tmp_path, {"walk_forward_folds": 4})
    assert _with_protocol(file, None, None, None, None) is file
    assert file.training.seeds == 3 and file.training.split.walk_forward_folds == 4
    monkeypatch.setenv("DRL_TRADING_TRAINING__SPLIT__WALK_FORWARD_FOLDS", "5")
    monkeypatch.setenv("DRL_TRADING_TRAINING__SPLIT__WINDOW", "rolling")
    env = _settings(tmp_path, {"walk_forward_folds": 4})
    assert env.training.split.walk_forward_folds == 5 and env.training.split.window == "rolling"
    got = _with_protocol(env, 2, 1, None, "10d").training
    assert (got.split.walk_forward_folds, got.seeds) == (2, 1)
    assert got.split.window == "rolling" and got.split.train_length == timedelta(days=10)
    assert got.split.embargo == env.training.split.embargo  # the rest is the file's


def test_window_expanding_drops_a_configured_length(tmp_path: Path) -> None:
    rolling = _settings(tmp_path, {"window": "rolling", "train_length": "P20D"})
    split = _with_protocol(rolling, None, None, "expanding", None).training.split
    assert split.window == "expanding" and split.train_length is None


def test_a_length_for_expanding_windows_says_to_add_window_rolling(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="--train-length 30d") as err:
        _with_protocol(_settings(tmp_path), None, None, None, "30d")
    assert str(err.value) == (
        "--train-length 30d sets rolling training windows, but they are expanding "
        "(training.split.window): add --window rolling"
    )
    with pytest.raises(ValueError, match="add --window rolling"):
        _with_protocol(_settings(tmp_path), None, None, "expanding", "30d")


def test_a_value_the_settings_refuse_names_the_flags(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"invalid --folds/--seeds/--window/--train-length"):
        _with_protocol(_settings(tmp_path), 0, None, None, None)


def test_the_protocol_line_says_folds_window_embargo_and_trainings() -> None:
    rng = TimeRange.parse("2024-01-01", "2024-03-01")
    args = (rng, Timeframe.H1, 0.15, 0.15, timedelta(hours=12), 3)
    rolling = make_splits(*args, window="rolling", train_length=timedelta(days=10))
    result = SimpleNamespace(splits=rolling, evidence=SimpleNamespace(seeds=2))
    assert protocol_line(result) == (
        "protocol:      3 walk-forward folds (rolling training windows of 10 days), "
        "embargo 12 h, 2 seeds = 6 trainings"
    )
    one = SimpleNamespace(splits=make_splits(*args[:-1]), evidence=SimpleNamespace(seeds=1))
    assert protocol_line(one) == (
        "protocol:      1 walk-forward fold (expanding training windows), embargo 12 h, "
        "1 seed = 1 training"
    )


def test_a_rolling_runs_recorded_settings_rebuild_its_protocol(tmp_path: Path) -> None:
    split = {"walk_forward_folds": 3, "window": "rolling", "train_length": timedelta(days=30)}
    recorded = load_settings(home=tmp_path, training={"seeds": 2, "split": split})
    rebuilt = rebuilt_settings(
        load_settings(home=tmp_path), _record(settings=recorded.masked_dump())
    )
    assert rebuilt.training.split == recorded.training.split
    assert rebuilt.training.seeds == 2
