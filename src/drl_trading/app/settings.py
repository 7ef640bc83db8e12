"""Application settings: one typed, frozen model, loaded from YAML plus ``DRL_TRADING_*`` variables.

Precedence, highest first: values passed by the CLI, environment variables (nested keys joined by
``__``, e.g. ``DRL_TRADING_INGEST__VALIDATION__POLICY=quarantine``), the YAML file, defaults.
Unknown keys are errors, so a typo in a config file is reported instead of ignored; an environment
variable can only be warned about (`warn_unknown_environment_variables`), since the environment
also holds variables meant for other programs.
"""

from __future__ import annotations

import difflib
import functools
import json
import os
from collections.abc import Mapping
from contextvars import ContextVar
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import structlog
import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
)

from drl_trading.app.settings_tree import (
    SettingNode,
    UnknownVariable,
    unknown_variables,
    variable_name,
    walk,
)
from drl_trading.common.domain import Symbol, Timeframe
from drl_trading.common.redaction import MASK, is_secret_key, mask_mapping, mask_secrets
from drl_trading.execution.core.config import (
    DEFAULT_API_KEY_ENV,
    DEFAULT_SECRET_ENV,
    ExecutionSettings,
)
from drl_trading.inference.core.config import InferenceSettings
from drl_trading.ingest.core.config import IngestSettings
from drl_trading.preprocess.core.config import PreprocessSettings
from drl_trading.training.core.config import TrainingSettings
from drl_trading.training.core.tuning_config import TuningSettings

_FROZEN = ConfigDict(frozen=True, extra="forbid")
_YAML_DATA: ContextVar[dict[str, Any] | None] = ContextVar("_YAML_DATA", default=None)
ENV_PREFIX = "DRL_TRADING_"
ENV_DELIMITER = "__"
"""Nested keys in variable names: ``DRL_TRADING_INGEST__VALIDATION__POLICY``."""
CLI_VARIABLES = (
    "DRL_TRADING_HOME",
    "DRL_TRADING_CONFIG",
    DEFAULT_API_KEY_ENV,
    DEFAULT_SECRET_ENV,
)
"""``DRL_TRADING_*`` variables the CLI reads itself (`drl_trading.cli.app`: ``--home`` and
``--config``; ``DRL_TRADING_HOME`` is also the ``home`` setting) and the default credential
variables of ``execution.live`` (`app.live_broker`)."""


class KafkaSettings(BaseModel):
    """Kafka client settings. Secrets come from the environment
    (``DRL_TRADING_BUS__KAFKA__SASL_PASSWORD``) or a file (``sasl_password_file``) and are never
    printed (`config show` masks them)."""

    model_config = _FROZEN
    bootstrap_servers: str = Field("127.0.0.1:9092", description="Brokers, host:port[,host:port].")
    namespace: str = Field("", description="Prefix of every topic and consumer-group name.")
    replication_factor: int = Field(1, ge=1, description="For topics created at start.")
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        "PLAINTEXT", description="How clients talk to the brokers."
    )
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = Field(
        None, description="SASL mechanism, with a SASL_* security_protocol."
    )
    sasl_username: str | None = Field(None, description="SASL user.")
    sasl_password: SecretStr | None = Field(None, description="SASL password (masked).")
    sasl_password_file: Path | None = Field(
        None, description="File holding the SASL password, read when sasl_password is unset."
    )
    ssl_ca_location: Path | None = Field(None, description="CA certificate file for SSL.")
    linger_ms: int = Field(0, ge=0, description="Producer batching delay; 0 sends at once.")
    fetch_wait_max_ms: int = Field(5, ge=0, description="Broker wait for a fetch to fill.")
    poll_timeout_s: float = Field(0.05, gt=0, description="Consumer wait per poll.")
    max_poll_interval_ms: int = Field(
        300_000,
        ge=10_000,
        description="Longest handler before the consumer is deemed stuck and leaves its group "
        "(the training worker, whose handler is a whole run, uses at least 4 hours).",
    )
    message_timeout_ms: int = Field(
        120_000, ge=1_000, description="How long a producer resends (broker restarts)."
    )
    client_id: str = Field("drl-trading", description="Client id the brokers log.")

    def security(self) -> dict[str, str]:
        """librdkafka security settings, secrets resolved (never log the result)."""
        out: dict[str, str] = {"security.protocol": self.security_protocol}
        if self.sasl_mechanism:
            out["sasl.mechanism"] = self.sasl_mechanism
        if self.sasl_username:
            out["sasl.username"] = self.sasl_username
        password = self.sasl_password.get_secret_value() if self.sasl_password else None
        if password is None and self.sasl_password_file is not None:
            password = self.sasl_password_file.read_text().strip()
        if password is not None:
            out["sasl.password"] = password
        if self.ssl_ca_location is not None:
            out["ssl.ca.location"] = str(self.ssl_ca_location)
        return out


