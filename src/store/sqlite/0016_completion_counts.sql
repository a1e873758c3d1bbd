-- A plain job's completion (running to completed, no batch) is counted in `job_counts` by
-- the statement that completes it (once per group of completions, see jobs::finish), no
-- longer by the status trigger: the trigger's WHEN now skips it, so its body (two seeks and
-- writes in `job_counts` per job, and the batch statements testing `NEW.batch_id`) does not
-- run on the burn-down's usual path. Every other change of status, and every change of a
-- batch's item, is counted by the trigger as before (0012_one_state_trigger.sql).
DROP TRIGGER jobs_status_change;

CREATE TRIGGER jobs_status_change AFTER UPDATE OF state ON jobs
WHEN OLD.status <> NEW.status
    AND (NEW.batch_id IS NOT NULL OR OLD.state <> 'running' OR NEW.state <> 'completed') BEGIN
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
