"""Annualised figures over short ranges: which are omitted and which are marked.

Annualising extrapolates a range to a year. CAGR raises the range's growth to the power
365 / days (``(1 + R) ** (365 / days) - 1``) and Calmar divides that CAGR by the drawdown; both
explode below a month: a +5% range is a CAGR of +81% over 30 days but +37,700% over 3 days,
and a +10% range over 2 days +3.6e+09%. Volatility, Sharpe and Sortino scale by the square
root of the periods in a year; they stay finite, but a few days' noise is scaled to a year (the
standard error of an annualised Sharpe is about sqrt(365 / days): 3.5 over 30 days, 11 over 3).

`MIN_ANNUALISED_DAYS` is 30: a month is the shortest range that performance tables conventionally
annualise (monthly returns), and there the exponent (about 12) keeps CAGR in the order of the
range's own return. Below it:

* CAGR and Calmar are *omitted* from what people read (tables and HTML show
  "n/a (range < 30 days)"); the JSON report keeps the raw number and says why it should not be
  read (see `Annualisation.to_dict`).
* Volatility, Sharpe and Sortino are *marked* "annualised from X days".

A range is the calendar span from the first to the last equity point of a trace, in days.
The figures themselves (`drl_trading.evaluation.metrics`) are never changed: only how they are
shown. The champion gate reads the raw numbers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from drl_trading.evaluation.metrics import PerformanceMetrics

__all__ = [
    "EXTRAPOLATED_FIELDS",
    "MIN_ANNUALISED_DAYS",
    "OMITTED_FIELDS",
    "Annualisation",
    "annualisation",
]

MIN_ANNUALISED_DAYS = 30.0
"""Calendar days a range must span for its annualised figures to be shown plainly."""

OMITTED_FIELDS: tuple[str, ...] = ("cagr", "calmar")
"""Compounded to a year: not shown below `MIN_ANNUALISED_DAYS`."""

EXTRAPOLATED_FIELDS: tuple[str, ...] = ("annual_volatility", "sharpe", "sortino")
"""Scaled by sqrt(periods per year): shown, marked, below `MIN_ANNUALISED_DAYS`."""


@dataclass(frozen=True, slots=True)
class Annualisation:
    """How the annualised figures of one range are to be read.

    ``span_days``: calendar days from the range's first to its last equity point.
    """

    span_days: float
    min_days: float = MIN_ANNUALISED_DAYS

    @property
    def short(self) -> bool:
        """True below `min_days`: annualised figures are extrapolations."""
        return self.span_days < self.min_days

    def omitted(self, name: str) -> bool:
        """Whether metric ``name`` (a `PerformanceMetrics` field) is not to be shown."""
        return self.short and name in OMITTED_FIELDS

    def extrapolated(self, name: str) -> bool:
        """Whether metric ``name`` is shown with the `note` "annualised from X days"."""
        return self.short and name in EXTRAPOLATED_FIELDS

    @property
    def omitted_text(self) -> str:
        """What a table shows instead of an omitted figure."""
        return f"n/a (range < {self.min_days:g} days)"

    @property
    def note(self) -> str:
        """The mark of an extrapolated figure (a row label's suffix)."""
        return f"annualised from {_days(self.span_days)}"

    def to_dict(self) -> dict[str, Any]:
        """The JSON report's ``annualisation`` block, next to the raw figures it qualifies:
        ``short_range`` true means ``omitted`` fields are not meaningful and ``extrapolated``
        ones scale fewer than ``min_days`` days to a year."""
        return {
            "span_days": round(self.span_days, 6),
            "min_days": self.min_days,
            "short_range": self.short,
            "omitted": list(OMITTED_FIELDS) if self.short else [],
            "extrapolated": list(EXTRAPOLATED_FIELDS) if self.short else [],
        }


def _days(days: float) -> str:
    return f"{days * 24:.1f} hours" if days < 1 else f"{days:.1f} days"


def annualisation(
    metrics: PerformanceMetrics, min_days: float = MIN_ANNUALISED_DAYS
) -> Annualisation:
    """The reading of ``metrics``' annualised figures, from its range's span."""
    span = (metrics.end - metrics.start).total_seconds() / 86_400.0
    return Annualisation(span_days=max(span, 0.0), min_days=min_days)
