"""The tuning search space: ranges, the default PPO space with a strategy's tunables, the
overrides of ``tuning.space``, drawing through the `Suggest` port, and where studies live."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest
from drl_trading_example_strategy import ExampleStrategy

from drl_trading.app.settings import load_settings
from drl_trading.app.tuning import study_storage, trial_settings
from drl_trading.strategy import BaseStrategy, Choice, FloatRange, IntRange, Range
from drl_trading.strategy.tunable import ParamValue
from drl_trading.training.core.search_space import (
    PPO_SPACE,
    SearchSpaceError,
    draw,
    search_space,
    split_parameters,
)
from drl_trading.training.core.tuning import mixed_seed
from drl_trading.training.core.tuning_config import RangeSetting, TuningSettings


class FirstValue:
    """A `Suggest` that takes each range's low end (or first option) and records the names."""

    def __init__(self) -> None:
        self.asked: list[tuple[str, Range]] = []

    def suggest(self, name: str, space: Range) -> ParamValue:
        self.asked.append((name, space))
        if isinstance(space, Choice):
            return space.options[-1]
        return space.high


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: FloatRange(1.0, 1.0), "low < high"),
        (lambda: FloatRange(0.0, 1.0, log=True), "low > 0"),
        (lambda: IntRange(0, 5, log=True), "low >= 1"),
        (lambda: Choice(()), "at least one"),
        (lambda: Choice((1, 1)), "repeat"),
    ],
)
def test_bad_ranges_say_what_is_wrong(make: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make()  # type: ignore[operator]


def test_ppo_space_holds_the_usual_hyperparameters() -> None:
    assert set(PPO_SPACE) == {
        "learning_rate",
        "n_steps",
        "batch_size",
        "gamma",
        "gae_lambda",
        "ent_coef",
        "clip_range",
        "n_epochs",
    }
    lr = PPO_SPACE["learning_rate"]
    assert isinstance(lr, FloatRange) and lr.log


def test_space_adds_strategy_tunables_and_applies_overrides() -> None:
    tunables = ExampleStrategy().tunable_parameters()
    space = search_space(
        "PPO",
        tunables,
        {"n_steps": Choice((32,)), "gamma": None, "strategy.min_confidence": None},
    )
    assert space["n_steps"] == Choice((32,))
    assert "gamma" not in space
    assert "strategy.drawdown_penalty" in space and "strategy.turnover_penalty" in space
    assert "strategy.min_confidence" not in space


def test_an_override_of_an_undeclared_strategy_parameter_is_refused() -> None:
    with pytest.raises(SearchSpaceError, match="does not declare tunable"):
        search_space("PPO", {}, {"strategy.scale": FloatRange(1.0, 2.0)})


def test_an_algorithm_without_a_default_space_needs_tuning_space() -> None:
    with pytest.raises(SearchSpaceError, match="nothing to search"):
        search_space("SAC", {})
    assert search_space("SAC", {}, {"learning_rate": FloatRange(1e-4, 1e-3)})


def test_draw_splits_values_and_limits_the_minibatch_to_the_rollout() -> None:
    space = {
        "n_steps": Choice((16, 32)),
        "batch_size": Choice((64, 256)),
        "strategy.drawdown_penalty": FloatRange(0.0, 0.5),
    }
    suggest = FirstValue()
    drawn = draw(space, suggest, n_envs=2)
    assert [n for n, _ in suggest.asked] == list(space)
    assert drawn.hyperparameters == {"n_steps": 32, "batch_size": 64}  # 256 > 32 x 2
    assert drawn.strategy_params == {"drawdown_penalty": 0.5}
    assert split_parameters({"n_steps": 32, "batch_size": 256}, 2) == drawn.__class__(
        {"n_steps": 32, "batch_size": 64}, {}
    )


def test_example_strategy_tunables_are_constructor_keywords() -> None:
    tunables = ExampleStrategy().tunable_parameters()
    assert len(tunables) >= 2
    keywords = inspect.signature(ExampleStrategy).parameters
    assert set(tunables) <= set(keywords)
    values = {k: r.high if not isinstance(r, Choice) else r.options[0] for k, r in tunables.items()}
    strategy = ExampleStrategy(**values)  # type: ignore[arg-type]
    assert strategy.drawdown_penalty == values["drawdown_penalty"]
    assert BaseStrategy().tunable_parameters() == {}


def test_trial_settings_lay_values_over_the_configured_ones(tmp_path: Path) -> None:
    settings = load_settings(
        home=tmp_path,
        training={"algorithm": {"hyperparameters": {"n_steps": 64, "gamma": 0.9}}},
        strategy={"params": {"scale": 50.0}},
    )
    chosen = trial_settings(
        settings, split_parameters({"gamma": 0.95, "strategy.drawdown_penalty": 0.02}, 1)
    )
    assert chosen.training.algorithm.hyperparameters == {"n_steps": 64, "gamma": 0.95}
    assert chosen.strategy.params == {"scale": 50.0, "drawdown_penalty": 0.02}


def test_range_settings_become_ranges() -> None:
    assert RangeSetting(low=1, high=4, integer=True).to_range() == IntRange(1, 4)
    assert RangeSetting(low=1e-5, high=1e-3, log=True).to_range() == FloatRange(1e-5, 1e-3, True)
    assert RangeSetting(choices=[32, 64]).to_range() == Choice((32, 64))
    with pytest.raises(ValueError, match="either choices or low/high"):
        RangeSetting(low=1, high=2, choices=[1])
    with pytest.raises(ValueError, match="low > 0"):
        RangeSetting(low=0, high=1, log=True)


def test_url_storage_needs_a_url() -> None:
    with pytest.raises(ValueError, match="DRL_TRADING_TUNING__URL"):
        TuningSettings(storage="url")


def test_storages_never_show_the_password(tmp_path: Path) -> None:
    sqlite = study_storage(load_settings(home=tmp_path), "s1")
    assert sqlite.kind == "sqlite"
    assert sqlite.url == f"sqlite:///{(tmp_path / 'tuning' / 's1.db').resolve()}"

    pg = load_settings(
        home=tmp_path,
        market_data={"kind": "postgres"},
        postgres={"password": "hunter2", "schema_name": "tune_x"},
    )
    where = study_storage(pg, "s1")
    assert where.kind == "postgres"  # auto follows the deployment's database
    assert where.schema == "tune_x"
    assert "hunter2" in where.url
    assert "hunter2" not in where.shown and "***" in where.shown
    assert "hunter2" not in str(pg.masked_dump())

    url = load_settings(
        home=tmp_path,
        tuning={"storage": "url", "url": "postgresql+psycopg://u:s3cret@db.example/optuna"},
    )
    shown = study_storage(url, "s1").shown
    assert "s3cret" not in shown and "db.example" in shown
    assert "s3cret" not in str(url.masked_dump())


def test_workers_started_one_after_the_other_get_different_sampler_seeds() -> None:
    """Two workers of one configuration have consecutive process ids, and the one that joins
    later may find one more trial in the study: a seed built by adding the parts collided
    there (both workers drew the same values); the hashed seed does not."""
    first = mixed_seed(mixed_seed(42, 1000), 1)  # pid 1000, one trial already in the study
    second = mixed_seed(mixed_seed(42, 1001), 0)  # pid 1001, an empty study
    assert first != second
    seeds = {mixed_seed(mixed_seed(42, pid), held) for pid in range(100) for held in range(20)}
    assert len(seeds) == 2000
    assert all(0 <= s < 2**31 for s in seeds)
    assert mixed_seed(7, 3) == mixed_seed(7, 3)  # deterministic: a resumed study draws on
