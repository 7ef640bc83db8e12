"""What a training run records so that `drl-trading reproduce` can run it again, and how a
re-run is judged against it.

A run logs one `Provenance` (artifact `PROVENANCE_ARTIFACT`): the resolved settings (secrets
masked, `drl_trading.common.redaction`), the request (symbols, range, data timeframe, steps),
fingerprints of the data it read, the feature-set version, every seed, the library versions,
the code revision and the torch determinism it trained under. Reproducing trains again from that
record and compares the two runs metric by metric (`compare_metrics`) and record by record
(`provenance_differences`), so a changed input is named rather than hidden in a metric that
moved.

Pure: no I/O. Reading a recorded run is the `RecordedRuns` port's (MLflow adapter and in-memory
fake in ``training/adapter``).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Protocol

import polars as pl

from drl_trading.common.model_registry import flatten_params

__all__ = [
    "COMPARED_LIBRARIES",
    "FORMAT",
    "PROVENANCE_ARTIFACT",
    "RESULT_SECTIONS",
    "TOLERANCE",
    "TORCH_DETERMINISM",
    "UNCOMPARED_METRICS",
    "UNCOMPARED_PREFIXES",
    "MetricMatch",
    "Provenance",
    "RecordedRun",
    "RecordedRuns",
    "compare_metrics",
    "frame_fingerprints",
    "is_compared",
    "provenance_differences",
]

PROVENANCE_ARTIFACT = "provenance.json"
"""The run artifact holding the `Provenance` record (JSON)."""
FORMAT = 1
"""Version of the record's layout; a record of another format is refused, not misread."""

TORCH_DETERMINISM: Mapping[str, Any] = {
    "use_deterministic_algorithms": True,
    "cudnn_deterministic": True,
    "cudnn_benchmark": False,
    "cublas_workspace_config": ":4096:8",
}
"""The torch settings every training applies before it seeds anything (`SB3Trainer`):
deterministic kernels where torch has them (a warning where it has none), cuDNN without
autotuning, and the cuBLAS workspace a deterministic GPU matrix product needs. On CPU the
measured source of equality is the fixed order of seeding (global generators, environments,
model) in one DummyVecEnv process; these settings make a GPU run repeatable too."""

COMPARED_LIBRARIES = (
    "python",
    "torch",
    "stable-baselines3",
    "sb3-contrib",
    "gymnasium",
    "numpy",
    "polars",
    "drl-trading",
)
"""The libraries whose version decides a run's numbers; a different version is named."""

UNCOMPARED_METRICS = frozenset(
    {
        "train.seconds",
        "train.steps_per_second",
        "validation.gate_passed",
        "evidence.trials",
        "evidence.trial_sharpe_variance",
        "evidence.dsr",
    }
)
"""Metrics a re-run cannot be expected to repeat: wall-clock timings, and what depends on the
registry's state when the run was made: the trials counted before it (the deflated Sharpe and
its inputs) and the champion of the moment (the gate's verdict). Shown, not compared."""
UNCOMPARED_PREFIXES = ("gate.",)
"""Metric name prefixes not compared, for the same reason (every gate check's value, threshold
and verdict)."""

TOLERANCE = 1e-12
"""The largest absolute difference two figures may have and still match."""

# settings a re-run replaces on purpose (where it logs, which model it registers, where reports
# go): differences there are not differences of the run
_UNCOMPARED_SETTINGS = ("training.registry.", "training.reports_dir")
# the sections of the settings that decide a run's numbers
RESULT_SECTIONS = ("markets", "strategy", "preprocess", "training")


