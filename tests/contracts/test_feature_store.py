"""Contract of the feature-store port over the in-memory fake and Feast (Parquet + DuckDB)."""

from __future__ import annotations

import uuid
from datetime import timedelta
from pathlib import Path

import polars as pl
import pytest

from drl_trading.common.adapter.feast_feature_store import FeastFeatureStore
from drl_trading.common.adapter.memory_feature_store import InMemoryFeatureStore
from drl_trading.common.bars import TIME_DTYPE
from drl_trading.common.domain import Symbol, Timeframe, parse_time
from drl_trading.common.ports import FeatureStore, FeatureViewSpec
from tests.conftest import require_server

VIEW = FeatureViewSpec(
    name="t__000000000001",
    feature_set_name="t",
    feature_set_version="000000000001",
    base_timeframe=Timeframe.M5,
    columns=("a", "b"),
    ttl=timedelta(minutes=10),
)
A, B = Symbol("AAA"), Symbol("BBB")


def _rows(start: str, n: int, offset: float = 0.0) -> pl.DataFrame:
    t0 = parse_time(start)
    return pl.DataFrame(
        {
            "event_time": [t0 + timedelta(minutes=5 * i) for i in range(n)],
            "a": [float(i) + offset for i in range(n)],
            "b": [float(-i) - offset for i in range(n)],
        }
    ).with_columns(pl.col("event_time").cast(TIME_DTYPE))


def _entities(symbol: Symbol, times: list[str]) -> pl.DataFrame:
    return pl.DataFrame(
        {"symbol": [str(symbol)] * len(times), "event_time": [parse_time(t) for t in times]}
    ).with_columns(pl.col("event_time").cast(TIME_DTYPE))


@pytest.fixture(
    params=[
        "memory",
        pytest.param("feast", marks=pytest.mark.integration),
        pytest.param("feast-no-own-reads", marks=pytest.mark.integration),
        pytest.param("feast-redis", marks=pytest.mark.integration),
    ]
)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> FeatureStore:
    s: FeatureStore
    if request.param == "feast-redis":  # the distributed online store, a project per test
        require_server("Redis", "127.0.0.1", 6379)
        s = FeastFeatureStore(
            tmp_path / "repo",
            tmp_path / "data",
            online_store={"type": "redis", "connection_string": "127.0.0.1:6379"},
            project=f"t{uuid.uuid4().hex[:10]}",
            read_own_writes=False,
        )
    elif request.param == "memory":
        s = InMemoryFeatureStore()
    else:  # with and without serving this process's own online writes from memory
        own = request.param == "feast"
        s = FeastFeatureStore(tmp_path / "repo", tmp_path / "data", read_own_writes=own)
    s.register(VIEW)
    return s


def test_point_in_time_reads(store: FeatureStore) -> None:
    store.write_offline(VIEW, A, _rows("2024-01-01T00:05", 4))  # 00:05, 00:10, 00:15, 00:20
    store.write_offline(VIEW, B, _rows("2024-01-01T00:05", 4, offset=100))
    ent = pl.concat(
        [
            _entities(A, ["2024-01-01T00:10", "2024-01-01T00:12", "2024-01-01T00:00"]),
            _entities(B, ["2024-01-01T00:20"]),
        ]
    )
    got = store.historical_features(VIEW, ent)
    assert got.columns == ["symbol", "event_time", "a", "b"]
    assert got["symbol"].to_list() == ["AAA", "AAA", "AAA", "BBB"]
    assert got["event_time"].to_list() == ent["event_time"].to_list()  # input order kept
    # exact time; latest before (00:10 row at 00:12); nothing known yet; other symbol's own row
    assert got["a"].to_list() == [1.0, 1.0, None, 103.0]


def test_rows_older_than_ttl_are_not_served(store: FeatureStore) -> None:
    store.write_offline(VIEW, A, _rows("2024-01-01T00:05", 1))
    got = store.historical_features(VIEW, _entities(A, ["2024-01-01T00:14", "2024-01-01T00:16"]))
    assert got["a"].to_list() == [0.0, None]


def test_rewriting_replaces_rows_instead_of_duplicating(store: FeatureStore) -> None:
    store.write_offline(VIEW, A, _rows("2024-01-01T00:05", 4))
    store.write_offline(VIEW, A, _rows("2024-01-01T00:15", 4, offset=50))  # overlaps 2 rows
    got = store.historical_features(
        VIEW,
        _entities(
            A, ["2024-01-01T00:05", "2024-01-01T00:10", "2024-01-01T00:15", "2024-01-01T00:30"]
        ),
    )
    assert got["a"].to_list() == [0.0, 1.0, 50.0, 53.0]
    assert got.height == 4


def test_a_new_process_replaces_the_vector_an_earlier_one_left(store: FeatureStore) -> None:
    """A replay that starts before the last session's end defines the current state: its
    first vector replaces the later one an earlier process left (on Redis too, which Feast
    would otherwise keep as the newer one), while within one process a late write never goes
    back (the test above)."""
    if not isinstance(store, FeastFeatureStore):
        pytest.skip("an in-memory store lives in one process")
    store.register(VIEW)
    store.write_online(VIEW, A, parse_time("2024-01-01T00:10"), [3.0, 4.0])

    def process() -> FeastFeatureStore:
        return FeastFeatureStore(
            store.repo_dir,
            store.data_dir,
            online_store=store.online_store_config,
            project=store.project,
            read_own_writes=False,
        )

    process().write_online(VIEW, A, parse_time("2024-01-01T00:05"), [7.0, 8.0])
    got = process().online_features(VIEW, [A])[A]
    assert (got.event_time, got.values) == (parse_time("2024-01-01T00:05"), (7.0, 8.0))


def test_online_latest_vector_per_symbol(store: FeatureStore) -> None:
    store.register(VIEW)
    assert store.online_features(VIEW, [A, B]) == {}
    t1, t2 = parse_time("2024-01-01T00:05"), parse_time("2024-01-01T00:10")
    store.write_online(VIEW, A, t1, [1.0, 2.0])
    store.write_online(VIEW, A, t2, [3.0, 4.0])
    store.write_online(VIEW, B, t1, [5.0, 6.0])
    got = store.online_features(VIEW, [A, B, Symbol("CCC")])
    assert set(got) == {A, B}
    assert got[A].event_time == t2
    assert got[A].values == (3.0, 4.0)
    assert got[B].values == (5.0, 6.0)
    # a late write never moves the served vector back in time
    store.write_online(VIEW, A, t1, [9.0, 9.0])
    assert store.online_features(VIEW, [A])[A].values == (3.0, 4.0)
    with pytest.raises(ValueError, match="columns"):
        store.write_online(VIEW, A, t2, [1.0])
    if isinstance(store, FeastFeatureStore):
        # another process (no own writes) reads the same vectors from the online store
        other = FeastFeatureStore(
            store.repo_dir,
            store.data_dir,
            online_store=store.online_store_config,
            project=store.project,
            read_own_writes=False,
        )
        again = other.online_features(VIEW, [A, B])
        assert again == store.online_features(VIEW, [A, B])
