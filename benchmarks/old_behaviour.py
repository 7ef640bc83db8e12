"""The online path as it was before issue 15's latency fixes (step 5), switched back in this
process only, so that a benchmark measures before and after in one run, alternating them:

* `WriteBehindMarketData.flush` does not read ahead: a replay's re-sent bar reads the next day
  of its series from the store on the path to the order, as before;
* `ExecutionService` commits every bar's marks at once and durably (``mark_commit_bars`` and
  ``durable=False`` ignored: PostgreSQL waits for the WAL flush of each bar's commit);
* the heap is frozen once, at start-up, and never again (`HeapSettler.settle`), and serve
  preprocess imports Feast at its catch-up request rather than before the loop starts
  (`services.import_feast`): Feast's objects stay in the collector's sight, rescanned by every
  full collection on the path;
* the heap settler leaves the young generations to the collector's own trigger, inside whichever
  allocation crosses its threshold (`HeapSettler._collect_young`; the floor collects them between
  bars in every candidate, as its loop's housekeeping);
* the in-memory bus delivers the off-path topics (storing resampled bars) in its sweep with the
  others instead of after the chain (`InMemoryBus` ``deferred``): a bar's storing can run between
  its features and its order;
* the in-memory execution store deep-copies the whole checkpoint at every commit and load
  (`memory_store.detached`), on the signal's path to the order;
* online ingest validates each live bar by building `validate_bars`'s report on its one-row
  frame, instead of checking the scalar rules first (`online_service.bar_rules`);
* online ingest builds each live bar's one-row frame and stages it through `upsert_bars`
  (`WriteBehindMarketData.upsert_bar`), instead of staging the bar as a tuple;
* the SQLite execution store leaves checkpoints of its WAL to SQLite's automatic checkpoint,
  inside whichever commit crosses 1,000 pages (`SQLiteExecutionStore.AUTOCHECKPOINT_PAGES`);
* inference in its own process reads each decided symbol's state from the PostgreSQL execution
  store instead of taking it from the commit notifications (`listened_state` knows nothing; the
  notifications still carry the states, a few hundred bytes);
* the PostgreSQL execution store sends a commit's statements in a pipeline, each bound on the
  server and answered with its own result, instead of as one query bound on the client
  (`PostgresExecutionStore._write_batch`);
* execution reads whether a signal was processed in a round trip of its own, not together with
  the account's lock (`PostgresExecutionStore._probed` knows nothing; the lock's query still
  reads it);
* execution asks the store whether a signal's client order id is taken before every decision,
  not only before an order goes out (`ExecutionService._reused_order_id`);
* execution reads whether the signal's client order id is taken in round trips of its own (the
  service's check and the commit's), not together with the account's lock
  (`PostgresExecutionStore._probed_order` knows nothing);
* the PostgreSQL account lock is released in a round trip of its own at the end of the
  event's block, not in the query of the block's commit
  (`PostgresExecutionStore._after_commit_statements`);
* Feast imports itself: typeguard instruments its classes and torch is imported with it
  (`feast_import.import_feast`);
* inference asks the registry whether its reference moved from the decision that falls due
  once every ``reload_interval``, on that decision's path, instead of between events
  (`InferenceService._polls_on_events`);

    with old_behaviour.switched(): ...                         (in this process)
    python benchmarks/old_behaviour.py --config FILE serve NAME  (a service process, as
                                                                  ``drl-trading``)
    DRL_OLD_BEHAVIOUR=heap,feast-import python benchmarks/old_behaviour.py ...
                                                   (only the named switches)
"""

from __future__ import annotations

import copy
import importlib
import os
import sys
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager
from types import ModuleType
from unittest import mock

from drl_trading.app import infrastructure, services
from drl_trading.app.heap import HeapSettler
from drl_trading.common.adapter import feast_import
from drl_trading.common.adapter.write_behind_market_data import WriteBehindMarketData
from drl_trading.common.bars import bars_to_frame
from drl_trading.common.domain import Bar, Symbol
from drl_trading.common.ports import UpsertResult
from drl_trading.execution.adapter import memory_store
from drl_trading.execution.adapter.postgres_store import PostgresExecutionStore
from drl_trading.execution.adapter.sqlite_store import SQLiteExecutionStore
from drl_trading.execution.core.records import RiskDecision, SymbolState
from drl_trading.execution.core.service import ExecutionService
from drl_trading.inference.core.service import InferenceService
from drl_trading.ingest.core import online_service
from drl_trading.ingest.core.validation import Rule


