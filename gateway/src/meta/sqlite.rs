//! SQLite driver: the embedded default.
//!
//! One writer connection (WAL, `BEGIN IMMEDIATE`, busy_timeout) serialises
//! every write transaction of this process, and other processes on the same
//! file queue on SQLite's own lock. Reads use a small pool of read-only
//! connections and see a snapshot. A whole transaction runs on one blocking
//! thread (`spawn_blocking`): the shared async job is polled there with
//! `block_on`, which never waits, because every statement is synchronous.

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{Connection, ErrorCode, OpenFlags};

use super::codec::now_millis;
use super::migrate;
use super::model::PoolStatus;
use super::sql::{Driver, Job, Row, Tx, Value, params, sql_context};
use super::store::SqlStore;
use super::{MetaError, MetaResult};

/// How long a writer waits for another process's write lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
const IDLE_READERS: usize = 4;
const STATEMENT_CACHE: usize = 64;

/// The metadata store on a SQLite file.
pub type SqliteStore = SqlStore<SqliteDriver>;

pub struct SqliteDriver {
    writer: Arc<Mutex<Connection>>,
    /// Connections running a transaction now (writer and readers).
    busy: Arc<AtomicUsize>,
    /// None for an in-memory database, which only its one connection sees.
    readers: Option<Arc<Readers>>,
}

struct Readers {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
}

impl SqlStore<SqliteDriver> {
    /// Opens (creating if missing) the database file and applies pending
    /// migrations.
    pub async fn open(path: impl AsRef<Path>) -> MetaResult<Self> {
        let path = path.as_ref().to_path_buf();
        blocking(move || {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).map_err(|e| {
                    MetaError::Unavailable(format!("creating {}: {e}", dir.display()))
                })?;
            }
            let mut writer = open_connection(&path, true)?;
            migrate(&mut writer)?;
            Ok(SqlStore::with_driver(SqliteDriver {
                writer: Arc::new(Mutex::new(writer)),
                busy: Arc::default(),
                readers: Some(Arc::new(Readers {
                    path,
                    idle: Mutex::new(Vec::new()),
                })),
            }))
        })
        .await
    }

    /// A private database that lives as long as the store (tests, tools).
    pub async fn open_in_memory() -> MetaResult<Self> {
        blocking(|| {
            let mut conn = Connection::open_in_memory().map_err(|e| sqlite_err(e, "open"))?;
            configure(&conn, true).map_err(|e| sqlite_err(e, "configure"))?;
            migrate(&mut conn)?;
            Ok(SqlStore::with_driver(SqliteDriver {
                writer: Arc::new(Mutex::new(conn)),
                busy: Arc::default(),
                readers: None,
            }))
        })
        .await
    }
}

fn open_connection(path: &Path, writer: bool) -> MetaResult<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags)
        .map_err(|e| sqlite_err(e, &format!("open {}", path.display())))?;
    // Switching a new database to WAL upgrades a shared lock to an
    // exclusive one; when several processes open it at once, SQLite answers
    // SQLITE_BUSY at once rather than wait (the busy handler is skipped to
    // avoid a deadlock). Try again, as long as the busy timeout allows.
    let started = std::time::Instant::now();
    loop {
        match configure(&conn, writer) {
            Ok(()) => return Ok(conn),
            Err(rusqlite::Error::SqliteFailure(e, _))
                if matches!(
                    e.code,
                    rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
                ) && started.elapsed() < BUSY_TIMEOUT =>
            {
                std::thread::sleep(std::time::Duration::from_millis(
                    5 + u64::from(rand::random::<u8>() % 20),
                ));
            }
            Err(e) => return Err(sqlite_err(e, "configure")),
        }
    }
}

fn configure(conn: &Connection, writer: bool) -> rusqlite::Result<()> {
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.pragma_update(None, "foreign_keys", true)?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    if writer {
        // WAL lets readers run beside the writer; FULL syncs the WAL on every
        // commit, because a commit acknowledged to a client must survive a
        // power cut.
        let _mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
        conn.pragma_update(None, "synchronous", "FULL")?;
    } else {
        conn.pragma_update(None, "query_only", true)?;
    }
    Ok(())
}

