"""Trade records and reconciliation reports as table rows for SQL execution stores (SQLite and
PostgreSQL).

Each database stores times its own way (SQLite as integer microseconds, PostgreSQL as
timestamptz), so the mapping takes the time encoder and decoder; the column order is
`RECORD_COLUMNS` everywhere.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from drl_trading.common.domain import Side, Symbol
from drl_trading.execution.core.reconciliation import ReconciliationRecord
from drl_trading.execution.core.records import RecordKind, TradeRecord

RECORD_COLUMNS = (
    "record_id, kind, symbol, occurred_at, client_order_id, signal_id, side, quantity, price, fee, "
    "realised_pnl, model_version, risk_check, reason, signal_time"
)


def record_row(r: TradeRecord, encode: Callable[[datetime], Any]) -> list[Any]:
    return [
        r.record_id,
        r.kind.value,
        str(r.symbol),
        encode(r.at),
        r.client_order_id,
        r.signal_id,
        None if r.side is None else r.side.value,
        float(r.quantity),
        None if r.price is None else float(r.price),
        float(r.fee),
        float(r.realised_pnl),
        r.model_version,
        r.risk_check,
        r.reason,
        None if r.signal_time is None else encode(r.signal_time),
    ]


def record_from_row(row: tuple[Any, ...], decode: Callable[[Any], datetime]) -> TradeRecord:
    (rid, kind, symbol, at, coid, sid, side, qty, price, fee, pnl, version, check, reason, st) = row
    return TradeRecord(
        record_id=rid,
        kind=RecordKind(kind),
        symbol=Symbol(symbol),
        at=decode(at),
        client_order_id=coid,
        signal_id=sid,
        side=None if side is None else Side(side),
        quantity=qty,
        price=price,
        fee=fee,
        realised_pnl=pnl,
        model_version=version,
        risk_check=check,
        reason=reason,
        signal_time=None if st is None else decode(st),
    )


RECONCILIATION_COLUMNS = "taken_at, ok, summary, details"


def details_json(details: Mapping[str, Any]) -> str:
    """A report's details as JSON text; a value JSON cannot hold (NaN, an object) raises
    ValueError or TypeError before anything is written."""
    return json.dumps(details, sort_keys=True, allow_nan=False)


def reconciliation_row(r: ReconciliationRecord, encode: Callable[[datetime], Any]) -> list[Any]:
    return [encode(r.at), int(r.ok), r.summary, details_json(r.details)]


def reconciliation_from_row(
    row: tuple[Any, ...], decode: Callable[[Any], datetime]
) -> ReconciliationRecord:
    at, ok, summary, details = row
    return ReconciliationRecord(decode(at), bool(ok), summary, json.loads(details))
