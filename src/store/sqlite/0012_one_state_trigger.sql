-- The three triggers that followed a job's change of status (jobs_count_update from 0001,
-- jobs_webhook_event from 0010, jobs_batch_count from 0011) become one. SQLite runs every
-- row trigger as a sub-program called for each row the statement changes, and tests the
-- trigger's WHEN inside it: three triggers cost three calls for every claim and every
-- finish, plain jobs included, which slowed the burn-down by about a fifth. One trigger, one
-- call; its batch statements test `NEW.batch_id` first and cost nothing for a plain job.
--
-- In order: the status counters; for a batch's item, the job's webhook event (before the
-- batch's own, which its counts below may write by `batches_webhook_event`), the batch's
-- counts, and the item's place in the finishing order.
DROP TRIGGER jobs_count_update;
DROP TRIGGER jobs_webhook_event;
DROP TRIGGER jobs_batch_count;

CREATE TRIGGER jobs_status_change AFTER UPDATE OF state ON jobs
WHEN OLD.status <> NEW.status BEGIN
    UPDATE job_counts SET n = n - 1
    WHERE org = OLD.org AND application_id = OLD.application_id AND status = OLD.status;
    INSERT INTO job_counts (org, application_id, status, n)
    VALUES (NEW.org, NEW.application_id, NEW.status, 1)
    ON CONFLICT DO UPDATE SET n = n + 1;

    INSERT INTO webhook_events (id, org, batch_id, job_id, type, url, created_at, next_at)
    SELECT 'msg_' || lower(hex(randomblob(16))), w.org, w.batch_id, NEW.id, 'job.' || NEW.status,
        w.url, NEW.updated_at, NEW.updated_at
    FROM batch_webhooks w
    WHERE NEW.batch_id IS NOT NULL AND NEW.status IN ('completed', 'failed')
        AND w.batch_id = NEW.batch_id
        AND w.events & (CASE NEW.status WHEN 'completed' THEN 2 ELSE 4 END) <> 0;

    UPDATE batches SET
        completed = completed + (NEW.status = 'completed') - (OLD.status = 'completed'),
        failed = failed + (NEW.status = 'failed' AND NEW.cancelled_at IS NULL)
            - (OLD.status = 'failed' AND OLD.cancelled_at IS NULL),
        cancelled = cancelled + (NEW.status = 'failed' AND NEW.cancelled_at IS NOT NULL)
            - (OLD.status = 'failed' AND OLD.cancelled_at IS NOT NULL),
        finishes = finishes + (NEW.status <> 'in_progress'),
        cancelled_at = CASE WHEN NEW.status = 'in_progress' THEN NULL ELSE cancelled_at END,
        changed_at = NEW.updated_at
    WHERE NEW.batch_id IS NOT NULL AND id = NEW.batch_id;
    UPDATE jobs SET finished_seq = CASE WHEN NEW.status = 'in_progress' THEN NULL
        ELSE (SELECT total + finishes FROM batches WHERE id = NEW.batch_id) END
    WHERE NEW.batch_id IS NOT NULL AND seq = NEW.seq;
END;
