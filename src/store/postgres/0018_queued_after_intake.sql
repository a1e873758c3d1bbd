-- A batch's items get their queue rows after the batch is stored, a chunk per transaction, from
-- the store's queuer (`queueing.rs`), no longer from the statements that insert them: the 202
-- waits for the items' `jobs` rows, not for their `job_queue` rows too. The queue rows (the
-- row, its two index entries and the trigger's transition table) were 27,400 of the 94,400
-- instructions an item of a batch cost its backend (callgrind of one backend inserting 24,576
-- items, as in 0016), and that backend bounds a batch's intake: 100,000 inline items went in
-- at 86,000-98,000 a second, and at 135,000-142,000 without the queue rows (4 alternated
-- pairs). The queue rows cost the same afterwards, while the first items already run.
--
-- `unqueued_from` is the first `seq` of the batch's range (0016) whose items may lack their
-- queue rows; the items before it have them, or have finished. NULL once every item is queued
-- (and for a batch stored before this migration, whose items were queued as they went in).
-- Whoever moves it, or acts on the items from it, holds `batch_queueing_lock` of the batch for
-- its transaction: the queuer, a chunk at a time, and a cancel, which ends the items not yet
-- queued itself and sets it to NULL.
ALTER TABLE batches ADD COLUMN unqueued_from BIGINT;
-- The batches still being queued: a few at most, found by every node's queuer.
CREATE INDEX batches_unqueued ON batches (seq) WHERE unqueued_from IS NOT NULL;

CREATE FUNCTION batch_queueing_lock(batch_id TEXT) RETURNS BIGINT LANGUAGE sql IMMUTABLE AS
    $$ SELECT hashtextextended('scriptorium.batch_queueing.' || batch_id, 0) $$;

-- 0006's function, leaving a batch's items to the queuer.
CREATE OR REPLACE FUNCTION jobs_enqueue() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO job_queue (seq, state, attempt, run_at, started_at, updated_at, org, priority)
    SELECT seq, state, attempt, run_at, started_at, updated_at, org, priority FROM inserted_jobs
    WHERE state IN ('queued', 'retrying') AND batch_id IS NULL;
    RETURN NULL;
END $$;
-- A node of an earlier version still running against this schema would store batches whose
-- items nothing queues: upgrade every node of a cluster together.
