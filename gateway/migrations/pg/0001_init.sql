-- Dooz metadata, version 1 (PostgreSQL). Same tables and meaning as
-- migrations/sqlite/0001_init.sql; see docs/METADATA.md.
-- Text that is ordered or compared by the gateway uses COLLATE "C" so that
-- ordering is UTF-8 byte order, as in SQLite and S3.

CREATE TABLE tenants (
    id            TEXT COLLATE "C" PRIMARY KEY,
    name          TEXT COLLATE "C" NOT NULL UNIQUE,
    cipher        TEXT NOT NULL,
    current_epoch BIGINT NOT NULL CHECK (current_epoch >= 0),
    wrapped_tmk   BYTEA NOT NULL,
    created_at    BIGINT NOT NULL
);

CREATE TABLE users (
    access_key    TEXT COLLATE "C" PRIMARY KEY,
    tenant_id     TEXT COLLATE "C" NOT NULL REFERENCES tenants (id),
    name          TEXT NOT NULL,
    secret_sealed BYTEA NOT NULL,
    policy        TEXT NOT NULL CHECK (policy IN ('admin', 'read-write', 'read-only')),
    created_at    BIGINT NOT NULL
);
CREATE INDEX users_tenant ON users (tenant_id, access_key);

CREATE TABLE buckets (
    name       TEXT COLLATE "C" PRIMARY KEY,
    tenant_id  TEXT COLLATE "C" NOT NULL REFERENCES tenants (id),
    backend    TEXT NOT NULL,
    -- 'unversioned' | 'enabled' | 'suspended'; only 'unversioned' is written so far.
    versioning TEXT NOT NULL DEFAULT 'unversioned',
    created_at BIGINT NOT NULL
);
CREATE INDEX buckets_tenant ON buckets (tenant_id, name);

CREATE TABLE objects (
    bucket        TEXT COLLATE "C" NOT NULL REFERENCES buckets (name),
    key           TEXT COLLATE "C" NOT NULL,
    version_id    TEXT COLLATE "C" NOT NULL,
    is_latest     BOOLEAN NOT NULL,
    delete_marker BOOLEAN NOT NULL,
    size          BIGINT NOT NULL CHECK (size >= 0),
    etag          TEXT NOT NULL,
    attrs         TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    manifest      BYTEA NOT NULL,
    PRIMARY KEY (bucket, key, version_id)
);
-- At most one latest version per key; also the index listings scan.
CREATE UNIQUE INDEX objects_latest ON objects (bucket, key) WHERE is_latest;

CREATE TABLE packs (
    id         BYTEA PRIMARY KEY CHECK (length(id) = 16),
    tenant_id  TEXT COLLATE "C" NOT NULL,
    backend    TEXT NOT NULL,
    size       BIGINT NOT NULL CHECK (size >= 0),
    live_bytes BIGINT NOT NULL CHECK (live_bytes >= 0),
    state      TEXT NOT NULL DEFAULT 'live',
    created_at BIGINT NOT NULL
);
CREATE INDEX packs_tenant ON packs (tenant_id);

CREATE TABLE chunks (
    tenant_id    TEXT COLLATE "C" NOT NULL,
    chunk_id     BYTEA NOT NULL CHECK (length(chunk_id) = 32),
    pack_id      BYTEA NOT NULL,
    off          BIGINT NOT NULL CHECK (off >= 0),
    len          BIGINT NOT NULL CHECK (len >= 0),
    plain_len    BIGINT NOT NULL CHECK (plain_len >= 0),
    epoch        BIGINT NOT NULL CHECK (epoch >= 0),
    refcount     BIGINT NOT NULL CHECK (refcount >= 0),
    state        TEXT NOT NULL CHECK (state IN ('live', 'zombie')),
    zombie_since BIGINT,
    PRIMARY KEY (tenant_id, chunk_id)
);
CREATE INDEX chunks_gc ON chunks (state, zombie_since);
CREATE INDEX chunks_pack ON chunks (pack_id);

CREATE TABLE multipart_uploads (
    upload_id          TEXT COLLATE "C" PRIMARY KEY,
    bucket             TEXT COLLATE "C" NOT NULL REFERENCES buckets (name),
    key                TEXT COLLATE "C" NOT NULL,
    tenant_id          TEXT COLLATE "C" NOT NULL,
    attrs              TEXT NOT NULL,
    checksum_algorithm TEXT,
    created_at         BIGINT NOT NULL
);
CREATE INDEX multipart_uploads_key ON multipart_uploads (bucket, key, upload_id);

CREATE TABLE parts (
    upload_id   TEXT COLLATE "C" NOT NULL REFERENCES multipart_uploads (upload_id),
    part_number BIGINT NOT NULL CHECK (part_number >= 0),
    size        BIGINT NOT NULL CHECK (size >= 0),
    etag        TEXT NOT NULL,
    checksums   TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    manifest    BYTEA NOT NULL,
    PRIMARY KEY (upload_id, part_number)
);

CREATE TABLE audit_log (
    id        BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at        BIGINT NOT NULL,
    tenant_id TEXT COLLATE "C",
    actor     TEXT,
    action    TEXT NOT NULL,
    target    TEXT,
    detail    TEXT
);
CREATE INDEX audit_log_at ON audit_log (at);
