"""DRL_TRADING_* variables that name no setting are not ignored silently (issue 11, item 5): each
gets one warning on stderr naming the closest setting, and a section given a scalar is an error
that names the variable."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from drl_trading.app.settings import (
    ConfigError,
    load_settings,
    setting_variables,
    unknown_environment_variables,
)
from drl_trading.ingest.core.validation import ValidationPolicy

CLI = str(Path(sys.executable).with_name("drl-trading"))


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.upper().startswith("DRL_TRADING_"):
            monkeypatch.delenv(name)


def _unknown(**environ: str) -> dict[str, str | None]:
    return {u.name: u.closest for u in unknown_environment_variables(environ)}


def test_one_underscore_for_the_nested_delimiter_names_the_setting() -> None:
    assert _unknown(DRL_TRADING_INGEST_VALIDATION__POLICY="quarantine") == {
        "DRL_TRADING_INGEST_VALIDATION__POLICY": "DRL_TRADING_INGEST__VALIDATION__POLICY"
    }
    assert _unknown(DRL_TRADING_TRAINING_TOTAL_TIMESTEPS="5") == {
        "DRL_TRADING_TRAINING_TOTAL_TIMESTEPS": "DRL_TRADING_TRAINING__TOTAL_TIMESTEPS"
    }


def test_a_misspelt_key_names_the_closest_setting() -> None:
    assert _unknown(DRL_TRADING_TRAINING__ALGO__NAME="A2C") == {
        "DRL_TRADING_TRAINING__ALGO__NAME": "DRL_TRADING_TRAINING__ALGORITHM__NAME"
    }
    # a key below a scalar setting names nothing either
    assert _unknown(DRL_TRADING_INGEST__VALIDATION__POLICY__MODE="x") == {
        "DRL_TRADING_INGEST__VALIDATION__POLICY__MODE": "DRL_TRADING_INGEST__VALIDATION__POLICY"
    }


def test_nothing_close_points_to_config_show() -> None:
    (found,) = unknown_environment_variables({"DRL_TRADING_ZZZZZZ": "1"})
    assert found.closest is None
    assert "drl-trading config show" in found.message()
    assert found.message().startswith("DRL_TRADING_ZZZZZZ names no setting and is ignored")


def test_every_setting_and_the_cli_variables_are_known() -> None:
    names = setting_variables()
    environ = dict.fromkeys(names, "1")
    # dict-typed settings take any sub-key; pydantic-settings matches names in any case
    environ |= {
        "DRL_TRADING_STRATEGY__PARAMS__MIN_CONFIDENCE": "0",
        "DRL_TRADING_SERVE__PORTS__INGEST": "9201",
        "DRL_TRADING_TRAINING__ALGORITHM__HYPERPARAMETERS__GAMMA": "0.9",
        "drl_trading_ingest__validation__policy": "quarantine",
        "OTHER_PROGRAM_VARIABLE": "x",
    }
    assert unknown_environment_variables(environ) == ()
    for expected in (
        "DRL_TRADING_HOME",
        "DRL_TRADING_CONFIG",
        "DRL_TRADING_BUS__KAFKA__LINGER_MS",
        "DRL_TRADING_TRAINING__ENV__FEE_BPS",
        "DRL_TRADING_PREPROCESS__FEATURE_SET__BASE_TIMEFRAME",
        "DRL_TRADING_POSTGRES__PASSWORD",
    ):
        assert expected in names


def test_known_names_are_the_ones_pydantic_settings_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {
        "DRL_TRADING_BUS__KAFKA__LINGER_MS": "7",
        "DRL_TRADING_TRAINING__ENV__FEE_BPS": "3.5",
        "drl_trading_ingest__validation__policy": "quarantine",
        "DRL_TRADING_STRATEGY__PARAMS__MIN_CONFIDENCE": "0.25",
        "DRL_TRADING_SERVE__PORTS__INGEST": "9201",
    }.items():
        monkeypatch.setenv(name, value)
    s = load_settings()
    assert s.bus.kafka.linger_ms == 7
    assert s.training.env.fee_bps == 3.5
    assert s.ingest.validation.policy is ValidationPolicy.QUARANTINE
    assert s.strategy.params == {"min_confidence": "0.25"}
    assert s.serve.ports["ingest"] == 9201
    assert unknown_environment_variables() == ()


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("DRL_TRADING_INGEST__VALIDATION", "quarantine", "ingest.validation is a section"),
        ("DRL_TRADING_INGEST", "q", "ingest is a section"),
        ("DRL_TRADING_STRATEGY__PARAMS", "x", "strategy.params is a mapping"),
        ("DRL_TRADING_SERVE__SYMBOLS", "BTCUSDT", "serve.symbols is a list"),
    ],
)
def test_a_scalar_for_a_section_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, expected: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as info:
        load_settings()
    text = str(info.value)
    assert f"{name}: {expected}" in text
    assert repr(value) in text


def test_a_section_given_as_json_is_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DRL_TRADING_INGEST__VALIDATION", '{"policy": "quarantine"}')
    monkeypatch.setenv("DRL_TRADING_SERVE__SYMBOLS", '["SOLUSDT"]')
    s = load_settings()
    assert s.ingest.validation.policy is ValidationPolicy.QUARANTINE
    assert s.serve.symbols == ["SOLUSDT"]


def _cli(tmp_path: Path, extra: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("DRL_TRADING_")}
    return subprocess.run(
        [CLI, "--home", str(tmp_path / "home"), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**env, **extra},
    )


def test_the_cli_warns_once_on_stderr_at_the_default_level(tmp_path: Path) -> None:
    done = _cli(
        tmp_path,
        {"DRL_TRADING_INGEST_VALIDATION__POLICY": "quarantine", "DRL_TRADING_FOOBAR": "1"},
        "config",
        "show",
    )
    assert done.returncode == 0, done.stderr
    wrong = "DRL_TRADING_INGEST_VALIDATION__POLICY names no setting and is ignored"
    assert done.stderr.count(wrong) == 1
    assert "did you mean DRL_TRADING_INGEST__VALIDATION__POLICY?" in done.stderr
    assert done.stderr.count("DRL_TRADING_FOOBAR names no setting") == 1
    assert "names no setting" not in done.stdout
    assert "policy: reject" in done.stdout  # ignored indeed: the default holds


def test_the_cli_names_the_variable_of_a_bad_section_without_a_traceback(tmp_path: Path) -> None:
    done = _cli(tmp_path, {"DRL_TRADING_INGEST__VALIDATION": "quarantine"}, "config", "show")
    assert done.returncode == 2
    assert "DRL_TRADING_INGEST__VALIDATION: ingest.validation is a section" in done.stderr
    assert "Traceback" not in done.stderr
