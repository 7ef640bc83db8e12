"""Every command-line flag that duplicates a setting follows one order (issue 11, item 5): the
flag beats the environment, which beats the file, which beats the default; a flag left out never
masks the others. Each case runs the command's own resolution of that setting."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml

from drl_trading.cli.context import CliState
from drl_trading.cli.training import _settings_with
from drl_trading.common.logs import configure_logging


@dataclass(frozen=True)
class Case:
    """One flag-backed setting: its path and variable, what each source gives and what the
    command must resolve from it, and how the command resolves it from (config file, flag)."""

    path: tuple[str, ...]
    variable: str
    default: Any
    file: tuple[Any, Any]
    env: tuple[str, Any]
    flag: tuple[Any, Any]
    resolve: Callable[[Path | None, Any], Any]


def _home(config: Path | None, flag: Any) -> Any:
    return CliState(config=config, home=flag).settings().home


def _log_level(config: Path | None, flag: Any) -> Any:
    return CliState(config=config, log_level=flag).settings().logging.level


def _timesteps(config: Path | None, flag: Any) -> Any:
    # train and quickstart both resolve --timesteps with _settings_with
    return _settings_with(CliState(config=config).settings(), flag, None).training.total_timesteps


def _algorithm(config: Path | None, flag: Any) -> Any:
    return _settings_with(CliState(config=config).settings(), None, flag).training.algorithm.name


def _serve_port(config: Path | None, flag: Any) -> Any:
    return CliState(config=config).settings().serve.port("ingest", flag)


CASES = [
    Case(("home",), "DRL_TRADING_HOME", Path(".drl-trading"),
         ("/tmp/from-file", Path("/tmp/from-file")), ("/tmp/from-env", Path("/tmp/from-env")),
         (Path("/tmp/from-flag"), Path("/tmp/from-flag")), _home),
    Case(("logging", "level"), "DRL_TRADING_LOGGING__LEVEL", "WARNING",
         ("ERROR", "ERROR"), ("INFO", "INFO"), ("debug", "DEBUG"), _log_level),
    Case(("training", "total_timesteps"), "DRL_TRADING_TRAINING__TOTAL_TIMESTEPS", 200_000,
         (300, 300), ("400", 400), (500, 500), _timesteps),
    Case(("training", "algorithm", "name"), "DRL_TRADING_TRAINING__ALGORITHM__NAME", "PPO",
         ("A2C", "A2C"), ("SAC", "SAC"), ("TD3", "TD3"), _algorithm),
    Case(("serve", "ports", "ingest"), "DRL_TRADING_SERVE__PORTS__INGEST", 9101,
         (9201, 9201), ("9301", 9301), (9401, 9401), _serve_port),
]  # fmt: skip


@pytest.fixture(autouse=True)
def _clean(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in list(os.environ):
        if name.upper().startswith("DRL_TRADING_"):
            monkeypatch.delenv(name)
    yield
    configure_logging()  # CliState configured logging for the level it resolved


def _file(tmp_path: Path, path: tuple[str, ...], value: Any) -> Path:
    data: Any = value
    for key in reversed(path):
        data = {key: data}
    out = tmp_path / "config.yaml"
    out.write_text(yaml.safe_dump(data))
    return out


@pytest.mark.parametrize("case", CASES, ids=lambda c: ".".join(c.path))
def test_flag_beats_environment_beats_file_beats_default(
    case: Case, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = _file(tmp_path, case.path, case.file[0])
    assert case.resolve(None, None) == case.default
    assert case.resolve(config, None) == case.file[1]
    monkeypatch.setenv(case.variable, case.env[0])
    assert case.resolve(config, None) == case.env[1]
    assert case.resolve(config, case.flag[0]) == case.flag[1]


def test_a_bad_flag_value_is_a_configuration_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(typer.Exit) as info:
        CliState(log_level="loud").settings()
    assert info.value.exit_code == 2
    with pytest.raises(ValueError, match=r"--timesteps/--algorithm.*'PPO'"):
        _settings_with(CliState().settings(), None, "FOO")
