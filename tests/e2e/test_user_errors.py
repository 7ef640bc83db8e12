"""User errors and environmental failures end in one line, never a traceback (issue 11, item 4).

Each case runs the CLI as a user does, in a subprocess, and checks the exit code, a phrase of
the message and that no traceback reached stdout or stderr; the traceback is in
``<home>/logs/drl-trading.log``. The failures are made locally so that no case depends on this
machine's network: the exchange is a closed port on 127.0.0.1, the Kafka broker the local one
(which has no SASL listener).
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from drl_trading.common.adapter.duckdb_market_data import DuckDBMarketData
from drl_trading.common.domain import Symbol, Timeframe, parse_time
from tests.conftest import require_server

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

CLI = [sys.executable, "-m", "drl_trading.cli.app"]
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def run_cli(
    home: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 180
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, "--home", str(home), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env={**os.environ, **(env or {})},
    )


def assert_one_line_error(
    result: subprocess.CompletedProcess[str], code: int, *phrases: str
) -> str:
    """The exit ``code``, every phrase in stderr (whitespace collapsed), no traceback."""
    output = result.stdout + result.stderr
    assert "Traceback" not in output, output
    assert result.returncode == code, output
    err = " ".join(result.stderr.split())
    for phrase in phrases:
        assert phrase in err, err
    return err


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.1)


class Interactive:
    """A CLI process whose stderr is read as it comes, with rich drawing its progress bars as
    on a terminal (so that a test can wait for a bar to move)."""

    def __init__(self, home: Path, *args: str) -> None:
        env = {**os.environ, "TTY_COMPATIBLE": "1", "TTY_INTERACTIVE": "1", "NO_COLOR": "1"}
        self.process = subprocess.Popen(
            [*CLI, "--home", str(home), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        self._err: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for chunk in iter(lambda: self.process.stderr.read(64), ""):  # type: ignore[union-attr]
            self._err.append(chunk)

    @property
    def stderr(self) -> str:
        return ANSI.sub("", "".join(self._err))

    def wait_for(self, pattern: str, timeout: float) -> re.Match[str]:
        found: list[re.Match[str]] = []

        def seen() -> bool:
            match = re.search(pattern, self.stderr)
            if match:
                found.append(match)
                return True
            assert self.process.poll() is None, f"ended before {pattern!r}: {self.stderr}"
            return False

        wait_until(seen, timeout, pattern)
        return found[0]

    def interrupt(self, timeout: float = 120, signum: int = signal.SIGINT) -> tuple[int, str, str]:
        """Ctrl-C (or ``signum``); the exit code, stdout and stderr (control codes removed)."""
        self.process.send_signal(signum)
        assert self.process.stdout is not None
        out = self.process.stdout.read()
        code = self.process.wait(timeout)
        self._reader.join(10)
        return code, out, self.stderr


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


def test_a_malformed_model_reference(home: Path) -> None:
    result = run_cli(home, "backtest", "-m", "drl-example/abc", "-s", "BTCUSDT",
                     "--start", "2024-01-01", "--end", "2024-01-02")  # fmt: skip
    assert_one_line_error(
        result, 2, "invalid model reference 'drl-example/abc'", "NAME/<version number>"
    )
    log = (home / "logs" / "drl-trading.log").read_text()
    assert "Traceback (most recent call last)" in log and "InvalidModelReferenceError" in log


def test_paper_speed_must_be_positive(home: Path) -> None:
    result = run_cli(home, "paper", "-s", "BTCUSDT", "--start", "2024-01-01",
                     "--end", "2024-01-02", "--speed", "0")  # fmt: skip
    assert_one_line_error(result, 2, "Invalid value for '--speed': must be > 0")


def test_config_naming_a_directory(home: Path, tmp_path: Path) -> None:
    result = run_cli(home, "--config", str(tmp_path), "config", "show")
    assert_one_line_error(result, 2, f"--config {tmp_path} is a directory")


@pytest.fixture
def held_home(home: Path) -> Iterator[Path]:
    """The home's market-data store opened by another process, as a running command has it."""
    code = (
        "import sys, time\n"
        "from drl_trading.common.adapter.duckdb_market_data import DuckDBMarketData\n"
        "store = DuckDBMarketData(sys.argv[1])\n"
        "print('holding', flush=True)\n"
        "time.sleep(600)\n"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", code, str(home / "market.duckdb")],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "holding"
        yield home
    finally:
        holder.kill()
        holder.wait(30)


@pytest.mark.parametrize(
    "command",
    [
        ["ingest", "-s", "BTCUSDT", "--start", "2024-01-01", "--end", "2024-01-02"],
        ["train", "-s", "BTCUSDT", "--start", "2024-01-01", "--end", "2024-01-02"],
    ],
)
def test_a_second_process_on_the_same_home(held_home: Path, command: list[str]) -> None:
    result = run_cli(held_home, *command)
    assert_one_line_error(
        result,
        1,
        f"{held_home / 'market.duckdb'} is in use by another drl-trading process (PID ",
        "use another --home",
        "distributed stack",
    )


def _stored(home: Path, since: str = "2022-01-01") -> dict[str, int]:
    """1m bars stored per symbol from ``since`` (default: the range's start) to 2024."""
    store = DuckDBMarketData(home / "market.duckdb")
    try:
        start, end = parse_time(since), parse_time("2024-01-01")
        return {
            s: store.read_bars(Symbol(s), Timeframe.M1, start, end).height
            for s in ("BTCUSDT", "ETHUSDT")
        }
    finally:
        store.close()


def _report_row(stdout: str, symbol: str) -> list[int]:
    """fetched, stored, warm-up, new, updated, unchanged, ... of ``symbol`` in the ingest
    table."""
    line = next(row for row in stdout.splitlines() if f" {symbol} " in row)
    return [int(cell) for cell in re.findall(r"\d+", line)]


def test_ctrl_c_during_an_ingest_then_a_rerun_continues(home: Path, tmp_path: Path) -> None:
    ingest = ["ingest", "-s", "BTCUSDT,ETHUSDT", "--start", "2022-01-01", "--end", "2024-01-01"]
    running = Interactive(home, *ingest)
    running.wait_for(r"ingest BTCUSDT[^\n/]*?\b[1-9]\d*/\d+", timeout=240)
    code, out, err = running.interrupt()
    assert "Traceback" not in out + err, err
    assert code == 130, err
    line = " ".join(err.split())
    found = re.search(r"BTCUSDT ([\d,]+) of 1,051,200, ETHUSDT ([\d,]+) of 1,051,200", line)
    assert found, line
    assert "rerun the same command to continue" in line
    said = {"BTCUSDT": int(found[1].replace(",", "")), "ETHUSDT": int(found[2].replace(",", ""))}
    assert _stored(home) == said  # the counts printed are what the store holds
    assert said["ETHUSDT"] < 1_051_200
    assert "KeyboardInterrupt" in (home / "logs" / "drl-trading.log").read_text()
    # the features' warm-up before the range is fetched (first) and stored too
    held = _stored(home, since="2021-01-01")

    again = run_cli(home, *ingest, timeout=600)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "Traceback" not in again.stdout + again.stderr
    for symbol in said:
        fetched, stored, warmup, new, updated, unchanged = _report_row(again.stdout, symbol)[:6]
        assert warmup > 0
        assert (fetched, stored, updated) == (1_051_200 + warmup, 1_051_200 + warmup, 0)
        assert (new, unchanged) == (stored - held[symbol], held[symbol])
    straight = tmp_path / "straight"
    assert run_cli(straight, *ingest, timeout=600).returncode == 0
    assert _stored(home) == _stored(straight)


def test_sigterm_during_an_ingest_stops_it_like_ctrl_c(home: Path) -> None:
    """``docker stop`` / ``kill PID``: the open chunk rolled back, what is stored reported and
    true, exit 143 (Python's default would die mid-write without a word)."""
    ingest = ["ingest", "-s", "BTCUSDT", "--start", "2023-01-01", "--end", "2024-01-01"]
    running = Interactive(home, *ingest)
    running.wait_for(r"ingest BTCUSDT[^\n/]*?\b[1-9]\d*/\d+", timeout=240)
    code, out, err = running.interrupt(signum=signal.SIGTERM)
    assert "Traceback" not in out + err, err
    assert code == 143, err
    line = " ".join(err.split())
    found = re.search(r"interrupted \(SIGTERM\): .*BTCUSDT ([\d,]+) of 525,600", line)
    assert found, line
    assert "rerun the same command to continue" in line
    stored = DuckDBMarketData(home / "market.duckdb")
    try:
        held = stored.read_bars(
            Symbol("BTCUSDT"), Timeframe.M1, parse_time("2023-01-01"), parse_time("2024-01-01")
        ).height
    finally:
        stored.close()
    assert held == int(found[1].replace(",", ""))


def test_ctrl_c_during_training_exits_130_with_one_line(home: Path) -> None:
    running = Interactive(home, "quickstart", "-s", "BTCUSDT", "--start", "2024-01-01",
                          "--end", "2024-01-15", "--timesteps", "1000000")  # fmt: skip
    running.wait_for(r"train: reward", timeout=300)
    code, out, err = running.interrupt()
    assert "Traceback" not in out + err, err
    assert code == 130, err
    assert "interrupted (Ctrl-C): " in err and "no model was registered" in err


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def test_an_unreachable_exchange(home: Path) -> None:
    base = f"http://127.0.0.1:{_closed_port()}"
    env = {"DRL_TRADING_INGEST__CCXT__BASE_URL": base, "DRL_TRADING_INGEST__CCXT__MAX_RETRIES": "0"}
    result = run_cli(home, "ingest", "--source", "ccxt", "-s", "BTCUSDT",
                     "--start", "2024-01-01", "--end", "2024-01-02", env=env)  # fmt: skip
    assert_one_line_error(
        result, 1, f"cannot reach exchange binance at {base}/", "Connection refused", "base_url"
    )


def test_kafka_authentication_failure(home: Path) -> None:
    require_server("Kafka", "127.0.0.1", 9092)
    password = f"pw-{uuid.uuid4().hex}"
    env = {
        "DRL_TRADING_BUS__KIND": "kafka",
        "DRL_TRADING_BUS__KAFKA__BOOTSTRAP_SERVERS": "127.0.0.1:9092",
        "DRL_TRADING_BUS__KAFKA__NAMESPACE": f"usererr-{uuid.uuid4().hex[:8]}.",
        "DRL_TRADING_BUS__KAFKA__SECURITY_PROTOCOL": "SASL_PLAINTEXT",
        "DRL_TRADING_BUS__KAFKA__SASL_MECHANISM": "PLAIN",
        "DRL_TRADING_BUS__KAFKA__SASL_USERNAME": "nobody",
        "DRL_TRADING_BUS__KAFKA__SASL_PASSWORD": password,
    }
    result = run_cli(home, "serve", "ingest", "--port", "0", env=env, timeout=120)
    assert_one_line_error(
        result, 1, "Kafka broker 127.0.0.1:9092: authentication failed", "sasl_username"
    )
    assert result.stderr.strip().count("\n") == 0, result.stderr  # no librdkafka lines
    assert "|FAIL|" not in result.stderr
    log = (home / "logs" / "drl-trading.log").read_text()
    assert "BusConnectionError" in log
    assert password not in result.stdout + result.stderr + log


INTERNAL_ERROR = """
import sys
import typer
from drl_trading.cli.app import app, main
from drl_trading.cli.context import state

@app.command("boom")
def boom(ctx: typer.Context, load: bool = True) -> None:
    if load:
        state(ctx).settings()
    raise RuntimeError("boom: redis://:hunter2@cache:6379")

sys.argv = ["drl-trading", *sys.argv[1:]]
main()
"""


def test_an_internal_error_says_where_its_traceback_is(home: Path, tmp_path: Path) -> None:
    def boom(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-c", INTERNAL_ERROR, "--home", str(home), "boom", *args],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            env={**os.environ, "TMPDIR": str(tmp_path / "tmp")},
        )

    log = home / "logs" / "drl-trading.log"
    err = assert_one_line_error(
        boom(),
        1,
        "internal error: RuntimeError: boom: redis://:***@cache:6379",
        f"(traceback written to {log})",
    )
    assert "hunter2" not in err
    text = log.read_text()
    assert "Traceback (most recent call last)" in text and "RuntimeError: boom" in text
    assert "hunter2" not in text

    # before the settings load there is no home: the temporary folder's log, and it says so
    (tmp_path / "tmp").mkdir()
    fallback = tmp_path / "tmp" / "drl-trading-logs" / "drl-trading.log"
    assert_one_line_error(
        boom("--no-load"), 1, f"traceback written to {fallback}: the home's log was not available"
    )
    assert "RuntimeError: boom" in fallback.read_text()


def test_an_hourly_file_ingested_as_1m_is_refused_with_its_spacing(
    home: Path, tmp_path: Path
) -> None:
    """The issue's hourly EURUSD-style file: refused with its measured spacing, nothing stored
    (it used to report thousands of gaps and build every 5m..1h bar from single hourly bars)."""
    from tests.conftest import make_bars

    path = tmp_path / "bars.csv"
    make_bars("2024-01-01", 200, step_minutes=60).write_csv(path)
    result = run_cli(home, "ingest", "--source", "file", "--path", str(path), "-s", "EURUSD")
    assert_one_line_error(
        result,
        2,
        "EURUSD: the bars from file bars.csv are 1h apart (199 of 199 steps), not 1m as declared",
        "nothing of EURUSD was stored",
    )
    store = DuckDBMarketData(home / "market.duckdb")
    try:
        assert store.coverage(Symbol("EURUSD"), Timeframe.M1) is None
    finally:
        store.close()


def test_a_base_finer_than_the_data_is_refused_before_anything_is_fetched(
    home: Path, tmp_path: Path
) -> None:
    """Hourly bars with the default feature set (base 5m) and --preprocess: refused up front,
    naming both timeframes, and nothing is stored (5m rows would each repeat an hour)."""
    from tests.conftest import make_bars

    path = tmp_path / "bars.csv"
    make_bars("2024-01-01", 200, step_minutes=60).write_csv(path)
    result = run_cli(
        home, "ingest", "--source", "file", "--path", str(path), "-s", "EURUSD",
        "--timeframe", "1h", "--preprocess",
    )  # fmt: skip
    assert_one_line_error(
        result, 2, "has base timeframe 5m, finer than the data's 1h", "base_timeframe 1h or coarser"
    )
    assert not (home / "market.duckdb").exists() or _coverage(home, Timeframe.H1) is None


def test_hourly_bars_over_stored_minutes_are_refused(home: Path, tmp_path: Path) -> None:
    """1m bars stored, then an hourly file over the same days: refused, naming the stored 1m
    range (the 1h bars there are resampled from them); the 1m bars are untouched."""
    from tests.conftest import make_bars

    minutes, hours = tmp_path / "m.csv", tmp_path / "h.csv"
    make_bars("2024-01-01", 600).write_csv(minutes)
    make_bars("2024-01-01", 48, step_minutes=60).write_csv(hours)
    first = run_cli(home, "ingest", "--source", "file", "--path", str(minutes), "-s", "EURUSD")
    assert first.returncode == 0, first.stdout + first.stderr
    result = run_cli(
        home, "ingest", "--source", "file", "--path", str(hours), "-s", "EURUSD",
        "--timeframe", "1h",
    )  # fmt: skip
    assert_one_line_error(
        result, 2, "1m bars are stored over the requested range (EURUSD 2024-01-01 00:00 .. "
    )
    coverage = _coverage(home, Timeframe.M1)
    assert coverage is not None and coverage.bars == 600
    assert _coverage(home, Timeframe.H1) is None


def _coverage(home: Path, timeframe: Timeframe) -> object:
    store = DuckDBMarketData(home / "market.duckdb")
    try:
        return store.coverage(Symbol("EURUSD"), timeframe)
    finally:
        store.close()
