//! Test databases for the metadata suite: a SQLite file in a temp dir, or a
//! PostgreSQL database of its own that is dropped when the test ends (also
//! when it panics). Raw access (bypassing the store) lets tests corrupt rows
//! on purpose and read refcounts the API does not expose.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::sync::Arc;

use dooz_gateway::meta::{self, MetaStore, PgStore, SqliteStore};
use tokio_postgres::NoTls;

pub const DEFAULT_PG: &str = "host=127.0.0.1 port=5432 user=postgres dbname=postgres";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Sqlite,
    Postgres,
}

/// A chunk row as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChunkRow {
    pub tenant: String,
    pub id: Vec<u8>,
    pub pack: Vec<u8>,
    pub len: i64,
    pub refcount: i64,
    pub state: String,
    pub zombie_since: Option<i64>,
}

pub struct TestDb {
    pub kind: Kind,
    sqlite: Option<(tempfile::TempDir, PathBuf)>,
    pg: Option<PgDatabase>,
}

impl TestDb {
    pub async fn new(kind: Kind) -> Self {
        match kind {
            Kind::Sqlite => {
                let dir = tempfile::tempdir().expect("temp dir");
                let path = dir.path().join("meta.db");
                Self {
                    kind,
                    sqlite: Some((dir, path)),
                    pg: None,
                }
            }
            Kind::Postgres => Self {
                kind,
                sqlite: None,
                pg: Some(PgDatabase::create().await),
            },
        }
    }

    /// What `meta::open` takes to reach this database.
    pub fn url(&self) -> String {
        match (&self.sqlite, &self.pg) {
            (Some((_, path)), _) => format!("sqlite://{}", path.display()),
            (_, Some(pg)) => pg.conninfo.clone(),
            _ => unreachable!(),
        }
    }

    /// A fresh store instance on this database: two of them behave like two
    /// gateway processes.
    pub async fn open(&self) -> Arc<dyn MetaStore> {
        self.try_open().await.expect("open the metadata store")
    }

    pub async fn try_open(&self) -> meta::MetaResult<Arc<dyn MetaStore>> {
        match (&self.sqlite, &self.pg) {
            (Some((_, path)), _) => Ok(Arc::new(SqliteStore::open(path).await?)),
            (_, Some(pg)) => Ok(Arc::new(PgStore::connect(&pg.conninfo, 8).await?)),
            _ => unreachable!(),
        }
    }

    /// Runs raw SQL (several statements allowed) outside the store.
    pub async fn exec(&self, sql: &str) {
        let sql = sql.to_owned();
        match (&self.sqlite, &self.pg) {
            (Some((_, path)), _) => {
                let path = path.clone();
                tokio::task::spawn_blocking(move || {
                    let conn = sqlite_conn(&path);
                    conn.execute_batch(&sql)
                        .unwrap_or_else(|e| panic!("{sql}: {e}"));
                })
                .await
                .unwrap();
            }
            (_, Some(pg)) => {
                let client = pg_connect(&pg.conninfo).await;
                client
                    .batch_execute(&sql)
                    .await
                    .unwrap_or_else(|e| panic!("{sql}: {e:?}"));
            }
            _ => unreachable!(),
        }
    }

    /// Runs raw SQL outside the store; the database's error as text.
    pub async fn try_exec(&self, sql: &str) -> Result<(), String> {
        let sql = sql.to_owned();
        match (&self.sqlite, &self.pg) {
            (Some((_, path)), _) => {
                let path = path.clone();
                tokio::task::spawn_blocking(move || {
                    sqlite_conn(&path)
                        .execute_batch(&sql)
                        .map_err(|e| e.to_string())
                })
                .await
                .unwrap()
            }
            (_, Some(pg)) => pg_connect(&pg.conninfo)
                .await
                .batch_execute(&sql)
                .await
                .map_err(|e| format!("{e:?}")),
            _ => unreachable!(),
        }
    }

    /// Single-integer columns of a raw query (NULL as None).
    pub async fn ints(&self, sql: &str) -> Vec<Vec<Option<i64>>> {
        let sql = sql.to_owned();
        match (&self.sqlite, &self.pg) {
            (Some((_, path)), _) => {
                let path = path.clone();
                tokio::task::spawn_blocking(move || {
                    let conn = sqlite_conn(&path);
                    let mut stmt = conn.prepare(&sql).unwrap();
                    let n = stmt.column_count();
                    stmt.query_map([], |r| (0..n).map(|i| r.get::<_, Option<i64>>(i)).collect())
                        .unwrap()
                        .collect::<Result<Vec<_>, _>>()
                        .unwrap()
                })
                .await
                .unwrap()
            }
            (_, Some(pg)) => {
                let client = pg_connect(&pg.conninfo).await;
                let rows = client
                    .query(&sql, &[])
                    .await
                    .unwrap_or_else(|e| panic!("{sql}: {e:?}"));
                rows.iter()
                    .map(|r| (0..r.len()).map(|i| r.get::<_, Option<i64>>(i)).collect())
                    .collect()
            }
            _ => unreachable!(),
        }
    }

