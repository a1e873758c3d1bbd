-- Which provider, and which model, produced a job's result: written with the result, in the
-- same statement; NULL until the job completes. `job_records` shows them, and the job's
-- priority.
ALTER TABLE jobs ADD COLUMN provider TEXT, ADD COLUMN model TEXT;

CREATE OR REPLACE VIEW job_records AS
SELECT j.seq, j.id, j.org, j.application_id, j.status,
    CASE WHEN q.seq IS NULL THEN j.state ELSE q.state END AS state,
    CASE WHEN q.seq IS NULL THEN j.attempt ELSE q.attempt END AS attempt,
    j.created_at,
    CASE WHEN q.seq IS NULL THEN j.updated_at ELSE q.updated_at END AS updated_at,
    CASE WHEN q.seq IS NULL THEN j.started_at ELSE q.started_at END AS started_at,
    j.completed_at, j.title, j.suggestion, j.error, j.prompt_tokens, j.completion_tokens,
    j.priority, j.provider, j.model
FROM jobs j LEFT JOIN job_queue q ON q.seq = j.seq;
