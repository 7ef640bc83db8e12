-- The execution store's control channel (kill/resume requests from another process, running
-- sessions' heartbeats) and the checkpoint generation that refuses a commit over another
-- writer's: the tables the embedded SQLite store creates beside V003's; times are integer
-- microseconds since the Unix epoch (UTC).
CREATE TABLE IF NOT EXISTS checkpoint_version (
    id integer PRIMARY KEY CHECK (id = 1),
    generation bigint NOT NULL
);
INSERT INTO checkpoint_version VALUES (1, 0) ON CONFLICT DO NOTHING;
CREATE TABLE IF NOT EXISTS stale_commit_guard (
    generation bigint,
    CONSTRAINT commit_over_a_newer_checkpoint CHECK (generation IS NULL)
);
CREATE TABLE IF NOT EXISTS controls (
    control_id bigserial PRIMARY KEY,
    kind text NOT NULL,
    requested_at bigint NOT NULL,
    reason text NOT NULL,
    flatten integer NOT NULL,
    applied_at bigint,
    applied_by text,
    outcome text NOT NULL DEFAULT '',
    records_before bigint
);
CREATE TABLE IF NOT EXISTS sessions (session_id text PRIMARY KEY, beat_at bigint NOT NULL);
