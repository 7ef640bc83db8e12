"""How a failed command is reported (issue 11, "no tracebacks for user errors"): the mapping of
exceptions to one line and an exit code, the guard around every command, and the log file that
keeps the tracebacks (rotating, masked, with a fallback when the home's cannot be written)."""

from __future__ import annotations

import errno
import logging
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog
import typer
from typer.testing import CliRunner

from drl_trading.app.settings import ConfigError
from drl_trading.cli.errors import DEFAULT_INTERRUPT_HINT, GuardedGroup, describe, report
from drl_trading.common.errors import (
    EXIT_FAILURE,
    EXIT_INTERRUPTED,
    EXIT_TERMINATED,
    EXIT_USAGE,
    BusConnectionError,
    CommandInterruptedError,
    ExchangeUnreachableError,
    HomeInUseError,
    OperatorError,
    Terminated,
    UsageError,
)
from drl_trading.common.logs import (
    configure_logging,
    current_log_file,
    fallback_log_file,
    home_log_file,
    log_traceback,
)
from drl_trading.common.model_registry import InvalidModelReferenceError, parse_model_ref


@pytest.fixture(autouse=True)
def _logging_reset(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Each test starts without a log file, with the temporary folder under ``tmp_path``, and
    leaves the console-only logging of the other tests behind it."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    configure_logging("WARNING")
    yield
    configure_logging("WARNING")


def test_each_kind_of_failure_has_its_code_and_one_line() -> None:
    ctrl_c = describe(KeyboardInterrupt(), "ingest")
    assert ctrl_c.exit_code == EXIT_INTERRUPTED == 130
    assert ctrl_c.message.startswith("interrupted (Ctrl-C): ")
    assert "rerun the same command to continue" in ctrl_c.message
    assert describe(KeyboardInterrupt(), "unknown").message.endswith(DEFAULT_INTERRUPT_HINT)
    sigterm = describe(Terminated(), "ingest")
    assert sigterm.exit_code == EXIT_TERMINATED == 143
    assert sigterm.message.startswith("interrupted (SIGTERM): ")
    in_use = describe(HomeInUseError(Path("/h/market.duckdb"), "PID 7"))
    assert in_use.exit_code == EXIT_FAILURE and not in_use.internal
    assert "/h/market.duckdb is in use by another drl-trading process (PID 7)" in in_use.message
    assert "another --home" in in_use.message
    assert describe(UsageError("bad flag")).exit_code == EXIT_USAGE
    assert describe(ConfigError("bad key")).exit_code == EXIT_USAGE
    assert describe(CommandInterruptedError("stopped")).exit_code == EXIT_INTERRUPTED
    denied = describe(PermissionError(errno.EACCES, "Permission denied", "/h/x"))
    assert denied.message.startswith("permission denied: /h/x;") and not denied.internal
    full = describe(OSError(errno.ENOSPC, "No space left on device", "/h/y"))
    assert "no space left on the device for /h/y" in full.message and not full.internal
    bug = describe(LookupError("x\n  y"))
    assert bug.internal and bug.exit_code == EXIT_FAILURE
    assert bug.message == "internal error: LookupError: x y"


def test_environment_errors_name_the_place_and_what_to_do() -> None:
    exchange = ExchangeUnreachableError("binance", "http://127.0.0.1:9/api", "Connection refused")
    assert "cannot reach exchange binance at http://127.0.0.1:9/api: Connection refused" in str(
        exchange
    )
    assert "ingest.ccxt.base_url" in str(exchange)
    auth = BusConnectionError("b:9092", "SASL handshake failed", authentication=True)
    assert "Kafka broker b:9092: authentication failed" in str(auth) and "sasl_username" in str(
        auth
    )
    down = BusConnectionError("b:9092", "Connection refused", authentication=False)
    assert "connection failed" in str(down) and "bootstrap_servers" in str(down)
    assert all(isinstance(e, OperatorError) for e in (exchange, auth, down))


def test_a_malformed_model_reference_is_a_usage_error_naming_the_forms() -> None:
    with pytest.raises(InvalidModelReferenceError) as caught:
        parse_model_ref("drl-example/abc")
    assert isinstance(caught.value, ValueError)  # callers that catch ValueError still do
    assert describe(caught.value).exit_code == EXIT_USAGE
    assert "version 'abc' is not a number" in str(caught.value)
    assert "NAME/<version number>" in str(caught.value)
    with pytest.raises(InvalidModelReferenceError, match="reserved"):
        parse_model_ref("m@latest")
    assert parse_model_ref("models:/m/3").version == "3"


def test_report_prints_one_line_and_logs_the_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log_file = home_log_file(tmp_path / "home")
    assert configure_logging("WARNING", log_file=log_file) == log_file
    try:
        raise RuntimeError("redis://:hunter2@cache:6379 exploded")
    except RuntimeError as exc:
        code = report(exc, "train")
    assert code == EXIT_FAILURE
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "internal error: RuntimeError: redis://:***@cache:6379 exploded" in err
    assert f"(traceback written to {log_file})" in " ".join(err.split())
    text = log_file.read_text()
    assert "Traceback (most recent call last)" in text and "train: internal error" in text
    assert "hunter2" not in text and "hunter2" not in err


def test_a_user_error_is_one_line_without_the_log_path(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging("WARNING", log_file=home_log_file(tmp_path / "home"))
    code = report(HomeInUseError(tmp_path / "market.duckdb"), "ingest")
    err = capsys.readouterr().err
    assert code == EXIT_FAILURE and err.startswith("error: ") and err.count("\n") == 1
    assert "traceback written" not in err
    assert "HomeInUseError" in home_log_file(tmp_path / "home").read_text()


def test_without_a_home_the_traceback_goes_to_the_temporary_folder(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert current_log_file() is None
    code = report(ValueError("early"), None)
    err = " ".join(capsys.readouterr().err.split())
    assert code == EXIT_FAILURE
    assert f"(traceback written to {fallback_log_file()}: the home's log was not available)" in err
    assert "ValueError: early" in fallback_log_file().read_text()


def test_an_unwritable_home_log_falls_back_and_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "home"
    blocker.write_text("a file where the logs folder would go")
    used = configure_logging("WARNING", log_file=blocker / "logs" / "drl-trading.log")
    assert used == fallback_log_file()
    err = capsys.readouterr().err
    assert "cannot write the log file" in err and str(fallback_log_file()) in err


def test_the_file_keeps_the_tracebacks_the_console_one_line_each(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log_file = tmp_path / "logs" / "drl-trading.log"
    configure_logging("WARNING", log_file=log_file)
    log = structlog.get_logger("test")
    log.info("below the level")  # the file keeps the console's level (no cost on hot paths)
    log.warning("connect failed", dsn="postgresql://u:s3cr3t@db/x")
    logging.getLogger("some.library").warning("library says %s", "hello")
    empty: dict[str, int] = {}
    try:
        empty["missing"]
    except KeyError:
        log.warning("lookup failed", exc_info=True)
    err = capsys.readouterr().err
    assert "library says hello" in err and "postgresql://u:***@db/x" in err
    assert "lookup failed" in err and "error=\"KeyError: 'missing'\"" in err
    assert "Traceback" not in err and "s3cr3t" not in err
    text = log_file.read_text()
    assert "below the level" not in text and "below the level" not in err
    assert "postgresql://u:***@db/x" in text and "s3cr3t" not in text
    assert "library says hello" in text
    assert "Traceback (most recent call last)" in text and "KeyError: 'missing'" in text
    configure_logging("INFO", log_file=log_file)
    log.info("at info now")
    assert "at info now" in capsys.readouterr().err and "at info now" in log_file.read_text()


def test_log_traceback_writes_to_the_file_only(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log_file = tmp_path / "drl-trading.log"
    configure_logging("WARNING", log_file=log_file)
    assert log_traceback("quiet", ValueError("v")) == log_file
    assert capsys.readouterr().err == ""
    assert "ValueError: v" in log_file.read_text()


def _guarded_app() -> typer.Typer:
    app = typer.Typer(cls=GuardedGroup, pretty_exceptions_enable=False)

    @app.callback()
    def root() -> None:
        pass

    @app.command()
    def interrupt() -> None:
        raise KeyboardInterrupt

    @app.command()
    def bug() -> None:
        raise ZeroDivisionError("division by zero")

    @app.command()
    def in_use() -> None:
        raise HomeInUseError(Path("/h/market.duckdb"))

    @app.command()
    def exits() -> None:
        raise typer.Exit(3)

    @app.command()
    def bad(n: int = typer.Option(1, min=1)) -> None:
        pass

    return app


@pytest.mark.parametrize(
    ("args", "code", "phrase"),
    [
        (["interrupt"], 130, "interrupted (Ctrl-C): rerun the same command"),
        (["bug"], 1, "internal error: ZeroDivisionError: division by zero (traceback written"),
        (["in-use"], 1, "error: /h/market.duckdb is in use by another drl-trading process"),
        (["exits"], 3, ""),
        (["bad", "--n", "0"], 2, "Invalid value for '--n'"),
    ],
)
def test_the_guard_maps_what_escapes_a_command(args: list[str], code: int, phrase: str) -> None:
    result = CliRunner().invoke(_guarded_app(), args)
    assert result.exit_code == code, result.output
    assert phrase in " ".join(result.output.split())
    assert "Traceback" not in result.output


def test_a_broker_that_does_not_answer_fails_within_the_connect_timeout() -> None:
    import socket

    from drl_trading.common.adapter.kafka_bus import KafkaBus, KafkaOptions

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    bus = KafkaBus(KafkaOptions(bootstrap_servers=f"127.0.0.1:{port}", connect_timeout_s=1.0))
    with pytest.raises(BusConnectionError) as caught:
        bus.ensure_topics(["t"])
    assert not caught.value.authentication
    assert f"Kafka broker 127.0.0.1:{port}: connection failed" in str(caught.value)
    assert "bootstrap_servers" in str(caught.value)


def test_tracebacks_reach_the_file_at_any_level(tmp_path: Path) -> None:
    log_file = tmp_path / "drl-trading.log"
    configure_logging("ERROR", log_file=log_file)
    structlog.get_logger("test").warning("below ERROR")
    log_traceback("interrupted", KeyboardInterrupt(), logging.WARNING)
    text = log_file.read_text()
    assert "below ERROR" not in text
    assert "interrupted" in text and "KeyboardInterrupt" in text


def test_sigterm_raises_terminated_where_it_arrives(monkeypatch: pytest.MonkeyPatch) -> None:
    """The handler the CLI installs turns SIGTERM into a KeyboardInterrupt (so commands stop as
    on Ctrl-C), and leaves a handling someone else chose alone."""
    import os
    import signal

    from drl_trading.cli.app import install_sigterm_handler

    previous = signal.getsignal(signal.SIGTERM)
    try:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        install_sigterm_handler()
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_IGN
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        install_sigterm_handler()
        with pytest.raises(Terminated):  # noqa: PT012 - the handler runs at the next statement
            os.kill(os.getpid(), signal.SIGTERM)
            signal.sigtimedwait([], 0)
    finally:
        signal.signal(signal.SIGTERM, previous)