class BusSettings(BaseModel):
    model_config = _FROZEN
    kind: Literal["memory", "kafka"] = Field(
        "memory", description="memory: in-process (embedded); kafka: the distributed bus."
    )
    partitions: int = Field(4, ge=1, description="Partitions per topic; keys hash onto them.")
    max_attempts: int = Field(3, ge=1, description="Deliveries before a message is dead-lettered.")
    retry_backoff_s: float = Field(0.0, ge=0, description="First retry delay; doubles each time.")
    kafka: KafkaSettings = KafkaSettings()


class PostgresSettings(BaseModel):
    """The distributed deployment's database (market data; trades and portfolio later). The
    password comes from ``DRL_TRADING_POSTGRES__PASSWORD`` or ``password_file`` and is masked."""

    model_config = _FROZEN
    host: str = Field("127.0.0.1", description="Server host.")
    port: int = Field(5432, description="Server port.")
    user: str = Field("drl", description="Database user.")
    password: SecretStr = Field(
        SecretStr("drl"), description="Database password (masked; the local stack's by default)."
    )
    password_file: Path | None = Field(
        None, description="File holding the password; read instead of password when set."
    )
    dbname: str = Field("drl", description="Database name.")
    schema_name: str = Field("public", description="Schema holding the tables (search_path).")
    sslmode: Literal["disable", "allow", "prefer", "require", "verify-ca", "verify-full"] = Field(
        "prefer", description="libpq TLS mode."
    )
    migrate_on_start: bool = Field(True, description="Apply pending migrations when opening.")

    def dsn(self) -> str:
        """A libpq connection string with the secret resolved (never log it)."""
        from psycopg.conninfo import make_conninfo

        password = (
            self.password_file.read_text().strip()
            if self.password_file is not None
            else self.password.get_secret_value()
        )
        return make_conninfo(
            host=self.host,
            port=self.port,
            user=self.user,
            password=password,
            dbname=self.dbname,
            sslmode=self.sslmode,
            application_name="drl-trading",
        )


class MarketDataSettings(BaseModel):
    model_config = _FROZEN
    kind: Literal["duckdb", "memory", "postgres"] = Field(
        "duckdb",
        description="duckdb: a file under home (embedded); memory: tests; postgres: distributed.",
    )
    path: Path | None = Field(None, description="DuckDB file; default <home>/market.duckdb")
    write_behind_ms: float = Field(
        1000.0,
        ge=0,
        description=(
            "Stage small (live) writes and store them when idle or after this long; 0 writes "
            "each at once. A crash loses at most this much, recovered by the next gap fill."
        ),
    )


class FeatureStoreSettings(BaseModel):
    model_config = _FROZEN
    kind: Literal["feast", "memory"] = Field(
        "feast", description="feast: Parquet offline store and an online store; memory: tests."
    )
    repo_dir: Path | None = Field(None, description="Feast registry; default <home>/feast")
    data_dir: Path | None = Field(None, description="Offline Parquet; default <home>/features")
    online_store: Literal["sqlite", "redis"] = Field(
        "sqlite", description="sqlite (embedded, under repo_dir) or redis (distributed)."
    )
    redis_connection_string: str = Field(
        "127.0.0.1:6379", description="Feast's Redis connection string (host:port[,ssl=true...])."
    )
    project: str = Field(
        "drl_trading", description="Feast project: namespaces the online store's keys."
    )


class LoggingSettings(BaseModel):
    model_config = _FROZEN
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "WARNING", description="Lowest level logged (--log-level overrides it)."
    )
    json_output: bool = Field(False, description="One JSON object per line instead of text.")


BUILTIN_CALENDARS = {"24/7": "24/7", "always-open": "24/7", "crypto": "24/7", "fx": "fx"}
"""The calendars drl-trading defines itself (aliases to their names); every other name is
exchange_calendars'."""


@functools.cache
def _exchange_calendar_names() -> dict[str, str]:
    """exchange_calendars' names and aliases, upper-cased, to canonical names (imports the
    library, about 0.3 s: only when a name that is not built in is validated)."""
    from drl_trading.common.adapter.exchange_calendars_calendar import exchange_calendar_names

    return {name.upper(): canonical for name, canonical in exchange_calendar_names().items()}


