"""Builds the shared adapters (bus, market data, feature store, model registry) and the strategy
from settings.

These are the swap points of the two deployments: the embedded default builds in-process ones,
the distributed mode builds server-backed ones, and nothing above the ports can tell.
"""

from __future__ import annotations

from drl_trading.app.settings import AppSettings
from drl_trading.app.topology import OFF_PATH_TOPICS
from drl_trading.common.adapter.always_open_calendar import AlwaysOpenCalendar
from drl_trading.common.adapter.duckdb_market_data import DuckDBMarketData
from drl_trading.common.adapter.exchange_calendars_calendar import ExchangeCalendarsCalendar
from drl_trading.common.adapter.feast_feature_store import FeastFeatureStore
from drl_trading.common.adapter.fx_calendar import FxCalendar
from drl_trading.common.adapter.memory_bus import InMemoryBus
from drl_trading.common.adapter.memory_feature_store import InMemoryFeatureStore
from drl_trading.common.adapter.memory_market_data import InMemoryMarketData
from drl_trading.common.adapter.write_behind_market_data import WriteBehindMarketData
from drl_trading.common.calendar import CalendarBook, MarketCalendar
from drl_trading.common.model_registry import ModelRegistry
from drl_trading.common.ports import FeatureStore, MarketDataRepository, MessageBus
from drl_trading.strategy.api import Strategy
from drl_trading.strategy.feature_set import FeatureSetSpec
from drl_trading.strategy.loader import load_strategy

_STRATEGIES: dict[str, Strategy] = {}


def build_bus(settings: AppSettings) -> MessageBus:
    b = settings.bus
    if b.kind == "kafka":
        from drl_trading.common.adapter.kafka_bus import KafkaBus, KafkaOptions

        k = b.kafka
        return KafkaBus(
            KafkaOptions(
                bootstrap_servers=k.bootstrap_servers,
                namespace=k.namespace,
                partitions=b.partitions,
                replication_factor=k.replication_factor,
                max_attempts=b.max_attempts,
                retry_backoff_s=b.retry_backoff_s,
                linger_ms=k.linger_ms,
                fetch_wait_max_ms=k.fetch_wait_max_ms,
                poll_timeout_s=k.poll_timeout_s,
                client_id=k.client_id,
                max_poll_interval_ms=k.max_poll_interval_ms,
                message_timeout_ms=k.message_timeout_ms,
                security=k.security(),
            )
        )
    return InMemoryBus(
        partitions=b.partitions,
        max_attempts=b.max_attempts,
        retry_backoff_s=b.retry_backoff_s,
        deferred=OFF_PATH_TOPICS,
    )


def build_market_data(settings: AppSettings, *, write_behind: bool = True) -> MarketDataRepository:
    """``write_behind=False`` for a process whose events announce its writes (a distributed
    preprocess or training worker): what it publishes must already be readable by others."""
    if settings.market_data.kind == "memory":
        return InMemoryMarketData()
    store: MarketDataRepository
    if settings.market_data.kind == "postgres":
        from drl_trading.common.adapter.postgres_market_data import PostgresMarketData

        pg = settings.postgres
        store = PostgresMarketData(pg.dsn(), schema=pg.schema_name, migrate=pg.migrate_on_start)
    else:
        store = DuckDBMarketData(settings.market_data_path)
    delay = settings.market_data.write_behind_ms / 1e3
    if delay <= 0 or not write_behind:
        return store
    return WriteBehindMarketData(store, max_delay=delay)


def build_calendars(settings: AppSettings) -> CalendarBook:
    """Every symbol's market calendar from ``markets`` (names already checked and made canonical
    by the settings). One instance per calendar name, shared by its symbols; an exchange
    calendar imports exchange_calendars and builds its schedule only when first asked."""
    made: dict[str, MarketCalendar] = {}

    def calendar(name: str) -> MarketCalendar:
        if name not in made:
            if name == "24/7":
                made[name] = AlwaysOpenCalendar()
            elif name == "fx":
                made[name] = FxCalendar()
            else:
                made[name] = ExchangeCalendarsCalendar(name)
        return made[name]

    m = settings.markets
    return CalendarBook(
        default=calendar(m.calendar),
        by_symbol={sym: calendar(entry.calendar) for sym, entry in m.symbols.items()},
    )


def build_feature_store(settings: AppSettings) -> FeatureStore:
    if settings.feature_store.kind == "memory":
        return InMemoryFeatureStore()
    fs = settings.feature_store
    online = (
        {"type": "redis", "connection_string": fs.redis_connection_string}
        if fs.online_store == "redis"
        else None  # SQLite under the repo folder
    )
    return FeastFeatureStore(
        settings.feast_repo_dir, settings.feature_data_dir, online, project=fs.project
    )


def build_strategy(settings: AppSettings) -> Strategy:
    """The configured strategy, loaded once per process and configuration."""
    cfg = settings.strategy
    key = cfg.model_dump_json()
    if key not in _STRATEGIES:
        _STRATEGIES[key] = load_strategy(cfg.ref, cfg.params)
    return _STRATEGIES[key]


def feature_set_for(settings: AppSettings) -> FeatureSetSpec:
    """``preprocess.feature_set`` when the config sets one (experiments), else the strategy's:
    preprocessing, training and inference all ask here, so they can never disagree."""
    return settings.preprocess.feature_set or build_strategy(settings).feature_set()


def build_registry(settings: AppSettings) -> ModelRegistry:
    """The MLflow registry of the configuration (embedded SQLite under home, or a server)."""
    from drl_trading.common.adapter.mlflow_registry import MlflowRegistry
    from drl_trading.policy.mlflow_pyfunc import MODEL_CODE

    (settings.home / "mlflow").mkdir(parents=True, exist_ok=True)
    return MlflowRegistry(
        settings.mlflow_tracking_uri,
        experiment=settings.training.registry.experiment,
        artifact_location=settings.mlflow_artifact_location,
        model_code=MODEL_CODE,
    )


def model_name_for(settings: AppSettings) -> str:
    """The registered model training writes and an alias-only ``inference.model_ref`` means."""
    return settings.training.registry.model_name or f"drl-{build_strategy(settings).name}"
