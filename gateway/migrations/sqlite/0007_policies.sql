-- Dooz metadata, version 7 (SQLite): access policies. Same meaning as
-- migrations/pg/0007_policies.sql; see docs/METADATA.md.
-- A tenant's named identity policies (IAM JSON documents, checked before
-- they are stored). The built-in names (admin, read-write, read-only) are
-- not stored here: they are part of the binary.
CREATE TABLE policies (
    tenant_id  TEXT NOT NULL REFERENCES tenants (id),
    name       TEXT NOT NULL,
    document   TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, name)
) STRICT;
-- The policies attached to each user, by name (built-in or the tenant's).
-- users.policy stays the role a user was created with; what a user may do
-- is this list, which starts as that role.
CREATE TABLE user_policies (
    access_key TEXT NOT NULL REFERENCES users (access_key),
    policy     TEXT NOT NULL,
    PRIMARY KEY (access_key, policy)
) STRICT;
CREATE INDEX user_policies_policy ON user_policies (policy, access_key);
INSERT INTO user_policies (access_key, policy) SELECT access_key, policy FROM users;
-- A bucket's policy (the JSON document as given) and its Block Public
-- Access configuration (JSON: the four flags); NULL when it has none.
ALTER TABLE buckets ADD COLUMN policy TEXT;
ALTER TABLE buckets ADD COLUMN public_access_block TEXT;
