-- Text extraction is leased work: a worker claims an in-progress file (attempt + 1, a lease),
-- renews the lease while it extracts, and records the result fenced by the attempt.
ALTER TABLE files ADD COLUMN attempt INTEGER NOT NULL DEFAULT 0;
ALTER TABLE files ADD COLUMN lease_until BIGINT;
