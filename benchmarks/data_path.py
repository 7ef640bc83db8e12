"""Benchmark of the data path on N 1m bars of one symbol (default 1,000,000).

Prints: synthetic generation, ingest (validate + upsert) rows/s into the embedded DuckDB store,
reading them back, resampling to each timeframe, feature computation, the whole preprocess
(resample + all features on all timeframes, no Feast) in bars/s, and the Feast offline write.
Compute steps are repeated and the median is reported; the machine's noise shows in min..max.

    .venv/bin/python benchmarks/data_path.py [--bars 1000000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import tempfile
import time
import warnings
from datetime import timedelta
from pathlib import Path

import polars as pl

from drl_trading.common.adapter.duckdb_market_data import DuckDBMarketData
from drl_trading.common.adapter.feast_feature_store import FeastFeatureStore
from drl_trading.common.domain import Symbol, Timeframe, parse_time
from drl_trading.ingest.adapter.synthetic_provider import SyntheticProvider
from drl_trading.ingest.core.validation import validate_bars
from drl_trading.preprocess.core.features import build_feature_matrix
from drl_trading.preprocess.core.resample import resample
from drl_trading.strategy.feature_set import (
    FeatureSetSpec,
    TimeframeFeatures,
    default_feature_set,
)
from drl_trading.strategy.feature_view import view_for
from timing import line, timed

warnings.filterwarnings("ignore", category=DeprecationWarning)
SYMBOL = Symbol("BENCHUSDT")
TIMEFRAMES = (Timeframe.M5, Timeframe.M15, Timeframe.H1, Timeframe.H4, Timeframe.D1)


def heavy_feature_set() -> FeatureSetSpec:
    """Every indicator on every timeframe, rows on 1m: the worst case a user could configure."""
    full = default_feature_set().timeframes[0].indicators
    return FeatureSetSpec(
        name="heavy",
        base_timeframe=Timeframe.M1,
        timeframes=tuple(
            TimeframeFeatures(timeframe=tf, indicators=full) for tf in (Timeframe.M1, *TIMEFRAMES)
        ),
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    ap.add_argument("--bars", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    n, repeat = args.bars, args.repeat
    start = parse_time("2022-01-01")
    end = start + timedelta(minutes=n)
    spec = default_feature_set()
    print(f"data path benchmark: {n:,} 1m bars of one symbol, feature set {spec.view_name}")
    print(f"({len(spec.columns)} features on {', '.join(t.value for t in spec.all_timeframes)})\n")

    provider = SyntheticProvider(seed=1, chunk_days=30)
    t0 = time.perf_counter()
    chunks = list(provider.fetch(SYMBOL, Timeframe.M1, start, end))
    line("synthetic generation", [time.perf_counter() - t0], n)
    bars = pl.concat(chunks)

    with tempfile.TemporaryDirectory() as tmp:
        repo = DuckDBMarketData(Path(tmp) / "bench.duckdb")
        t0 = time.perf_counter()
        for chunk in chunks:
            validate_bars(chunk, Timeframe.M1)
            repo.upsert_bars(SYMBOL, Timeframe.M1, chunk)
        line("ingest: validate + upsert (new rows)", [time.perf_counter() - t0], n, "rows")
        t0 = time.perf_counter()
        repo.upsert_bars(SYMBOL, Timeframe.M1, bars)
        line("ingest: upsert again (idempotent)", [time.perf_counter() - t0], n, "rows")
        _, t = timed(lambda: repo.read_bars(SYMBOL, Timeframe.M1, start, end), repeat)
        line("read 1m back from DuckDB", t, n, "rows")

        print()
        by_tf: dict[Timeframe, pl.DataFrame] = {Timeframe.M1: bars}
        for tf in TIMEFRAMES:
            by_tf[tf], t = timed(lambda tf=tf: resample(bars, tf), repeat)  # type: ignore[misc]
            line(f"resample 1m -> {tf.value}", t, n)
        _, t = timed(lambda: [resample(bars, tf) for tf in TIMEFRAMES], repeat)
        line("resample to all five", t, n)
        matrix, t = timed(lambda: build_feature_matrix(by_tf, spec), repeat)
        line(f"features ({len(spec.columns)} cols, align to base)", t, n)

        def whole() -> object:
            frames = {Timeframe.M1: bars, **{tf: resample(bars, tf) for tf in TIMEFRAMES}}
            return build_feature_matrix(frames, spec)

        _, t = timed(whole, repeat)
        line("WHOLE PREPROCESS (no Feast)", t, n)
        print(f"{'':38}target: under 2 s for 1,000,000 bars")
        heavy = heavy_feature_set()
        _, t = timed(lambda: build_feature_matrix(by_tf, heavy), repeat)
        line(f"heavy set: {len(heavy.columns)} cols on a 1m base", t, n)

        print()
        store = FeastFeatureStore(Path(tmp) / "feast", Path(tmp) / "features")
        view = view_for(spec)
        t0 = time.perf_counter()
        store.register(view)
        line("Feast: import + apply feature view", [time.perf_counter() - t0])
        rows = matrix.frame.height
        t0 = time.perf_counter()
        store.write_offline(view, SYMBOL, matrix.frame)
        line(f"Feast: offline write ({rows:,} rows)", [time.perf_counter() - t0], rows, "rows")
        t0 = time.perf_counter()
        store.write_offline(view, SYMBOL, matrix.frame)
        line("Feast: offline rewrite (merge)", [time.perf_counter() - t0], rows, "rows")
        repo.close()


if __name__ == "__main__":
    main()
