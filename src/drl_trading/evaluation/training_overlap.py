"""Whether a backtest's range overlaps the data its model learned from or was chosen on.

A model is fitted on its train range(s) and promoted by the gate on its validation range(s):
figures measured there are in-sample and say little about bars the model has not seen. Only its
test range (after an embargo) and later data are out of sample, so a backtest that overlaps a
train or validation range is warned about, naming both ranges and the overlap.

What the model saw is recorded in its package's manifest under ``training`` (see
`drl_trading.training.core.service`): ``symbols`` (the symbols trained on, one range for all of
them) and ``splits`` (``train``, ``validation`` or, with walk-forward folds, ``fold{k}.train`` and
``fold{k}.validation``, plus ``test`` and ``embargo``), each range a ``"START .. END"`` pair of
ISO timestamps, half-open like `TimeRange`. A model without these records cannot be checked; the
check then says so rather than passing silently.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from drl_trading.common.domain import TimeRange, parse_time

__all__ = ["OverlapCheck", "RangeOverlap", "SeenRange", "check_overlap", "seen_ranges"]

_IN_SAMPLE_PARTS = ("train", "validation")


@dataclass(frozen=True, slots=True)
class SeenRange:
    """A range the model learned from or was selected on: ``part`` is ``train``,
    ``validation``, ``fold0.train`` ..."""

    part: str
    range: TimeRange


@dataclass(frozen=True, slots=True)
class RangeOverlap:
    """The backtest's range meets the model's ``seen`` range on ``overlap``, for ``symbols``."""

    part: str
    seen: TimeRange
    overlap: TimeRange
    symbols: tuple[str, ...]

    @property
    def days(self) -> float:
        return (self.overlap.end - self.overlap.start).total_seconds() / 86_400.0


@dataclass(frozen=True, slots=True)
class OverlapCheck:
    """The outcome for one backtest: ``checked`` False when the model records no ranges
    (``reason`` says why); otherwise the overlaps found, none when the range is out of sample."""

    backtest: TimeRange
    checked: bool
    overlaps: tuple[RangeOverlap, ...] = ()
    reason: str = ""

    def warnings(self) -> list[str]:
        """One line per overlap, or the line saying the check could not be made."""
        if not self.checked:
            return [
                "overlap with the model's training and validation ranges could not be checked: "
                + self.reason
            ]
        return [
            f"{', '.join(o.symbols)}: the backtest range {_range(self.backtest)} overlaps the "
            f"model's {o.part} range {_range(o.seen)} on {_range(o.overlap)} ({o.days:.1f} days):"
            " figures over those bars are in-sample"
            for o in self.overlaps
        ]

    def to_dict(self) -> dict[str, Any]:
        """The JSON report's ``range_overlap`` block (ISO timestamps)."""
        return {
            "checked": self.checked,
            "reason": self.reason or None,
            "backtest": _iso(self.backtest),
            "overlaps": [
                {
                    "part": o.part,
                    "range": _iso(o.seen),
                    "overlap": _iso(o.overlap),
                    "symbols": list(o.symbols),
                }
                for o in self.overlaps
            ],
        }

    @property
    def summary(self) -> str:
        """A short word for run params: the overlapped parts, ``none`` or ``unchecked``."""
        if not self.checked:
            return "unchecked"
        return ",".join(sorted({o.part for o in self.overlaps})) or "none"


def _range(r: TimeRange) -> str:
    return f"{r.start:%Y-%m-%d %H:%M} .. {r.end:%Y-%m-%d %H:%M} UTC"


def _iso(r: TimeRange) -> list[str]:
    return [r.start.isoformat(), r.end.isoformat()]


def seen_ranges(training: Mapping[str, Any]) -> list[SeenRange]:
    """The train and validation ranges a manifest's ``training`` block records, in its order.

    Raises ValueError when they are missing or cannot be read (the message says which)."""
    splits = training.get("splits")
    if not isinstance(splits, Mapping):
        raise ValueError("the model's package records no training splits")
    out: list[SeenRange] = []
    for part, text in splits.items():
        if str(part).rsplit(".", 1)[-1] not in _IN_SAMPLE_PARTS:
            continue
        start, sep, end = str(text).partition(" .. ")
        if not sep:
            raise ValueError(f"the model's {part} range {text!r} is not 'START .. END'")
        out.append(SeenRange(str(part), TimeRange(parse_time(start), parse_time(end))))
    if not out:
        raise ValueError("the model's package records no train or validation range")
    return out


def _intersection(a: TimeRange, b: TimeRange) -> TimeRange | None:
    start, end = max(a.start, b.start), min(a.end, b.end)
    return TimeRange(start, end) if end > start else None


def check_overlap(
    training: Mapping[str, Any], symbols: Sequence[str], backtest: TimeRange
) -> OverlapCheck:
    """Compare ``backtest`` on ``symbols`` with what ``training`` (a manifest's block) records.

    A symbol the model was not trained on is not in-sample whatever the range; when the
    manifest does not list its symbols every backtested symbol is taken as trained on."""
    try:
        seen = seen_ranges(training)
    except ValueError as exc:
        return OverlapCheck(backtest, checked=False, reason=str(exc))
    trained = training.get("symbols")
    names = [str(s) for s in symbols]
    affected = tuple(
        s for s in names if not isinstance(trained, list) or s in {str(t) for t in trained}
    )
    overlaps = []
    if affected:
        for part in seen:
            common = _intersection(backtest, part.range)
            if common is not None:
                overlaps.append(RangeOverlap(part.part, part.range, common, affected))
    return OverlapCheck(backtest, checked=True, overlaps=tuple(overlaps))
