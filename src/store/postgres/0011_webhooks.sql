-- Webhooks: a batch's subscription, each organisation's signing secret, and the outbox.
--
-- The outbox's events are written by the jobs' statement trigger (below) inside the
-- transaction that finishes the items, so an event exists exactly when its change committed.
-- Statements that touch no batch's item return before any of it (the check 0010 added).

-- `events` is a bit mask: 1 batch.completed, 2 job.completed, 4 job.failed.
CREATE TABLE batch_webhooks (
    batch_id TEXT PRIMARY KEY,
    org TEXT NOT NULL,
    url TEXT NOT NULL,
    events SMALLINT NOT NULL
);

-- `previous` is the secret the last rotation replaced, at `created_at` (deliveries are signed
-- with both for a while, so receivers can move to the new one).
CREATE TABLE webhook_secrets (
    org TEXT PRIMARY KEY,
    secret TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    previous TEXT
);

-- One row per event. `id` is the webhook-id (128 random bits; not indexed: nothing looks an
-- event up by it). While `state` is 'pending', `next_at` is when the next attempt is due; a
-- claim (FOR UPDATE SKIP LOCKED, so nodes never take the same event) moves it past the claim's
-- lease, so an attempt whose node died is taken again once the lease lapses.
CREATE TABLE webhook_events (
    seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id TEXT NOT NULL,
    org TEXT NOT NULL,
    batch_id TEXT NOT NULL,
    job_id TEXT,
    type TEXT NOT NULL,
    url TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending',
    attempts INTEGER NOT NULL DEFAULT 0,
    next_at BIGINT NOT NULL
);

CREATE INDEX webhook_events_due ON webhook_events (next_at) WHERE state = 'pending';
CREATE INDEX webhook_events_by_batch ON webhook_events (org, batch_id, seq);
CREATE INDEX webhook_events_by_org ON webhook_events (org, seq);

-- Every attempt: when, how long, and the status code or the error.
CREATE TABLE webhook_attempts (
    event_seq BIGINT NOT NULL,
    attempt INTEGER NOT NULL,
    at BIGINT NOT NULL,
    duration_ms BIGINT NOT NULL,
    status_code INTEGER,
    error TEXT,
    PRIMARY KEY (event_seq, attempt)
);

-- A fresh webhook-id: `msg_` and 32 hex digits.
CREATE FUNCTION webhook_event_id() RETURNS text LANGUAGE sql VOLATILE AS $$
    SELECT 'msg_' || replace(gen_random_uuid()::text, '-', '')
$$;

-- Writes batch.completed for batch `batch` (to `url`) if the statement that ran it finished
-- the batch: `delta` is how many of its items that statement finished (net). The batch's
-- counts are sharded, so two nodes finishing its last items at once would each see the
-- other's count still uncommitted; a transaction-scoped lock per batch orders them, and the
-- count is read after it (a new snapshot), so exactly the last to commit sees the batch
-- finished. Only batches subscribed to batch.completed take the lock.
CREATE FUNCTION webhook_batch_completed(batch text, owner text, url text, delta bigint)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    r record;
BEGIN
    PERFORM pg_advisory_xact_lock(
        hashtextextended('scriptorium.batch.' || coalesce(current_schema(), '') || batch, 0));
    SELECT b.total, b.completed + b.failed AS done, b.changed_at INTO r
    FROM batch_records b WHERE b.id = batch;
    IF r.done >= r.total AND r.done - delta < r.total THEN
        INSERT INTO webhook_events (id, org, batch_id, type, url, created_at, next_at)
        VALUES (webhook_event_id(), owner, batch, 'batch.completed', url, r.changed_at,
            r.changed_at);
    END IF;
END $$;