@dataclass(frozen=True)
class Provenance:
    """Everything one training run needs to be run again and its inputs checked."""

    settings: dict[str, Any]
    """The resolved settings as recorded (`AppSettings.masked_dump`: secrets masked)."""
    symbols: tuple[str, ...]
    start: str
    """Requested range start, ISO 8601 UTC."""
    end: str
    """Requested range end (exclusive), ISO 8601 UTC."""
    data_timeframe: str
    """The timeframe the bars were ingested under (``1m``...)."""
    total_timesteps: int
    feature_set_version: str
    features_fingerprint: str
    """sha256 of the feature rows the run read (symbol, event time, feature columns)."""
    bars_fingerprint: str
    """sha256 of the base-timeframe bars behind those rows (the ``bar_*`` columns)."""
    data_rows: int
    seeds: dict[str, Any]
    libraries: dict[str, str]
    code_version: str
    torch: dict[str, Any]
    """Device, intra-op threads and `TORCH_DETERMINISM`. The device is ``training.device`` as
    set (``auto``) until the fit ran, then the one it trained on (`trained_on`)."""
    format: int = FORMAT

    def trained_on(self, device: str) -> Provenance:
        """This record with the torch device the fit actually used (``auto`` resolved to
        ``cuda`` or ``cpu``), so that a re-run on another device is named as a difference."""
        return replace(self, torch={**self.torch, "device": device})

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["symbols"] = list(self.symbols)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Provenance:
        """The record of ``data``; ValueError naming the problem for another format or a
        missing field."""
        fmt = data.get("format")
        if fmt != FORMAT:
            raise ValueError(
                f"provenance record of format {fmt!r}, this version reads format {FORMAT}; "
                "reproduce the run with the drl-trading version that trained it"
            )
        names = [f for f in cls.__dataclass_fields__ if f != "format"]
        missing = [n for n in names if n not in data]
        if missing:
            raise ValueError(f"provenance record lacks {', '.join(missing)}")
        values = {n: data[n] for n in names}
        values["symbols"] = tuple(values["symbols"])
        return cls(**values)

    @classmethod
    def of_run(
        cls,
        *,
        settings: Mapping[str, Any],
        symbols: Sequence[str],
        start: str,
        end: str,
        data_timeframe: str,
        total_timesteps: int,
        feature_set_version: str,
        frame: pl.DataFrame,
        feature_columns: Sequence[str],
        seed: int,
        n_envs: int,
        random_agent_seeds: int,
        libraries: Mapping[str, str],
        code_version: str,
        device: str,
        torch_threads: int | None,
    ) -> Provenance:
        """The record of a run over ``frame`` (the feature matrix it trains and backtests on:
        `drl_trading.common.feature_dataset.FeatureDataset.frame`)."""
        features, bars = frame_fingerprints(frame, feature_columns)
        return cls(
            settings=dict(settings),
            symbols=tuple(str(s) for s in symbols),
            start=start,
            end=end,
            data_timeframe=data_timeframe,
            total_timesteps=total_timesteps,
            feature_set_version=feature_set_version,
            features_fingerprint=features,
            bars_fingerprint=bars,
            data_rows=frame.height,
            seeds={
                "global": seed,
                "model": seed,
                "environments": [seed + i for i in range(n_envs)],
                "vec_env": seed,
                "random_baseline_seeds": random_agent_seeds,
            },
            libraries=dict(libraries),
            code_version=code_version,
            torch={"device": device, "threads": torch_threads, **TORCH_DETERMINISM},
        )


# -- fingerprints ----------------------------------------------------------------------------------


def frame_fingerprints(frame: pl.DataFrame, feature_columns: Sequence[str]) -> tuple[str, str]:
    """(features, bars): sha256 hex digests of ``frame``'s feature rows (``symbol``,
    ``event_time`` and ``feature_columns``) and of its base bars (``symbol`` and the ``bar_*``
    columns). Each column contributes its name, dtype, null mask and values (the physical
    integers of times), so the digests are the same in every process and on every machine of one
    byte order, and change with any value, row, type or column."""
    bar_columns = [c for c in frame.columns if c.startswith("bar_")]
    keys = [c for c in ("symbol", "event_time") if c in frame.columns]
    return (
        _digest(frame, [*keys, *feature_columns]),
        _digest(frame, [c for c in ("symbol",) if c in frame.columns] + bar_columns),
    )


def _digest(frame: pl.DataFrame, columns: Iterable[str]) -> str:
    h = hashlib.sha256()
    h.update(str(frame.height).encode())
    for name in columns:
        series = frame[name]
        h.update(b"\x1e" + name.encode() + b"\x1f" + str(series.dtype).encode())
        h.update(series.is_null().to_numpy().tobytes())
        if series.dtype.is_numeric() or series.dtype.is_temporal() or series.dtype == pl.Boolean:
            physical = series.to_physical().fill_null(0)
            h.update(physical.to_numpy().tobytes())
        else:
            text = series.cast(pl.Utf8).fill_null("")
            h.update("\x00".join(text.to_list()).encode())
    return h.hexdigest()


# -- comparing a re-run --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MetricMatch:
    """One metric of the recorded run beside the re-run's (None: the run lacks it)."""

    name: str
    recorded: float | None
    reproduced: float | None
    compared: bool = True
    """False for a metric a re-run need not repeat (`UNCOMPARED_METRICS`)."""

    @property
    def exact(self) -> bool:
        a, b = self.recorded, self.reproduced
        if a is None or b is None:
            return False
        return a == b or (math.isnan(a) and math.isnan(b))

    @property
    def match(self) -> bool:
        """Equal (NaN with NaN, inf with the same inf) or within `TOLERANCE`; always True for a
        metric not compared."""
        if not self.compared:
            return True
        a, b = self.recorded, self.reproduced
        if a is None or b is None:
            return False
        return self.exact or (math.isfinite(a - b) and abs(a - b) <= TOLERANCE)

    @property
    def verdict(self) -> str:
        if not self.compared:
            return "not compared"
        if self.exact:
            return "exact"
        return f"within {TOLERANCE:g}" if self.match else "no"


