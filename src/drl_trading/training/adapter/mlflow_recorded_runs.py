"""`RecordedRuns` on an MLflow tracking store (embedded SQLite or a server): a run's latest
metric values, its tags and its provenance artifact, read by run id in any experiment."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import mlflow
from mlflow.exceptions import MlflowException

from drl_trading.training.core.provenance import PROVENANCE_ARTIFACT, Provenance, RecordedRun


class MlflowRecordedRuns:
    def __init__(self, tracking_uri: str) -> None:
        self.tracking_uri = tracking_uri
        self.client = mlflow.MlflowClient(tracking_uri=tracking_uri)

    def recorded(self, run_id: str) -> RecordedRun:
        try:
            run = self.client.get_run(run_id)
        except MlflowException:
            raise LookupError(
                f"no MLflow run {run_id!r} at {self.tracking_uri} (the run id is printed by "
                "`drl-trading train` as 'MLflow run id')"
            ) from None
        names = {a.path for a in self.client.list_artifacts(run_id)}
        provenance = None
        if PROVENANCE_ARTIFACT in names:
            with tempfile.TemporaryDirectory(prefix="drl-provenance-") as tmp:
                path = self.client.download_artifacts(run_id, PROVENANCE_ARTIFACT, tmp)
                data = json.loads(Path(path).read_text(encoding="utf-8"))
            provenance = Provenance.from_dict(data)
        return RecordedRun(
            run_id=run_id,
            metrics=dict(run.data.metrics),
            provenance=provenance,
            tags=dict(run.data.tags),
        )