fn migrate(conn: &mut Connection) -> MetaResult<()> {
    conn.execute_batch(migrate::CREATE_TABLE)
        .map_err(|e| sqlite_err(e, "creating schema_migrations"))?;
    loop {
        // Each step re-reads the version under the write lock: another
        // process may have migrated meanwhile.
        begin(conn, "BEGIN IMMEDIATE")?;
        let step = (|| {
            let rows = run(conn, migrate::CURRENT, &[])?;
            let current = rows
                .first()
                .and_then(|r| r.first())
                .and_then(|v| match v {
                    Value::I64(n) => Some(*n),
                    _ => None,
                })
                .unwrap_or(0);
            let Some(m) = migrate::pending(migrate::SQLITE, current)?.first() else {
                return Ok(None);
            };
            conn.execute_batch(m.sql)
                .map_err(|e| sqlite_err(e, &format!("migration {}", m.name)))?;
            run(
                conn,
                migrate::RECORD,
                &[Value::I64(m.version), Value::I64(now_millis())],
            )?;
            Ok(Some(m.name))
        })();
        match step {
            Ok(applied) => {
                conn.execute_batch("COMMIT")
                    .map_err(|e| sqlite_err(e, "COMMIT"))?;
                match applied {
                    Some(name) => tracing::info!(migration = name, "applied SQLite migration"),
                    None => return Ok(()),
                }
            }
            Err(e) => {
                rollback(conn);
                return Err(e);
            }
        }
    }
}

async fn blocking<T, F>(f: F) -> MetaResult<T>
where
    T: Send + 'static,
    F: FnOnce() -> MetaResult<T> + Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| MetaError::Internal(format!("SQLite worker failed: {e}")))?
}

/// Counts a connection as busy for as long as it lives.
struct Busy<'a>(&'a AtomicUsize);

impl<'a> Busy<'a> {
    fn enter(n: &'a AtomicUsize) -> Self {
        n.fetch_add(1, Ordering::Relaxed);
        Self(n)
    }
}

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The writer, with any transaction a panicking job left open rolled back.
fn lock_writer(writer: &Mutex<Connection>) -> MutexGuard<'_, Connection> {
    let conn = writer
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if !conn.is_autocommit() {
        rollback(&conn);
    }
    conn
}

fn begin(conn: &Connection, begin: &str) -> MetaResult<()> {
    conn.execute_batch(begin).map_err(|e| sqlite_err(e, begin))
}

fn rollback(conn: &Connection) {
    if let Err(e) = conn.execute_batch("ROLLBACK") {
        tracing::warn!(error = %e, "SQLite rollback failed");
    }
}

fn in_transaction<T>(conn: &mut Connection, begin_sql: &str, job: &Job<T>) -> MetaResult<T> {
    begin(conn, begin_sql)?;
    let result = {
        let mut tx = SqliteTx { conn: &mut *conn };
        futures::executor::block_on(job(&mut tx))
    };
    match result {
        Ok(v) => match conn.execute_batch("COMMIT") {
            Ok(()) => Ok(v),
            Err(e) => {
                rollback(conn);
                Err(sqlite_err(e, "COMMIT"))
            }
        },
        Err(e) => {
            rollback(conn);
            Err(e)
        }
    }
}

impl Readers {
    fn take(&self) -> MetaResult<Connection> {
        let idle = self
            .idle
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .pop();
        match idle {
            Some(conn) => Ok(conn),
            None => open_connection(&self.path, false),
        }
    }

    fn give_back(&self, conn: Connection) {
        if !conn.is_autocommit() {
            return;
        }
        let mut idle = self
            .idle
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if idle.len() < IDLE_READERS {
            idle.push(conn);
        }
    }
}

