-- The dashboard's tables (docs/dashboard.md), and the webhooks' pending counter; the same
-- model as SQLite's 0014_dashboard.sql.
--
-- Charts: `job_minutes` holds, per organisation, application and minute, the jobs that
-- finished in it (completed, failed; cancelled ones are left out) and their queue waits and
-- run times (sum and max, which add up into hours). A background task on every node rolls
-- up the minutes that ended since `job_minutes_rolled.up_to` in one INSERT … SELECT …
-- ON CONFLICT DO NOTHING, reading finished jobs through `jobs_finished_at`: nodes rolling up
-- the same minute at once write it once. Nothing here is written on a claim or a finish;
-- the index is the only cost a finish pays.
CREATE INDEX jobs_finished_at ON jobs (completed_at) WHERE completed_at IS NOT NULL;

CREATE TABLE job_minutes (
    org TEXT NOT NULL,
    application_id TEXT NOT NULL,
    minute BIGINT NOT NULL,
    completed BIGINT NOT NULL,
    failed BIGINT NOT NULL,
    ran BIGINT NOT NULL,
    wait_total BIGINT NOT NULL,
    wait_max BIGINT NOT NULL,
    run_total BIGINT NOT NULL,
    run_max BIGINT NOT NULL,
    PRIMARY KEY (org, minute, application_id)
);
CREATE INDEX job_minutes_by_minute ON job_minutes (minute);

CREATE TABLE job_minutes_rolled (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    up_to BIGINT NOT NULL
);
INSERT INTO job_minutes_rolled (id, up_to) VALUES (1, 0);

-- The jobs list filtered by batch reads a batch's items newest first.
CREATE INDEX jobs_by_batch ON jobs (batch_id, seq) WHERE batch_id IS NOT NULL;

-- Sessions, shared by every node: the SHA-256 of the cookie's value, so a read of this
-- table opens none.
CREATE TABLE ui_sessions (
    id_hash BYTEA PRIMARY KEY,
    org TEXT NOT NULL,
    csrf TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX ui_sessions_expiry ON ui_sessions (expires_at);

-- Events waiting for delivery, counted per shard (the backend's pid modulo 16, as
-- `job_counts`) by statement triggers, so /metrics sums 16 rows and never counts events.
CREATE TABLE webhook_pending (
    shard INTEGER PRIMARY KEY,
    n BIGINT NOT NULL
);
INSERT INTO webhook_pending (shard, n)
SELECT 0, count(*) FROM webhook_events WHERE state = 'pending';

CREATE FUNCTION webhook_pending_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO webhook_pending (shard, n)
    SELECT pg_backend_pid() % 16, count(*) FROM inserted_events WHERE state = 'pending'
    HAVING count(*) > 0
    ON CONFLICT (shard) DO UPDATE SET n = webhook_pending.n + excluded.n;
    RETURN NULL;
END $$;

CREATE FUNCTION webhook_pending_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO webhook_pending (shard, n)
    SELECT pg_backend_pid() % 16,
        count(*) FILTER (WHERE n.state = 'pending') - count(*) FILTER (WHERE o.state = 'pending')
    FROM old_events o JOIN new_events n ON n.seq = o.seq
    WHERE (o.state = 'pending') <> (n.state = 'pending')
    HAVING count(*) > 0
    ON CONFLICT (shard) DO UPDATE SET n = webhook_pending.n + excluded.n;
    RETURN NULL;
END $$;

CREATE TRIGGER webhook_pending_insert AFTER INSERT ON webhook_events
    REFERENCING NEW TABLE AS inserted_events
    FOR EACH STATEMENT EXECUTE FUNCTION webhook_pending_insert();

CREATE TRIGGER webhook_pending_update AFTER UPDATE ON webhook_events
    REFERENCING OLD TABLE AS old_events NEW TABLE AS new_events
    FOR EACH STATEMENT EXECUTE FUNCTION webhook_pending_update();