    /// Query-plan text of a statement (`$N` placeholders) with the given
    /// text arguments.
    pub async fn plan(&self, sql: &str, args: &[&str]) -> String {
        match (&self.sqlite, &self.pg) {
            (Some((_, path)), _) => {
                let path = path.clone();
                let sql = format!("EXPLAIN QUERY PLAN {}", sql.replace('$', "?"));
                let args: Vec<String> = args.iter().map(|s| (*s).to_owned()).collect();
                tokio::task::spawn_blocking(move || {
                    let conn = sqlite_conn(&path);
                    let mut stmt = conn.prepare(&sql).unwrap();
                    stmt.query_map(rusqlite::params_from_iter(args.iter()), |r| {
                        r.get::<_, String>(3)
                    })
                    .unwrap()
                    .collect::<Result<Vec<_>, _>>()
                    .unwrap()
                    .join("\n")
                })
                .await
                .unwrap()
            }
            (_, Some(pg)) => {
                let client = pg_connect(&pg.conninfo).await;
                let sql = format!("EXPLAIN {sql}");
                let params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = args
                    .iter()
                    .map(|a| a as &(dyn tokio_postgres::types::ToSql + Sync))
                    .collect();
                let stmt = client.prepare(&sql).await.unwrap();
                let rows = client.query(&stmt, &params).await.unwrap();
                rows.iter()
                    .map(|r| r.get::<_, String>(0))
                    .collect::<Vec<_>>()
                    .join("\n")
            }
            _ => unreachable!(),
        }
    }

    pub async fn chunk_rows(&self) -> Vec<ChunkRow> {
        const SQL: &str = "SELECT tenant_id, chunk_id, pack_id, len, refcount, state, zombie_since \
             FROM chunks ORDER BY tenant_id, chunk_id";
        match (&self.sqlite, &self.pg) {
            (Some((_, path)), _) => {
                let path = path.clone();
                tokio::task::spawn_blocking(move || {
                    let conn = sqlite_conn(&path);
                    let mut stmt = conn.prepare(SQL).unwrap();
                    stmt.query_map([], |r| {
                        Ok(ChunkRow {
                            tenant: r.get(0)?,
                            id: r.get(1)?,
                            pack: r.get(2)?,
                            len: r.get(3)?,
                            refcount: r.get(4)?,
                            state: r.get(5)?,
                            zombie_since: r.get(6)?,
                        })
                    })
                    .unwrap()
                    .collect::<Result<Vec<_>, _>>()
                    .unwrap()
                })
                .await
                .unwrap()
            }
            (_, Some(pg)) => {
                let client = pg_connect(&pg.conninfo).await;
                let rows = client.query(SQL, &[]).await.unwrap();
                rows.iter()
                    .map(|r| ChunkRow {
                        tenant: r.get(0),
                        id: r.get(1),
                        pack: r.get(2),
                        len: r.get(3),
                        refcount: r.get(4),
                        state: r.get(5),
                        zombie_since: r.get(6),
                    })
                    .collect()
            }
            _ => unreachable!(),
        }
    }
}

fn sqlite_conn(path: &std::path::Path) -> rusqlite::Connection {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.busy_timeout(std::time::Duration::from_secs(10))
        .unwrap();
    conn
}

fn base_conninfo() -> String {
    std::env::var("DOOZ_TEST_PG").unwrap_or_else(|_| DEFAULT_PG.to_owned())
}

/// The same connection string, pointing at another database.
fn with_dbname(base: &str, db: &str) -> String {
    if let Some(rest) = base
        .strip_prefix("postgres://")
        .map(|r| ("postgres://", r))
        .or_else(|| {
            base.strip_prefix("postgresql://")
                .map(|r| ("postgresql://", r))
        })
    {
        let (scheme, rest) = rest;
        let (main, query) = match rest.split_once('?') {
            Some((m, q)) => (m, format!("?{q}")),
            None => (rest, String::new()),
        };
        let authority = main.split_once('/').map_or(main, |(a, _)| a);
        format!("{scheme}{authority}/{db}{query}")
    } else {
        // libpq key=value: a later key overrides an earlier one.
        format!("{base} dbname={db}")
    }
}

pub async fn pg_connect(conninfo: &str) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(conninfo, NoTls)
        .await
        .unwrap_or_else(|e| {
            panic!(
                "PostgreSQL is unreachable at {conninfo:?} ({e}); these tests need it: \
                 start it or point DOOZ_TEST_PG at one"
            )
        });
    tokio::spawn(async move {
        let _ = conn.await;
    });
    client
}

/// A database created for one test and dropped (WITH FORCE, so pooled
/// connections the test left open do not stop it) when this guard drops.
pub struct PgDatabase {
    admin: String,
    pub name: String,
    pub conninfo: String,
}

impl PgDatabase {
    pub async fn create() -> Self {
        let admin = base_conninfo();
        let name = format!("dooz_test_{}", hex::encode(rand::random::<[u8; 8]>()));
        let client = pg_connect(&admin).await;
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap_or_else(|e| panic!("CREATE DATABASE {name}: {e:?}"));
        let conninfo = with_dbname(&admin, &name);
        Self {
            admin,
            name,
            conninfo,
        }
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        let admin = self.admin.clone();
        let name = self.name.clone();
        // A runtime of its own on a thread of its own: Drop may run inside
        // the test's runtime, even while it unwinds.
        let dropped = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            rt.block_on(async move {
                let (client, conn) = tokio_postgres::connect(&admin, NoTls)
                    .await
                    .map_err(|e| e.to_string())?;
                tokio::spawn(async move {
                    let _ = conn.await;
                });
                client
                    .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .await
                    .map_err(|e| format!("{e:?}"))
            })
        })
        .join();
        match dropped {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!("dropping test database {}: {e}", self.name),
            Err(_) => eprintln!("dropping test database {}: the dropper panicked", self.name),
        }
    }
}

/// Instantiates every listed `async fn(&TestDb)` once per store:
/// `sqlite::name` on a temp file and `postgres::name` on its own database.
#[macro_export]
macro_rules! for_both_stores {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $name() {
                    let db = $crate::common::TestDb::new($crate::common::Kind::Sqlite).await;
                    super::$name(&db).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $name() {
                    let db = $crate::common::TestDb::new($crate::common::Kind::Postgres).await;
                    super::$name(&db).await;
                }
            )*
        }
    };
}
