-- The first schema. Times are microseconds since the Unix epoch.
CREATE TABLE orgs (
    name TEXT PRIMARY KEY,
    created_at INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE api_keys (
    id TEXT PRIMARY KEY,
    org TEXT NOT NULL REFERENCES orgs (name),
    name TEXT NOT NULL,
    hash BLOB NOT NULL UNIQUE,
    created_at INTEGER NOT NULL,
    revoked_at INTEGER
);

CREATE TABLE jobs (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    org TEXT NOT NULL,
    application_id TEXT NOT NULL,
    state TEXT NOT NULL,
    inputs TEXT NOT NULL,
    attempt INTEGER NOT NULL DEFAULT 0,
    max_attempts INTEGER NOT NULL,
    backoff_initial_ms INTEGER NOT NULL,
    backoff_max_ms INTEGER NOT NULL,
    run_at INTEGER NOT NULL,
    lease_until INTEGER,
    idempotency_key TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    started_at INTEGER,
    completed_at INTEGER,
    title TEXT,
    suggestion TEXT,
    error TEXT,
    prompt_tokens INTEGER,
    completion_tokens INTEGER,
    -- The Writer status, derived, so lists can filter on it through an index.
    status TEXT GENERATED ALWAYS AS (
        CASE state WHEN 'completed' THEN 'completed' WHEN 'failed' THEN 'failed' ELSE 'in_progress' END
    ) VIRTUAL
);

CREATE INDEX jobs_by_app ON jobs (org, application_id, seq);
CREATE INDEX jobs_by_app_status ON jobs (org, application_id, status, seq);
CREATE INDEX jobs_due ON jobs (run_at) WHERE state IN ('queued', 'retrying');
CREATE INDEX jobs_leased ON jobs (lease_until) WHERE state = 'running';
CREATE UNIQUE INDEX jobs_idempotency ON jobs (org, idempotency_key) WHERE idempotency_key IS NOT NULL;

-- Jobs per (org, application, Writer status), kept by triggers so totalCount never scans.
CREATE TABLE job_counts (
    org TEXT NOT NULL,
    application_id TEXT NOT NULL,
    status TEXT NOT NULL,
    n INTEGER NOT NULL,
    PRIMARY KEY (org, application_id, status)
) WITHOUT ROWID;

CREATE TRIGGER jobs_count_insert AFTER INSERT ON jobs BEGIN
    INSERT INTO job_counts (org, application_id, status, n)
    VALUES (NEW.org, NEW.application_id, NEW.status, 1)
    ON CONFLICT DO UPDATE SET n = n + 1;
END;

CREATE TRIGGER jobs_count_update AFTER UPDATE OF state ON jobs
WHEN OLD.status <> NEW.status BEGIN
    UPDATE job_counts SET n = n - 1
    WHERE org = OLD.org AND application_id = OLD.application_id AND status = OLD.status;
    INSERT INTO job_counts (org, application_id, status, n)
    VALUES (NEW.org, NEW.application_id, NEW.status, 1)
    ON CONFLICT DO UPDATE SET n = n + 1;
END;

CREATE TABLE graphs (
    org TEXT NOT NULL,
    application_id TEXT NOT NULL,
    graph_ids TEXT NOT NULL,
    PRIMARY KEY (org, application_id)
) WITHOUT ROWID;
