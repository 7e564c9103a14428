-- Dooz metadata, version 5 (PostgreSQL): bucket tags. Same meaning as
-- migrations/sqlite/0005_tagging.sql; see docs/METADATA.md.
-- Object tags live with each version's attributes (objects.attrs, JSON
-- field "tags"), so copies, multipart completion and version reads carry
-- them without another table; a bucket's tag set (JSON object, at most 50
-- tags) is NULL when the bucket has none.
ALTER TABLE buckets ADD COLUMN tags TEXT;
