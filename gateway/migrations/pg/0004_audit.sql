-- Audit log, version 4 (PostgreSQL). Same tables and meaning as
-- migrations/sqlite/0004_audit.sql; see docs/METADATA.md ("Audit log").
--
-- The audit_log of 0001 was never written; it is replaced by a hash chain:
-- row n carries hash_n = BLAKE3-keyed(K_audit, hash_(n-1) || row n), where
-- K_audit derives from the root tenant's master key, so a row edited,
-- inserted or deleted in the database breaks `dooz audit verify` even for
-- someone who can rewrite the table. Rows are appended under one lock
-- (seq = previous + 1, no gaps; `at` never goes backwards along the chain).
-- Triggers refuse UPDATE, TRUNCATE, and DELETE of rows the retention anchor
-- has not passed: the database itself keeps the table append-only for every
-- role that cannot drop triggers.

DROP TABLE audit_log;

CREATE TABLE audit_log (
    seq        BIGINT PRIMARY KEY CHECK (seq > 0),
    at         BIGINT NOT NULL,
    tenant_id  TEXT COLLATE "C",
    actor      TEXT NOT NULL,
    source     TEXT NOT NULL,
    action     TEXT NOT NULL,
    target     TEXT NOT NULL,
    result     TEXT NOT NULL,
    request_id TEXT,
    detail     TEXT,
    gateway    TEXT NOT NULL,
    hash       BYTEA NOT NULL CHECK (length(hash) = 32)
);
-- Exports read by time (and tenant); `at` grows with seq.
CREATE INDEX audit_log_at ON audit_log (at, seq);
CREATE INDEX audit_log_tenant_at ON audit_log (tenant_id, at, seq);

-- Where the chain starts after retention removed its oldest rows: the last
-- removed row's seq and hash (0 and zeros before any purge). Only moves forward.
CREATE TABLE audit_anchor (
    id   BIGINT PRIMARY KEY CHECK (id = 1),
    seq  BIGINT NOT NULL CHECK (seq >= 0),
    at   BIGINT NOT NULL,
    hash BYTEA NOT NULL CHECK (length(hash) = 32)
);
INSERT INTO audit_anchor (id, seq, at, hash) VALUES (1, 0, 0, decode(repeat('00', 32), 'hex'));

CREATE FUNCTION dooz_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' AND OLD.seq <= (SELECT seq FROM audit_anchor WHERE id = 1) THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION 'audit_log is append-only: % refused', TG_OP;
END
$$;
CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION dooz_audit_append_only();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION dooz_audit_append_only();

CREATE FUNCTION dooz_audit_anchor_forward() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP <> 'UPDATE' OR NEW.seq < OLD.seq THEN
        RAISE EXCEPTION 'the audit anchor only moves forward';
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER audit_anchor_forward BEFORE UPDATE OR DELETE ON audit_anchor
    FOR EACH ROW EXECUTE FUNCTION dooz_audit_anchor_forward();
