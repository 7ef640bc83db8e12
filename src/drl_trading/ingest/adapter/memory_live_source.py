"""Live bars from a list: the fake beside the live-source port.

It hands the bars over exactly as given (duplicates, late corrections and disorder included:
judging them is online ingest's job), then ends, or with ``hold_open`` waits as a quiet market
does until `close`, which tests use to check that a consumer stops a waiting stream.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator

from drl_trading.common.domain import Bar


class InMemoryLiveSource:
    def __init__(self, bars: Iterable[Bar], *, hold_open: bool = False) -> None:
        self._bars = list(bars)
        self._hold_open = hold_open
        self._closed = threading.Event()

    def bars(self) -> Iterator[Bar]:
        for bar in self._bars:
            if self._closed.is_set():
                return
            yield bar
        if self._hold_open:
            self._closed.wait()

    def close(self) -> None:
        """Ends `bars` at its next step; callable from any thread."""
        self._closed.set()
