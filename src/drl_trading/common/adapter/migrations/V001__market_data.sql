-- OHLCV bars keyed by (symbol, timeframe, open time), and rows rejected by validation.
CREATE TABLE IF NOT EXISTS ohlcv (
    symbol text NOT NULL,
    timeframe text NOT NULL,
    open_time timestamptz NOT NULL,
    open double precision NOT NULL,
    high double precision NOT NULL,
    low double precision NOT NULL,
    close double precision NOT NULL,
    volume double precision NOT NULL,
    PRIMARY KEY (symbol, timeframe, open_time)
);

CREATE TABLE IF NOT EXISTS ohlcv_quarantine (
    id bigserial PRIMARY KEY,
    symbol text NOT NULL,
    timeframe text NOT NULL,
    open_time timestamptz,
    open double precision,
    high double precision,
    low double precision,
    close double precision,
    volume double precision,
    rule text NOT NULL,
    detail text NOT NULL,
    batch_id text NOT NULL,
    quarantined_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS ohlcv_quarantine_symbol ON ohlcv_quarantine (symbol, quarantined_at);
