-- Dooz metadata, version 3 (SQLite): versioning, delete markers, Object Lock.
-- Same tables and meaning as migrations/pg/0003_versioning.sql; see
-- docs/METADATA.md.

-- The order of a key's versions: the newest has the highest seq (one more
-- than the key's highest at commit time, under the key lock). Rows written
-- before this migration are each their key's only ("null") version.
ALTER TABLE objects ADD COLUMN seq INTEGER NOT NULL DEFAULT 1;
-- Object Lock retention of one version: mode and retain-until (millis), or
-- both NULL; a legal hold (0/1).
ALTER TABLE objects ADD COLUMN lock_mode TEXT
    CHECK (lock_mode IS NULL OR lock_mode IN ('GOVERNANCE', 'COMPLIANCE'));
ALTER TABLE objects ADD COLUMN lock_until INTEGER;
ALTER TABLE objects ADD COLUMN legal_hold INTEGER NOT NULL DEFAULT 0
    CHECK (legal_hold IN (0, 1));
-- ListObjectVersions: keys in order, each key's versions newest first.
CREATE INDEX objects_versions ON objects (bucket, key, seq DESC);

-- Object Lock of a bucket (0/1; never turned off once on) and its default
-- retention: a mode with days or years, or all NULL.
ALTER TABLE buckets ADD COLUMN object_lock INTEGER NOT NULL DEFAULT 0
    CHECK (object_lock IN (0, 1));
ALTER TABLE buckets ADD COLUMN lock_default_mode TEXT
    CHECK (lock_default_mode IS NULL OR lock_default_mode IN ('GOVERNANCE', 'COMPLIANCE'));
ALTER TABLE buckets ADD COLUMN lock_default_days INTEGER;
ALTER TABLE buckets ADD COLUMN lock_default_years INTEGER;

-- The Object Lock a CreateMultipartUpload asked for (JSON), applied at completion.
ALTER TABLE multipart_uploads ADD COLUMN object_lock TEXT;

-- Every change of a bucket's versioning state, from its creation on: what
-- point-in-time restore consults (a bucket without rows was unversioned).
CREATE TABLE bucket_versioning (
    id     INTEGER PRIMARY KEY AUTOINCREMENT,
    bucket TEXT NOT NULL REFERENCES buckets (name),
    at     INTEGER NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('unversioned', 'enabled', 'suspended'))
) STRICT;
CREATE INDEX bucket_versioning_at ON bucket_versioning (bucket, at);

-- The last line of defence for Object Lock: whatever code path tries it, a
-- version under legal hold or under COMPLIANCE retention cannot be deleted
-- before its retain-until date. (GOVERNANCE yields to a privileged bypass,
-- which the application checks.)
CREATE TRIGGER objects_locked_delete BEFORE DELETE ON objects
WHEN OLD.legal_hold = 1
  OR (OLD.lock_mode = 'COMPLIANCE'
      AND OLD.lock_until > CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER))
BEGIN
    SELECT RAISE(ABORT, 'dooz: the object version is protected by Object Lock');
END;
