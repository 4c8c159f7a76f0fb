-- The prediction log: one row per answered classification, never the photo.
-- Portable SQL: the same file runs on SQLite and PostgreSQL.
CREATE TABLE predictions (
    at_ms BIGINT NOT NULL,
    task TEXT NOT NULL,
    model TEXT NOT NULL,
    version TEXT NOT NULL,
    label TEXT NOT NULL,
    confidence DOUBLE PRECISION NOT NULL,
    latency_ms DOUBLE PRECISION NOT NULL
);
CREATE INDEX predictions_by_model ON predictions (task, model, version, at_ms);
