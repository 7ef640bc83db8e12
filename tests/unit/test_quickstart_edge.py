"""`quickstart --edge`: the flag beats the environment, which beats the file; where neither sets
the edge, the quickstart plants its known answer (not the source's 0); other sources refuse it."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from drl_trading.cli.context import CliState
from drl_trading.cli.training import QUICKSTART_EDGE, QUICKSTART_EDGE_TIMEFRAME, _with_edge


def _synthetic(
    tmp_path: Path, file: dict[str, object] | None, flag: float | None, source: str = "synthetic"
) -> tuple[float, str]:
    config = None
    if file is not None:
        config = tmp_path / "config.yaml"
        config.write_text(yaml.safe_dump({"ingest": {"synthetic": file}}))
    settings = _with_edge(CliState(config=config).settings(), source, flag)
    synthetic = settings.ingest.synthetic
    return synthetic.edge, synthetic.edge_timeframe


@pytest.fixture(autouse=True)
def _no_edge_in_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DRL_TRADING_INGEST__SYNTHETIC__EDGE", raising=False)
    monkeypatch.delenv("DRL_TRADING_INGEST__SYNTHETIC__EDGE_TIMEFRAME", raising=False)


def test_left_out_and_unset_plants_the_known_answer(tmp_path: Path) -> None:
    assert _synthetic(tmp_path, None, None) == (QUICKSTART_EDGE, QUICKSTART_EDGE_TIMEFRAME)
    assert QUICKSTART_EDGE > 0


def test_file_then_environment_then_flag(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    file = {"edge": 0.2, "edge_timeframe": "1h"}
    assert _synthetic(tmp_path, file, None) == (0.2, "1h")
    assert _synthetic(tmp_path, {"edge": 0.0}, None) == (0.0, QUICKSTART_EDGE_TIMEFRAME)
    monkeypatch.setenv("DRL_TRADING_INGEST__SYNTHETIC__EDGE", "0.3")
    assert _synthetic(tmp_path, file, None) == (0.3, "1h")
    assert _synthetic(tmp_path, file, 0.0) == (0.0, "1h")


def test_edge_out_of_range_or_on_another_source_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"--edge must be in \[0, 1\)"):
        _synthetic(tmp_path, None, 1.0)
    with pytest.raises(ValueError, match="synthetic data only, not in --source file"):
        _synthetic(tmp_path, None, 0.3, source="file")
    # without --edge another source keeps the settings as they are
    assert _synthetic(tmp_path, None, None, source="file") == (0.0, "1h")
