-- Webhooks: a batch's subscription, each organisation's signing secret, and the outbox.
--
-- The outbox's events are written by the triggers below, inside the transaction that changes
-- what they tell of, so an event exists exactly when its change committed (nothing to lose
-- between the change and a separate write). Plain jobs (no batch) stop at the triggers'
-- WHEN clause; an item of a batch without a webhook costs one primary-key probe of
-- `batch_webhooks` when it finishes.

-- `events` is a bit mask: 1 batch.completed, 2 job.completed, 4 job.failed.
CREATE TABLE batch_webhooks (
    batch_id TEXT PRIMARY KEY,
    org TEXT NOT NULL,
    url TEXT NOT NULL,
    events INTEGER NOT NULL
) WITHOUT ROWID;

-- `previous` is the secret the last rotation replaced, at `created_at` (deliveries are signed
-- with both for a while, so receivers can move to the new one).
CREATE TABLE webhook_secrets (
    org TEXT PRIMARY KEY,
    secret TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    previous TEXT
) WITHOUT ROWID;

-- One row per event. `id` is the webhook-id (128 random bits; not indexed: nothing looks an
-- event up by it). While `state` is 'pending', `next_at` is when the next attempt is due; a
-- claim moves it past the claim's lease (and sets `claimed`), so an attempt whose process died
-- is tried again once the lease lapses, and a server starting on this file makes every claimed
-- event due at once (it is the only process).
CREATE TABLE webhook_events (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL,
    org TEXT NOT NULL,
    batch_id TEXT NOT NULL,
    job_id TEXT,
    type TEXT NOT NULL,
    url TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending',
    attempts INTEGER NOT NULL DEFAULT 0,
    next_at INTEGER NOT NULL,
    claimed INTEGER NOT NULL DEFAULT 0
);

CREATE INDEX webhook_events_due ON webhook_events (next_at) WHERE state = 'pending';
CREATE INDEX webhook_events_by_batch ON webhook_events (org, batch_id, seq);
CREATE INDEX webhook_events_by_org ON webhook_events (org, seq);

-- Every attempt: when, how long, and the status code or the error.
CREATE TABLE webhook_attempts (
    event_seq INTEGER NOT NULL,
    attempt INTEGER NOT NULL,
    at INTEGER NOT NULL,
    duration_ms INTEGER NOT NULL,
    status_code INTEGER,
    error TEXT,
    PRIMARY KEY (event_seq, attempt)
) WITHOUT ROWID;

-- An item of a subscribed batch finished: job.completed or job.failed.
CREATE TRIGGER jobs_webhook_event AFTER UPDATE OF state ON jobs
WHEN NEW.batch_id IS NOT NULL AND OLD.status <> NEW.status
    AND NEW.status IN ('completed', 'failed') BEGIN
    INSERT INTO webhook_events (id, org, batch_id, job_id, type, url, created_at, next_at)
    SELECT 'msg_' || lower(hex(randomblob(16))), w.org, w.batch_id, NEW.id, 'job.' || NEW.status,
        w.url, NEW.updated_at, NEW.updated_at
    FROM batch_webhooks w
    WHERE w.batch_id = NEW.batch_id
        AND w.events & (CASE NEW.status WHEN 'completed' THEN 2 ELSE 4 END) <> 0;
END;

-- A batch's last item finished (its counts, kept by `jobs_batch_count`, reached its total).
CREATE TRIGGER batches_webhook_event AFTER UPDATE OF completed, failed ON batches
WHEN NEW.completed + NEW.failed >= NEW.total AND OLD.completed + OLD.failed < OLD.total BEGIN
    INSERT INTO webhook_events (id, org, batch_id, type, url, created_at, next_at)
    SELECT 'msg_' || lower(hex(randomblob(16))), w.org, w.batch_id, 'batch.completed', w.url,
        NEW.changed_at, NEW.changed_at
    FROM batch_webhooks w
    WHERE w.batch_id = NEW.id AND w.events & 1 <> 0;
END;

-- A batch whose every item was refused at create is finished from the start.
CREATE TRIGGER batch_webhooks_finished AFTER INSERT ON batch_webhooks
WHEN NEW.events & 1 <> 0 BEGIN
    INSERT INTO webhook_events (id, org, batch_id, type, url, created_at, next_at)
    SELECT 'msg_' || lower(hex(randomblob(16))), NEW.org, b.id, 'batch.completed', NEW.url,
        b.created_at, b.created_at
    FROM batches b
    WHERE b.id = NEW.batch_id AND b.completed + b.failed >= b.total;
END;
