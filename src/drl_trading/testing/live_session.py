"""What the end-to-end tests of `drl-trading live` share: a home with a tiny champion model and
stored bars, the fake Binance's market and credentials, a config pointing the session at the
fake, the `live` process (run to its end or started to be killed), and the account's stored
records and state read back as the next process would."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import polars as pl
import yaml

from drl_trading.app.settings import AppSettings
from drl_trading.common.domain import Symbol, Timeframe, TimeRange, parse_time
from drl_trading.common.model_registry import ModelVersion
from drl_trading.execution.adapter.sqlite_store import SQLiteExecutionStore
from drl_trading.execution.core.reconciliation import ReconciliationRecord
from drl_trading.execution.core.records import Checkpoint, RecordKind, TradeRecord
from drl_trading.testing.cli_process import CLI
from drl_trading.testing.fake_exchange import BTCUSDT, FakeExchange

SYMBOL = Symbol("BTCUSDT")
EPOCH = parse_time("1970-01-01")
SPEC = BTCUSDT
API_KEY = "live-test-key-5b0c9e"
SECRET = "live-test-secret-77d1aa"
ENV = {"DRL_TRADING_EXCHANGE_API_KEY": API_KEY, "DRL_TRADING_EXCHANGE_SECRET": SECRET}
"""The session's credentials, as a user exports them."""


TRAINED = TimeRange.parse("2024-01-01", "2024-01-16")
"""The stored bars of a `champion_home` (the replays trade its last day)."""


def champion_home(path: Path) -> tuple[AppSettings, ModelVersion]:
    """A home under ``path`` with ``TRAINED``'s synthetic bars of ``SYMBOL`` stored and a tiny
    model trained on them and promoted (``drl-example@champion``); the model's version too."""
    from drl_trading.testing.tiny_training import ingest_and_train, tiny_training_settings

    settings = tiny_training_settings(path, timesteps=256)
    result = ingest_and_train(settings, (SYMBOL,), TRAINED)
    assert result.champion, result.gate_reason
    return settings, result.model


def fake_exchange(usdt: float = 10_000.0, fee_bps: float = 10.0) -> FakeExchange:
    """The fake Binance with ``SPEC``'s market, ``usdt`` of quote cash and our credentials."""
    return FakeExchange([SPEC], balances={"USDT": usdt}, fee_bps=fee_bps,
                        api_key=API_KEY, secret=SECRET)  # fmt: skip


def stored_bars(home: AppSettings, rng: TimeRange, symbol: Symbol = SYMBOL) -> pl.DataFrame:
    """The home's stored 1m bars of ``symbol`` over ``rng`` (what a replay streams)."""
    from drl_trading.app.infrastructure import build_market_data

    repo = build_market_data(home)
    try:
        bars = repo.read_bars(symbol, Timeframe.M1, rng.start, rng.end)
    finally:
        repo.close()
    assert bars.height, f"no stored bars of {symbol} in {rng}"
    return bars


def mean_close(home: AppSettings, rng: TimeRange) -> float:
    """The mean close over ``rng``, to the tick: a trade price close to the bars the model
    decides on (its minimum-notional and balance checks see sane numbers)."""
    return round(float(stored_bars(home, rng)["close"].mean()), 2)  # type: ignore[arg-type]


def write_live_config(path: Path, fx: FakeExchange, **sections: Mapping[str, Any]) -> Path:
    """A config whose `live` session trades on ``fx`` on every signal (the tiny model's
    confidences sit near 1/3); ``sections`` are merged into it key by key (e.g.
    ``execution={"reconciliation": {"every_bars": 5}}`` keeps ``execution.live``)."""
    config: dict[str, Any] = {
        "strategy": {"params": {"min_confidence": 0.0}},
        "execution": {"live": {"api_url": fx.url, "timeout_ms": 5_000}},
    }
    path.write_text(yaml.safe_dump(_merged(config, sections)))
    return path


def _merged(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        old = out.get(key)
        both = isinstance(old, Mapping) and isinstance(value, Mapping)
        out[key] = _merged(old, value) if both else value  # type: ignore[arg-type]
    return out


def start_cli(
    home: Path, *args: str, config: Path, env: Mapping[str, str] | None = None
) -> subprocess.Popen[str]:
    """``drl-trading --home HOME --config CONFIG ARGS`` started, not awaited (to be killed as a
    crash would; `run_cli` runs one to its end). Output goes to ``home/<first arg>.out``."""
    out = (home / f"{args[0]}.out").open("a")
    return subprocess.Popen(
        [CLI, "--home", str(home), "--config", str(config), *args],
        stdout=out,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "COLUMNS": "400", **ENV, **(env or {})},
    )


def replay_args(start: str, end: str, *, session: str, max_bars: int | None = None) -> list[str]:
    """`live`/`paper` arguments of a replay of ``SYMBOL`` on the champion (a live account
    continues where it stopped)."""
    args = ["-s", str(SYMBOL), "--model", "drl-example@champion", "--source", "replay",
            "--start", start, "--end", end, "--session", session]  # fmt: skip
    return args + (["--max-bars", str(max_bars)] if max_bars is not None else [])


@dataclass(frozen=True, slots=True)
class StoredAccount:
    """An account's execution store as read after its session: every record, the checkpoint
    (trading state, book) and the last reconciliation report (None on a paper account)."""

    records: list[TradeRecord]
    checkpoint: Checkpoint | None
    reconciliation: ReconciliationRecord | None

    def of(self, kind: RecordKind) -> list[TradeRecord]:
        return [r for r in self.records if r.kind is kind]

    def decisions(self) -> list[tuple[datetime | None, str, str | None, str]]:
        """Per signal, in order: its bar's close, what it became (order, skip, rejection), the
        side and the risk rule that decided it."""
        return [
            (r.signal_time, r.kind.value, None if r.side is None else r.side.value, r.risk_check)
            for r in self.records
            if r.signal_id is not None and r.kind is not RecordKind.FILL
        ]


def stored_account(home: AppSettings, session: str) -> StoredAccount:
    """What ``<home>/paper/<session>/execution.sqlite`` holds."""
    store = SQLiteExecutionStore(home.home / "paper" / session / "execution.sqlite")
    try:
        return StoredAccount(store.records_since(EPOCH), store.load(), store.last_reconciliation())
    finally:
        store.close()


def log_text(home: AppSettings) -> str:
    """The home's log file (every command appends to it)."""
    path = home.home / "logs" / "drl-trading.log"
    return path.read_text() if path.exists() else ""
