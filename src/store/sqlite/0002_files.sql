-- Uploaded files' metadata and extracted text; their bytes live in blob storage, named by id.
CREATE TABLE files (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    org TEXT NOT NULL,
    name TEXT NOT NULL,
    kind TEXT NOT NULL,
    size INTEGER NOT NULL,
    status TEXT NOT NULL,
    error TEXT,
    word_count INTEGER,
    text TEXT,
    -- A JSON array of graph ids.
    graph_ids TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);

-- File ids are UUIDv7, so id order is upload order.
CREATE INDEX files_by_org ON files (org, id);
CREATE INDEX files_in_progress ON files (id) WHERE status = 'in_progress';

-- Bytes each organisation's files take, kept by the statements that add and delete files.
CREATE TABLE file_usage (
    org TEXT PRIMARY KEY,
    bytes INTEGER NOT NULL
) WITHOUT ROWID;
