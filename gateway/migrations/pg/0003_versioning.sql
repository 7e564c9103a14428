-- Dooz metadata, version 3 (PostgreSQL): versioning, delete markers, Object
-- Lock. Same tables and meaning as migrations/sqlite/0003_versioning.sql;
-- see docs/METADATA.md.

-- The order of a key's versions: the newest has the highest seq (one more
-- than the key's highest at commit time, under the key lock). Rows written
-- before this migration are each their key's only ("null") version.
ALTER TABLE objects ADD COLUMN seq BIGINT NOT NULL DEFAULT 1;
-- Object Lock retention of one version: mode and retain-until (millis), or
-- both NULL; a legal hold.
ALTER TABLE objects ADD COLUMN lock_mode TEXT
    CHECK (lock_mode IS NULL OR lock_mode IN ('GOVERNANCE', 'COMPLIANCE'));
ALTER TABLE objects ADD COLUMN lock_until BIGINT;
ALTER TABLE objects ADD COLUMN legal_hold BOOLEAN NOT NULL DEFAULT FALSE;
-- ListObjectVersions: keys in order, each key's versions newest first.
CREATE INDEX objects_versions ON objects (bucket, key, seq DESC);

-- Object Lock of a bucket (never turned off once on) and its default
-- retention: a mode with days or years, or all NULL.
ALTER TABLE buckets ADD COLUMN object_lock BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE buckets ADD COLUMN lock_default_mode TEXT
    CHECK (lock_default_mode IS NULL OR lock_default_mode IN ('GOVERNANCE', 'COMPLIANCE'));
ALTER TABLE buckets ADD COLUMN lock_default_days BIGINT;
ALTER TABLE buckets ADD COLUMN lock_default_years BIGINT;

-- The Object Lock a CreateMultipartUpload asked for (JSON), applied at completion.
ALTER TABLE multipart_uploads ADD COLUMN object_lock TEXT;

-- Every change of a bucket's versioning state, from its creation on: what
-- point-in-time restore consults (a bucket without rows was unversioned).
CREATE TABLE bucket_versioning (
    id     BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    bucket TEXT COLLATE "C" NOT NULL REFERENCES buckets (name),
    at     BIGINT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('unversioned', 'enabled', 'suspended'))
);
CREATE INDEX bucket_versioning_at ON bucket_versioning (bucket, at);

-- The last line of defence for Object Lock: whatever code path tries it, a
-- version under legal hold or under COMPLIANCE retention cannot be deleted
-- before its retain-until date. (GOVERNANCE yields to a privileged bypass,
-- which the application checks.) SQLSTATE DZ001 maps to MetaError::Locked.
CREATE FUNCTION objects_refuse_locked_delete() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.legal_hold
       OR (OLD.lock_mode = 'COMPLIANCE'
           AND OLD.lock_until > CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT)) THEN
        RAISE EXCEPTION 'dooz: the object version %/% (%) is protected by Object Lock',
            OLD.bucket, OLD.key, OLD.version_id
            USING ERRCODE = 'DZ001';
    END IF;
    RETURN OLD;
END
$$;
CREATE TRIGGER objects_locked_delete BEFORE DELETE ON objects
    FOR EACH ROW EXECUTE FUNCTION objects_refuse_locked_delete();
