-- Applications kept as data, per organisation. `applications` holds each one's current
-- version (a deleted one keeps its row, with deleted_at set, so that its version numbers
-- continue if the id is taken again); `application_versions` holds every version, immutable.
CREATE TABLE applications (
    org TEXT NOT NULL,
    id TEXT NOT NULL,
    version INTEGER NOT NULL,
    deployed BOOLEAN NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    last_deployed_at BIGINT,
    deleted_at BIGINT,
    PRIMARY KEY (org, id)
);
CREATE TABLE application_versions (
    org TEXT NOT NULL,
    application_id TEXT NOT NULL,
    version INTEGER NOT NULL,
    definition TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (org, application_id, version)
);
-- The version a job was created with (NULL: a provisioned application, from the apps folder).
ALTER TABLE jobs ADD COLUMN application_version INTEGER;
