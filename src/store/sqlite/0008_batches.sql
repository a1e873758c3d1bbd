-- Batches: many jobs of one application created in one request. Each item is a job carrying
-- its batch's id and its custom_id.
--
-- The batch row keeps its counts: `total` is written once, `completed` and `failed` move with
-- the items' Writer status (the trigger below, in the transaction that changes it), so reading
-- a batch of 100,000 items reads one row instead of counting them (a grouped count over an
-- index on (batch_id, status) took 17 ms a read for 100,000 items on a 2-core machine). Items refused at create are
-- inserted failed and counted in `failed` from the start. `changed_at` is when an item last
-- finished or was retried (the creation time before): the batch's updated_at, and its
-- completed_at once every item has finished.
CREATE TABLE batches (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    org TEXT NOT NULL,
    application_id TEXT NOT NULL,
    total INTEGER NOT NULL,
    completed INTEGER NOT NULL,
    failed INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    changed_at INTEGER NOT NULL,
    priority INTEGER NOT NULL,
    metadata TEXT NOT NULL,
    errors TEXT NOT NULL,
    finished INTEGER GENERATED ALWAYS AS (completed + failed >= total) VIRTUAL
);

CREATE INDEX batches_by_app ON batches (org, application_id, finished, seq);

ALTER TABLE jobs ADD COLUMN batch_id TEXT;
ALTER TABLE jobs ADD COLUMN custom_id TEXT;

CREATE TRIGGER jobs_batch_count AFTER UPDATE OF state ON jobs
WHEN NEW.batch_id IS NOT NULL AND OLD.status <> NEW.status BEGIN
    UPDATE batches SET
        completed = completed + (NEW.status = 'completed') - (OLD.status = 'completed'),
        failed = failed + (NEW.status = 'failed') - (OLD.status = 'failed'),
        changed_at = NEW.updated_at
    WHERE id = NEW.batch_id;
END;
