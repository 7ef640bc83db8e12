"""Feature store on Feast: Parquet offline store read by the DuckDB engine, SQLite online store
(Redis in distributed mode), and a registry file, all applied programmatically from settings.

Layout under ``data_dir``: one folder per feature view (``<set>__<version>``), one Parquet file per
symbol. A write merges by ``event_time`` into the symbol's file and replaces it atomically, so
re-running preprocessing never duplicates rows and a crash never leaves a half-written file.
Timestamps are stored with microsecond precision, which is what Feast's joins accept.

A Redis online store that is down or refuses the credentials is an `OnlineStoreConnectionError`
(kernel, ``unavailable``: a bus waits for it), at construction (one PING) and at every online
read or write afterwards; the Redis client reconnects on the next call.
"""

from __future__ import annotations

import json
import os
import threading
import warnings
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl

from drl_trading.common.adapter import feast_import
from drl_trading.common.bars import TIME_DTYPE
from drl_trading.common.domain import Symbol, utc
from drl_trading.common.errors import OnlineStoreConnectionError
from drl_trading.common.ports import FeatureViewSpec, OnlineFeatures

PROJECT = "drl_trading"
ENTITY = "symbol"
FEAST_TIME = "event_timestamp"
CREATED = "created_at"


class FeatureViewNotFoundError(LookupError):
    pass


REDIS_PROBE_TIMEOUT_S = 5.0
"""Connect and reply timeout (seconds) of the PING a Redis online store gets when the store is
built: a Redis that does not answer fails the command at start, within this time, instead of
the first online write waiting out the bus's retries."""


def redis_address(connection_string: str) -> str:
    """The first ``host:port`` of a Feast Redis connection string
    (``host:port[,host:port...][,key=value...]``), for messages: never its ``password=``."""
    nodes = [part.strip() for part in connection_string.split(",") if "=" not in part]
    return nodes[0] if nodes and nodes[0] else "localhost:6379"


def online_store_error(address: str, exc: BaseException) -> OnlineStoreConnectionError | None:
    """The `OnlineStoreConnectionError` of a Redis client error that says the server is down or
    refused this client's credentials; None for any other error (and without the Redis client:
    the SQLite online store)."""
    try:
        from redis.exceptions import AuthenticationError
        from redis.exceptions import ConnectionError as RedisConnectionError
        from redis.exceptions import TimeoutError as RedisTimeoutError
    except ImportError:
        return None
    if isinstance(exc, AuthenticationError):
        return OnlineStoreConnectionError(address, str(exc), "credentials")
    if isinstance(exc, RedisConnectionError | RedisTimeoutError):
        return OnlineStoreConnectionError(address, str(exc) or type(exc).__name__)
    return None


def _redis_params(connection_string: str) -> dict[str, Any]:
    """The ``key=value`` options of a Feast Redis connection string, values JSON-decoded where
    they parse (``ssl=true`` → True, ``db=1`` → 1), as Feast passes them to ``redis.Redis``."""
    params: dict[str, Any] = {}
    for part in connection_string.split(","):
        if "=" in part:
            key, value = part.split("=", 1)
            try:
                params[key.strip()] = json.loads(value)
            except json.JSONDecodeError:
                params[key.strip()] = value
    return params


