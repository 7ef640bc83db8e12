from __future__ import annotations

from pathlib import Path

import pytest

from drl_trading.app.infrastructure import feature_set_for
from drl_trading.app.settings import ConfigError, load_settings
from drl_trading.common.domain import Timeframe
from drl_trading.ingest.core.validation import ValidationPolicy


def test_defaults_need_no_file(tmp_path: Path) -> None:
    s = load_settings(home=tmp_path)
    assert s.home == tmp_path
    assert s.market_data_path == tmp_path / "market.duckdb"
    assert feature_set_for(s).base_timeframe is Timeframe.M5


def test_yaml_then_environment_override(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("ingest:\n  validation:\n    policy: quarantine\n  synthetic:\n    seed: 11\n")
    s = load_settings(cfg)
    assert s.ingest.validation.policy is ValidationPolicy.QUARANTINE
    assert s.ingest.synthetic.seed == 11
    monkeypatch.setenv("DRL_TRADING_INGEST__SYNTHETIC__SEED", "12")
    assert load_settings(cfg).ingest.synthetic.seed == 12


def test_home_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DRL_TRADING_HOME", str(tmp_path / "h"))
    assert load_settings().home == tmp_path / "h"


def test_errors_name_the_key_and_value(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("ingest:\n  validation:\n    policy: ignore\n  synthetic:\n    chunk_days: 0\n")
    with pytest.raises(ConfigError) as info:
        load_settings(cfg)
    text = str(info.value)
    assert "ingest.validation.policy" in text
    assert "'ignore'" in text
    assert "ingest.synthetic.chunk_days" in text


def test_unknown_keys_are_errors(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("ingest:\n  validaton: {}\n")
    with pytest.raises(ConfigError, match=r"ingest\.validaton"):
        load_settings(cfg)


def test_feature_set_from_yaml_changes_version(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        "preprocess:\n  feature_set:\n    name: small\n    base_timeframe: 15m\n    timeframes:\n"
        "      - timeframe: 15m\n        indicators:\n"
        "          - kind: rsi\n            period: 7\n"
    )
    s = load_settings(cfg)
    fs = s.preprocess.feature_set
    assert fs.columns == ("rsi_7__15m", "tod_sin", "tod_cos", "dow_sin", "dow_cos")
    assert fs.version != feature_set_for(load_settings()).version


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "nope.yaml")


def test_example_config_is_valid_and_matches_the_defaults() -> None:
    example = Path(__file__).parents[2] / "configs" / "example.yaml"
    loaded = load_settings(example)
    assert feature_set_for(loaded).version == feature_set_for(load_settings()).version
