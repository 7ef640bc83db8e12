"""``execution.live`` and the live broker's composition: what is refused before anything is
sent (a literal key, an unsupported exchange or market, a real account unconfirmed, missing
credentials), where credentials are read from, the exchange URLs, and that no credential shows
in ``config show``."""

from __future__ import annotations

from pathlib import Path

import ccxt
import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from drl_trading.app.live_broker import (
    REAL_MONEY_FLAG,
    Credentials,
    LiveAccountError,
    broker_settings,
    build_exchange,
    check_account,
    read_credentials,
)
from drl_trading.app.settings import ConfigError, load_settings, unknown_environment_variables
from drl_trading.cli.commands import app
from drl_trading.execution.core.config import LiveSettings

KEY = "Zq8uR2literalKEYvalue0123456789abcdefABCDEF"


@pytest.mark.parametrize("key", ["api_key", "secret", "apiKey"])
def test_a_literal_credential_in_the_config_is_refused_naming_where_it_goes(
    tmp_path: Path, key: str
) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"execution:\n  live:\n    {key}: {KEY}\n")
    with pytest.raises(ConfigError) as info:
        load_settings(cfg)
    text = str(info.value)
    assert "never read from the configuration" in text
    assert "DRL_TRADING_EXCHANGE_API_KEY" in text and "api_key_file" in text
    assert KEY not in text


def test_a_key_given_as_the_variable_name_is_refused() -> None:
    with pytest.raises(ValidationError, match="must name an environment variable") as info:
        LiveSettings(api_key_env=KEY)
    assert "not hold a key" in str(info.value)


def test_unknown_exchange_is_refused_listing_the_supported() -> None:
    with pytest.raises(ValidationError, match=r"'kraken' is not supported.*supported: binance"):
        LiveSettings(exchange="kraken")


def test_futures_take_a_leverage_and_spot_refuses_one() -> None:
    assert LiveSettings(market="futures", leverage=3).leverage == 3
    with pytest.raises(ValidationError, match="market: futures only"):
        LiveSettings(leverage=3)
    with pytest.raises(ValidationError, match="less than or equal to 125"):
        LiveSettings(market="futures", leverage=200)
    with pytest.raises(ValidationError, match="'spot' or 'futures'"):
        LiveSettings(market="margin")  # type: ignore[arg-type]


def test_a_real_account_needs_the_confirmation() -> None:
    check_account(LiveSettings())  # the sandbox needs none
    with pytest.raises(LiveAccountError, match="would trade real money") as info:
        check_account(LiveSettings(sandbox=False))
    assert "confirm_real_account" in str(info.value) and REAL_MONEY_FLAG in str(info.value)
    check_account(LiveSettings(sandbox=False, confirm_real_account=True))
    with pytest.raises(LiveAccountError):  # building the client checks it too
        build_exchange(LiveSettings(sandbox=False), Credentials("k", "s"))


def test_credentials_come_from_the_environment_or_files(tmp_path: Path) -> None:
    env = {"DRL_TRADING_EXCHANGE_API_KEY": "env-key", "DRL_TRADING_EXCHANGE_SECRET": "env-sec"}
    assert read_credentials(LiveSettings(), env) == Credentials("env-key", "env-sec")
    (tmp_path / "key").write_text("file-key\n")
    (tmp_path / "secret").write_text("file-sec\n")
    files = LiveSettings(api_key_file=tmp_path / "key", secret_file=tmp_path / "secret")
    assert read_credentials(files, env) == Credentials("file-key", "file-sec")
    assert "file-key" not in repr(read_credentials(files, env))
    custom = LiveSettings(api_key_env="MY_KEY", secret_env="MY_SECRET")
    with pytest.raises(LiveAccountError, match="set the environment variable MY_KEY"):
        read_credentials(custom, env)
    with pytest.raises(LiveAccountError, match="cannot be read"):
        read_credentials(LiveSettings(api_key_file=tmp_path / "missing"), env)


def test_the_exchange_client_on_the_sandbox_and_a_local_url() -> None:
    sandbox = build_exchange(LiveSettings(), Credentials("k", "s"))
    assert all("testnet" in str(u) for u in sandbox.urls["api"].values() if "/api/" in str(u))
    local = build_exchange(LiveSettings(api_url="http://127.0.0.1:9999"), Credentials("k", "s"))
    urls = [str(u) for u in local.urls["api"].values()]
    assert urls and all(u.startswith("http://127.0.0.1:9999/") for u in urls)
    assert local.apiKey == "k" and local.options["fetchMarkets"]["types"] == ["spot"]


def test_the_futures_client_is_binanceusdm_on_its_test_network_or_a_local_url() -> None:
    futures = LiveSettings(market="futures", leverage=2)
    sandbox = build_exchange(futures, Credentials("k", "s"))
    assert sandbox.id == "binanceusdm" and sandbox.options["fetchMarkets"]["types"] == ["linear"]
    assert "testnet.binancefuture.com" in sandbox.urls["api"]["fapiPrivate"]
    local = build_exchange(
        futures.model_copy(update={"api_url": "http://127.0.0.1:9999"}), Credentials("k", "s")
    )
    assert local.urls["api"]["fapiPrivateV3"] == "http://127.0.0.1:9999/fapi/v3"
    assert local.exceptions["exact"]["-2019"] is ccxt.InsufficientFunds  # off the fapi host
    settings = broker_settings(futures, [])
    assert (settings.market_type, settings.leverage) == ("futures", 2)


def test_config_show_holds_no_credential(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DRL_TRADING_EXCHANGE_API_KEY", KEY)
    monkeypatch.setenv("DRL_TRADING_EXCHANGE_SECRET", KEY + "-secret")
    result = CliRunner().invoke(app, ["--home", str(tmp_path), "config", "show"])
    assert result.exit_code == 0, result.output
    assert KEY not in result.output
    assert "DRL_TRADING_EXCHANGE_API_KEY" in result.output  # the variable's name only
    # the default credential variables are known: no "unknown variable" warning for them
    names = {u.name for u in unknown_environment_variables()}
    assert not names & {"DRL_TRADING_EXCHANGE_API_KEY", "DRL_TRADING_EXCHANGE_SECRET"}


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["--market", "margin"], "'spot' or 'futures'"),
        (["--leverage", "3"], "market: futures only"),
        (["--exchange", "kraken"], "supported: binance"),
        (["--no-sandbox"], "would trade real money"),
        (["--no-sandbox", REAL_MONEY_FLAG, "--source", "replay"], "only on a sandbox"),
    ],
)
def test_live_refuses_before_anything_starts(tmp_path: Path, args: list[str], said: str) -> None:
    result = CliRunner().invoke(
        app, ["--home", str(tmp_path), "live", "-s", "BTCUSDT", *args], catch_exceptions=False
    )
    assert result.exit_code == 2, result.output
    assert said in " ".join(result.output.split())
    assert not (tmp_path / "paper").exists()