-- 0010's function, with the webhook events after the batches' counts.
CREATE OR REPLACE FUNCTION jobs_count_update() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    finishing record;
BEGIN
    WITH moved AS MATERIALIZED (
        SELECT o.org, o.application_id, o.status AS was, n.status AS now
        FROM old_jobs o JOIN new_jobs n ON n.seq = o.seq
        WHERE o.status <> n.status
    )
    INSERT INTO job_counts (org, application_id, status, shard, n)
    SELECT org, application_id, status, pg_backend_pid() % 16, sum(delta) FROM (
        SELECT org, application_id, was AS status, -1 AS delta FROM moved
        UNION ALL
        SELECT org, application_id, now, 1 FROM moved
    ) changes
    GROUP BY org, application_id, status
    HAVING sum(delta) <> 0
    ORDER BY org, application_id, status
    ON CONFLICT (org, application_id, status, shard) DO UPDATE SET n = job_counts.n + excluded.n;

    -- Most statements touch no batch's item: they skip the join.
    IF NOT EXISTS (SELECT 1 FROM new_jobs WHERE batch_id IS NOT NULL) THEN
        RETURN NULL;
    END IF;
    INSERT INTO batch_counts (batch_id, shard, completed, failed, changed_at)
    SELECT n.batch_id, pg_backend_pid() % 16,
        count(*) FILTER (WHERE n.status = 'completed')
            - count(*) FILTER (WHERE o.status = 'completed'),
        count(*) FILTER (WHERE n.status = 'failed') - count(*) FILTER (WHERE o.status = 'failed'),
        max(n.updated_at)
    FROM new_jobs n JOIN old_jobs o ON o.seq = n.seq
    WHERE n.batch_id IS NOT NULL AND o.status <> n.status
    GROUP BY n.batch_id
    ORDER BY n.batch_id
    ON CONFLICT (batch_id, shard) DO UPDATE SET
        completed = batch_counts.completed + excluded.completed,
        failed = batch_counts.failed + excluded.failed,
        changed_at = greatest(batch_counts.changed_at, excluded.changed_at);

    -- Webhooks (0013): nothing more for items of batches without one...
    IF NOT EXISTS (SELECT 1 FROM batch_webhooks
                   WHERE batch_id IN (SELECT batch_id FROM new_jobs WHERE batch_id IS NOT NULL)) THEN
        RETURN NULL;
    END IF;
    -- ...else each finished item's event, as its batch subscribed...
    INSERT INTO webhook_events (id, org, batch_id, job_id, type, url, created_at, next_at)
    SELECT webhook_event_id(), w.org, w.batch_id, n.id, 'job.' || n.status, w.url,
        n.updated_at, n.updated_at
    FROM new_jobs n JOIN old_jobs o ON o.seq = n.seq JOIN batch_webhooks w ON w.batch_id = n.batch_id
    WHERE n.batch_id IS NOT NULL AND o.status <> n.status AND n.status IN ('completed', 'failed')
        AND w.events & (CASE n.status WHEN 'completed' THEN 2 ELSE 4 END) <> 0
    ORDER BY n.seq;
    -- ...then batch.completed for the subscribed batches this statement finished.
    FOR finishing IN
        SELECT w.batch_id, w.org, w.url,
            count(*) FILTER (WHERE n.status <> 'in_progress')
                - count(*) FILTER (WHERE o.status <> 'in_progress') AS delta
        FROM new_jobs n JOIN old_jobs o ON o.seq = n.seq
            JOIN batch_webhooks w ON w.batch_id = n.batch_id
        WHERE n.batch_id IS NOT NULL AND o.status <> n.status AND w.events & 1 <> 0
        GROUP BY w.batch_id, w.org, w.url
        ORDER BY w.batch_id
    LOOP
        PERFORM webhook_batch_completed(finishing.batch_id, finishing.org, finishing.url,
            finishing.delta);
    END LOOP;
    RETURN NULL;
END $$;

-- A batch whose every item was refused at create is finished from the start.
CREATE FUNCTION batch_webhooks_finished() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.events & 1 <> 0 THEN
        INSERT INTO webhook_events (id, org, batch_id, type, url, created_at, next_at)
        SELECT webhook_event_id(), NEW.org, r.id, 'batch.completed', NEW.url, r.created_at,
            r.created_at
        FROM batch_records r
        WHERE r.id = NEW.batch_id AND r.completed + r.failed >= r.total;
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER batch_webhooks_finished AFTER INSERT ON batch_webhooks
    FOR EACH ROW EXECUTE FUNCTION batch_webhooks_finished();
