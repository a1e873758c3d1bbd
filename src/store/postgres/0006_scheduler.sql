-- The scheduler: priorities, backpressure that waits without spending attempts, and claims
-- that take turns across organisations.
--
-- `priority` is 0 (high), 1 (normal) or 2 (low); each queue row carries it and its
-- organisation, so a claim reads the queue alone. Each organisation's waiting jobs are
-- ordered by rank: the due time moved a day earlier for high and an hour later for low, so
-- high goes before normal, and a low job goes no later than normal jobs due an hour after it
-- (never starved). The rank expression is written out in `jobs::RANK` too, and must stay the
-- same text there for the planner to use this index. `max_wait_ms` bounds how long
-- backpressure may hold a job, from the queue row's `waiting_since`, the first "not now" of
-- a series (NULL when the provider last answered otherwise).
ALTER TABLE jobs ADD COLUMN priority SMALLINT NOT NULL DEFAULT 1,
    ADD COLUMN max_wait_ms BIGINT NOT NULL DEFAULT 86400000;
ALTER TABLE job_queue ADD COLUMN org TEXT,
    ADD COLUMN priority SMALLINT NOT NULL DEFAULT 1,
    ADD COLUMN waiting_since BIGINT;
UPDATE job_queue q SET org = j.org FROM jobs j WHERE j.seq = q.seq;
ALTER TABLE job_queue ALTER COLUMN org SET NOT NULL;

CREATE OR REPLACE FUNCTION jobs_enqueue() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO job_queue (seq, state, attempt, run_at, started_at, updated_at, org, priority)
    SELECT seq, state, attempt, run_at, started_at, updated_at, org, priority FROM inserted_jobs
    WHERE state IN ('queued', 'retrying');
    RETURN NULL;
END $$;

-- A claim skips from one organisation to the next in this index, and reads each one's first
-- jobs in rank order.
DROP INDEX job_queue_due;
CREATE INDEX job_queue_due ON job_queue
    (org, (run_at + CASE priority WHEN 0 THEN -86400000000 WHEN 2 THEN 3600000000 ELSE 0 END))
    WHERE state <> 'running';