def is_compared(name: str) -> bool:
    """Whether a re-run must repeat metric ``name`` (`UNCOMPARED_METRICS`)."""
    return name not in UNCOMPARED_METRICS and not name.startswith(UNCOMPARED_PREFIXES)


def compare_metrics(
    recorded: Mapping[str, float], reproduced: Mapping[str, float]
) -> list[MetricMatch]:
    """Every metric of either run, sorted by name, those not compared flagged."""
    names = sorted(set(recorded) | set(reproduced))
    return [MetricMatch(n, recorded.get(n), reproduced.get(n), is_compared(n)) for n in names]


def provenance_differences(recorded: Provenance, current: Provenance) -> list[str]:
    """One line for every input of ``current`` (the re-run) that differs from ``recorded``:
    data, feature set, libraries, code, seeds, torch settings, request and the settings that
    decide the numbers. Empty when the re-run had the recorded inputs."""
    lines: list[str] = []
    where = f"{','.join(recorded.symbols)} over {recorded.start}..{recorded.end}"
    if current.bars_fingerprint != recorded.bars_fingerprint:
        lines.append(
            f"data fingerprint changed: the stored bars of {where} differ from the run's "
            f"(recorded {recorded.bars_fingerprint[:16]}, now {current.bars_fingerprint[:16]})"
        )
    if current.features_fingerprint != recorded.features_fingerprint:
        lines.append(
            f"feature fingerprint changed: the stored features of {where} differ from the "
            f"run's (recorded {recorded.features_fingerprint[:16]}, now "
            f"{current.features_fingerprint[:16]})"
        )
    if current.data_rows != recorded.data_rows:
        lines.append(f"data rows: recorded {recorded.data_rows}, now {current.data_rows}")
    if current.feature_set_version != recorded.feature_set_version:
        lines.append(
            f"feature-set version: recorded {recorded.feature_set_version}, now "
            f"{current.feature_set_version}"
        )
    for name in COMPARED_LIBRARIES:
        was = recorded.libraries.get(name, "not recorded")
        now = current.libraries.get(name, "not recorded")
        if was != now:
            lines.append(f"library {name}: recorded {was}, now {now}")
    if current.code_version != recorded.code_version:
        lines.append(f"code version: recorded {recorded.code_version}, now {current.code_version}")
    for label, was_map, now_map in (
        ("seed", recorded.seeds, current.seeds),
        ("torch", recorded.torch, current.torch),
    ):
        for key in sorted(set(was_map) | set(now_map)):
            was_v, now_v = was_map.get(key), now_map.get(key)
            if was_v != now_v:
                lines.append(f"{label} {key}: recorded {was_v}, now {now_v}")
    for label, was_s, now_s in (
        ("symbols", ",".join(recorded.symbols), ",".join(current.symbols)),
        ("range", f"{recorded.start}..{recorded.end}", f"{current.start}..{current.end}"),
        ("data timeframe", recorded.data_timeframe, current.data_timeframe),
        ("total timesteps", str(recorded.total_timesteps), str(current.total_timesteps)),
    ):
        if was_s != now_s:
            lines.append(f"{label}: recorded {was_s}, now {now_s}")
    lines += _setting_differences(recorded.settings, current.settings)
    return lines


def _setting_differences(recorded: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
    was = _result_settings(recorded)
    now = _result_settings(current)
    return [
        f"setting {key}: recorded {was.get(key, 'unset')}, now {now.get(key, 'unset')}"
        for key in sorted(set(was) | set(now))
        if was.get(key) != now.get(key)
    ]


def _result_settings(settings: Mapping[str, Any]) -> dict[str, str]:
    sections = {k: v for k, v in settings.items() if k in RESULT_SECTIONS}
    return {
        k: v for k, v in flatten_params(sections).items() if not k.startswith(_UNCOMPARED_SETTINGS)
    }


# -- reading a recorded run ----------------------------------------------------------------------


@dataclass(frozen=True)
class RecordedRun:
    """What a logged training run holds for reproducing it."""

    run_id: str
    metrics: dict[str, float]
    """Latest value of every metric."""
    provenance: Provenance | None
    """None: the run logged no provenance record (trained before `reproduce` existed)."""
    tags: dict[str, str] = field(default_factory=dict)


class RecordedRuns(Protocol):
    def recorded(self, run_id: str) -> RecordedRun:
        """The run ``run_id``; LookupError naming it when the tracking store has no such run;
        ValueError when its provenance record cannot be read."""
        ...
