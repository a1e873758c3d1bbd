-- Provider limits shared by every node: a 429 pause and per-minute budgets per provider, and
-- one leased row per concurrency slot.
CREATE TABLE provider_state (
    provider TEXT PRIMARY KEY,
    paused_until BIGINT NOT NULL DEFAULT 0,
    requests DOUBLE PRECISION,
    tokens DOUBLE PRECISION,
    refilled_at BIGINT NOT NULL DEFAULT 0
);

CREATE TABLE provider_slots (
    provider TEXT NOT NULL,
    slot BIGINT NOT NULL,
    holder TEXT,
    held_until BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (provider, slot)
);
