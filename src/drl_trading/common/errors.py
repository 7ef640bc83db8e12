"""Errors meant for the person who ran a command, shared by every layer.

An adapter that meets a failure the user can act on (a store another process holds, an exchange
or broker that cannot be reached, a malformed argument) raises one of these with a message that
names the problem and what to do; the CLI prints that message on one line, writes the traceback
to its log file only, and exits with the error's `OperatorError.exit_code`. They live in the
kernel so that adapters raise them and the CLI catches them without importing any adapter.
Anything else that escapes a command is an internal error (a bug): the CLI says so and where
its traceback was written.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import ClassVar, Literal

from drl_trading.common.redaction import mask_secrets

EXIT_FAILURE = 1
"""A command that could not do its work: the environment (a store in use, a server down) or
the data (nothing stored), or an internal error."""
EXIT_USAGE = 2
"""Arguments or configuration the command cannot run with; nothing was done."""
EXIT_INTERRUPTED = 130
"""Ctrl-C (128 + SIGINT, the shells' convention)."""
EXIT_TERMINATED = 143
"""SIGTERM (128 + 15): ``docker stop``, systemd, ``kill PID``."""


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where Python raises a Ctrl-C's KeyboardInterrupt (the CLI installs the
    handler), so that every command stops on ``docker stop`` or ``kill PID`` the way it stops on
    Ctrl-C: the open transaction rolled back, a paper session's report written, one line and
    exit 143 instead of dying mid-write."""


_terminated = threading.Event()
"""Set once SIGTERM arrived in this process (signals are process-wide, so is this record)."""


def note_terminated() -> Terminated:
    """Record that SIGTERM arrived and return the `Terminated` to raise. A library that turns
    the interrupt into its own error (DuckDB: ``RuntimeError("Query interrupted")``) loses which
    signal it was; `pending_interrupt` recovers it from this record."""
    _terminated.set()
    return Terminated("SIGTERM")


def pending_interrupt() -> KeyboardInterrupt:
    """The interrupt to raise again where a library swallowed one: `Terminated` once SIGTERM
    arrived, else a Ctrl-C's KeyboardInterrupt."""
    return Terminated("SIGTERM") if _terminated.is_set() else KeyboardInterrupt()


def interrupt_name(exc: BaseException) -> str:
    """How the user stopped the command, for its message: ``SIGTERM`` or ``Ctrl-C``."""
    return "SIGTERM" if isinstance(exc, Terminated) else "Ctrl-C"


class OperatorError(Exception):
    """A failure whose message is complete for the user: the problem and what to do."""

    exit_code: ClassVar[int] = EXIT_FAILURE


class UsageError(OperatorError):
    """An argument or setting the command cannot work with."""

    exit_code: ClassVar[int] = EXIT_USAGE


class UnavailableError(OperatorError):
    """Something outside this process that the command needs cannot be used now; rerunning
    once it is back (or free) works."""


class HomeInUseError(UnavailableError):
    """An embedded store of the home is held by another process (DuckDB allows one writing
    process per file)."""

    def __init__(self, path: Path, detail: str = "") -> None:
        self.path = path
        self.detail = detail
        held = f" ({detail})" if detail else ""
        super().__init__(
            f"{path} is in use by another drl-trading process{held}; wait for it to finish "
            "(or stop it), use another --home, or run the distributed stack (PostgreSQL store, "
            "docs/distributed.md) to share the data between processes"
        )


class ServiceUnreachableError(UnavailableError):
    """A server or exchange the command talks to did not answer or refused the connection."""


class ExchangeUnreachableError(ServiceUnreachableError):
    """The exchange's API could not be reached (DNS, refused connection, timeouts, outage)."""

    def __init__(self, exchange: str, url: str, reason: str) -> None:
        self.exchange = exchange
        self.url = url
        self.reason = reason
        super().__init__(
            f"cannot reach exchange {exchange} at {url}: {reason}; check the network "
            "connection (and any proxy), ingest.ccxt.base_url and that the exchange is up, then "
            "rerun"
        )


class ExchangeRequestError(OperatorError):
    """The exchange answered, refusing the request (unknown market, bad parameters, a
    restriction on this client)."""

    def __init__(self, exchange: str, reason: str) -> None:
        self.exchange = exchange
        self.reason = reason
        super().__init__(
            f"exchange {exchange} refused the request: {reason}; check the symbol, the range "
            "and ingest.ccxt settings"
        )


class ExchangeAccountError(OperatorError):
    """The exchange refused the trading account: credentials rejected, or the key lacks a
    permission the broker needs (spot trading, this IP). Nothing was sent after it."""

    def __init__(self, exchange: str, reason: str, remedy: str | None = None) -> None:
        self.exchange = exchange
        self.reason = mask_secrets(reason)
        remedy = remedy or (
            "check the API key and secret (environment or key files) and the key's permissions "
            "(spot or futures trading enabled, IP allow-list), then rerun"
        )
        super().__init__(
            f"exchange {exchange} refused the trading account: {self.reason}; {remedy}"
        )


