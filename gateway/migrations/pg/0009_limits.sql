-- Dooz metadata (PostgreSQL): throttling overrides set at runtime with
-- `dooz admin limits`. Same meaning as migrations/sqlite/0009_limits.sql;
-- see docs/METADATA.md.

-- One row per tenant (by id), access key or bucket (by name) whose limits
-- differ from the `[limits]` defaults: the override as JSON the gateway
-- validated (each of requests / ingress / egress a rate, "unlimited", or
-- absent for the default). Gateways reload the table every few seconds.
-- An override follows its subject's name, not its lifetime: a bucket
-- deleted and created again keeps it until `dooz admin limits unset`.
CREATE TABLE limit_overrides (
    scope   TEXT NOT NULL CHECK (scope IN ('tenant', 'key', 'bucket')),
    subject TEXT COLLATE "C" NOT NULL,
    body    TEXT NOT NULL,
    PRIMARY KEY (scope, subject)
);
