-- The attempts of a job that ended without its result (it failed, was retried, or went back
-- to wait for its provider), for the job's page. The finishing code writes one row each; a
-- completed attempt is the job's own row, so the usual path writes nothing here.
CREATE TABLE job_attempts (
    job_seq INTEGER NOT NULL,
    attempt INTEGER NOT NULL,
    started_at INTEGER,
    ended_at INTEGER NOT NULL,
    state TEXT NOT NULL,
    error TEXT,
    PRIMARY KEY (job_seq, ended_at, attempt)
) WITHOUT ROWID;
