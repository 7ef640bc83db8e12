"""The event both preprocess services publish once features are stored.

One construction for the offline batch and the online catch-up / live bar, so the fields a reply
echoes from its request (correlation id, request id, symbols, range) and the feature view it names
cannot drift apart between the two.
"""

from __future__ import annotations

from datetime import datetime

from drl_trading.common.events import (
    PreprocessDataCompleted,
    PreprocessDataRequested,
    ProcessingMode,
    SymbolOutput,
)
from drl_trading.common.ports import FeatureViewSpec


def preprocess_completed(
    request: PreprocessDataRequested,
    view: FeatureViewSpec,
    outputs: list[SymbolOutput],
    *,
    mode: ProcessingMode,
    bar_close_time: datetime | None = None,
    stages: dict[str, float] | None = None,
) -> PreprocessDataCompleted:
    """The answer to ``request``: features of ``view`` are stored for it.

    ``mode`` picks the topic (offline, catch-up, online); ``bar_close_time`` is the close of the
    base bar whose features were just written (online only); ``stages`` the online chain's
    wall-clock stamps (Unix seconds) including preprocess's own, none elsewhere.
    """
    return PreprocessDataCompleted(
        correlation_id=request.correlation_id,
        mode=mode,
        request_event_id=request.event_id,
        symbols=request.symbols,
        start=request.start,
        end=request.end,
        feature_set_name=view.feature_set_name,
        feature_set_version=view.feature_set_version,
        feature_view=view.name,
        outputs=outputs,
        bar_close_time=bar_close_time,
        stages={} if stages is None else stages,
    )
