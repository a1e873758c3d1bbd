-- A batch's lifecycle: cancellation, the order its items finish in, and its retry. The same
-- model as SQLite's 0011_batch_lifecycle.sql:
--
-- Cancelling: a waiting job leaves the queue and is stored `failed` with `cancelled_at` set
-- and the error 'cancelled' (its Writer status is `failed`; `job_records` shows its state as
-- 'cancelled'). A running job's queue row becomes 'cancelling': every write of its attempt is
-- fenced on 'running', so its result is dropped and its heartbeat finds the lease gone, which
-- aborts the model call; the renewal that finds it so, or the reaper once its lease lapses,
-- ends it cancelled.
--
-- Finishing order: `finished_seq` comes from the sequence `job_finished_seq`, taken by the
-- row trigger `jobs_finish_order` when a batch's item finishes (and cleared when it is queued
-- again); its WHEN clause keeps plain jobs out of it. Numbers are taken in one order and
-- committed in another, so a reader of the results first waits out the transactions still
-- numbering the batch's items: each takes the batch's advisory lock shared (in the trigger),
-- the reader takes it exclusively for a moment, then reads only up to the sequence's value
-- then (its horizon). `jobs_finished` holds batch items only once finished. `position` is
-- the item's 1-based place in the batch as sent.
--
-- Counts: `batch_counts.cancelled` counts items cancelled (no longer in `failed`);
-- `batches.cancelled_at` is when a cancel of the whole batch was asked; an item queued again
-- (a retry) clears it.
ALTER TABLE jobs ADD COLUMN cancelled_at BIGINT, ADD COLUMN position BIGINT,
    ADD COLUMN finished_seq BIGINT;
ALTER TABLE batches ADD COLUMN cancelled_at BIGINT;
ALTER TABLE batch_counts ADD COLUMN cancelled BIGINT NOT NULL DEFAULT 0;
CREATE SEQUENCE job_finished_seq;

-- Items stored before: inserted in order, so their seqs follow their positions.
UPDATE jobs j SET position = r.position FROM (
    SELECT seq, row_number() OVER (PARTITION BY batch_id ORDER BY seq) AS position
    FROM jobs WHERE batch_id IS NOT NULL) r
WHERE j.seq = r.seq;
UPDATE jobs j SET finished_seq = r.n FROM (
    SELECT seq, row_number() OVER (ORDER BY completed_at, seq) AS n
    FROM jobs WHERE batch_id IS NOT NULL AND status <> 'in_progress') r
WHERE j.seq = r.seq;
SELECT setval('job_finished_seq', coalesce(max(finished_seq), 0) + 1, false) FROM jobs;

CREATE INDEX jobs_finished ON jobs (batch_id, finished_seq) WHERE finished_seq IS NOT NULL;

-- The advisory lock of a batch's finishing order (the same expression in `results.rs`).
CREATE FUNCTION batch_order_lock(batch_id TEXT) RETURNS BIGINT LANGUAGE sql IMMUTABLE AS
    $$ SELECT hashtextextended('scriptorium.batch_order.' || batch_id, 0) $$;

CREATE FUNCTION jobs_finish_order() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.state IN ('completed', 'failed') THEN
        PERFORM pg_advisory_xact_lock_shared(batch_order_lock(NEW.batch_id));
        NEW.finished_seq := nextval('job_finished_seq');
    ELSE
        NEW.finished_seq := NULL;
    END IF;
    RETURN NEW;
END $$;

CREATE TRIGGER jobs_finish_order BEFORE UPDATE OF state ON jobs FOR EACH ROW
    WHEN (NEW.batch_id IS NOT NULL AND OLD.state IS DISTINCT FROM NEW.state)
    EXECUTE FUNCTION jobs_finish_order();

DROP VIEW batch_records;
CREATE VIEW batch_records AS
SELECT b.seq, b.id, b.org, b.application_id, b.total, c.completed, c.failed, c.cancelled,
    b.created_at, c.changed_at, b.priority, b.metadata, b.errors, b.cancelled_at,
    c.completed + c.failed + c.cancelled >= b.total AS finished
