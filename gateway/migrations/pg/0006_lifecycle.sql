-- Dooz metadata, version 6 (PostgreSQL): lifecycle configuration and the
-- lifecycle worker's progress. Same meaning as
-- migrations/sqlite/0006_lifecycle.sql; see docs/METADATA.md.

-- A bucket's lifecycle configuration as validated by the gateway (JSON), or
-- NULL without one.
ALTER TABLE buckets ADD COLUMN lifecycle TEXT;

-- Per bucket: where the current pass over its objects stands (the last key
-- whose versions were all handled; NULL = from the start), when that pass
-- began, and the last finished pass (its time and JSON summary). A pass
-- that stops (crash, lost lease) resumes after cursor_key: decisions are
-- made from each version's state at the time, so a key handled twice gets
-- no second action. Rows go with their bucket.
CREATE TABLE lifecycle_state (
    bucket        TEXT COLLATE "C" PRIMARY KEY REFERENCES buckets (name) ON DELETE CASCADE,
    cursor_key    TEXT COLLATE "C",
    pass_started  BIGINT,
    last_finished BIGINT,
    last_summary  TEXT
);