def calendar_name(value: str) -> str:
    """The canonical name of a configured market calendar (``crypto`` -> ``24/7``, ``nyse`` ->
    ``XNYS``); `ValueError` with the closest names for one that no calendar has."""
    text = str(value).strip()
    builtin = BUILTIN_CALENDARS.get(text.lower())
    if builtin is not None:
        return builtin
    known = _exchange_calendar_names()
    canonical = known.get(text.upper())
    if canonical is not None:
        return canonical
    # ours first, then the library's, in the spelling each is written in
    spellings = {n.upper(): n for n in BUILTIN_CALENDARS} | {n: known[n] for n in known}
    wanted = text.upper()
    near = difflib.get_close_matches(wanted, list(spellings), n=6, cutoff=0.6)
    near.sort(key=lambda n: _closeness(wanted, n))
    shown = list(dict.fromkeys(spellings[n] for n in near))[:3]
    hint = f"; did you mean {', '.join(shown)}? " if shown else ". "
    raise ValueError(
        f"unknown market calendar {text!r}{hint}Use 24/7 (crypto), fx, or an "
        "exchange_calendars name such as XNYS, XLON or XTKS"
    )


def _closeness(wanted: str, name: str) -> tuple[float, int]:
    """Sort key, closest first: difflib's ratio, ties to the name that starts alike (XNYZ: XNYS
    before XNZE)."""
    prefix = next(
        (i for i, (a, b) in enumerate(zip(wanted, name, strict=False)) if a != b), len(name)
    )
    return -difflib.SequenceMatcher(None, wanted, name).ratio(), -prefix


class SymbolMarketSettings(BaseModel):
    """The market of one symbol."""

    model_config = _FROZEN
    calendar: str = Field(
        ..., description="Its calendar: 24/7, fx or an exchange_calendars name (XNYS...)."
    )

    @field_validator("calendar")
    @classmethod
    def _known_calendar(cls, value: str) -> str:
        return calendar_name(value)


class MarketsSettings(BaseModel):
    """Market calendars: when each symbol's market is open.

    Names are checked when the settings load; the ingest, preprocess and training paths do not
    follow them yet (docs/data-path.md): there a closure still reads as a gap."""

    model_config = _FROZEN
    calendar: str = Field(
        "24/7",
        description="Calendar of every symbol not listed under symbols: 24/7 (crypto; also "
        "always-open), fx (Sunday 17:00 to Friday 17:00 New York time, no holidays), or an "
        "exchange_calendars name or alias (XNYS, NYSE, XLON, XTKS...).",
    )
    symbols: dict[Symbol, SymbolMarketSettings] = Field(
        default_factory=dict,
        description="Per-symbol calendars, e.g. {EURUSD: {calendar: fx}, AAPL: {calendar: "
        "XNYS}}; keys are symbols (upper-cased); environment: "
        "DRL_TRADING_MARKETS__SYMBOLS__AAPL__CALENDAR=XNYS.",
    )

    @field_validator("calendar")
    @classmethod
    def _known_calendar(cls, value: str) -> str:
        return calendar_name(value)

    @field_validator("symbols", mode="before")
    @classmethod
    def _one_entry_per_symbol(cls, value: Any) -> Any:
        """Keys name symbols whatever their case (the environment's arrive lower-cased); one
        spelt twice in the file is an error, the environment's spelling overrides the file's."""
        markets = (_YAML_DATA.get() or {}).get("markets")
        raw = markets.get("symbols") if isinstance(markets, dict) else None
        if isinstance(raw, dict):
            seen: dict[str, str] = {}
            for key in raw:
                norm = str(key).strip().upper()
                if norm in seen:
                    raise ValueError(
                        f"{seen[norm]!r} and {key!r} name one symbol, {norm}: keep one entry"
                    )
                seen[norm] = str(key)
        if not isinstance(value, dict):
            return value
        return {str(k).strip().upper(): v for k, v in value.items()}  # later (environment) wins


class StrategySettings(BaseModel):
    model_config = _FROZEN
    ref: str = Field(
        "example",
        description="Entry-point name (group drl_trading.strategies) or 'package.module:Class'.",
    )
    params: dict[str, Any] = Field(default_factory=dict, description="Passed to the class.")


class _YamlSource(PydanticBaseSettingsSource):
    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(_YAML_DATA.get() or {})