FROM batches b CROSS JOIN LATERAL (
    SELECT coalesce(sum(completed), 0)::bigint AS completed,
        coalesce(sum(failed), 0)::bigint AS failed,
        coalesce(sum(cancelled), 0)::bigint AS cancelled,
        coalesce(max(changed_at), b.created_at) AS changed_at
    FROM batch_counts WHERE batch_id = b.id) c;

CREATE OR REPLACE VIEW job_records AS
SELECT j.seq, j.id, j.org, j.application_id, j.status,
    CASE WHEN q.seq IS NOT NULL THEN q.state
        WHEN j.state = 'failed' AND j.cancelled_at IS NOT NULL THEN 'cancelled'
        ELSE j.state END AS state,
    CASE WHEN q.seq IS NULL THEN j.attempt ELSE q.attempt END AS attempt,
    j.created_at,
    CASE WHEN q.seq IS NULL THEN j.updated_at ELSE q.updated_at END AS updated_at,
    CASE WHEN q.seq IS NULL THEN j.started_at ELSE q.started_at END AS started_at,
    j.completed_at, j.title, j.suggestion, j.error, j.prompt_tokens, j.completion_tokens,
    j.priority, j.provider, j.model, j.batch_id, j.custom_id
FROM jobs j LEFT JOIN job_queue q ON q.seq = j.seq;

-- 0013's function, with the cancelled count, and a retry ending a batch's cancel.
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
    INSERT INTO batch_counts (batch_id, shard, completed, failed, cancelled, changed_at)
    SELECT n.batch_id, pg_backend_pid() % 16,
        count(*) FILTER (WHERE n.status = 'completed')
            - count(*) FILTER (WHERE o.status = 'completed'),
        count(*) FILTER (WHERE n.status = 'failed' AND n.cancelled_at IS NULL)
            - count(*) FILTER (WHERE o.status = 'failed' AND o.cancelled_at IS NULL),
        count(*) FILTER (WHERE n.status = 'failed' AND n.cancelled_at IS NOT NULL)
            - count(*) FILTER (WHERE o.status = 'failed' AND o.cancelled_at IS NOT NULL),
        max(n.updated_at)
    FROM new_jobs n JOIN old_jobs o ON o.seq = n.seq
    WHERE n.batch_id IS NOT NULL AND o.status <> n.status
    GROUP BY n.batch_id
    ORDER BY n.batch_id
    ON CONFLICT (batch_id, shard) DO UPDATE SET
        completed = batch_counts.completed + excluded.completed,
        failed = batch_counts.failed + excluded.failed,
        cancelled = batch_counts.cancelled + excluded.cancelled,
        changed_at = greatest(batch_counts.changed_at, excluded.changed_at);
    -- A batch whose item is queued again (a retry) is no longer cancelled.
    UPDATE batches SET cancelled_at = NULL
    WHERE cancelled_at IS NOT NULL AND id IN (
        SELECT n.batch_id FROM new_jobs n JOIN old_jobs o ON o.seq = n.seq
        WHERE n.batch_id IS NOT NULL AND n.status = 'in_progress' AND o.status <> 'in_progress');

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

-- 0013's function, counting cancelled items as finished.
CREATE OR REPLACE FUNCTION webhook_batch_completed(batch text, owner text, url text, delta bigint)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    r record;
BEGIN
    PERFORM pg_advisory_xact_lock(
        hashtextextended('scriptorium.batch.' || coalesce(current_schema(), '') || batch, 0));
    SELECT b.total, b.completed + b.failed + b.cancelled AS done, b.changed_at INTO r
    FROM batch_records b WHERE b.id = batch;
    IF r.done >= r.total AND r.done - delta < r.total THEN
        INSERT INTO webhook_events (id, org, batch_id, type, url, created_at, next_at)
        VALUES (webhook_event_id(), owner, batch, 'batch.completed', url, r.changed_at,
            r.changed_at);
    END IF;
END $$;
