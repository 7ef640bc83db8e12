"""The ``markets`` settings: each symbol's market calendar, named in the file or the environment,
checked at load (an unknown name is one error naming the key and the closest names), and the
calendar book the composition builds from them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from drl_trading.app.infrastructure import build_calendars
from drl_trading.app.settings import ConfigError, load_settings, unknown_environment_variables
from drl_trading.common.adapter.always_open_calendar import AlwaysOpenCalendar
from drl_trading.common.adapter.exchange_calendars_calendar import ExchangeCalendarsCalendar
from drl_trading.common.adapter.fx_calendar import FxCalendar
from drl_trading.common.calendar import MixedCalendarsError
from drl_trading.common.domain import Symbol
from drl_trading.common.errors import EXIT_USAGE


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.upper().startswith("DRL_TRADING_"):
            monkeypatch.delenv(name)


def _config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return path


def _calendars(settings_symbols: object) -> dict[str, str]:
    return {str(k): v.calendar for k, v in settings_symbols.items()}  # type: ignore[attr-defined]


def test_every_symbol_is_24_7_by_default() -> None:
    markets = load_settings().markets
    assert markets.calendar == "24/7" and markets.symbols == {}
    book = build_calendars(load_settings())
    assert isinstance(book.for_symbol("BTCUSDT"), AlwaysOpenCalendar)


def test_names_and_symbol_keys_are_made_canonical(tmp_path: Path) -> None:
    path = _config(
        tmp_path,
        "markets:\n  calendar: crypto\n  symbols:\n"
        "    eurusd: {calendar: FX}\n    AAPL: {calendar: nyse}\n    vod.l: {calendar: XLON}\n",
    )
    markets = load_settings(path).markets
    assert markets.calendar == "24/7"
    assert _calendars(markets.symbols) == {"EURUSD": "fx", "AAPL": "XNYS", "VOD.L": "XLON"}
    assert all(type(k) is Symbol for k in markets.symbols)


def test_an_unknown_calendar_names_the_key_and_the_closest_names(tmp_path: Path) -> None:
    path = _config(tmp_path, "markets:\n  symbols:\n    AAPL: {calendar: XNYZ}\n")
    with pytest.raises(ConfigError) as err:
        load_settings(path)
    message = str(err.value)
    assert "markets.symbols.AAPL.calendar" in message
    assert "unknown market calendar 'XNYZ'; did you mean XNYS" in message
    with pytest.raises(ConfigError, match=r"markets\.calendar: .*'24/8'; did you mean 24/7"):
        load_settings(_config(tmp_path, "markets:\n  calendar: 24/8\n"))
    with pytest.raises(ConfigError, match=r"'krypto'; did you mean crypto\?"):
        load_settings(_config(tmp_path, "markets:\n  calendar: krypto\n"))


def test_a_symbol_entry_needs_its_calendar(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"markets\.symbols\.AAPL\.calendar: Field required"):
        load_settings(_config(tmp_path, "markets:\n  symbols:\n    AAPL: {}\n"))


def test_one_symbol_spelt_twice_in_the_file_is_refused(tmp_path: Path) -> None:
    path = _config(
        tmp_path,
        "markets:\n  symbols:\n    AAPL: {calendar: XNYS}\n    aapl: {calendar: XLON}\n",
    )
    with pytest.raises(ConfigError, match="'AAPL' and 'aapl' name one symbol, AAPL"):
        load_settings(path)


def test_a_symbol_calendar_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DRL_TRADING_MARKETS__SYMBOLS__AAPL__CALENDAR", "XNYS")
    assert _calendars(load_settings().markets.symbols) == {"AAPL": "XNYS"}
    assert unknown_environment_variables() == ()  # a setting, not a stray variable
    # over the file's entry for the same symbol, next to the file's others
    path = _config(
        tmp_path,
        "markets:\n  symbols:\n    AAPL: {calendar: XLON}\n    EURUSD: {calendar: fx}\n",
    )
    assert _calendars(load_settings(path).markets.symbols) == {"AAPL": "XNYS", "EURUSD": "fx"}
    monkeypatch.setenv("DRL_TRADING_MARKETS__SYMBOLS__AAPL__CALENDAR", "XNYZ")
    with pytest.raises(ConfigError, match=r"markets\.symbols\.AAPL\.calendar: .*did you mean XNYS"):
        load_settings()


def test_the_book_gives_each_symbol_its_calendar_and_refuses_a_mix(tmp_path: Path) -> None:
    path = _config(
        tmp_path,
        "markets:\n  calendar: fx\n  symbols:\n    AAPL: {calendar: XNYS}\n"
        "    MSFT: {calendar: NYSE}\n    BTCUSDT: {calendar: 24/7}\n",
    )
    book = build_calendars(load_settings(path))
    assert isinstance(book.for_symbol("EURUSD"), FxCalendar)
    aapl = book.for_symbol("aapl")
    assert isinstance(aapl, ExchangeCalendarsCalendar) and aapl.name == "XNYS"
    assert book.for_symbol("MSFT") is aapl  # one instance (one schedule) per calendar
    assert book.for_symbols(["AAPL", "MSFT"]) is aapl
    assert book.for_symbols(["EURUSD", "GBPUSD"]).name == "fx"
    with pytest.raises(MixedCalendarsError) as err:
        book.for_symbols(["AAPL", "EURUSD", "BTCUSDT", "MSFT"])
    assert str(err.value).startswith(
        "symbols on different market calendars cannot go together "
        "(24/7: BTCUSDT; XNYS: AAPL, MSFT; fx: EURUSD)"
    )
    assert "markets.symbols.<SYMBOL>.calendar" in str(err.value)
    assert err.value.exit_code == EXIT_USAGE


def test_the_24_7_path_never_imports_exchange_calendars(tmp_path: Path) -> None:
    path = _config(tmp_path, "markets:\n  symbols:\n    EURUSD: {calendar: fx}\n")
    code = (
        "import sys\n"
        "from datetime import UTC, datetime\n"
        "from pathlib import Path\n"
        "from drl_trading.app.infrastructure import build_calendars\n"
        "from drl_trading.app.settings import load_settings\n"
        f"book = build_calendars(load_settings(Path({str(path)!r})))\n"
        "week = (datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 1, 9, tzinfo=UTC))\n"
        "assert len(book.for_symbol('EURUSD').sessions(*week)) == 7\n"
        "assert len(book.for_symbol('BTCUSDT').sessions(*week)) == 8\n"
        "print('exchange_calendars' in sys.modules)\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("DRL_TRADING_")}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    )
    assert out.stdout.strip() == "False"
