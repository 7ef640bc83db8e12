"""The 24/7 calendar (crypto, the default): one session per UTC day, ``[D, D+1)`` labelled D."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np

from drl_trading.common.calendar import DAY_US, Sessions
from drl_trading.common.domain import to_micros


@dataclass(frozen=True, slots=True)
class AlwaysOpenCalendar:
    """A market that never closes. `always_open` lets callers keep closed-form arithmetic on
    the epoch grid; the sessions exist for code that walks segments generically."""

    name: str = "24/7"

    @property
    def always_open(self) -> bool:
        return True

    def sessions(self, start: datetime, end: datetime) -> Sessions:
        lo, hi = to_micros(start), to_micros(end)
        if hi <= lo:
            return Sessions.empty()
        first = lo - lo % DAY_US
        last = (hi - 1) - (hi - 1) % DAY_US
        label = np.arange(first, last + DAY_US, DAY_US, dtype=np.int64)
        return Sessions(label, label.copy(), label + DAY_US)
