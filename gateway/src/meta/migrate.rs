//! Numbered schema migrations, embedded in the binary. Both stores carry the
//! same versions with the same meaning; only the SQL dialect differs.
//!
//! Policy: a released migration is never edited; a change is a new number in
//! both folders. Each migration runs in its own transaction and is recorded
//! in `schema_migrations`. A database that records a version this binary does
//! not know was migrated by a newer dooz: refuse it rather than guess.

use super::{MetaError, MetaResult};

pub(crate) struct Migration {
    pub version: i64,
    pub name: &'static str,
    pub sql: &'static str,
}

pub(crate) const SQLITE: &[Migration] = &[
    Migration {
        version: 1,
        name: "0001_init",
        sql: include_str!("../../migrations/sqlite/0001_init.sql"),
    },
    Migration {
        version: 2,
        name: "0002_gc",
        sql: include_str!("../../migrations/sqlite/0002_gc.sql"),
    },
    Migration {
        version: 3,
        name: "0003_versioning",
        sql: include_str!("../../migrations/sqlite/0003_versioning.sql"),
    },
    Migration {
        version: 4,
        name: "0004_audit",
        sql: include_str!("../../migrations/sqlite/0004_audit.sql"),
    },
    Migration {
        version: 5,
        name: "0005_tagging",
        sql: include_str!("../../migrations/sqlite/0005_tagging.sql"),
    },
    Migration {
        version: 6,
        name: "0006_lifecycle",
        sql: include_str!("../../migrations/sqlite/0006_lifecycle.sql"),
    },
    Migration {
        version: 7,
        name: "0007_policies",
        sql: include_str!("../../migrations/sqlite/0007_policies.sql"),
    },
    Migration {
        version: 8,
        name: "0008_bucket_config",
        sql: include_str!("../../migrations/sqlite/0008_bucket_config.sql"),
    },
    Migration {
        version: 9,
        name: "0009_limits",
        sql: include_str!("../../migrations/sqlite/0009_limits.sql"),
    },
];

pub(crate) const POSTGRES: &[Migration] = &[
    Migration {
        version: 1,
        name: "0001_init",
        sql: include_str!("../../migrations/pg/0001_init.sql"),
    },
    Migration {
        version: 2,
        name: "0002_gc",
        sql: include_str!("../../migrations/pg/0002_gc.sql"),
    },
    Migration {
        version: 3,
        name: "0003_versioning",
        sql: include_str!("../../migrations/pg/0003_versioning.sql"),
    },
    Migration {
        version: 4,
        name: "0004_audit",
        sql: include_str!("../../migrations/pg/0004_audit.sql"),
    },
    Migration {
        version: 5,
        name: "0005_tagging",
        sql: include_str!("../../migrations/pg/0005_tagging.sql"),
    },
    Migration {
        version: 6,
        name: "0006_lifecycle",
        sql: include_str!("../../migrations/pg/0006_lifecycle.sql"),
    },
    Migration {
        version: 7,
        name: "0007_policies",
        sql: include_str!("../../migrations/pg/0007_policies.sql"),
    },
    Migration {
        version: 8,
        name: "0008_bucket_config",
        sql: include_str!("../../migrations/pg/0008_bucket_config.sql"),
    },
    Migration {
        version: 9,
        name: "0009_limits",
        sql: include_str!("../../migrations/pg/0009_limits.sql"),
    },
];

/// The schema version this build writes: the last migration's number.
pub const LATEST: i64 = SQLITE.len() as i64;
// Both stores run the same numbered migrations.
const _: () = assert!(SQLITE.len() == POSTGRES.len());

/// The bookkeeping table; the same statement is valid in both dialects.
pub(crate) const CREATE_TABLE: &str = "CREATE TABLE IF NOT EXISTS schema_migrations (\
     version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)";
pub(crate) const CURRENT: &str =
    "SELECT CAST(COALESCE(MAX(version), 0) AS BIGINT) FROM schema_migrations";
pub(crate) const RECORD: &str =
    "INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)";

/// The newest version this binary knows.
pub(crate) fn newest(list: &[Migration]) -> i64 {
    list.last().map_or(0, |m| m.version)
}

/// The migrations still to apply on a database at version `current`.
pub(crate) fn pending(list: &[Migration], current: i64) -> MetaResult<&[Migration]> {
    let known = newest(list);
    if current > known {
        return Err(MetaError::SchemaTooNew {
            found: current,
            known,
        });
    }
    let first = list.partition_point(|m| m.version <= current);
    Ok(&list[first..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_stores_carry_the_same_numbered_migrations() {
        let versions = |l: &[Migration]| l.iter().map(|m| (m.version, m.name)).collect::<Vec<_>>();
        assert_eq!(versions(SQLITE), versions(POSTGRES));
        for (i, m) in SQLITE.iter().enumerate() {
            assert_eq!(m.version, i as i64 + 1, "versions are 1, 2, 3, ...");
            assert!(m.name.starts_with(&format!("{:04}_", m.version)));
        }
    }

    #[test]
    fn pending_skips_applied_and_refuses_newer() {
        assert_eq!(pending(SQLITE, 0).map(<[_]>::len).ok(), Some(SQLITE.len()));
        assert_eq!(
            pending(SQLITE, newest(SQLITE)).map(<[_]>::len).ok(),
            Some(0)
        );
        assert!(matches!(
            pending(SQLITE, 9999),
            Err(MetaError::SchemaTooNew { found: 9999, .. })
        ));
    }
}
