-- The execution store's last reconciliation report (one row, replaced by each reconciliation),
-- read by `drl-trading live status` in another process: the table the embedded SQLite store
-- creates beside V004's; taken_at in integer microseconds since the Unix epoch (UTC), ok 0/1,
-- details as JSON text (the SQLite store's statements run unchanged).
CREATE TABLE IF NOT EXISTS reconciliation (
    id integer PRIMARY KEY CHECK (id = 1),
    taken_at bigint NOT NULL,
    ok integer NOT NULL,
    summary text NOT NULL,
    details text NOT NULL
);
