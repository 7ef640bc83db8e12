"""A user's own bar file as pandas writes it: the input of `--source file` in the tests."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd  # type: ignore[import-untyped]


def write_pandas_csv(
    path: Path, start: str | datetime, days: float, *, seed: int, shown_in: str = "UTC"
) -> Path:
    """``days`` of 1m bars from ``start`` (UTC where it names no zone) written to ``path`` the
    way a pandas user writes them: a random walk from 100 (steps of 0.1 % standard deviation,
    seeded by ``seed``), high and low 0.05 % beyond open and close, a random volume, indexed by
    a tz-aware DatetimeIndex shown in the zone ``shown_in`` and saved by a default `to_csv` (an
    unnamed first column of ``2024-05-01 02:00:00+02:00``); ``path``."""
    n = int(days * 24 * 60)
    index = pd.date_range(start, periods=n, freq="1min", tz="UTC").tz_convert(shown_in)
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 1e-3, n)))
    opens = np.r_[close[0], close[:-1]]
    pd.DataFrame(
        {
            "open": opens,
            "high": np.maximum(opens, close) * 1.0005,
            "low": np.minimum(opens, close) * 0.9995,
            "close": close,
            "volume": rng.uniform(1, 10, n),
        },
        index=index,
    ).to_csv(path)
    with path.open() as written:
        header = written.readline()
    assert header == ",open,high,low,close,volume\n", header  # the layout this file is about
    return path
