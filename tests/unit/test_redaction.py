"""Credentials inside URIs and connection strings are masked for display (issue 11, item 6):
each form a setting can take, and strings without a secret pass through unchanged."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from drl_trading.app.settings import ConfigError, load_settings
from drl_trading.cli.app import app
from drl_trading.common.redaction import is_secret_key, mask_mapping, mask_secrets


@pytest.mark.parametrize(
    ("raw", "masked"),
    [
        (
            "https://alice:s3cret@mlflow.example:5000/api",
            "https://alice:***@mlflow.example:5000/api",
        ),
        ("redis://:s3cret@cache:6379/0", "redis://:***@cache:6379/0"),
        (
            "postgresql://drl:s3cret@db:5432/drl?sslmode=require",
            "postgresql://drl:***@db:5432/drl?sslmode=require",
        ),
        ("http://u:p@ss@host/x", "http://u:***@host/x"),
        ("SASL_SSL://bob:s3cret@broker:9093", "SASL_SSL://bob:***@broker:9093"),
        ("cache:6379,password=s3cret,ssl=true", "cache:6379,password=***,ssl=true"),
        ("cache:6379,db=0,PASSWORD=s3cret", "cache:6379,db=0,PASSWORD=***"),
        ("host=db user=drl passwd=s3cret dbname=drl", "host=db user=drl passwd=*** dbname=drl"),
        ("host=db password='s3 cret' dbname=drl", "host=db password='***' dbname=drl"),
        ("Server=db;Uid=drl;Pwd=s3cret;", "Server=db;Uid=drl;Pwd=***;"),
        ("https://h/x?auth_token=s3cret&page=2", "https://h/x?auth_token=***&page=2"),
        ("https://h/x?a=1&client_secret=s3cret", "https://h/x?a=1&client_secret=***"),
        (
            'PlainLoginModule required username="bob" password="s3cret";',
            'PlainLoginModule required username="bob" password="***";',
        ),
    ],
)
def test_each_form_is_masked(raw: str, masked: str) -> None:
    assert mask_secrets(raw) == masked
    assert mask_secrets(masked) == masked


@pytest.mark.parametrize(
    "harmless",
    [
        "127.0.0.1:6379",
        "cache:6379,ssl=true,db=0",
        "http://127.0.0.1:5000",
        "https://mlflow.example/api?experiment=drl&page=2",
        "file:///home/drl/mlflow/artifacts",
        "sqlite:////home/drl/mlflow/mlflow.db",
        "git@github.com:org/repo.git",
        "alice@example.com",
        "models:/drl-example/1",
        "a password is never printed",
        "",
    ],
)
def test_harmless_strings_are_unchanged(harmless: str) -> None:
    assert mask_secrets(harmless) == harmless


def test_mappings_mask_strings_and_secret_named_keys() -> None:
    data = {
        "redis": "r:1,password=x",
        "params": {"api_key": "k1", "token": "", "tokens_per_bar": 3, "password_file": "/p"},
        "list": ["https://u:pw@h", 2, None],
        "masked": "**********",
        "sasl_password": "**********",
    }
    assert mask_mapping(data) == {
        "redis": "r:1,password=***",
        "params": {"api_key": "***", "token": "", "tokens_per_bar": 3, "password_file": "/p"},
        "list": ["https://u:***@h", 2, None],
        "masked": "**********",
        "sasl_password": "**********",
    }
    assert is_secret_key("sasl_password") and not is_secret_key("sasl_password_file")


def test_settings_keep_real_values_and_mask_only_the_dump(tmp_path: Path) -> None:
    s = load_settings(
        home=tmp_path,
        feature_store={"redis_connection_string": "cache:6379,password=redis-pw"},
        training={"registry": {"tracking_uri": "https://ml:ml-pw@mlflow.example"}},
    )
    assert s.feature_store.redis_connection_string == "cache:6379,password=redis-pw"
    assert s.mlflow_tracking_uri == "https://ml:ml-pw@mlflow.example"
    dump = s.masked_dump()
    assert dump["feature_store"]["redis_connection_string"] == "cache:6379,password=***"
    assert dump["training"]["registry"]["tracking_uri"] == "https://ml:***@mlflow.example"


def test_config_errors_do_not_echo_secrets(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("postgres:\n  password: [pg-pw]\n  port: 'db:5432,password=other-pw'\n")
    with pytest.raises(ConfigError) as info:
        load_settings(cfg)
    text = str(info.value)
    assert "postgres.password" in text and "postgres.port" in text
    assert "pg-pw" not in text and "other-pw" not in text


def test_config_show_masks_every_planted_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        "feature_store:\n  redis_connection_string: 'cache:6379,password=redis-pw,ssl=true'\n"
        "training:\n  registry:\n    tracking_uri: 'https://ml:mlflow-pw@mlflow.example'\n"
        "    artifact_location: 's3://bucket/a?X-Amz-Security-Token=artifact-pw'\n"
    )
    monkeypatch.setenv("DRL_TRADING_POSTGRES__PASSWORD", "postgres-pw")
    monkeypatch.setenv("DRL_TRADING_BUS__KAFKA__SASL_PASSWORD", "kafka-pw")
    monkeypatch.setenv(
        "DRL_TRADING_BUS__KAFKA__BOOTSTRAP_SERVERS", "SASL_SSL://k:kafka-uri-pw@b:9093"
    )
    result = CliRunner().invoke(
        app, ["--config", str(cfg), "--home", str(tmp_path), "config", "show"]
    )
    assert result.exit_code == 0, result.output
    out = result.output + (result.stderr if result.stderr_bytes is not None else "")
    for secret in (
        "redis-pw",
        "mlflow-pw",
        "artifact-pw",
        "postgres-pw",
        "kafka-pw",
        "kafka-uri-pw",
    ):
        assert secret not in out, secret
    assert "cache:6379,password=***,ssl=true" in out
    assert "https://ml:***@mlflow.example" in out


def test_log_lines_mask_credentials(capsys: pytest.CaptureFixture[str]) -> None:
    import structlog

    from drl_trading.common.logs import configure_logging

    configure_logging("INFO")
    structlog.get_logger("test").warning(
        "connect failed", error="redis://:hunter2@127.0.0.1:6379/0 refused", dsn="password=s3cr3t"
    )
    err = capsys.readouterr().err
    assert "connect failed" in err and "127.0.0.1:6379" in err
    assert "hunter2" not in err and "s3cr3t" not in err