class ServeSettings(BaseModel):
    """`drl-trading serve SERVICE`: one service per process (distributed deployment)."""

    model_config = _FROZEN
    host: str = Field("127.0.0.1", description="Address of the health/metrics endpoint.")
    ports: dict[str, int] = Field(
        default_factory=lambda: {
            "ingest": 9101,
            "preprocess": 9102,
            "training": 9103,
            "inference": 9104,
            "execution": 9105,
        },
        description="Health/metrics port per service (0 picks a free one).",
    )
    clock: Literal["wall", "market"] = Field(
        "wall",
        description="market: every process follows the bar times of the events (replays).",
    )
    symbols: list[str] = Field(
        default_factory=lambda: ["BTCUSDT", "ETHUSDT"],
        description="Symbols `serve ingest` streams.",
    )
    source: Literal["replay", "synthetic-live", "ccxt-live"] = Field(
        "replay", description="Where `serve ingest` takes live bars from."
    )
    timeframe: Timeframe = Field(
        Timeframe.M1,
        description="Bars `serve ingest` streams and stores (the data timeframe: 1m, 5m, 15m, "
        "30m, 1h, 4h or 1d), on each symbol's market calendar.",
    )
    start: datetime | None = Field(None, description="Live/replay start (UTC).")
    end: datetime | None = Field(None, description="Replay end (exclusive, UTC).")
    speed: float | None = Field(None, gt=0, description="Replay speed; None: as fast as possible.")

    def port(self, service: str, flag: int | None = None) -> int:
        """The health/metrics port of ``service``: ``--port`` when given (``flag``), else
        ``serve.ports`` (environment, file, default); 0 (a free port) for a service not in it."""
        return flag if flag is not None else self.ports.get(service, 0)


class AppSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter=ENV_DELIMITER,
        extra="forbid",
        frozen=True,
    )

    home: Path = Field(Path(".drl-trading"), description="Folder holding all embedded state.")
    bus: BusSettings = BusSettings()
    market_data: MarketDataSettings = MarketDataSettings()
    postgres: PostgresSettings = PostgresSettings()
    feature_store: FeatureStoreSettings = FeatureStoreSettings()
    logging: LoggingSettings = LoggingSettings()
    markets: MarketsSettings = MarketsSettings()
    ingest: IngestSettings = IngestSettings()
    strategy: StrategySettings = StrategySettings()
    preprocess: PreprocessSettings = PreprocessSettings()
    training: TrainingSettings = TrainingSettings()
    tuning: TuningSettings = TuningSettings()
    inference: InferenceSettings = InferenceSettings()
    execution: ExecutionSettings = ExecutionSettings()
    serve: ServeSettings = ServeSettings()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return init_settings, env_settings, _YamlSource(settings_cls)

    def masked_dump(self) -> dict[str, Any]:
        """The settings as JSON-compatible data for display and recording (`config show`,
        MLflow params, reports): ``SecretStr`` fields and credentials inside URIs and connection
        strings (Redis ``password=``, ``user:password@``...) masked. Clients get the real values
        from the model itself, never from this."""
        masked: dict[str, Any] = mask_mapping(self.model_dump(mode="json"))
        return masked

    @property
    def market_data_path(self) -> Path:
        return self.market_data.path or self.home / "market.duckdb"

    @property
    def feast_repo_dir(self) -> Path:
        return self.feature_store.repo_dir or self.home / "feast"

    @property
    def feature_data_dir(self) -> Path:
        return self.feature_store.data_dir or self.home / "features"

    @property
    def reports_dir(self) -> Path:
        return self.training.reports_dir or self.home / "reports"

    @property
    def mlflow_tracking_uri(self) -> str:
        uri = self.training.registry.tracking_uri
        if uri:
            return uri
        return f"sqlite:///{(self.home / 'mlflow' / 'mlflow.db').resolve()}"

    @property
    def mlflow_artifact_location(self) -> str | None:
        """None with a tracking server: it stores the artifacts (proxied), where every
        machine can reach them; a local folder under home with the embedded SQLite store."""
        loc = self.training.registry.artifact_location
        if loc:
            return loc
        if self.training.registry.tracking_uri and self.training.registry.tracking_uri.startswith(
            ("http://", "https://")
        ):
            return None
        return (self.home / "mlflow" / "artifacts").resolve().as_uri()


class ConfigError(ValueError):
    """Invalid configuration; the message names every offending key."""


