"""The online path as it was before issue 15's latency fixes (step 5), switched back in this
process only, so that a benchmark measures before and after in one run, alternating them:

* `WriteBehindMarketData.flush` does not read ahead: a replay's re-sent bar reads the next day
  of its series from the store on the path to the order, as before;
* `ExecutionService` commits every bar's marks at once and durably (``mark_commit_bars`` and
  ``durable=False`` ignored: PostgreSQL waits for the WAL flush of each bar's commit);

    with old_behaviour.switched(): ...                         (in this process)
    python benchmarks/old_behaviour.py --config FILE serve NAME  (a service process, as
                                                                  ``drl-trading``)
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from unittest import mock

from drl_trading.common.adapter.write_behind_market_data import WriteBehindMarketData
from drl_trading.execution.core.service import ExecutionService


def _commit_every_bar(self: ExecutionService) -> None:
    self._commit()


def _no_read_ahead(self: WriteBehindMarketData) -> None:
    return None


@contextmanager
def switched() -> Iterator[None]:
    """The old behaviour while inside (patched on the classes: enter before the services are
    built, since a bus keeps the bound handler it was given)."""
    with ExitStack() as stack:
        stack.enter_context(mock.patch.object(ExecutionService, "_commit_marks", _commit_every_bar))
        stack.enter_context(mock.patch.object(WriteBehindMarketData, "_read_ahead", _no_read_ahead))
        yield


def main() -> None:
    from drl_trading.cli.app import main as cli

    with switched():
        sys.argv = ["drl-trading", *sys.argv[1:]]
        cli()


if __name__ == "__main__":
    main()
