-- Batches: many jobs of one application created in one request. Each item is a job carrying
-- its batch's id and its custom_id.
--
-- A batch's counts are kept, as `job_counts` are, by the statement-level trigger on the jobs'
-- state changes, sharded the same way (the backend's pid modulo 16): outcome batches of
-- several nodes finishing items of one batch then do not queue behind one counter row's
-- commit. `total` is written once with the batch; its first `batch_counts` row (shard 0)
-- counts the items refused at create as failed. Reading a batch sums at most 16 rows,
-- whatever its size. `changed_at` is when an item last finished or was retried (the creation
-- time before): the batch's updated_at, and its completed_at once every item has finished.
CREATE TABLE batches (
    seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    org TEXT NOT NULL,
    application_id TEXT NOT NULL,
    total BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    priority SMALLINT NOT NULL,
    metadata TEXT NOT NULL,
    errors TEXT NOT NULL
);

CREATE INDEX batches_by_app ON batches (org, application_id, seq);

CREATE TABLE batch_counts (
    batch_id TEXT NOT NULL,
    shard INTEGER NOT NULL,
    completed BIGINT NOT NULL,
    failed BIGINT NOT NULL,
    changed_at BIGINT NOT NULL,
    PRIMARY KEY (batch_id, shard)
);

-- A batch with its counts summed over the shards.
CREATE VIEW batch_records AS
SELECT b.seq, b.id, b.org, b.application_id, b.total, c.completed, c.failed, b.created_at,
    c.changed_at, b.priority, b.metadata, b.errors,
    c.completed + c.failed >= b.total AS finished
FROM batches b CROSS JOIN LATERAL (
    SELECT coalesce(sum(completed), 0)::bigint AS completed,
        coalesce(sum(failed), 0)::bigint AS failed,
        coalesce(max(changed_at), b.created_at) AS changed_at
    FROM batch_counts WHERE batch_id = b.id) c;

ALTER TABLE jobs ADD COLUMN batch_id TEXT, ADD COLUMN custom_id TEXT;

CREATE OR REPLACE VIEW job_records AS
SELECT j.seq, j.id, j.org, j.application_id, j.status,
    CASE WHEN q.seq IS NULL THEN j.state ELSE q.state END AS state,
    CASE WHEN q.seq IS NULL THEN j.attempt ELSE q.attempt END AS attempt,
    j.created_at,
    CASE WHEN q.seq IS NULL THEN j.updated_at ELSE q.updated_at END AS updated_at,
    CASE WHEN q.seq IS NULL THEN j.started_at ELSE q.started_at END AS started_at,
    j.completed_at, j.title, j.suggestion, j.error, j.prompt_tokens, j.completion_tokens,
    j.priority, j.provider, j.model, j.batch_id, j.custom_id
FROM jobs j LEFT JOIN job_queue q ON q.seq = j.seq;

-- The counts of jobs, then of their batches, each upserted in key order (so that concurrent
-- statements lock counter rows in one order and cannot deadlock).
CREATE OR REPLACE FUNCTION jobs_count_update() RETURNS trigger LANGUAGE plpgsql AS $$
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
    RETURN NULL;
END $$;