#[async_trait]
impl Driver for SqliteDriver {
    fn kind(&self) -> &'static str {
        "sqlite"
    }

    fn pool_status(&self) -> PoolStatus {
        let idle = self.readers.as_ref().map_or(0, |r| {
            r.idle
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .len()
        });
        PoolStatus {
            in_use: self.busy.load(Ordering::Relaxed),
            idle,
            max: None,
        }
    }

    async fn write<T: Send + 'static>(&self, job: Job<T>) -> MetaResult<T> {
        let writer = self.writer.clone();
        let busy = self.busy.clone();
        blocking(move || {
            let _busy = Busy::enter(&busy);
            let mut conn = lock_writer(&writer);
            in_transaction(&mut conn, "BEGIN IMMEDIATE", &job)
        })
        .await
    }

    async fn read<T: Send + 'static>(&self, job: Job<T>) -> MetaResult<T> {
        let writer = self.writer.clone();
        let readers = self.readers.clone();
        let busy = self.busy.clone();
        blocking(move || {
            let _busy = Busy::enter(&busy);
            match readers {
                Some(readers) => {
                    let mut conn = readers.take()?;
                    let result = in_transaction(&mut conn, "BEGIN", &job);
                    readers.give_back(conn);
                    result
                }
                None => in_transaction(&mut lock_writer(&writer), "BEGIN", &job),
            }
        })
        .await
    }

    async fn ping(&self) -> MetaResult<()> {
        self.read(super::sql::job(|tx| {
            Box::pin(async move { tx.query("SELECT 1", &[]).await.map(drop) })
        }))
        .await
    }
}

struct SqliteTx<'c> {
    conn: &'c mut Connection,
}

#[async_trait]
impl Tx for SqliteTx<'_> {
    async fn execute(&mut self, sql: &'static str, params: &[Value]) -> MetaResult<u64> {
        let dialect = translate(sql);
        let mut stmt = self
            .conn
            .prepare_cached(&dialect)
            .map_err(|e| sqlite_err(e, sql))?;
        let n = stmt
            .execute(rusqlite::params_from_iter(params))
            .map_err(|e| sqlite_err(e, sql))?;
        Ok(n as u64)
    }

    async fn query(&mut self, sql: &'static str, params: &[Value]) -> MetaResult<Vec<Row>> {
        run(self.conn, sql, params)
    }

    async fn query_each(
        &mut self,
        sql: &'static str,
        sets: &[Vec<Value>],
    ) -> MetaResult<Vec<Vec<Row>>> {
        sets.iter().map(|p| run(self.conn, sql, p)).collect()
    }

    async fn query_keys(
        &mut self,
        sql: &'static str,
        fixed: &Value,
        keys: &[Value],
    ) -> MetaResult<Vec<Row>> {
        let mut out = Vec::new();
        for key in keys {
            out.extend(run(self.conn, sql, &[fixed.clone(), key.clone()])?);
        }
        Ok(out)
    }

    async fn lock_key(&mut self, _key: i64) -> MetaResult<()> {
        // BEGIN IMMEDIATE already made this the only writer.
        Ok(())
    }

    async fn manifest_range(
        &mut self,
        object: [&str; 3],
        offset: u64,
        len: usize,
    ) -> MetaResult<Option<Vec<u8>>> {
        const ROWID: &str =
            "SELECT rowid FROM objects WHERE bucket = $1 AND key = $2 AND version_id = $3";
        let [bucket, key, version] = object;
        let Some(row) = run(self.conn, ROWID, &params![bucket, key, version])?
            .into_iter()
            .next()
        else {
            return Ok(None);
        };
        let rowid = super::sql::Cols::new(&row, "objects").i64(0)?;
        let blob = self
            .conn
            .blob_open("main", "objects", "manifest", rowid, true)
            .map_err(|e| sqlite_err(e, "opening a manifest blob"))?;
        let start = usize::try_from(offset)
            .unwrap_or(usize::MAX)
            .min(blob.len());
        let mut buf = vec![0u8; len.min(blob.len() - start)];
        blob.read_at_exact(&mut buf, start)
            .map_err(|e| sqlite_err(e, "reading a manifest blob"))?;
        Ok(Some(buf))
    }
}

