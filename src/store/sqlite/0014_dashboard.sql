-- The dashboard's tables (docs/dashboard.md), and the webhooks' pending counter.
--
-- Charts: `job_minutes` holds, per organisation, application and minute, the jobs that
-- finished in it (completed, failed; cancelled ones are left out) and their queue waits and
-- run times (sum and max, which add up into hours). A background task on every node rolls
-- up the minutes that ended since `job_minutes_rolled.up_to`, reading finished jobs through
-- `jobs_finished_at`; a minute already written is never rewritten. Nothing here is written
-- on a claim or a finish: the index is the only cost a finish pays.
CREATE INDEX jobs_finished_at ON jobs (completed_at) WHERE completed_at IS NOT NULL;

CREATE TABLE job_minutes (
    org TEXT NOT NULL,
    application_id TEXT NOT NULL,
    minute INTEGER NOT NULL,
    completed INTEGER NOT NULL,
    failed INTEGER NOT NULL,
    ran INTEGER NOT NULL,
    wait_total INTEGER NOT NULL,
    wait_max INTEGER NOT NULL,
    run_total INTEGER NOT NULL,
    run_max INTEGER NOT NULL,
    PRIMARY KEY (org, minute, application_id)
) WITHOUT ROWID;
CREATE INDEX job_minutes_by_minute ON job_minutes (minute);

CREATE TABLE job_minutes_rolled (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    up_to INTEGER NOT NULL
);
INSERT INTO job_minutes_rolled (id, up_to) VALUES (1, 0);

-- The jobs list filtered by batch reads a batch's items newest first. The entry of an item
-- never changes after its insert (neither column does), so finishes do not touch it.
CREATE INDEX jobs_by_batch ON jobs (batch_id, seq) WHERE batch_id IS NOT NULL;

-- Sessions: the SHA-256 of the cookie's value, so a read of this table opens none.
CREATE TABLE ui_sessions (
    id_hash BLOB PRIMARY KEY,
    org TEXT NOT NULL,
    csrf TEXT NOT NULL,
    expires_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX ui_sessions_expiry ON ui_sessions (expires_at);

-- Events waiting for delivery, counted as they come and go, so /metrics reads one row.
CREATE TABLE webhook_pending (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    n INTEGER NOT NULL
);
INSERT INTO webhook_pending (id, n)
SELECT 1, count(*) FROM webhook_events WHERE state = 'pending';

CREATE TRIGGER webhook_pending_insert AFTER INSERT ON webhook_events
WHEN NEW.state = 'pending' BEGIN
    UPDATE webhook_pending SET n = n + 1;
END;

CREATE TRIGGER webhook_pending_update AFTER UPDATE OF state ON webhook_events
WHEN (OLD.state = 'pending') <> (NEW.state = 'pending') BEGIN
    UPDATE webhook_pending SET n = n + (NEW.state = 'pending') - (OLD.state = 'pending');
END;
