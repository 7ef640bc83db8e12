"""The training service: dataset → splits → RL training → registry → gate → backtest → report.

One `train` call is one MLflow run. Everything a later reader needs to trust or reproduce the
result is logged on it: resolved config, strategy, data ranges and fingerprint, seeds, code and
library versions, training curves, validation and test metrics, the report.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl

from drl_trading.common.bar_windows import bar_closes, bars_per_year
from drl_trading.common.calendar import CalendarBook, MarketCalendar
from drl_trading.common.costs import CostModel
from drl_trading.common.domain import Symbol, Timeframe, TimeRange, from_micros, to_micros
from drl_trading.common.feature_dataset import FeatureDataset, load_feature_matrix
from drl_trading.common.market_series import MarketSeries
from drl_trading.common.model_registry import (
    CHAMPION,
    ExperimentRun,
    ModelRegistry,
    ModelVersion,
)
from drl_trading.common.ports import FeatureStore, MarketDataRepository
from drl_trading.evaluation.backtest import LOGGED_METRICS, BacktestResult, backtest
from drl_trading.evaluation.metrics import periods_per_year
from drl_trading.policy.package import ModelManifest
from drl_trading.policy.predictor import Predictor
from drl_trading.strategy.api import Strategy
from drl_trading.strategy.feature_set import FeatureSetSpec
from drl_trading.strategy.feature_view import view_for
from drl_trading.training.core.backtest_report import annualisation_line, backtest_documents
from drl_trading.training.core.batched_env import BatchedTradingEnv
from drl_trading.training.core.config import TrainingSettings
from drl_trading.training.core.dataset import (
    Fold,
    Splits,
    fingerprint,
    make_splits,
    series_from_frame,
    stored_range,
)
from drl_trading.training.core.env import EnvConfig, TradingEnv, env_config_for
from drl_trading.training.core.evaluation_report import evaluation_documents, protocol_text
from drl_trading.training.core.evidence import (
    Evidence,
    FoldOutcome,
    fold_outcome,
    walk_forward_evidence,
)
from drl_trading.training.core.gate import GateDecision, evaluate_gate
from drl_trading.training.core.ports import (
    CodeRevision,
    DataTimeframeLookup,
    FitJob,
    FittedModel,
    LibraryVersions,
    ModelPackages,
    ReportSink,
    Trainer,
)
from drl_trading.training.core.progress import ProgressCallback, TrainingCurve
from drl_trading.training.core.trials import MODEL_NAME_TAG, past_trials


@dataclass(frozen=True, slots=True)
class FoldInputs:
    """What every fold of one run trains on: the feature ``frame`` and its ``columns``, the
    ``base`` timeframe and ``calendar`` the series are cut by, the environment, ``total`` steps
    per fit and the run's number of ``fits`` (folds x seeds)."""

    frame: pl.DataFrame
    columns: tuple[str, ...]
    base: Timeframe
    calendar: MarketCalendar | None
    env_cfg: EnvConfig
    total: int
    fits: int


__all__ = [
    "FoldInputs",
    "TrainingData",
    "TrainingError",
    "TrainingRequest",
    "TrainingResult",
    "TrainingService",
]

LIBRARIES = (
    "drl-trading",
    "torch",
    "stable-baselines3",
    "sb3-contrib",
    "gymnasium",
    "numpy",
    "polars",
    "feast",
    "mlflow",
)


class TrainingError(RuntimeError):
    pass


ALWAYS_OPEN = "24/7"
"""The calendar name a model trained without a calendar book records (every symbol 24/7)."""


@dataclass(frozen=True)
class TrainingRequest:
    symbols: tuple[Symbol, ...]
    range: TimeRange
    correlation_id: str
    total_timesteps: int | None = None
    data_timeframe: Timeframe | None = None
    """The timeframe the symbols' bars were ingested under (recorded in the model's manifest);
    None: the service's ``data_timeframe`` lookup decides (default 1m)."""


@dataclass(frozen=True)
class TrainingData:
    """A request's stored features and the splits cut from them (`TrainingService.prepare`)."""

    view_name: str
    calendar: MarketCalendar | None
    data_timeframe: Timeframe
    dataset: FeatureDataset
    splits: Splits
    periods_per_year: float
    """Base bars per year over the usable range (`TrainingService.periods_per_year`)."""