def load_settings(config_file: Path | None = None, **overrides: Any) -> AppSettings:
    data: dict[str, Any] = {}
    if config_file is not None:
        if not config_file.exists():
            raise ConfigError(f"config file {config_file} does not exist")
        if config_file.is_dir():
            raise ConfigError(
                f"--config {config_file} is a directory; name a YAML file (e.g. "
                "configs/example.yaml)"
            )
        try:
            loaded = yaml.safe_load(config_file.read_text()) or {}
        except OSError as exc:
            raise ConfigError(
                f"config file {config_file} cannot be read: {exc.strerror or exc}"
            ) from exc
        except yaml.YAMLError as exc:
            raise ConfigError(f"config file {config_file} is not valid YAML: {exc}") from exc
        if not isinstance(loaded, dict):
            raise ConfigError(f"config file {config_file} must hold a mapping at the top level")
        data = loaded
    token = _YAML_DATA.set(data)
    try:
        return AppSettings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        where = f" in {config_file}" if config_file else ""
        lines = [
            mask_secrets(
                f"  {'.'.join(str(p) for p in err['loc']) or '<root>'}: {err['msg']}"
                + (f" (got {_shown_input(err)})" if err.get("type") != "missing" else "")
            )
            for err in exc.errors()
        ]
        raise ConfigError(f"invalid configuration{where}:\n" + "\n".join(lines)) from None
    except SettingsError as exc:
        raise ConfigError(_environment_error(exc, os.environ)) from None
    finally:
        _YAML_DATA.reset(token)


def _shown_input(err: Any) -> str:
    """The offending value as an error message shows it: masked under a secret-named key."""
    if any(isinstance(part, str) and is_secret_key(part) for part in err["loc"]):
        return repr(MASK)
    return repr(mask_mapping(err["input"]))


def setting_nodes() -> tuple[SettingNode, ...]:
    """Every key of `AppSettings` (sections, their keys at any depth) with its default."""
    return tuple(walk(AppSettings))


def setting_variables() -> tuple[str, ...]:
    """Every environment variable that names a setting (a dict-typed one, e.g.
    ``DRL_TRADING_STRATEGY__PARAMS``, also takes ``__<ANY_KEY>``), and those the CLI reads."""
    names = {variable_name(n.path, ENV_PREFIX, ENV_DELIMITER) for n in setting_nodes()}
    return tuple(sorted(names | set(CLI_VARIABLES)))


def unknown_environment_variables(
    environ: Mapping[str, str] | None = None,
) -> tuple[UnknownVariable, ...]:
    """The ``DRL_TRADING_*`` variables of ``environ`` (default: this process's) that name no
    setting, so pydantic-settings ignores them, each with the closest valid name."""
    return unknown_variables(
        os.environ if environ is None else environ,
        setting_nodes(),
        prefix=ENV_PREFIX,
        delimiter=ENV_DELIMITER,
        also_known=CLI_VARIABLES,
        hint="`drl-trading config show` lists every setting (variable: DRL_TRADING_ + its keys "
        "joined by __, e.g. DRL_TRADING_INGEST__VALIDATION__POLICY)",
    )


def warn_unknown_environment_variables(
    environ: Mapping[str, str] | None = None,
) -> tuple[UnknownVariable, ...]:
    """Log a warning (on stderr, shown at the default level) for each unknown ``DRL_TRADING_*``
    variable; call once per process, after logging is configured. Returns what it warned of."""
    found = unknown_environment_variables(environ)
    log = structlog.get_logger(__name__)
    for unknown in found:
        log.warning(unknown.message(), variable=unknown.name, closest=unknown.closest)
    return found


def _environment_error(exc: SettingsError, environ: Mapping[str, str]) -> str:
    """pydantic-settings names only the top-level field when an environment value meant for a
    section, a dict or a list is no JSON; name the variable and how to write it."""
    complex_nodes = {
        variable_name(n.path, ENV_PREFIX, ENV_DELIMITER): n for n in setting_nodes() if n.takes_json
    }
    lines: list[str] = []
    for name, value in sorted(environ.items()):
        node = complex_nodes.get(name.upper())
        if node is None or _is_json(value):
            continue
        shown = MASK if any(is_secret_key(p) for p in node.path) else mask_secrets(value)
        if node.kind == "section":
            how = (
                f"{node.dotted} is a section: set its keys one by one "
                f"({name.upper()}{ENV_DELIMITER}<KEY>) or give a JSON object"
            )
        elif node.kind == "mapping":
            how = (
                f"{node.dotted} is a mapping: set {name.upper()}{ENV_DELIMITER}<KEY> per key "
                "or give a JSON object"
            )
        else:
            how = f'{node.dotted} is a list: give it as JSON, e.g. \'["a", "b"]\''
        lines.append(f"  {name}: {how} (got {shown!r})")
    if not lines:
        return f"invalid configuration in the environment: {exc}"
    return "invalid configuration in the environment:\n" + "\n".join(lines)


def _is_json(value: str) -> bool:
    try:
        json.loads(value)
    except ValueError:
        return False
    return True
