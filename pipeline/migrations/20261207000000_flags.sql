-- The review queue: results users flagged as wrong. A flag's photo lives in
-- the flag photo store (a folder or a bucket) at `<id>/<attachment>`;
-- `bytes` counts the record and the photo, for the queue's quota.
CREATE TABLE flags (
    id TEXT PRIMARY KEY,
    task TEXT NOT NULL,
    flagged_at_ms BIGINT NOT NULL,
    input TEXT NOT NULL,
    output TEXT NOT NULL,
    reason TEXT NOT NULL,
    label TEXT,
    attachment TEXT,
    bytes BIGINT NOT NULL
);
CREATE INDEX flags_by_time ON flags (flagged_at_ms);