@dataclass(frozen=True)
class TrainingResult:
    run_id: str
    model: ModelVersion
    champion: bool
    gate_reason: str
    validation: BacktestResult
    test: BacktestResult
    report_path: Path
    metrics_path: Path
    timesteps: int
    train_seconds: float
    steps_per_second: float
    splits: Splits
    predictor: Predictor
    """The in-memory policy as trained (the registered one is loaded back from the registry)."""
    fold_validation: list[dict[str, float]] = field(default_factory=list)
    evidence: Evidence | None = None
    """The walk-forward evidence the gate judged (every fold and seed, out of sample)."""
    gate: GateDecision | None = None
    """The gate's verdict with each check (``gate_reason`` is its text)."""
    evaluation_report_path: Path | None = None
    """The evaluation report (HTML) of the walk-forward evidence, also logged to MLflow under
    ``evaluation/``."""


class TrainingService:
    """Trains, registers, gates and backtests one model per `train` call.

    ``trainer`` fits the policies, ``revision`` tells which code trained them (logged with the
    run) and ``reports`` keeps the test backtest's report. ``calendars``: each symbol's market
    calendar (None: every symbol trades 24/7); the symbols of one request must share one, which
    decides which bars are consecutive, where the splits cut and the annualisation.
    ``data_timeframe``: the timeframe a request's bars were ingested under, for requests that do
    not say (None: 1m).
    """

    def __init__(
        self,
        market_data: MarketDataRepository,
        feature_store: FeatureStore,
        registry: ModelRegistry,
        strategy: Strategy,
        feature_set: FeatureSetSpec,
        settings: TrainingSettings,
        *,
        model_name: str,
        trainer: Trainer,
        revision: CodeRevision,
        reports: ReportSink,
        packages: ModelPackages,
        libraries: LibraryVersions,
        resolved_config: dict[str, Any] | None = None,
        strategy_ref: str = "",
        calendars: CalendarBook | None = None,
        data_timeframe: DataTimeframeLookup | None = None,
    ) -> None:
        self.market_data = market_data
        self.feature_store = feature_store
        self.registry = registry
        self.strategy = strategy
        self.feature_set = feature_set
        self.settings = settings
        self.model_name = model_name
        self.trainer = trainer
        self.revision = revision
        self.reports = reports
        self.packages = packages
        self.libraries = libraries
        self.resolved_config = resolved_config or {}
        self.strategy_ref = strategy_ref
        self.calendars = calendars
        self.data_timeframe = data_timeframe
        self.on_progress: ProgressCallback | None = None

    # -- helpers --------------------------------------------------------------------------------

    def env_config(self) -> EnvConfig:
        return env_config_for(
            self.settings, self.strategy.risk_parameters(), self.feature_set.columns
        )

    def calendar_of(self, symbols: tuple[Symbol, ...]) -> MarketCalendar | None:
        """The one calendar of ``symbols`` (None without a book: 24/7); `MixedCalendarsError`
        when they are on different calendars."""
        return None if self.calendars is None else self.calendars.for_symbols(symbols)

    def periods_per_year(self, calendar: MarketCalendar | None, rng: TimeRange) -> float:
        """Base bars per year over ``rng``: 365 x 1440 / minutes on a 24/7 market, the
        calendar's mean over the years ``rng`` touches otherwise (FX 1h: 6,288 in 2024)."""
        base = self.feature_set.base_timeframe
        if calendar is None:
            return periods_per_year(base.minutes)
        return bars_per_year(calendar, base, rng.start, rng.end)

    def _data_timeframe(self, request: TrainingRequest) -> Timeframe:
        if request.data_timeframe is not None:
            return request.data_timeframe
        if self.data_timeframe is None:
            return Timeframe.M1
        return self.data_timeframe(request.symbols, request.range.start, request.range.end)

    def code_version(self) -> str:
        """The commit of the framework's code (with ``-dirty``), or else the package version."""
        revision = self.revision.revision()
        if revision is not None:
            return str(revision)
        return f"drl-trading {self.libraries.versions(('drl-trading',))['drl-trading']}"

    # -- the workflow ---------------------------------------------------------------------------

    def prepare(self, request: TrainingRequest) -> TrainingData:
        """The stored features of ``request``, cut into the configured splits (what `train`
        and a tuning trial, `training.core.tuning`, start from)."""
        cfg = self.settings
        spec = self.feature_set
        view = view_for(spec)
        calendar = self.calendar_of(request.symbols)
        data_tf = self._data_timeframe(request)
        dataset = load_feature_matrix(
            self.market_data,
            self.feature_store,
            view,
            list(request.symbols),
            request.range,
            calendar,
        )
        usable = stored_range(dataset.frame, spec.base_timeframe, request.range, calendar)
        splits = make_splits(
            usable,
            spec.base_timeframe,
            cfg.split.validation_fraction,
            cfg.split.test_fraction,
            cfg.split.embargo,
            cfg.split.walk_forward_folds,
            min_bars=cfg.env.window + 1,
            what=lambda: self._stored_description(request, usable, data_tf, calendar),
            calendar=calendar,
            window=cfg.split.window,
            train_length=cfg.split.train_length,
        )
        ppy = self.periods_per_year(calendar, usable)
        return TrainingData(view.name, calendar, data_tf, dataset, splits, ppy)

    def train(self, request: TrainingRequest) -> TrainingResult:
        cfg = self.settings
        spec = self.feature_set
        view = view_for(spec)
        data = self.prepare(request)
        calendar, data_tf, dataset = data.calendar, data.data_timeframe, data.dataset
        splits, ppy = data.splits, data.periods_per_year
        calendar_name = ALWAYS_OPEN if calendar is None else calendar.name
        columns = spec.columns
        frame = dataset.frame
        base = spec.base_timeframe
        total = request.total_timesteps or cfg.total_timesteps
        env_cfg = self.env_config()
        tags = {
            "correlation_id": request.correlation_id,
            "strategy": self.strategy.name,
            "strategy_version": self.strategy.version,
            "feature_set_version": spec.version,
            "algorithm": cfg.algorithm.name,
            "symbols": ",".join(request.symbols),
        }
        run_name = f"{self.strategy.name}-{cfg.algorithm.name}-{datetime.now(UTC):%Y%m%d-%H%M%S}"
        with self.registry.start_run(run_name, tags) as run:
            run.log_params(
                {
                    "config": self.resolved_config,
                    "strategy": {
                        "name": self.strategy.name,
                        "version": self.strategy.version,
                        "ref": self.strategy_ref,
                    },
                    "symbols": ",".join(request.symbols),
                    "range": f"{request.range.start.isoformat()}..{request.range.end.isoformat()}",
                    "splits": splits.describe(),
                    "feature_set_version": spec.version,
                    "feature_view": view.name,
                    "n_features": len(columns),
                    "data_fingerprint": fingerprint(frame),
                    "data_rows": frame.height,
                    "missing_feature_rows": sum(dataset.missing_rows.values()),
                    "code_version": self.code_version(),
                    "seed": cfg.seed,
                    "total_timesteps": total,
                    "action_mode": env_cfg.action_mode,
                    "calendar": calendar_name,
                    "data_timeframe": data_tf.value,
                    "periods_per_year": ppy,
                    "libraries": self.libraries.versions(LIBRARIES),
                }
            )
            run.log_dict(self.resolved_config, "config/resolved.yaml")
            run.log_dict(json.loads(spec.model_dump_json()), "config/feature_set.json")
            from drl_trading.training.core.provenance import PROVENANCE_ARTIFACT, Provenance

            provenance = Provenance.of_run(
                settings=self.resolved_config,
                symbols=request.symbols,
                start=request.range.start.isoformat(),
                end=request.range.end.isoformat(),
                data_timeframe=data_tf.value,
                total_timesteps=total,
                feature_set_version=spec.version,
                frame=frame,
                feature_columns=columns,
                seed=cfg.seed,
                n_envs=cfg.n_envs,
                random_agent_seeds=cfg.random_agent_seeds,
                libraries=self.libraries.versions(LIBRARIES),
                code_version=self.code_version(),
                device=cfg.device,
                torch_threads=cfg.torch_threads,
            )
            run.log_dict(provenance.to_dict(), PROVENANCE_ARTIFACT)

            # every seed of every fold is one trial of this model (`trials`)
            run.set_tags({MODEL_NAME_TAG: self.model_name, "seeds": str(cfg.seeds)})
            fold_metrics: list[dict[str, float]] = []
            outcomes: list[FoldOutcome] = []
            fitted: FittedModel | None = None
            validation: BacktestResult | None = None
            annualised = annualisation_line(ppy, calendar_name, base)
            manifest = self._manifest(
                request, splits, env_cfg, frame.height, view.name, calendar, data_tf
            )
            fits = len(splits.folds) * cfg.seeds
            for k, fold in enumerate(splits.folds):
                seeded = self.fit_fold(
                    k, fold, FoldInputs(frame, columns, base, calendar, env_cfg, total, fits),
                    run, manifest, ppy, annualised,
                )  # fmt: skip
                fitted, validation = seeded[0]  # the configured seed's model is the one registered
                predictor = Predictor(manifest, fitted.normalization, fitted.model)
                seed_results = [result for _, result in seeded]
                outcomes.append(fold_outcome(k, fold.validation, seed_results))
                assert validation is not None
                summary = {
                    "sharpe": validation.mean("model", "sharpe"),
                    "total_return": validation.mean("model", "total_return"),
                    "buy_and_hold_sharpe": validation.mean("buy-and-hold", "sharpe"),
                }
                fold_metrics.append(summary)
                prefix = f"fold{k}." if len(splits.folds) > 1 else ""
                run.log_metrics({f"{prefix}validation.{m}": v for m, v in summary.items()})
            assert fitted is not None
            assert validation is not None
            train_seconds = fitted.seconds
            rate = total / train_seconds if train_seconds > 0 else 0.0
            run.log_metrics(
                {
                    "train.seconds": train_seconds,
                    "train.steps_per_second": rate,
                    "train.timesteps": float(total),
                }
            )
            self._log_backtest(run, "validation", validation)
            # what the fit chose where the settings left it open: the device, the defaults
            manifest = fitted_manifest(manifest, fitted, cfg.n_envs)
            run.log_params({"fit": manifest.training["fit"]})
            run.log_dict(provenance.trained_on(fitted.device).to_dict(), PROVENANCE_ARTIFACT)
            evidence = self.record_evidence(run, outcomes, ppy)

            version = self.packages.register(run, self.model_name, fitted, manifest)
            champion_sharpe = self._champion_validation_sharpe()
            decision = evaluate_gate(cfg.gate, evidence, champion_sharpe)
            if decision.promote:
                self.registry.set_alias(self.model_name, CHAMPION, version.version)
            run.set_tags(
                {
                    "model_uri": version.uri,
                    "model_version": version.version,
                    "champion": str(decision.promote).lower(),
                    "gate_reason": decision.reason,
                }
            )
            run.log_metrics(decision.metrics())
            run.log_metrics({"validation.gate_passed": float(decision.promote)})

            # the test backtest runs the model as registered, loaded back from the registry
            registered = self.packages.load(version)
            test_series = series_from_frame(frame, columns, base, splits.test, calendar)
            if not test_series:
                raise TrainingError(f"no usable bars in the test range {splits.test}")
            test = self._backtest(
                registered, test_series, ppy, annualisation_line(ppy, calendar_name, base)
            )
            self._log_backtest(run, "test", test)
            documents = backtest_documents(
                test,
                version,
                title=f"Backtest of {version.uri} on the test range",
                extra={
                    "run id": run.run_id,
                    "validation Sharpe (mean)": f"{validation.mean('model', 'sharpe'):.2f}",
                    "out-of-sample Sharpe (folds x seeds)": (
                        f"{evidence.sharpe:.2f} ({evidence.confidence:.0%} CI "
                        f"{evidence.ci_lower:.2f}..{evidence.ci_upper:.2f})"
                    ),
                    "deflated Sharpe": f"{evidence.dsr:.2f} ({evidence.trials_text})",
                    "annualisation": annualisation_line(ppy, calendar_name, base),
                },
                stem=f"{self.model_name}-v{version.version}-test",
                manifest=registered.manifest,
                validation=validation,
                gate=decision,
            )
            report_path, metrics_path = self.reports.write(documents)
            run.log_artifact(report_path, "backtest")
            run.log_artifact(metrics_path, "backtest")
            evaluation = evaluation_documents(
                evidence,
                decision,
                version,
                symbols=list(request.symbols),
                protocol=protocol_text(splits, cfg.seeds),
                annualisation=annualised,
                costs=test.costs_text or "not known",
                stem=f"{self.model_name}-v{version.version}-evaluation",
            )
            evaluation_path, evaluation_json = self.reports.write(evaluation)
            run.log_artifact(evaluation_path, "evaluation")
            run.log_artifact(evaluation_json, "evaluation")
            return TrainingResult(
                run_id=run.run_id,
                model=version,
                champion=decision.promote,
                gate_reason=decision.reason,
                validation=validation,
                test=test,
                report_path=report_path,
                metrics_path=metrics_path,
                timesteps=total,
                train_seconds=train_seconds,
                steps_per_second=rate,
                splits=splits,
                predictor=predictor,
                fold_validation=fold_metrics,
                evidence=evidence,
                gate=decision,
                evaluation_report_path=evaluation_path,
            )

    def _stored_description(
        self,
        request: TrainingRequest,
        usable: TimeRange,
        data_tf: Timeframe,
        calendar: MarketCalendar | None,
    ) -> str:
        """The stored data a split error is about: the feature rows' range, and the bars of the
        data timeframe stored per symbol (the features begin after the indicators' warm-up)."""
        rng = request.range
        stored = self.market_data.coverages(data_tf, rng.start, rng.end)
        bars = "; ".join(
            f"{s} {TimeRange(c.first_open_time, _close(c.last_open_time, data_tf, calendar))}"
            for s in request.symbols
            if (c := stored.get(s)) is not None
        )
        return (
            f"the feature rows stored in the requested range {rng} ({data_tf.value} bars "
            f"stored: {bars or 'none'}) cover {usable}"
        )

    def _champion_validation_sharpe(self) -> float | None:
        if not self.settings.gate.beat_champion:
            return None
        current = self.registry.alias_version(self.model_name, CHAMPION)
        if current is None:
            return None
        runs = self.registry.find_runs({"model_version": current, "strategy": self.strategy.name})
        for r in runs:
            for key in ("evidence.sharpe", "validation.sharpe"):
                if key in r.metrics:
                    return r.metrics[key]
        return None

    def fit_fold(
        self,
        k: int,
        fold: Fold,
        inputs: FoldInputs,
        run: ExperimentRun,
        manifest: ModelManifest,
        ppy: float,
        annualised: str | None,
    ) -> list[tuple[FittedModel, BacktestResult]]:
        """Fold ``k``: one model per seed (``training.seeds``, the configured seed first) trained
        on its training range and backtested on its validation range; the fits are numbered
        ``k * seeds + s`` of ``inputs.fits`` for progress. `train` and a tuning trial share it,
        so both count seeds and fits the same way."""
        cfg = self.settings
        i = inputs
        train_series = series_from_frame(i.frame, i.columns, i.base, fold.train, i.calendar)
        val_series = series_from_frame(i.frame, i.columns, i.base, fold.validation, i.calendar)
        if not train_series or not val_series:
            raise TrainingError(
                f"fold {k}: no usable bars in train {fold.train} or validation {fold.validation}"
            )
        seeded: list[tuple[FittedModel, BacktestResult]] = []
        for s in range(cfg.seeds):
            fit = self._fit(
                train_series, i.env_cfg, i.total, k * cfg.seeds + s, i.fits, run, seed_of(cfg, s)
            )
            predictor = Predictor(manifest, fit.normalization, fit.model)
            seeded.append((fit, self._backtest(predictor, val_series, ppy, annualised)))
        return seeded

    def _fit(
        self,
        series: list[MarketSeries],
        env_cfg: EnvConfig,
        total: int,
        fold: int,
        folds: int,
        run: ExperimentRun,
        seed: int,
    ) -> FittedModel:
        """Train one model on ``series`` for ``total`` steps with ``seed``; ``fold`` of
        ``folds`` numbers the fit among all of the run's (fold x seed) for its progress."""
        cfg = self.settings
        reward = self.strategy.reward

        reward_batch = getattr(self.strategy, "reward_batch", None)  # optional in the SDK

        def make_env() -> TradingEnv:
            return TradingEnv(series, reward, env_cfg)

        def make_batched_env(n_envs: int) -> BatchedTradingEnv:
            return BatchedTradingEnv(series, reward, env_cfg, n_envs, batch_reward=reward_batch)

        job = FitJob(
            make_env=make_env,
            n_envs=cfg.n_envs,
            algorithm=cfg.algorithm,
            total_timesteps=total,
            seed=seed,
            normalize_observations=cfg.normalize_observations,
            normalize_reward=cfg.normalize_reward,
            make_batched_env=make_batched_env if cfg.env.vectorized == "batched" else None,
        )
        return self.trainer.fit(job, TrainingCurve(self.on_progress, run, fold, folds))

    def _manifest(
        self,
        request: TrainingRequest,
        splits: Splits,
        env_cfg: EnvConfig,
        rows: int,
        view_name: str,
        calendar: MarketCalendar | None,
        data_tf: Timeframe,
    ) -> ModelManifest:
        cfg = self.settings
        spec = self.feature_set
        return ModelManifest(
            algorithm=cfg.algorithm.name,
            policy=cfg.algorithm.policy or "default",
            action_mode=env_cfg.action_mode,
            window=env_cfg.window,
            feature_columns=list(spec.columns),
            feature_set=json.loads(spec.model_dump_json()),
            feature_set_version=spec.version,
            feature_view=view_name,
            base_timeframe=spec.base_timeframe.value,
            strategy={
                "name": self.strategy.name,
                "version": self.strategy.version,
                "ref": self.strategy_ref,
            },
            max_position=env_cfg.max_position,
            allow_short=env_cfg.allow_short,
            fee_bps=env_cfg.fee_bps,
            slippage_bps=env_cfg.slippage_bps,
            training={
                "symbols": list(request.symbols),
                "range": [request.range.start.isoformat(), request.range.end.isoformat()],
                "splits": splits.describe(),
                "rows": rows,
                "seed": cfg.seed,
                "created_at": datetime.now(UTC).isoformat(),
                "calendar": ALWAYS_OPEN if calendar is None else calendar.name,
                "data_timeframe": data_tf.value,
            },
        )

    def _backtest(
        self,
        predictor: Predictor,
        series: list[MarketSeries],
        ppy: float,
        annualisation: str | None = None,
    ) -> BacktestResult:
        m = predictor.manifest
        return backtest(
            predictor,
            series,
            costs=CostModel(m.fee_bps, m.slippage_bps),
            periods_per_year=ppy,
            random_seeds=self.settings.random_agent_seeds,
            strategy=self.strategy,
            annualisation=annualisation,
            lookbacks=self.settings.baselines.lookbacks,
        )

    def record_evidence(
        self, run: ExperimentRun, outcomes: list[FoldOutcome], ppy: float
    ) -> Evidence:
        """The walk-forward evidence of ``outcomes`` (periods per year ``ppy``), its deflated
        Sharpe counting every earlier training of this model as a trial, logged on ``run``
        (metrics and evaluation/evidence.json): what the gate judges and a tuning trial
        reports, computed and recorded the same way for both."""
        cfg = self.settings
        evidence = walk_forward_evidence(
            outcomes,
            ppy,
            past_trials(self.registry, self.model_name, run.run_id),
            confidence=cfg.gate.confidence,
            seed=cfg.seed,
        )
        run.log_metrics(evidence.metrics())
        run.log_dict(evidence.to_dict(), "evaluation/evidence.json")
        return evidence

    @staticmethod
    def _log_backtest(run: ExperimentRun, part: str, result: BacktestResult) -> None:
        metrics = {f"{part}.{attr}": result.mean("model", attr) for attr in LOGGED_METRICS}
        metrics |= {f"{part}.{k}": v for k, v in result.baseline_metrics().items()}
        for s in result.symbols:
            for attr, value in s.model.to_dict().items():
                if isinstance(value, int | float) and not isinstance(value, bool):
                    metrics[f"{part}.{s.symbol}.{attr}"] = float(value)
        run.log_metrics(metrics)
        run.log_dict(result.to_dict(), f"backtest/{part}_metrics.json")


