-- The attempts of a job that ended without its result (it failed, was retried, or went back
-- to wait for its provider), for the job's page: the same as SQLite's 0015_job_attempts.sql.
-- The outcome statement writes one row each; a completed attempt is the job's own row, so the
-- usual path writes nothing here.
CREATE TABLE job_attempts (
    job_seq BIGINT NOT NULL,
    attempt INTEGER NOT NULL,
    started_at BIGINT,
    ended_at BIGINT NOT NULL,
    state TEXT NOT NULL,
    error TEXT,
    PRIMARY KEY (job_seq, ended_at, attempt)
);
