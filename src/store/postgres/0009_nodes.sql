-- What each node serves from its apps folder, recorded at its start, so that a node started
-- with a different folder from the others' is reported. `applications` is a JSON object:
-- each provisioned application's id and a digest of its definition file.
CREATE TABLE nodes (
    node TEXT PRIMARY KEY,
    applications TEXT NOT NULL,
    recorded_at BIGINT NOT NULL
);