def _commit_every_bar(self: ExecutionService) -> None:
    self._commit()


def _no_read_ahead(self: WriteBehindMarketData) -> None:
    return None


_settle = HeapSettler.settle


def _freeze_once(self: HeapSettler) -> bool:
    return False if self.freezes else _settle(self)


def _always_report(*args: object) -> list[Rule]:
    """Says a rule may break, so that `validate_bars` builds the report of every bar."""
    return [Rule.NON_FINITE]


def _upsert_frame(self: WriteBehindMarketData, bar: Bar) -> UpsertResult:
    return self.upsert_bars(bar.symbol, bar.timeframe, bars_to_frame([bar]))


def _collector_decides(self: HeapSettler) -> None:
    return None


def _import_later(features: object) -> None:
    return None


def _nothing_heard(self: PostgresExecutionStore, symbol: Symbol) -> SymbolState | None:
    return None


def _not_probed(self: PostgresExecutionStore, signal_id: str) -> bool | None:
    return None


def _pipelined(self: PostgresExecutionStore) -> AbstractContextManager[object]:
    return self._raw.pipeline()


def _order_not_probed(self: PostgresExecutionStore, client_order_id: str) -> bool | None:
    return None


def _unlock_at_the_end(self: PostgresExecutionStore) -> None:
    return None


def _feast_as_it_imports() -> ModuleType:
    return importlib.import_module("feast")


def _poll_on_the_path(self: InferenceService) -> bool:
    return True


def _ask_every_signal(self: ExecutionService, coid: str, decision: RiskDecision) -> bool:
    return self._store.has_order(coid)


SWITCHES: dict[str, tuple[object, str, object]] = {
    "mark-commits": (ExecutionService, "_commit_marks", _commit_every_bar),
    "read-ahead": (WriteBehindMarketData, "_read_ahead", _no_read_ahead),
    "heap": (HeapSettler, "settle", _freeze_once),
    "feast-import": (services, "import_feast", _import_later),
    "off-path-last": (infrastructure, "OFF_PATH_TOPICS", ()),
    "store-deepcopy": (memory_store, "detached", copy.deepcopy),
    "bar-rules": (online_service, "bar_rules", _always_report),
    "young-gc": (HeapSettler, "_collect_young", _collector_decides),
    "bar-frame": (WriteBehindMarketData, "upsert_bar", _upsert_frame),
    "wal-autocheckpoint": (SQLiteExecutionStore, "AUTOCHECKPOINT_PAGES", 1_000),
    "state-read": (PostgresExecutionStore, "listened_state", _nothing_heard),
    "processed-probe": (PostgresExecutionStore, "_probed", _not_probed),
    "commit-pipeline": (PostgresExecutionStore, "_write_batch", _pipelined),
    "order-check": (ExecutionService, "_reused_order_id", _ask_every_signal),
    "order-probe": (PostgresExecutionStore, "_probed_order", _order_not_probed),
    "unlock-with-commit": (PostgresExecutionStore, "_after_commit_statements", _unlock_at_the_end),
    "feast-lean": (feast_import, "import_feast", _feast_as_it_imports),
    "registry-on-path": (InferenceService, "_polls_on_events", _poll_on_the_path),
}
"""Each old behaviour by name (``DRL_OLD_BEHAVIOUR=heap,read-ahead`` switches back only those)."""


@contextmanager
def switched(names: Iterable[str] | None = None) -> Iterator[None]:
    """The old behaviour while inside, every switch or those ``names`` (default: the comma list
    in ``DRL_OLD_BEHAVIOUR``, every switch when unset); patched on the classes: enter before the
    services are built, since a bus keeps the bound handler it was given."""
    if names is None:
        given = os.environ.get("DRL_OLD_BEHAVIOUR", "")
        names = [n.strip() for n in given.split(",") if n.strip()] or list(SWITCHES)
    chosen = list(names)
    unknown = sorted(set(chosen) - set(SWITCHES))
    if unknown:
        raise SystemExit(f"unknown old behaviour {unknown}; known: {', '.join(SWITCHES)}")
    with ExitStack() as stack:
        for name in chosen:
            owner, attribute, old = SWITCHES[name]
            stack.enter_context(mock.patch.object(owner, attribute, old))
        yield


def main() -> None:
    from drl_trading.cli.app import main as cli

    with switched():
        sys.argv = ["drl-trading", *sys.argv[1:]]
        cli()


if __name__ == "__main__":
    main()
