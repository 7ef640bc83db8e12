"""`RecordedRuns` fake over the in-memory registry's runs (unit tests)."""

from __future__ import annotations

from drl_trading.common.adapter.memory_registry import InMemoryRegistry
from drl_trading.training.core.provenance import PROVENANCE_ARTIFACT, Provenance, RecordedRun


class MemoryRecordedRuns:
    def __init__(self, registry: InMemoryRegistry) -> None:
        self.registry = registry

    def recorded(self, run_id: str) -> RecordedRun:
        run = self.registry.runs.get(run_id)
        if run is None:
            raise LookupError(f"no run {run_id!r} in the in-memory registry")
        data = run.dicts.get(PROVENANCE_ARTIFACT)
        return RecordedRun(
            run_id=run_id,
            metrics=run.latest_metrics(),
            provenance=None if data is None else Provenance.from_dict(data),
            tags=dict(run.tags),
        )
