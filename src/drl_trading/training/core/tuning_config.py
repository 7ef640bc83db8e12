"""Settings of `drl-trading tune` (the ``tuning`` section): storage, pruner, search space."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from drl_trading.strategy.tunable import Choice, FloatRange, IntRange, Range

_FROZEN = ConfigDict(frozen=True, extra="forbid")

StorageKind = Literal["auto", "sqlite", "postgres", "url"]


class RangeSetting(BaseModel):
    """One parameter's range in ``tuning.space``: ``{low, high, log, integer}`` or
    ``{choices: [...]}``."""

    model_config = _FROZEN
    low: float | None = Field(None, description="Lowest value (with high).")
    high: float | None = Field(None, description="Highest value, included.")
    log: bool = Field(False, description="Sample uniformly in log space (low > 0).")
    integer: bool = Field(False, description="Whole numbers only.")
    choices: list[Any] | None = Field(None, description="One of these values, instead of a range.")

    @model_validator(mode="after")
    def _one_kind(self) -> RangeSetting:
        bounds = self.low is not None and self.high is not None
        if self.choices is not None and (self.low is not None or self.high is not None):
            raise ValueError("give either choices or low/high, not both")
        if self.choices is None and not bounds:
            raise ValueError("give low and high (a range) or choices (a list of values)")
        try:
            self.to_range()
        except ValueError as exc:
            raise ValueError(str(exc)) from None
        return self

    def to_range(self) -> Range:
        if self.choices is not None:
            return Choice(tuple(self.choices))
        assert self.low is not None
        assert self.high is not None
        if self.integer:
            return IntRange(int(self.low), int(self.high), log=self.log)
        return FloatRange(float(self.low), float(self.high), log=self.log)


class PrunerSettings(BaseModel):
    """When a trial stops before its last fold (intermediate value: the out-of-sample Sharpe of
    the folds run so far)."""

    model_config = _FROZEN
    kind: Literal["median", "threshold", "none"] = Field(
        "median",
        description="median: stop a trial whose Sharpe after a fold is below the median of "
        "earlier trials' at that fold; threshold: below lower; none: never.",
    )
    startup_trials: int = Field(
        5, ge=0, description="median: trials that run every fold before any is pruned."
    )
    warmup_folds: int = Field(
        0, ge=0, description="median: folds of each trial before it can be pruned."
    )
    lower: float | None = Field(
        None, description="threshold: prune a trial whose Sharpe so far is below this."
    )

    @model_validator(mode="after")
    def _threshold_has_bound(self) -> PrunerSettings:
        if self.kind == "threshold" and self.lower is None:
            raise ValueError("tuning.pruner.kind threshold needs tuning.pruner.lower (a Sharpe)")
        return self


class TuningSettings(BaseModel):
    """`drl-trading tune`: an Optuna study over the algorithm's hyperparameters and the
    strategy's tunable parameters, judged on the validation folds (docs/tuning.md)."""

    model_config = _FROZEN
    trials: int = Field(20, ge=1, description="Trials a tune command runs (--trials overrides).")
    timeout: timedelta | None = Field(
        None, description="Stop starting trials after this long (--timeout overrides); null: none."
    )
    storage: StorageKind = Field(
        "auto",
        description="Where studies live: sqlite (<home>/tuning/<study>.db), postgres (the "
        "postgres section's database, shared by workers), url (tuning.url), auto (postgres "
        "when market_data.kind is postgres, else sqlite).",
    )
    url: SecretStr | None = Field(
        None,
        description="storage url: an SQLAlchemy URL (masked); set it in the environment "
        "(DRL_TRADING_TUNING__URL) or url_file, never in a shared file.",
    )
    url_file: Path | None = Field(
        None, description="File holding that URL; read instead of url when set."
    )
    sampler_seed: int | None = Field(
        None,
        description="Seed of the TPE sampler (--seed overrides); null: training.seed. Each "
        "worker adds its process id, so workers do not draw the same values.",
    )
    pruner: PrunerSettings = PrunerSettings()
    space: dict[str, RangeSetting | None] = Field(
        default_factory=dict,
        description="Replaces or adds ranges, e.g. {learning_rate: {low: 1.0e-5, high: "
        "1.0e-3, log: true}, n_steps: {choices: [256, 512]}, strategy.drawdown_penalty: null}; "
        "null keeps the configured value instead of searching it.",
    )

    @model_validator(mode="after")
    def _url_for_url_storage(self) -> TuningSettings:
        if self.storage == "url" and self.url is None and self.url_file is None:
            raise ValueError(
                "tuning.storage url needs the URL: set DRL_TRADING_TUNING__URL or tuning.url_file"
            )
        return self

    def space_overrides(self) -> dict[str, Range | None]:
        return {k: (None if v is None else v.to_range()) for k, v in self.space.items()}

    def storage_url(self) -> str | None:
        """The configured URL with its secret resolved (never log it); None without one."""
        if self.url_file is not None:
            return self.url_file.read_text().strip()
        return None if self.url is None else self.url.get_secret_value()
