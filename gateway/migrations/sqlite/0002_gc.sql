-- Dooz metadata, version 2 (SQLite): space reclamation. Same tables and
-- meaning as migrations/pg/0002_gc.sql; see docs/METADATA.md ("Leases" and
-- "Garbage collection").

-- Named leases: one row per held lease. `holder` is a random token of one
-- acquisition; a lease is taken over only by deleting the expired row and
-- inserting a new one.
CREATE TABLE leases (
    name        TEXT PRIMARY KEY,
    holder      TEXT NOT NULL,
    owner       TEXT NOT NULL,
    acquired_at INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    -- Upload leases ('uploads/<gateway>'): no upload of the holder that is
    -- still running started before this time. NULL for other leases.
    low_water   INTEGER
) STRICT;

-- When compaction last moved live chunks out of a pack: readers that
-- resolved a location before then may still read it for the grace period.
ALTER TABLE packs ADD COLUMN retired_at INTEGER;
-- Compaction and the deletion of empty packs look for packs by live bytes.
CREATE INDEX packs_live ON packs (live_bytes);