class FeastFeatureStore:
    def __init__(
        self,
        repo_dir: Path | str,
        data_dir: Path | str,
        online_store: dict[str, Any] | None = None,
        project: str = PROJECT,
        *,
        read_own_writes: bool = True,
    ) -> None:
        # Absolute paths: Feast resolves a relative registry path against repo_path, which would
        # double a relative home folder.
        self.repo_dir = Path(repo_dir).resolve()
        self.data_dir = Path(data_dir).resolve()
        self.repo_dir.mkdir(parents=True, exist_ok=True)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._online_times: dict[tuple[str, str], datetime | None] = {}
        self._online_views: dict[str, Any] = {}
        self._online = online_store or {
            "type": "sqlite",
            "path": str(self.repo_dir / "online_store.db"),
        }
        if self._online.get("type") == "redis":
            # one round trip per write instead of two (Feast otherwise reads the stored event
            # time first, ~0.8 ms a vector), and the same rule as the SQLite store: the last
            # write wins across processes (a new catch-up replaces what an earlier session
            # left); within this process `write_online` never goes back in time
            self._online = {"skip_dedup": True, **self._online}
        self._project = project
        self._store: Any = None
        self._lock = threading.Lock()
        # vectors this process wrote, served to its own online reads (embedded mode: the only
        # writer is this process, and the Feast round trip would cost ~0.8 ms per read)
        self._read_own_writes = read_own_writes
        self._latest: dict[tuple[str, Symbol], OnlineFeatures] = {}
        self._tuned = False
        self._online_address = redis_address(str(self._online.get("connection_string", "")))
        self._check_online_store()

    def _check_online_store(self) -> None:
        """A Redis online store is PINGed once here (within `REDIS_PROBE_TIMEOUT_S`): one that
        is down or refuses the credentials fails the command or service at start with an
        `OnlineStoreConnectionError`, as an unreachable database does, rather than its first
        online write waiting for it (a bus waits for a dependency that is down). Feast's own
        client connects lazily, at the first online read or write."""
        if self._online.get("type") != "redis" or self._online.get("redis_type", "redis") != (
            "redis"
        ):
            return  # SQLite; a cluster or sentinel deployment is left to Feast's client
        import redis

        connection = str(self._online.get("connection_string", "localhost:6379"))
        host, _, port = self._online_address.rpartition(":")
        params = _redis_params(connection)
        params.setdefault("socket_connect_timeout", REDIS_PROBE_TIMEOUT_S)
        params.setdefault("socket_timeout", REDIS_PROBE_TIMEOUT_S)
        client = redis.Redis(host=host or "localhost", port=int(port or 6379), **params)
        try:
            client.ping()
        except Exception as exc:
            error = online_store_error(self._online_address, exc)
            if error is not None:
                raise error from exc
            raise
        finally:
            client.close()

    @property
    def online_store_config(self) -> dict[str, Any]:
        return dict(self._online)

    @property
    def project(self) -> str:
        return self._project

    # -- Feast objects -------------------------------------------------------------------------
    def feast(self) -> Any:
        """The underlying ``feast.FeatureStore`` (built on first use: Feast imports slowly)."""
        if self._store is None:
            feast_import.import_feast()
            from feast import FeatureStore as _FeastStore
            from feast.repo_config import RepoConfig

            # ibis (under Feast's duckdb store) calls a duckdb API that duckdb deprecated; the
            # warning is not ours to fix and would print on every point-in-time read
            warnings.filterwarnings(
                "ignore",
                message=r"fetch_arrow_table\(\) is deprecated",
                category=DeprecationWarning,
            )

            config = RepoConfig(
                project=self._project,
                provider="local",
                registry=str(self.repo_dir / "registry.db"),
                offline_store={"type": "duckdb"},
                online_store=self._online,
                entity_key_serialization_version=3,
                repo_path=self.repo_dir,
            )
            self._store = _FeastStore(config=config)
        return self._store

    def _view_dir(self, view: FeatureViewSpec) -> Path:
        return self.data_dir / view.name

    def _feast_view(self, view: FeatureViewSpec) -> tuple[Any, Any]:
        feast_import.import_feast()
        from feast import Entity, FeatureView, Field, FileSource, ValueType
        from feast.data_format import ParquetFormat
        from feast.types import Float64

        entity = Entity(
            name=ENTITY,
            join_keys=[ENTITY],
            value_type=ValueType.STRING,
            description="Instrument symbol, e.g. BTCUSDT",
        )
        source = FileSource(
            name=f"{view.name}_source",
            path=str(self._view_dir(view) / "*.parquet"),
            file_format=ParquetFormat(),
            timestamp_field=FEAST_TIME,
            created_timestamp_column=CREATED,
        )
        fv = FeatureView(
            name=view.name,
            entities=[entity],
            ttl=view.ttl,
            schema=[Field(name=c, dtype=Float64) for c in view.columns],
            source=source,
            online=True,
            tags={
                "feature_set": view.feature_set_name,
                "feature_set_version": view.feature_set_version,
                "base_timeframe": view.base_timeframe.value,
            },
            description=(
                f"Feature set {view.feature_set_name} version {view.feature_set_version} on "
                f"{view.base_timeframe.value} bars; event_timestamp is the base bar's close"
            ),
        )
        return entity, fv

    # -- port ------------------------------------------------------------------------------------
    def register(self, view: FeatureViewSpec) -> None:
        self._view_dir(view).mkdir(parents=True, exist_ok=True)
        entity, fv = self._feast_view(view)
        with self._lock:
            try:
                self.feast().apply([entity, fv])  # may reach the online store (Redis)
            except Exception as exc:
                error = online_store_error(self._online_address, exc)
                if error is not None:
                    raise error from exc
                raise

    def write_offline(self, view: FeatureViewSpec, symbol: Symbol, frame: pl.DataFrame) -> int:
        if frame.is_empty():
            return 0
        missing = [c for c in view.columns if c not in frame.columns]
        if missing:
            raise KeyError(f"feature frame lacks columns of view {view.name}: {missing[:5]}")
        created = datetime.now(UTC)
        new = frame.select(
            pl.lit(str(symbol)).alias(ENTITY),
            pl.col("event_time").cast(TIME_DTYPE).alias(FEAST_TIME),
            pl.lit(created).cast(TIME_DTYPE).alias(CREATED),
            *[pl.col(c).cast(pl.Float64) for c in view.columns],
        )
        path = self._view_dir(view) / f"{symbol.file_stem}.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        with self._lock:
            if path.exists():
                old = pl.read_parquet(path)
                new = pl.concat(
                    [old.join(new.select(FEAST_TIME), on=FEAST_TIME, how="anti"), new],
                    how="vertical_relaxed",
                )
            new = new.sort(FEAST_TIME)
            tmp = path.with_suffix(".parquet.tmp")
            new.write_parquet(tmp, statistics=True)
            os.replace(tmp, path)
        return frame.height

    def historical_features(self, view: FeatureViewSpec, entities: pl.DataFrame) -> pl.DataFrame:
        if not any(self._view_dir(view).glob("*.parquet")):
            raise FeatureViewNotFoundError(
                f"no features stored for view {view.name}; run `drl-trading preprocess` first"
            )
        order = "__row"
        entity_df = (
            entities.select(
                pl.col(ENTITY).cast(pl.String),
                pl.col("event_time").cast(TIME_DTYPE).alias(FEAST_TIME),
            )
            .with_row_index(order)
            .to_pandas()
        )
        refs = [f"{view.name}:{c}" for c in view.columns]
        with self._lock:
            table = (
                self.feast().get_historical_features(entity_df=entity_df, features=refs).to_arrow()
            )
        out = pl.from_arrow(table)
        assert isinstance(out, pl.DataFrame)
        out = out.sort(order).rename({FEAST_TIME: "event_time"})
        return out.select(
            ENTITY,
            pl.col("event_time").cast(TIME_DTYPE),
            *[pl.col(c).cast(pl.Float64) for c in view.columns],
        )

    def stored_range(
        self, view: FeatureViewSpec, symbol: Symbol
    ) -> tuple[datetime, datetime] | None:
        path = self._view_dir(view) / f"{symbol.file_stem}.parquet"
        if not path.exists():
            return None
        times = (
            pl.scan_parquet(path)
            .select(pl.col(FEAST_TIME).min().alias("lo"), pl.col(FEAST_TIME).max().alias("hi"))
            .collect()
        )
        return times["lo"][0], times["hi"][0]

    def write_online(
        self, view: FeatureViewSpec, symbol: Symbol, event_time: datetime, values: Sequence[float]
    ) -> None:
        if len(values) != len(view.columns):
            raise ValueError(f"{len(values)} values for {len(view.columns)} columns")
        key = (view.name, str(symbol))
        last = self._online_times.get(key)
        # Feast's SQLite store overwrites whatever comes last; a late write from this process
        # must not go back in time (seconds resolution: the store keeps epoch seconds). What an
        # earlier process left is replaced: a new catch-up defines the current state, also when
        # a replay starts before the last session's end.
        if last is not None and int(event_time.timestamp()) < int(last.timestamp()):
            return
        feast_import.import_feast()
        from feast.protos.feast.types.EntityKey_pb2 import EntityKey
        from feast.protos.feast.types.Value_pb2 import Value

        # straight to the provider with protobufs: Feast's DataFrame path (pandas → Arrow →
        # protobuf) costs ~8 ms per vector, this ~1 ms; the stored rows are the same
        entity = EntityKey(join_keys=[ENTITY], entity_values=[Value(string_val=str(symbol))])
        row = {c: Value(double_val=float(v)) for c, v in zip(view.columns, values, strict=True)}
        with self._lock:
            store = self.feast()
            fv = self._online_views.get(view.name)
            if fv is None:
                fv = store.get_feature_view(view.name)
                self._online_views[view.name] = fv
            provider = store._get_provider()
            if not self._tuned:
                self._tune_online(provider, store.config)
            try:
                provider.online_write_batch(
                    store.config, fv, [(entity, row, utc(event_time), datetime.now(UTC))], None
                )
            except Exception as exc:
                error = online_store_error(self._online_address, exc)
                if error is not None:
                    raise error from exc
                raise
        self._online_times[key] = event_time
        if self._read_own_writes:
            # what a Feast read returns: event time at whole seconds, values as float
            stamp = datetime.fromtimestamp(int(utc(event_time).timestamp()), UTC)
            self._latest[(view.name, symbol)] = OnlineFeatures(
                stamp, tuple(float(v) for v in values)
            )

    def _tune_online(self, provider: Any, config: Any) -> None:
        """SQLite online store: WAL with ``synchronous=NORMAL`` (a commit no longer waits for
        an fsync; durable against a crash of this process, not of the machine, and the vector is
        recomputed by the next catch-up anyway): ~1.3 ms → ~0.3 ms per vector."""
        self._tuned = True
        if self._online.get("type") != "sqlite":
            return
        conn = provider.online_store._get_conn(config)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")

    def online_features(
        self, view: FeatureViewSpec, symbols: Sequence[Symbol]
    ) -> dict[Symbol, OnlineFeatures]:
        if not symbols:
            return {}
        if self._read_own_writes:
            own = {s: self._latest.get((view.name, s)) for s in symbols}
            if all(v is not None for v in own.values()):
                return {s: v for s, v in own.items() if v is not None}
        feast_import.import_feast()
        from feast.errors import FeatureViewNotFoundException
        from feast.protos.feast.types.EntityKey_pb2 import EntityKey
        from feast.protos.feast.types.Value_pb2 import Value

        # straight to the provider, as `write_online` writes: `get_online_features` builds and
        # converts a whole response (~1.5 ms per call on Redis), this reads the same rows
        keys = [
            EntityKey(join_keys=[ENTITY], entity_values=[Value(string_val=str(s))]) for s in symbols
        ]
        with self._lock:
            store = self.feast()
            try:
                fv = self._online_views.get(view.name)
                if fv is None:
                    fv = store.get_feature_view(view.name)
                    self._online_views[view.name] = fv
            except FeatureViewNotFoundException as exc:
                raise FeatureViewNotFoundError(
                    f"feature view {view.name!r} is not registered in Feast project "
                    f"{self._project!r} yet (preprocess registers it): {exc}"
                ) from None
            try:
                rows = store._get_provider().online_read(store.config, fv, keys, list(view.columns))
            except Exception as exc:
                error = online_store_error(self._online_address, exc)
                if error is not None:
                    raise error from exc
                raise
        out: dict[Symbol, OnlineFeatures] = {}
        for s, (ts, values) in zip(symbols, rows, strict=True):
            if ts is None or not values:
                continue
            protos = [values.get(c) for c in view.columns]
            if any(v is None or v.WhichOneof("val") != "double_val" for v in protos):
                continue
            when = ts if ts.tzinfo is not None else ts.replace(tzinfo=UTC)
            out[s] = OnlineFeatures(
                datetime.fromtimestamp(int(when.timestamp()), UTC),
                tuple(float(v.double_val) for v in protos if v is not None),
            )
        return out