def fitted_manifest(manifest: ModelManifest, fitted: FittedModel, n_envs: int) -> ModelManifest:
    """``manifest`` with what the fit applied under ``training.fit``: the torch device it
    trained on, its environment copies, the algorithm's hyperparameters with their defaults and
    the timesteps it trained (whole rollouts)."""
    fit = {
        "device": fitted.device,
        "n_envs": n_envs,
        "hyperparameters": dict(fitted.hyperparameters),
        "timesteps": fitted.timesteps,
    }
    return replace(manifest, training={**manifest.training, "fit": fit})


SEED_STRIDE = 1000
"""Seed ``s`` of a run trains with ``training.seed + s * SEED_STRIDE``, so the environments'
seeds (``seed + i`` for environment ``i``) of two seeds never coincide."""


def seed_of(settings: TrainingSettings, s: int) -> int:
    """The seed of the ``s``-th training of a fold (``s = 0``: ``training.seed`` itself)."""
    return settings.seed + s * SEED_STRIDE


def _close(open_time: datetime, timeframe: Timeframe, calendar: MarketCalendar | None) -> datetime:
    """When the bar opened at ``open_time`` closes: one ``timeframe`` later on a 24/7 market."""
    if calendar is None or calendar.always_open:
        return open_time + timeframe.duration
    (close,) = bar_closes(calendar, timeframe, [to_micros(open_time)])
    return from_micros(int(close))
