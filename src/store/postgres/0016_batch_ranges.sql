-- A batch's items are found through the range of `jobs.seq` they were inserted in, kept on
-- the batch, so `jobs_by_batch` goes. One connection inserts a batch's items in one
-- transaction, so they take increasing `seq`s after every job that existed before it began:
-- they lie in (`first_seq` - 1, `last_seq`], perhaps beside a few jobs that other connections
-- inserted meanwhile, which the batch's id filters out. A list of a batch's items reads the
-- range (in `jobs_by_app_status`, or the queue's primary key for a cancel) instead of an index
-- of its own.
--
-- The index cost more than it gave. Each item took an entry when inserted (a ninth of
-- PostgreSQL's work per item of a batch: callgrind of one backend inserting 24,576 items,
-- 106,600 instructions an item with it, 95,000 without), and each finish, which is never a HOT
-- update, another, with the old version's key, so PostgreSQL cleaned its pages bottom-up as it
-- did `jobs_by_app`'s (0015). Results, retries and a batch's pace read `jobs_finished`.
-- A batch of no items has no range (NULL): nothing lies in it.
ALTER TABLE batches ADD COLUMN first_seq BIGINT, ADD COLUMN last_seq BIGINT;

UPDATE batches b SET first_seq = r.first_seq, last_seq = r.last_seq
FROM (SELECT batch_id, min(seq) AS first_seq, max(seq) AS last_seq
      FROM jobs WHERE batch_id IS NOT NULL GROUP BY batch_id) r
WHERE r.batch_id = b.id;

DROP INDEX jobs_by_batch;

-- Every key of `jobs_by_app_status` ends in `seq`, so no two are alike and deduplication
-- never merges any: it only scanned each full page before the split it could not prevent
-- (2,000 instructions an item of a batch insert, counted as above).
ALTER INDEX jobs_by_app_status SET (deduplicate_items = off);
