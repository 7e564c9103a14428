-- Dooz metadata (SQLite): a bucket's sub-resource configurations that the
-- gateway validates and stores as documents (CORS, default encryption).
-- Same meaning as migrations/pg/0008_bucket_config.sql; see
-- docs/METADATA.md.

-- One row per bucket and kind ('cors', 'encryption'): the configuration as
-- JSON the gateway validated, opaque here. No row = no configuration. Rows
-- go with their bucket.
CREATE TABLE bucket_configs (
    bucket TEXT NOT NULL REFERENCES buckets (name) ON DELETE CASCADE,
    kind   TEXT NOT NULL,
    body   TEXT NOT NULL,
    PRIMARY KEY (bucket, kind)
) STRICT;
