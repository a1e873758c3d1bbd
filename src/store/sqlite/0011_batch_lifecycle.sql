-- A batch's lifecycle: cancellation, the order its items finish in, and its retry.
--
-- Cancelling: a job that was waiting is cancelled at once: it is stored `failed` (so its
-- Writer status is `failed` and `job_counts` need nothing new) with `cancelled_at` set and the
-- error 'cancelled'; reads show its state as 'cancelled'. A running job becomes 'cancelling'
-- (Writer status `in_progress`): every write of its attempt is fenced on 'running', so its
-- result is dropped and its heartbeat finds the lease gone, which aborts the model call; the
-- renewal that finds it so, or the reaper once its lease lapses, ends it cancelled. The
-- partial index `jobs_cancelling` lets the reaper find those whose worker died.
--
-- Finishing order: `finished_seq` is set when a batch's item finishes and cleared when it
-- is queued again, by the count trigger below, from the batch's `finishes` counter (+ total:
-- an item refused at create is inserted with its position as `finished_seq`, so those come
-- first). Items of one batch are numbered by the single writer, so numbers follow commits:
-- a client following the results by cursor can never skip one. `jobs_finished` holds batch
-- items only once finished: plain jobs never enter it. `position` is the item's 1-based
-- place in the batch as sent.
--
-- Counts: `cancelled` counts items cancelled (no longer in `failed`); `finished` counts them
-- as finished. `batches.cancelled_at` is when a cancel of the whole batch was asked; an item
-- queued again (a retry) clears it.
ALTER TABLE jobs ADD COLUMN cancelled_at INTEGER;
ALTER TABLE jobs ADD COLUMN position INTEGER;
ALTER TABLE jobs ADD COLUMN finished_seq INTEGER;

ALTER TABLE batches ADD COLUMN cancelled INTEGER NOT NULL DEFAULT 0;
ALTER TABLE batches ADD COLUMN cancelled_at INTEGER;
ALTER TABLE batches ADD COLUMN finishes INTEGER NOT NULL DEFAULT 0;
DROP INDEX batches_by_app;
ALTER TABLE batches DROP COLUMN finished;
ALTER TABLE batches ADD COLUMN finished INTEGER
    GENERATED ALWAYS AS (completed + failed + cancelled >= total) VIRTUAL;
CREATE INDEX batches_by_app ON batches (org, application_id, finished, seq);

-- Items stored before: inserted in order by one transaction, so their rows are consecutive.
UPDATE jobs SET position = seq - (
    SELECT min(j.seq) FROM jobs j WHERE j.batch_id = jobs.batch_id) + 1
WHERE batch_id IS NOT NULL;
UPDATE jobs SET finished_seq = f.n FROM (
    SELECT j.seq, b.total + row_number() OVER (
        PARTITION BY j.batch_id ORDER BY j.completed_at, j.seq) AS n
    FROM jobs j JOIN batches b ON b.id = j.batch_id
    WHERE j.status <> 'in_progress') f
WHERE jobs.seq = f.seq;
UPDATE batches SET finishes = (
    SELECT count(*) FROM jobs WHERE jobs.batch_id = batches.id AND finished_seq IS NOT NULL);

CREATE INDEX jobs_finished ON jobs (batch_id, finished_seq) WHERE finished_seq IS NOT NULL;
CREATE INDEX jobs_cancelling ON jobs (lease_until) WHERE state = 'cancelling';

DROP TRIGGER jobs_batch_count;
CREATE TRIGGER jobs_batch_count AFTER UPDATE OF state ON jobs
WHEN NEW.batch_id IS NOT NULL AND OLD.status <> NEW.status BEGIN
    UPDATE batches SET
        completed = completed + (NEW.status = 'completed') - (OLD.status = 'completed'),
        failed = failed + (NEW.status = 'failed' AND NEW.cancelled_at IS NULL)
            - (OLD.status = 'failed' AND OLD.cancelled_at IS NULL),
        cancelled = cancelled + (NEW.status = 'failed' AND NEW.cancelled_at IS NOT NULL)
            - (OLD.status = 'failed' AND OLD.cancelled_at IS NOT NULL),
        finishes = finishes + (NEW.status <> 'in_progress'),
        cancelled_at = CASE WHEN NEW.status = 'in_progress' THEN NULL ELSE cancelled_at END,
        changed_at = NEW.updated_at
    WHERE id = NEW.batch_id;
    UPDATE jobs SET finished_seq = CASE WHEN NEW.status = 'in_progress' THEN NULL
        ELSE (SELECT total + finishes FROM batches WHERE id = NEW.batch_id) END
    WHERE seq = NEW.seq;
END;

-- Webhooks (0011): a batch whose last items were cancelled has finished too.
DROP TRIGGER batches_webhook_event;
CREATE TRIGGER batches_webhook_event AFTER UPDATE OF completed, failed, cancelled ON batches
WHEN NEW.completed + NEW.failed + NEW.cancelled >= NEW.total
    AND OLD.completed + OLD.failed + OLD.cancelled < OLD.total BEGIN
    INSERT INTO webhook_events (id, org, batch_id, type, url, created_at, next_at)
    SELECT 'msg_' || lower(hex(randomblob(16))), w.org, w.batch_id, 'batch.completed', w.url,
        NEW.changed_at, NEW.changed_at
    FROM batch_webhooks w
    WHERE w.batch_id = NEW.id AND w.events & 1 <> 0;
END;