/// `$N` placeholders become `?N`; row locks are dropped (the one writer
/// holds the whole database).
fn translate(sql: &str) -> Cow<'_, str> {
    let sql = sql
        .strip_suffix(" FOR UPDATE")
        .or_else(|| sql.strip_suffix(" FOR KEY SHARE"))
        .or_else(|| sql.strip_suffix(" FOR SHARE"))
        .unwrap_or(sql);
    if sql.contains('$') {
        Cow::Owned(sql.replace('$', "?"))
    } else {
        Cow::Borrowed(sql)
    }
}

fn run(conn: &Connection, sql: &str, params: &[Value]) -> MetaResult<Vec<Row>> {
    let dialect = translate(sql);
    let mut stmt = conn
        .prepare_cached(&dialect)
        .map_err(|e| sqlite_err(e, sql))?;
    let columns = stmt.column_count();
    let mut rows = stmt
        .query(rusqlite::params_from_iter(params))
        .map_err(|e| sqlite_err(e, sql))?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().map_err(|e| sqlite_err(e, sql))? {
        let mut values = Vec::with_capacity(columns);
        for i in 0..columns {
            let v = row.get_ref(i).map_err(|e| sqlite_err(e, sql))?;
            values.push(from_sqlite(v, sql)?);
        }
        out.push(values);
    }
    Ok(out)
}

fn from_sqlite(v: ValueRef<'_>, sql: &str) -> MetaResult<Value> {
    Ok(match v {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(i) => Value::I64(i),
        ValueRef::Text(t) => Value::Text(String::from_utf8(t.to_vec()).map_err(|_| {
            MetaError::Corrupt(format!("non-UTF-8 text from {}", sql_context(sql)))
        })?),
        ValueRef::Blob(b) => Value::Bytes(b.to_vec()),
        ValueRef::Real(_) => {
            return Err(MetaError::Corrupt(format!(
                "unexpected REAL value from {}",
                sql_context(sql)
            )));
        }
    })
}

impl rusqlite::ToSql for Value {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::Borrowed(match self {
            Value::Null => ValueRef::Null,
            Value::I64(i) => ValueRef::Integer(*i),
            Value::Bool(b) => ValueRef::Integer(i64::from(*b)),
            Value::Text(s) => ValueRef::Text(s.as_bytes()),
            Value::Bytes(b) => ValueRef::Blob(b),
        }))
    }
}

/// What the Object Lock trigger of migration 0002 says when it refuses a delete.
const LOCK_TRIGGER_MESSAGE: &str = "protected by Object Lock";

fn sqlite_err(e: rusqlite::Error, ctx: &str) -> MetaError {
    let msg = format!("SQLite: {}: {e}", sql_context(ctx));
    match e.sqlite_error_code() {
        Some(
            ErrorCode::DatabaseBusy
            | ErrorCode::DatabaseLocked
            | ErrorCode::CannotOpen
            | ErrorCode::SystemIoFailure
            | ErrorCode::DiskFull
            | ErrorCode::ReadOnly
            | ErrorCode::PermissionDenied,
        ) => MetaError::Unavailable(msg),
        Some(ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase) => MetaError::Corrupt(msg),
        // The objects_locked_delete trigger (migration 0002).
        Some(ErrorCode::ConstraintViolation) if msg.contains(LOCK_TRIGGER_MESSAGE) => {
            MetaError::Locked(msg)
        }
        _ => MetaError::Internal(msg),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn translation_keeps_placeholder_numbers_and_drops_row_locks() {
        assert_eq!(
            translate("SELECT a FROM t WHERE x = $2 AND y = $10 FOR UPDATE"),
            "SELECT a FROM t WHERE x = ?2 AND y = ?10"
        );
        assert_eq!(translate("SELECT 1 FOR SHARE"), "SELECT 1");
        assert_eq!(translate("SELECT 1 FOR KEY SHARE"), "SELECT 1");
        assert!(matches!(translate("SELECT 1"), Cow::Borrowed(_)));
    }
}
