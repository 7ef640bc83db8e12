-- The execution service's store (paper account, trading state, audit trail): the embedded SQLite
-- store's tables with PostgreSQL types; times are integer microseconds since the Unix epoch (UTC).
CREATE TABLE IF NOT EXISTS portfolio (cash double precision NOT NULL, saved_at bigint NOT NULL);
CREATE TABLE IF NOT EXISTS positions (
    symbol text NOT NULL,
    quantity double precision NOT NULL,
    avg_price double precision NOT NULL,
    realised_pnl double precision NOT NULL,
    fees_paid double precision NOT NULL
);
CREATE TABLE IF NOT EXISTS open_orders (
    position integer NOT NULL,
    client_order_id text NOT NULL,
    symbol text NOT NULL,
    side text NOT NULL,
    quantity double precision NOT NULL,
    limit_price double precision
);
CREATE TABLE IF NOT EXISTS marks (symbol text NOT NULL, price double precision NOT NULL,
    as_of bigint NOT NULL);
CREATE TABLE IF NOT EXISTS targets (symbol text NOT NULL, target double precision NOT NULL);
CREATE TABLE IF NOT EXISTS entries (symbol text NOT NULL, price double precision NOT NULL,
    as_of bigint NOT NULL);
CREATE TABLE IF NOT EXISTS trading_state (
    state text NOT NULL,
    reason text NOT NULL,
    since bigint NOT NULL,
    peak_equity double precision NOT NULL,
    day_start_equity double precision NOT NULL,
    last_equity double precision NOT NULL,
    day text,
    last_signal_record_id text
);
CREATE TABLE IF NOT EXISTS processed_signals (
    signal_id text PRIMARY KEY,
    processed_at bigint NOT NULL
);
CREATE TABLE IF NOT EXISTS records (
    seq bigserial PRIMARY KEY,
    record_id text NOT NULL UNIQUE,
    kind text NOT NULL,
    symbol text NOT NULL,
    occurred_at bigint NOT NULL,
    client_order_id text,
    signal_id text,
    side text,
    quantity double precision NOT NULL,
    price double precision,
    fee double precision NOT NULL,
    realised_pnl double precision NOT NULL,
    model_version text,
    risk_check text NOT NULL,
    reason text NOT NULL,
    signal_time bigint
);
CREATE INDEX IF NOT EXISTS records_client_order_id ON records (client_order_id);
CREATE INDEX IF NOT EXISTS records_at ON records (occurred_at);
