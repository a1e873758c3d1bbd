-- The state that changes while a job waits and runs moves out of the wide `jobs` row into a
-- narrow `job_queue` row, which exists exactly while the job is queued, retrying or running.
-- A claim, a heartbeat, a release and a requeue then rewrite only that narrow row (and its
-- two small indexes) instead of the wide row and every index of `jobs`; the `jobs` row is
-- written when the job is inserted, when it leaves the queue (completed, failed), when a
-- retry outcome records its error, and when the retry route queues a failed job again.
--
-- While a `job_queue` row exists its state, attempt, started_at and updated_at are the job's;
-- the same columns of `jobs` are then stale and `job_records` reads the queue's. `jobs.status`
-- (and so `job_counts`) stays exact: a job is 'in_progress' exactly while it is queued.
--
-- `run_at` is when a waiting job becomes due (`jobs.run_at` keeps an earlier value; the
-- queue's is the one that counts); `lease_until` is when a running job's lease lapses, and
-- NULL unless the job is running. Each row is in exactly one of the two partial indexes, so a
-- claim walks due jobs in `run_at` order and the reaper walks lapsed leases, and neither scans
-- the other's rows.
CREATE TABLE job_queue (
    seq BIGINT PRIMARY KEY,
    state TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    run_at BIGINT NOT NULL,
    lease_until BIGINT,
    started_at BIGINT,
    updated_at BIGINT NOT NULL
);

CREATE INDEX job_queue_due ON job_queue (run_at) WHERE state <> 'running';
-- Only running rows have a lease. The predicate is not `state = 'running'` on purpose: the
-- fence of every write to a running row says that, and the planner would then read this whole
-- index (dead entries included, which bitmap scans never clean) for each batch of outcomes
-- or heartbeats instead of probing the primary key.
CREATE INDEX job_queue_leased ON job_queue (lease_until) WHERE lease_until IS NOT NULL;

INSERT INTO job_queue (seq, state, attempt, run_at, lease_until, started_at, updated_at)
SELECT seq, state, attempt, run_at, CASE WHEN state = 'running' THEN lease_until END,
    started_at, updated_at
FROM jobs WHERE state IN ('queued', 'retrying', 'running');

-- Every job inserted waiting, by whatever statement, gets its queue row in the same statement.
CREATE FUNCTION jobs_enqueue() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO job_queue (seq, state, attempt, run_at, started_at, updated_at)
    SELECT seq, state, attempt, run_at, started_at, updated_at FROM inserted_jobs
    WHERE state IN ('queued', 'retrying');
    RETURN NULL;
END $$;

CREATE TRIGGER jobs_enqueue AFTER INSERT ON jobs
    REFERENCING NEW TABLE AS inserted_jobs
    FOR EACH STATEMENT EXECUTE FUNCTION jobs_enqueue();

-- Superseded by the queue's indexes and its `lease_until`. Dropping the column also makes a
-- node of an earlier version, left running against this schema, fail every claim, outcome,
-- heartbeat, release, reap and retry loudly instead of working jobs outside the queue; its
-- inserts still queue (through the trigger above).
DROP INDEX jobs_due;
DROP INDEX jobs_leased;
ALTER TABLE jobs DROP COLUMN lease_until;

-- A job as the API shows it: the `jobs` row, with the queue's changing columns while queued.
CREATE VIEW job_records AS
SELECT j.seq, j.id, j.org, j.application_id, j.status,
    CASE WHEN q.seq IS NULL THEN j.state ELSE q.state END AS state,
    CASE WHEN q.seq IS NULL THEN j.attempt ELSE q.attempt END AS attempt,
    j.created_at,
    CASE WHEN q.seq IS NULL THEN j.updated_at ELSE q.updated_at END AS updated_at,
    CASE WHEN q.seq IS NULL THEN j.started_at ELSE q.started_at END AS started_at,
    j.completed_at, j.title, j.suggestion, j.error, j.prompt_tokens, j.completion_tokens
FROM jobs j LEFT JOIN job_queue q ON q.seq = j.seq;

-- Counters per shard: every statement that changes counts upserted the same one or two rows,
-- so concurrent writers (outcome batches of several nodes, insert groups) queued behind each
-- other's commit. A statement now upserts the rows of its connection's shard (its backend's
-- pid modulo 16), still in key order; `totalCount` sums the shards. A shard's own count may
-- go below zero (a job counted in on one shard and out on another); the sums stay exact.
ALTER TABLE job_counts ADD COLUMN shard INTEGER NOT NULL DEFAULT 0;
ALTER TABLE job_counts DROP CONSTRAINT job_counts_pkey;
ALTER TABLE job_counts ADD PRIMARY KEY (org, application_id, status, shard);

CREATE OR REPLACE FUNCTION jobs_count_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO job_counts (org, application_id, status, shard, n)
    SELECT org, application_id, status, pg_backend_pid() % 16, count(*) FROM inserted_jobs
    GROUP BY org, application_id, status
    ORDER BY org, application_id, status
    ON CONFLICT (org, application_id, status, shard) DO UPDATE SET n = job_counts.n + excluded.n;
    RETURN NULL;
END $$;

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
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION jobs_count_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO job_counts (org, application_id, status, shard, n)
    SELECT org, application_id, status, pg_backend_pid() % 16, -count(*) FROM deleted_jobs
    GROUP BY org, application_id, status
    ORDER BY org, application_id, status
    ON CONFLICT (org, application_id, status, shard) DO UPDATE SET n = job_counts.n + excluded.n;
    RETURN NULL;
END $$;
