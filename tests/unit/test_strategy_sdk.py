"""The strategy SDK: loading by entry point or dotted path, defaults, the documented example."""

from __future__ import annotations

import re
import sys
import types
from datetime import UTC, datetime
from pathlib import Path

import pytest

from drl_trading.common.domain import Action, Signal, Symbol
from drl_trading.strategy import (
    BaseStrategy,
    RewardContext,
    RiskParameters,
    Strategy,
    StrategyLoadError,
    available_strategies,
    load_strategy,
)

DOC = Path(__file__).parents[2] / "docs" / "strategy.md"


def _signal(target: float, confidence: float = 0.9) -> Signal:
    action = Action.LONG if target > 0 else Action.SHORT if target < 0 else Action.FLAT
    return Signal(Symbol("BTCUSDT"), action, target, confidence, "models:/x/1", datetime.now(UTC))


def test_example_strategy_is_found_by_entry_point() -> None:
    assert "example" in available_strategies()
    s = load_strategy("example", {"drawdown_penalty": 0.5})
    assert isinstance(s, Strategy)
    assert s.name == "example"
    ctx = RewardContext()
    ctx.step_return = 0.01
    ctx.drawdown = 0.1
    # 100 * ln(1.01) - 0.5 * 0.1
    assert s.reward(ctx) == pytest.approx(100 * 0.00995033085 - 0.05)


def test_dotted_path_and_errors() -> None:
    s = load_strategy("drl_trading.strategy.api:BaseStrategy")
    assert s.name == "base"
    with pytest.raises(StrategyLoadError, match=r"no strategy named 'nope'.*example"):
        load_strategy("nope")
    with pytest.raises(StrategyLoadError, match="cannot import"):
        load_strategy("no_such_module_xyz:Thing")
    with pytest.raises(StrategyLoadError, match="has no Missing"):
        load_strategy("drl_trading.strategy.api:Missing")
    with pytest.raises(TypeError):
        load_strategy("example", {"unknown_param": 1})


def test_base_signal_check_applies_risk_parameters() -> None:
    class Cautious(BaseStrategy):
        def risk_parameters(self) -> RiskParameters:
            return RiskParameters(max_position=0.5, allow_short=False, min_confidence=0.6)

    s = Cautious()
    assert s.validate_signal(_signal(1.0)).target_position == 0.5
    assert not s.validate_signal(_signal(-1.0)).approved
    low = s.validate_signal(_signal(1.0, confidence=0.3))
    assert not low.approved
    assert "below minimum" in low.reason
    assert not s.validate_signal(_signal(float("nan"))).approved
    with pytest.raises(ValueError, match="max_position"):
        RiskParameters(max_position=2.0)


def test_documented_strategy_runs_and_is_short() -> None:
    text = DOC.read_text()
    code = re.findall(r"```python\n(.*?)```", text, re.S)
    toml = re.findall(r"```toml\n(.*?)```", text, re.S)
    assert len(code) == 1
    assert len(code[0].splitlines()) + len(toml[0].splitlines()) < 50
    module = types.ModuleType("my_strategy_doc")
    sys.modules["my_strategy_doc"] = module
    try:
        exec(compile(code[0], str(DOC), "exec"), module.__dict__)
        s = load_strategy("my_strategy_doc:TrendStrategy", {"hold_bonus": 0.002})
        spec = s.feature_set()
        assert spec.version
        assert len(spec.columns) > 4
        ctx = RewardContext()
        ctx.step_return = 0.001
        ctx.position_after = 1.0
        assert s.reward(ctx) == pytest.approx(100 * 0.0009995003 + 0.002)
        assert not s.validate_signal(_signal(-1.0)).approved
    finally:
        del sys.modules["my_strategy_doc"]
