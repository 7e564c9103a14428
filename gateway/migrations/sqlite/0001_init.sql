-- Dooz metadata, version 1 (SQLite). Same tables and meaning as
-- migrations/pg/0001_init.sql; see docs/METADATA.md.
-- STRICT tables reject values of the wrong type. Booleans are 0/1 integers.
-- TEXT uses the default BINARY collation: ordering is UTF-8 byte order.

CREATE TABLE tenants (
    id            TEXT PRIMARY KEY,
    name          TEXT NOT NULL UNIQUE,
    cipher        TEXT NOT NULL,
    current_epoch INTEGER NOT NULL CHECK (current_epoch >= 0),
    wrapped_tmk   BLOB NOT NULL,
    created_at    INTEGER NOT NULL
) STRICT;

CREATE TABLE users (
    access_key    TEXT PRIMARY KEY,
    tenant_id     TEXT NOT NULL REFERENCES tenants (id),
    name          TEXT NOT NULL,
    secret_sealed BLOB NOT NULL,
    policy        TEXT NOT NULL CHECK (policy IN ('admin', 'read-write', 'read-only')),
    created_at    INTEGER NOT NULL
) STRICT;
CREATE INDEX users_tenant ON users (tenant_id, access_key);

CREATE TABLE buckets (
    name       TEXT PRIMARY KEY,
    tenant_id  TEXT NOT NULL REFERENCES tenants (id),
    backend    TEXT NOT NULL,
    -- 'unversioned' | 'enabled' | 'suspended'; only 'unversioned' is written so far.
    versioning TEXT NOT NULL DEFAULT 'unversioned',
    created_at INTEGER NOT NULL
) STRICT;
CREATE INDEX buckets_tenant ON buckets (tenant_id, name);

CREATE TABLE objects (
    bucket        TEXT NOT NULL REFERENCES buckets (name),
    key           TEXT NOT NULL,
    version_id    TEXT NOT NULL,
    is_latest     INTEGER NOT NULL CHECK (is_latest IN (0, 1)),
    delete_marker INTEGER NOT NULL CHECK (delete_marker IN (0, 1)),
    size          INTEGER NOT NULL CHECK (size >= 0),
    etag          TEXT NOT NULL,
    attrs         TEXT NOT NULL,
    created_at    INTEGER NOT NULL,
    manifest      BLOB NOT NULL,
    PRIMARY KEY (bucket, key, version_id)
) STRICT;
-- At most one latest version per key; also the index listings scan.
CREATE UNIQUE INDEX objects_latest ON objects (bucket, key) WHERE is_latest;

CREATE TABLE packs (
    id         BLOB PRIMARY KEY CHECK (length(id) = 16),
    tenant_id  TEXT NOT NULL,
    backend    TEXT NOT NULL,
    size       INTEGER NOT NULL CHECK (size >= 0),
    live_bytes INTEGER NOT NULL CHECK (live_bytes >= 0),
    state      TEXT NOT NULL DEFAULT 'live',
    created_at INTEGER NOT NULL
) STRICT;
CREATE INDEX packs_tenant ON packs (tenant_id);

CREATE TABLE chunks (
    tenant_id    TEXT NOT NULL,
    chunk_id     BLOB NOT NULL CHECK (length(chunk_id) = 32),
    pack_id      BLOB NOT NULL,
    off          INTEGER NOT NULL CHECK (off >= 0),
    len          INTEGER NOT NULL CHECK (len >= 0),
    plain_len    INTEGER NOT NULL CHECK (plain_len >= 0),
    epoch        INTEGER NOT NULL CHECK (epoch >= 0),
    refcount     INTEGER NOT NULL CHECK (refcount >= 0),
    state        TEXT NOT NULL CHECK (state IN ('live', 'zombie')),
    zombie_since INTEGER,
    PRIMARY KEY (tenant_id, chunk_id)
) STRICT, WITHOUT ROWID;
CREATE INDEX chunks_gc ON chunks (state, zombie_since);
CREATE INDEX chunks_pack ON chunks (pack_id);

CREATE TABLE multipart_uploads (
    upload_id          TEXT PRIMARY KEY,
    bucket             TEXT NOT NULL REFERENCES buckets (name),
    key                TEXT NOT NULL,
    tenant_id          TEXT NOT NULL,
    attrs              TEXT NOT NULL,
    checksum_algorithm TEXT,
    created_at         INTEGER NOT NULL
) STRICT;
CREATE INDEX multipart_uploads_key ON multipart_uploads (bucket, key, upload_id);

CREATE TABLE parts (
    upload_id   TEXT NOT NULL REFERENCES multipart_uploads (upload_id),
    part_number INTEGER NOT NULL CHECK (part_number >= 0),
    size        INTEGER NOT NULL CHECK (size >= 0),
    etag        TEXT NOT NULL,
    checksums   TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    manifest    BLOB NOT NULL,
    PRIMARY KEY (upload_id, part_number)
) STRICT;

CREATE TABLE audit_log (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    at        INTEGER NOT NULL,
    tenant_id TEXT,
    actor     TEXT,
    action    TEXT NOT NULL,
    target    TEXT,
    detail    TEXT
) STRICT;
CREATE INDEX audit_log_at ON audit_log (at);
