-- Uploaded files' metadata and extracted text; their bytes live in blob storage, named by id.
CREATE TABLE files (
    id TEXT PRIMARY KEY,
    org TEXT NOT NULL,
    name TEXT NOT NULL,
    kind TEXT NOT NULL,
    size BIGINT NOT NULL,
    status TEXT NOT NULL,
    error TEXT,
    word_count BIGINT,
    text TEXT,
    graph_ids TEXT[] NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

-- File ids are UUIDv7, so id order is upload order.
CREATE INDEX files_by_org ON files (org, id);
CREATE INDEX files_in_progress ON files (id) WHERE status = 'in_progress';

-- Bytes each organisation's files take. Adding a file raises it with a conditional UPDATE,
-- whose row lock makes the quota check and the increase one step across nodes.
CREATE TABLE file_usage (
    org TEXT PRIMARY KEY,
    bytes BIGINT NOT NULL
);