class ExchangeUnavailableError(ServiceUnreachableError):
    """The exchange did not answer an order-path call (placing, looking up, cancelling orders,
    balances) within the broker's retries; an order's state may be unknown until the next start
    reconciles it with the exchange."""

    def __init__(self, exchange: str, call: str, attempts: int, reason: str) -> None:
        self.exchange = exchange
        self.call = call
        self.attempts = attempts
        self.reason = mask_secrets(reason)
        super().__init__(
            f"exchange {exchange} did not answer {call} after {attempts} attempts: {self.reason}; "
            "check the network and the exchange's status page, then restart (open orders are "
            "looked up by client order id, so nothing is placed twice)"
        )


class BusConnectionError(ServiceUnreachableError):
    """The message bus' brokers could not be reached, or refused this client's credentials."""

    def __init__(self, brokers: str, reason: str, *, authentication: bool) -> None:
        self.brokers = brokers
        self.reason = reason
        self.authentication = authentication
        check = (
            "check bus.kafka.security_protocol, sasl_mechanism, sasl_username and the password "
            "(DRL_TRADING_BUS__KAFKA__SASL_PASSWORD or sasl_password_file) against the broker's "
            "listener"
            if authentication
            else "check bus.kafka.bootstrap_servers, security_protocol and that the broker runs "
            "(bash scripts/stack.sh status)"
        )
        what = "authentication failed" if authentication else "connection failed"
        super().__init__(f"Kafka broker {brokers}: {what}: {reason}; {check}")


ServerProblem = Literal["unreachable", "credentials", "refused"]
"""How a server failed a client: it did not answer (down, wrong host or port, a network cut),
refused this client's credentials, or answered refusing the connection for another reason (a
database that does not exist, too many connections)."""

_PROBLEM_WORDS: dict[str, str] = {
    "unreachable": "is unreachable",
    "credentials": "refused the credentials",
    "refused": "refused the connection",
}
STACK_STATUS = "bash scripts/stack.sh status"
"""The command that tells which servers of the local stack run (docs/distributed.md)."""


class ServerConnectionError(ServiceUnreachableError):
    """A server of the distributed deployment (PostgreSQL, the Redis online store, the MLflow
    tracking server) did not answer or refused this client. Its one line names the server by
    address (``host:port``, or the URI with its password masked), the problem and the settings
    to check. ``retryable`` and ``unavailable`` are true: a bus handler that meets it waits for
    the server (`drl_trading.common.retry`) instead of dead-lettering good messages."""

    retryable: ClassVar[bool] = True
    unavailable: ClassVar[bool] = True
    server: ClassVar[str] = "server"
    """What the server is, as the message names it."""
    unreachable_check: ClassVar[str] = "its address in the settings"
    """The settings to check when it does not answer (after that it runs: `STACK_STATUS`)."""
    credentials_check: ClassVar[str] = "the credentials in the settings"
    """The settings to check when it refuses the credentials."""

    def __init__(self, address: str, reason: str, problem: ServerProblem = "unreachable") -> None:
        self.address = mask_secrets(address)
        self.reason = mask_secrets(" ".join(reason.split())).rstrip(".")
        self.problem = problem
        if problem == "credentials":
            check = self.credentials_check
        elif problem == "refused":
            check = self.unreachable_check
        else:
            check = f"that it runs ({STACK_STATUS}) and {self.unreachable_check}"
        super().__init__(
            f"{self.server} {self.address} {_PROBLEM_WORDS[problem]}: {self.reason}; check {check}"
        )


class DatabaseConnectionError(ServerConnectionError):
    """The PostgreSQL server (market data, execution store) cannot be used: not answering,
    refusing the credentials, or the connection lost mid-call (the next call reconnects)."""

    server: ClassVar[str] = "PostgreSQL server"
    unreachable_check: ClassVar[str] = "postgres.host, postgres.port and postgres.dbname"
    credentials_check: ClassVar[str] = (
        "postgres.user and the password (DRL_TRADING_POSTGRES__PASSWORD, postgres.password or "
        "postgres.password_file)"
    )


class OnlineStoreConnectionError(ServerConnectionError):
    """The Redis online store of the feature store cannot be used."""

    server: ClassVar[str] = "Redis online store"
    unreachable_check: ClassVar[str] = (
        "feature_store.redis_connection_string (host:port) and feature_store.online_store"
    )
    credentials_check: ClassVar[str] = (
        "the password and username options of feature_store.redis_connection_string"
    )


class TrackingServerConnectionError(ServerConnectionError):
    """The MLflow tracking server (model registry, experiment runs) cannot be used."""

    server: ClassVar[str] = "MLflow tracking server"
    unreachable_check: ClassVar[str] = "training.registry.tracking_uri"
    credentials_check: ClassVar[str] = (
        "the user:password@ of training.registry.tracking_uri (or MLFLOW_TRACKING_USERNAME, "
        "MLFLOW_TRACKING_PASSWORD, MLFLOW_TRACKING_TOKEN)"
    )


class CommandInterruptedError(OperatorError):
    """Ctrl-C, reported with what had been done and what a rerun does."""

    exit_code: ClassVar[int] = EXIT_INTERRUPTED


class CommandTerminatedError(CommandInterruptedError):
    """SIGTERM, reported like a Ctrl-C (`CommandInterruptedError`) with its own exit code."""

    exit_code: ClassVar[int] = EXIT_TERMINATED
