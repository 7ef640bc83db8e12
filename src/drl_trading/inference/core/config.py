"""Settings of the inference service: which model to serve, how fresh features must be, how
often to look for a new model version."""

from __future__ import annotations

from datetime import timedelta

from pydantic import BaseModel, ConfigDict, Field

_FROZEN = ConfigDict(frozen=True, extra="forbid")


class InferenceSettings(BaseModel):
    model_config = _FROZEN
    model_ref: str = Field(
        "champion",
        description="An alias of the training model (champion, challenger...) or a full "
        "reference: NAME@alias, NAME/<version>, models:/...",
    )
    model_name: str | None = Field(
        None, description="Registered model an alias refers to; default the training model's."
    )
    max_feature_age: timedelta = Field(
        timedelta(minutes=10),
        description="Skip a feature vector older than this by the clock (a consumer catching up).",
    )
    reload_interval: timedelta = Field(
        timedelta(seconds=30),
        description="How often the registry is asked whether the reference moved to a new version.",
    )

    def reference(self, default_model_name: str | None = None) -> str:
        """The registry reference to serve. A bare word is an alias rather than a model name
        because promoting a new champion must move what a running service serves; pin a
        version with NAME/<version>."""
        ref = self.model_ref.strip()
        if "@" in ref or "/" in ref or ":" in ref:
            return ref
        name = self.model_name or default_model_name
        if not name:
            raise ValueError(
                f"inference.model_ref {ref!r} is an alias but no model name is known: set "
                "inference.model_name (or training.registry.model_name), or give NAME@alias"
            )
        return f"{name}@{ref}"
