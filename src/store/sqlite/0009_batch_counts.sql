-- Batch items are counted in `job_counts` by the batch insert, once per chunk of items, rather
-- than by this trigger once per row (an upsert per item was a fifth of the cost of storing a
-- batch). Plain jobs are counted as before.
DROP TRIGGER jobs_count_insert;
CREATE TRIGGER jobs_count_insert AFTER INSERT ON jobs WHEN NEW.batch_id IS NULL BEGIN
    INSERT INTO job_counts (org, application_id, status, n)
    VALUES (NEW.org, NEW.application_id, NEW.status, 1)
    ON CONFLICT DO UPDATE SET n = n + 1;
END;
