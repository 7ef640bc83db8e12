"""A run recorded by an earlier version, with a setting this version retired, still reproduces.

`drl_trading.app.reproduce.RETIRED_SETTINGS` drops the retired key before validating the record
(this version's setting takes its place) and the provenance comparison names both, so the user
is told why the gate's threshold changed instead of being refused."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from drl_trading.app.reproduce import ReproduceError, rebuilt_settings
from drl_trading.app.settings import load_settings
from tests.unit.test_provenance import _record


def _old_record(tmp_path: Path, gate: dict[str, object]) -> dict[str, object]:
    settings = load_settings(home=tmp_path).masked_dump()
    training = dict(settings["training"])
    training["gate"] = {**dict(training["gate"]), **gate}
    training["gate"].pop("max_seed_sharpe_spread", None)
    return {**settings, "training": training}


def test_a_retired_gate_key_is_replaced_by_this_versions_setting(tmp_path: Path) -> None:
    old = _old_record(tmp_path, {"max_seed_sharpe_std": 1.0, "max_drawdown": 0.3})
    rebuilt = rebuilt_settings(load_settings(home=tmp_path), _record(settings=old))
    gate = rebuilt.training.gate
    assert gate.max_drawdown == 0.3  # the record's other settings are kept
    assert gate.max_seed_sharpe_spread == 2.0  # the retired one: this version's default
    recorded_gate: Any = old["training"]
    assert recorded_gate["gate"]["max_seed_sharpe_std"] == 1.0  # the record is not mutated


def test_an_unknown_key_that_was_never_a_setting_is_still_refused(tmp_path: Path) -> None:
    old = _old_record(tmp_path, {"max_seed_sharpe_stdev": 1.0})
    with pytest.raises(ReproduceError, match="not valid in this version"):
        rebuilt_settings(load_settings(home=tmp_path), _record(settings=old))
