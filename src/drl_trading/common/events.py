"""Versioned event schemas, their topics, and the one serializer every bus uses.

Each event is a frozen pydantic model with an ``event_type`` discriminator and a
``schema_version``; the wire form is UTF-8 JSON of the model (``encode``/``decode``), identical on
the in-memory bus and on Kafka, so a message recorded on one can be replayed on the other. A
consumer rejects a ``schema_version`` newer than it knows instead of guessing at fields.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, field_validator, model_validator

from drl_trading.common.domain import Action, Symbol, Timeframe, utc


class Topic:
    """Topic names of the architecture document."""

    PREPROCESS_REQUESTED = "requested.preprocess-data"
    PREPROCESS_COMPLETED_OFFLINE = "completed.preprocess-data.offline"
    PREPROCESS_COMPLETED_CATCHUP = "completed.preprocess-data.catchup"
    PREPROCESS_COMPLETED_ONLINE = "completed.preprocess-data.online"
    STORE_RESAMPLED_REQUESTED = "requested.store-resampled-data"
    PREDICT_COMPLETED = "completed.predict"
    TRAINING_REQUESTED = "requested.training"
    TRAINING_COMPLETED = "completed.training"

    @staticmethod
    def dlq(topic: str) -> str:
        return f"dlq.{topic}"

    @staticmethod
    def error(service: str) -> str:
        return f"error.{service}"


def new_id() -> str:
    return uuid.uuid4().hex


def now_utc() -> datetime:
    return datetime.now(UTC)


class Event(BaseModel):
    """Fields every event carries: identity, the correlation id of the workflow, creation time."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    SCHEMA_VERSION: ClassVar[int] = 1

    schema_version: int = 1
    event_id: str = Field(default_factory=new_id)
    correlation_id: str = Field(default_factory=new_id)
    created_at: datetime = Field(default_factory=now_utc)

    @field_validator("created_at")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        return utc(value)

    @field_validator("schema_version")
    @classmethod
    def _known_version(cls, value: int) -> int:
        if value > cls.SCHEMA_VERSION:
            raise ValueError(
                f"{cls.__name__} schema_version {value} is newer than this build knows "
                f"({cls.SCHEMA_VERSION}); upgrade the consumer"
            )
        return value


class ProcessingMode(StrEnum):
    """Why preprocessing runs: a training batch, the live warm-up, or one live bar."""

    OFFLINE = "offline"
    CATCHUP = "catchup"
    ONLINE = "online"


