-- The first schema, mirroring SQLite's. Times are microseconds since the Unix epoch (BIGINT).
CREATE TABLE orgs (
    name TEXT PRIMARY KEY,
    created_at BIGINT NOT NULL
);

CREATE TABLE api_keys (
    id TEXT PRIMARY KEY,
    org TEXT NOT NULL REFERENCES orgs (name),
    name TEXT NOT NULL,
    hash BYTEA NOT NULL UNIQUE,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT
);

CREATE TABLE jobs (
    seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    org TEXT NOT NULL,
    application_id TEXT NOT NULL,
    state TEXT NOT NULL,
    inputs TEXT NOT NULL,
    attempt INTEGER NOT NULL DEFAULT 0,
    max_attempts INTEGER NOT NULL,
    backoff_initial_ms BIGINT NOT NULL,
    backoff_max_ms BIGINT NOT NULL,
    run_at BIGINT NOT NULL,
    lease_until BIGINT,
    idempotency_key TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    started_at BIGINT,
    completed_at BIGINT,
    title TEXT,
    suggestion TEXT,
    error TEXT,
    prompt_tokens BIGINT,
    completion_tokens BIGINT,
    -- The Writer status, derived, so lists can filter on it through an index.
    status TEXT GENERATED ALWAYS AS (
        CASE state WHEN 'completed' THEN 'completed' WHEN 'failed' THEN 'failed' ELSE 'in_progress' END
    ) STORED
);

CREATE INDEX jobs_by_app ON jobs (org, application_id, seq);
CREATE INDEX jobs_by_app_status ON jobs (org, application_id, status, seq);
CREATE INDEX jobs_due ON jobs (run_at) WHERE state IN ('queued', 'retrying');
CREATE INDEX jobs_leased ON jobs (lease_until) WHERE state = 'running';
CREATE UNIQUE INDEX jobs_idempotency ON jobs (org, idempotency_key) WHERE idempotency_key IS NOT NULL;

-- Jobs per (org, application, Writer status), kept by statement-level triggers so totalCount
-- never scans. Each statement adds one upsert per (org, application, status) it changed,
-- taken in key order so concurrent writers lock counter rows in the same order.
CREATE TABLE job_counts (
    org TEXT NOT NULL,
    application_id TEXT NOT NULL,
    status TEXT NOT NULL,
    n BIGINT NOT NULL,
    PRIMARY KEY (org, application_id, status)
);

CREATE FUNCTION jobs_count_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO job_counts (org, application_id, status, n)
    SELECT org, application_id, status, count(*) FROM inserted_jobs
    GROUP BY org, application_id, status
    ORDER BY org, application_id, status
    ON CONFLICT (org, application_id, status) DO UPDATE SET n = job_counts.n + excluded.n;
    RETURN NULL;
END $$;

CREATE FUNCTION jobs_count_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    WITH moved AS MATERIALIZED (
        SELECT o.org, o.application_id, o.status AS was, n.status AS now
        FROM old_jobs o JOIN new_jobs n ON n.seq = o.seq
        WHERE o.status <> n.status
    )
    INSERT INTO job_counts (org, application_id, status, n)
    SELECT org, application_id, status, sum(delta) FROM (
        SELECT org, application_id, was AS status, -1 AS delta FROM moved
        UNION ALL
        SELECT org, application_id, now, 1 FROM moved
    ) changes
    GROUP BY org, application_id, status
    HAVING sum(delta) <> 0
    ORDER BY org, application_id, status
    ON CONFLICT (org, application_id, status) DO UPDATE SET n = job_counts.n + excluded.n;
    RETURN NULL;
END $$;

CREATE FUNCTION jobs_count_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO job_counts (org, application_id, status, n)
    SELECT org, application_id, status, -count(*) FROM deleted_jobs
    GROUP BY org, application_id, status
    ORDER BY org, application_id, status
    ON CONFLICT (org, application_id, status) DO UPDATE SET n = job_counts.n + excluded.n;
    RETURN NULL;
END $$;

CREATE TRIGGER jobs_count_insert AFTER INSERT ON jobs
    REFERENCING NEW TABLE AS inserted_jobs
    FOR EACH STATEMENT EXECUTE FUNCTION jobs_count_insert();

CREATE TRIGGER jobs_count_update AFTER UPDATE ON jobs
    REFERENCING OLD TABLE AS old_jobs NEW TABLE AS new_jobs
    FOR EACH STATEMENT EXECUTE FUNCTION jobs_count_update();

CREATE TRIGGER jobs_count_delete AFTER DELETE ON jobs
    REFERENCING OLD TABLE AS deleted_jobs
    FOR EACH STATEMENT EXECUTE FUNCTION jobs_count_delete();

CREATE TABLE graphs (
    org TEXT NOT NULL,
    application_id TEXT NOT NULL,
    graph_ids TEXT NOT NULL,
    PRIMARY KEY (org, application_id)
);
