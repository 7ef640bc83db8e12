"""Durations typed on the command line: ``30d``, ``12h``, ``90m``, ``1d12h``, ``2w``, or the ISO
8601 form the YAML file and the environment use for the same settings (``P30D``, ``PT12H``)."""

from __future__ import annotations

import re
from datetime import timedelta

from pydantic import TypeAdapter, ValidationError

_UNIT_SECONDS = {"w": 7 * 86_400, "d": 86_400, "h": 3_600, "m": 60, "s": 1}
_SHORT = re.compile(r"(?:\d+(?:\.\d+)?[wdhms])+")
_PART = re.compile(r"(\d+(?:\.\d+)?)([wdhms])")
_ISO = TypeAdapter(timedelta)


def parse_duration(text: str) -> timedelta:
    """``text`` as a positive duration; ValueError naming the accepted forms otherwise. Units:
    ``w`` weeks, ``d`` days, ``h`` hours, ``m`` minutes (not months), ``s`` seconds."""
    value = text.strip().lower()
    span: timedelta | None = None
    if _SHORT.fullmatch(value):
        seconds = sum(float(n) * _UNIT_SECONDS[u] for n, u in _PART.findall(value))
        span = timedelta(seconds=seconds)
    elif value.startswith("p"):
        try:
            span = _ISO.validate_python(value.upper())
        except ValidationError:
            span = None
    if span is None:
        raise ValueError(
            f"cannot read the duration {text!r}: use a number and a unit (w, d, h, m, s), e.g. "
            "30d, 12h or 1d12h, or ISO 8601 such as P30D"
        )
    if span <= timedelta(0):
        raise ValueError(f"the duration {text!r} must be longer than 0")
    return span