class ResampledBar(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    open_time: datetime
    open: float
    high: float
    low: float
    close: float
    volume: float


class PreprocessDataRequested(Event):
    """Ingest stored bars of ``timeframe`` for ``symbols`` over ``[start, end)``; preprocess
    should run.

    Schema version 2: ``timeframe`` is the *data timeframe*, the one the bars were stored under,
    which preprocess reads and resamples only to coarser timeframes. Version 1 consumers read
    1m bars whatever the field said, so a version 1 message means 1m (its ``timeframe`` is taken
    as 1m on decoding), and a version 1 consumer refuses a version 2 message rather than reading
    1m bars that are not there.
    """

    SCHEMA_VERSION: ClassVar[int] = 2

    schema_version: int = 2
    event_type: Literal["preprocess-data.requested"] = "preprocess-data.requested"
    mode: ProcessingMode
    symbols: list[Symbol]
    timeframe: Timeframe = Timeframe.M1
    """The data timeframe: bars stored under it are read (1m by default)."""
    start: datetime
    end: datetime
    bar_close_time: datetime | None = None
    bars: list[ResampledBar] | None = None
    """Online mode may carry the new bar(s) of ``timeframe`` so that preprocess need not read
    them back from the store (they are stored before the request is published either way)."""
    stages: dict[str, float] = Field(default_factory=dict)
    """Online chain: wall-clock stamps (Unix seconds) of the stages this bar went through so far
    (see `drl_trading.common.latency.STAGE_CHAIN`)."""
    catchup_start: datetime | None = None
    """Online mode: the start of the session's catch-up request. A preprocess that lost its state
    (restarted mid-stream) rebuilds it from the same origin, so its indicators are bit-identical
    to those of the uninterrupted run."""

    @field_validator("start", "end", "bar_close_time", "catchup_start")
    @classmethod
    def _utc_times(cls, value: datetime | None) -> datetime | None:
        return None if value is None else utc(value)

    @model_validator(mode="before")
    @classmethod
    def _v1_means_1m(cls, data: Any) -> Any:
        """A version 1 message was read as 1m bars by its consumers: decode it as such."""
        if isinstance(data, dict) and data.get("schema_version") == 1:
            return {**data, "timeframe": Timeframe.M1}
        return data


class TimeframeOutput(BaseModel):
    """What preprocessing produced for one symbol and timeframe."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    timeframe: Timeframe
    bars: int


class SymbolOutput(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    symbol: Symbol
    feature_rows: int
    warmup_rows_dropped: int
    first_feature_time: datetime | None
    last_feature_time: datetime | None
    timeframes: list[TimeframeOutput]
    warmup_note: str | None = None
    """For the user when the stored history held less than the feature set's warm-up before the
    start: rows dropped and rows whose values depend on where that history starts."""


class PreprocessDataCompleted(Event):
    """Features for the request are in the feature store (offline, catch-up or online)."""

    event_type: Literal["preprocess-data.completed"] = "preprocess-data.completed"
    mode: ProcessingMode
    request_event_id: str
    symbols: list[Symbol]
    start: datetime
    end: datetime
    feature_set_name: str
    feature_set_version: str
    feature_view: str
    outputs: list[SymbolOutput]
    bar_close_time: datetime | None = None
    """Online mode: the close time of the base bar whose features were just written."""
    stages: dict[str, float] = Field(default_factory=dict)
    """Online chain: wall-clock stamps (Unix seconds) of the stages this bar went through so far
    (see `drl_trading.common.latency.STAGE_CHAIN`)."""

    @property
    def topic(self) -> str:
        return f"completed.preprocess-data.{self.mode.value}"


class StoreResampledDataRequested(Event):
    """Higher-timeframe bars closed by live resampling, to be stored by ingest."""

    event_type: Literal["store-resampled-data.requested"] = "store-resampled-data.requested"
    symbol: Symbol
    timeframe: Timeframe
    bars: list[ResampledBar]


class PredictionCompleted(Event):
    """A policy's decision for one bar (fields used by inference and execution)."""

    event_type: Literal["predict.completed"] = "predict.completed"
    symbol: Symbol
    action: Action
    target_position: float
    confidence: float
    model_name: str
    model_version: str
    feature_time: datetime
    bar_close_time: datetime
    stages: dict[str, float] = Field(default_factory=dict)
    """Online chain: wall-clock stamps (Unix seconds) of the stages this bar went through so far
    (see `drl_trading.common.latency.STAGE_CHAIN`)."""


class TrainingRequested(Event):
    """Train on ``symbols`` over ``[start, end)`` once the offline features of this correlation id
    are ready (the submitter requests the data with the same correlation id). Consumed by the
    training worker (`drl-trading serve training`), wherever it runs."""

    event_type: Literal["training.requested"] = "training.requested"
    symbols: list[Symbol]
    start: datetime
    end: datetime
    total_timesteps: int | None = None

    @field_validator("start", "end")
    @classmethod
    def _utc_times(cls, value: datetime) -> datetime:
        return utc(value)


class TrainingCompleted(Event):
    """A training run finished: the registered model, whether it became champion, and its
    validation and test figures (the run's reports are in MLflow)."""

    event_type: Literal["training.completed"] = "training.completed"
    model_name: str
    model_version: str
    run_id: str
    champion: bool
    gate_reason: str
    metrics: dict[str, float]


class ErrorOccurred(Event):
    """Published on ``error.<service>`` when a handler gave up on a message, for monitoring."""

    event_type: Literal["error.occurred"] = "error.occurred"
    service: str
    topic: str
    failed_event_id: str | None
    error_type: str
    message: str
    attempts: int


class DeadLetter(Event):
    """The original message, verbatim, with why it failed; published on ``dlq.<topic>``."""

    event_type: Literal["dead-letter"] = "dead-letter"
    service: str
    topic: str
    key: str
    payload: str
    headers: dict[str, str]
    error_type: str
    message: str
    attempts: int


AnyEvent = Annotated[
    PreprocessDataRequested
    | PreprocessDataCompleted
    | StoreResampledDataRequested
    | PredictionCompleted
    | TrainingRequested
    | TrainingCompleted
    | ErrorOccurred
    | DeadLetter,
    Field(discriminator="event_type"),
]
_ADAPTER: TypeAdapter[Any] = TypeAdapter(AnyEvent)


class EventDecodeError(ValueError):
    """A message could not be read as a known event; it goes to the DLQ without retries."""


def encode(event: Event) -> bytes:
    return event.model_dump_json().encode("utf-8")


def decode(payload: bytes) -> Event:
    try:
        event: Event = _ADAPTER.validate_json(payload)
    except Exception as exc:  # pydantic.ValidationError or JSON syntax error
        raise EventDecodeError(f"undecodable event: {exc}") from exc
    return event


def headers_for(event: Event) -> dict[str, str]:
    """Headers every bus attaches, so routing and tracing need not parse the payload."""
    return {
        "event_type": getattr(event, "event_type", type(event).__name__),
        "schema_version": str(event.schema_version),
        "event_id": event.event_id,
        "correlation_id": event.correlation_id,
    }


def dead_letter_events(
    *,
    service: str,
    topic: str,
    key: str,
    payload: bytes,
    headers: dict[str, str],
    event: Event | None,
    error: Exception,
    attempts: int,
) -> tuple[DeadLetter, ErrorOccurred]:
    """What every bus publishes for a message it gives up on: the message itself with the error
    on ``dlq.<topic>``, and an `ErrorOccurred` on ``error.<service>`` for monitoring. Both keep
    the correlation id (from the event, or the headers when the payload did not decode)."""
    correlation = event.correlation_id if event else headers.get("correlation_id")
    common = {"correlation_id": correlation} if correlation else {}
    letter = DeadLetter(
        service=service,
        topic=topic,
        key=key,
        payload=payload.decode("utf-8", errors="replace"),
        headers=headers,
        error_type=type(error).__name__,
        message=str(error),
        attempts=attempts,
        **common,
    )
    failure = ErrorOccurred(
        service=service,
        topic=topic,
        failed_event_id=event.event_id if event else headers.get("event_id"),
        error_type=type(error).__name__,
        message=str(error),
        attempts=attempts,
        **common,
    )
    return letter, failure
