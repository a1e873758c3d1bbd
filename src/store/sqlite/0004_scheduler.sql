-- The scheduler: priorities, backpressure that waits without spending attempts, and claims
-- that take turns across organisations.
--
-- `priority` is 0 (high), 1 (normal) or 2 (low). `rank` orders an organisation's due jobs:
-- its due time moved a day earlier for high and an hour later for low, so high goes before
-- normal, and a low job goes no later than normal jobs due an hour after it (never starved).
-- `max_wait_ms` bounds how long backpressure may hold a job, from `waiting_since`, the first
-- "not now" of a series (NULL when the provider last answered otherwise).
ALTER TABLE jobs ADD COLUMN priority INTEGER NOT NULL DEFAULT 1;
ALTER TABLE jobs ADD COLUMN max_wait_ms INTEGER NOT NULL DEFAULT 86400000;
ALTER TABLE jobs ADD COLUMN waiting_since INTEGER;
ALTER TABLE jobs ADD COLUMN rank INTEGER GENERATED ALWAYS AS (
    run_at + CASE priority WHEN 0 THEN -86400000000 WHEN 2 THEN 3600000000 ELSE 0 END
) VIRTUAL;

-- Waiting jobs by organisation, in rank order: a claim walks the organisations with work
-- (skipping from one to the next in the index) and takes each one's first jobs. `run_at` is
-- in the index so that telling a due job from one that waits needs no read of its row.
DROP INDEX jobs_due;
CREATE INDEX jobs_due ON jobs (org, rank, run_at)
    WHERE state IN ('queued', 'retrying', 'waiting_for_provider');
