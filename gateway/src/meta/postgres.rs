//! PostgreSQL driver: production, several gateway processes on one database.
//!
//! Write transactions run at READ COMMITTED. Transactions that change one
//! object key serialise on `pg_advisory_xact_lock(hash(bucket, key))`, taken
//! first; chunk rows are locked in chunk-id order; a serialization failure or
//! deadlock rolls the whole job back and runs it again (bounded, with
//! jittered backoff). Reads run at REPEATABLE READ, READ ONLY: one snapshot.
//! Statements of a batch are pipelined: sent together, answered in order.

use std::time::Duration;

use async_trait::async_trait;
use bytes::BytesMut;
use deadpool_postgres::{Manager, ManagerConfig, Pool, PoolError, RecyclingMethod, Runtime};
use futures::future::try_join_all;
use rand::Rng;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::{IsNull, ToSql, Type, WrongType, to_sql_checked};
use tokio_postgres::{Config, IsolationLevel};

use super::codec::now_millis;
use super::migrate;
use super::model::PoolStatus;
use super::pg_tls::{self, RustlsConnect};
use super::sql::{Driver, Job, Row, Tx, Value, sql_context};
use super::store::SqlStore;
use super::{MetaError, MetaResult};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const POOL_WAIT: Duration = Duration::from_secs(10);
const ATTEMPTS: u32 = 6;
/// Session lock held while migrating, so two processes starting on one
/// database do not both apply a migration. ("dooz" "migr" in ASCII.)
const MIGRATION_LOCK: i64 = 0x646f_6f7a_6d69_6772;

/// The metadata store on a PostgreSQL database.
pub type PgStore = SqlStore<PgDriver>;

pub struct PgDriver {
    pool: Pool,
}

impl SqlStore<PgDriver> {
    /// `url`: `postgres://…`, `postgresql://…` or a libpq `key=value` string,
    /// with `sslmode` and `sslrootcert` as libpq reads them (see `pg_tls`).
    /// Applies pending migrations before returning.
    pub async fn connect(url: &str, pool_size: usize) -> MetaResult<Self> {
        let (mut config, tls) = pg_tls::prepare(url)?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        if config.get_application_name().is_none() {
            config.application_name("dooz");
        }
        migrate(&config, tls.clone()).await?;
        let manager = Manager::from_config(
            config,
            tls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(pool_size.max(1))
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(POOL_WAIT))
            .create_timeout(Some(CONNECT_TIMEOUT))
            .recycle_timeout(Some(CONNECT_TIMEOUT))
            .build()
            .map_err(|e| MetaError::Internal(format!("building the PostgreSQL pool: {e}")))?;
        Ok(SqlStore::with_driver(PgDriver { pool }))
    }
}

/// Runs on a connection of its own: the session advisory lock dies with it,
/// whatever happens.
async fn migrate(config: &Config, tls: RustlsConnect) -> MetaResult<()> {
    let (mut client, connection) = config
        .connect(tls)
        .await
        .map_err(|e| pg_err(&e, "connecting"))?;
    let driver = tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(error = %e, "migration connection ended");
        }
    });
    let result = migrate_on(&mut client).await;
    drop(client);
    let _ = driver.await;
    result
}

async fn migrate_on(client: &mut tokio_postgres::Client) -> MetaResult<()> {
    client
        .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(|e| pg_err(&e, "taking the migration lock"))?;
    client
        .batch_execute(migrate::CREATE_TABLE)
        .await
        .map_err(|e| pg_err(&e, "creating schema_migrations"))?;
    let current: i64 = client
        .query_one(migrate::CURRENT, &[])
        .await
        .map_err(|e| pg_err(&e, migrate::CURRENT))?
        .try_get(0)
        .map_err(|e| pg_err(&e, migrate::CURRENT))?;
    for m in migrate::pending(migrate::POSTGRES, current)? {
        let tx = client
            .transaction()
            .await
            .map_err(|e| pg_err(&e, "BEGIN"))?;
        tx.batch_execute(m.sql)
            .await
            .map_err(|e| pg_err(&e, &format!("migration {}", m.name)))?;
        tx.execute(migrate::RECORD, &[&m.version, &now_millis()])
            .await
            .map_err(|e| pg_err(&e, migrate::RECORD))?;
        tx.commit().await.map_err(|e| pg_err(&e, "COMMIT"))?;
        tracing::info!(migration = m.name, "applied PostgreSQL migration");
    }
    Ok(())
}

impl PgDriver {
    async fn run<T>(&self, job: &Job<T>, read_only: bool) -> MetaResult<T> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut client = self.pool.get().await.map_err(pool_err)?;
            let builder = client.build_transaction();
            let builder = if read_only {
                builder
                    .isolation_level(IsolationLevel::RepeatableRead)
                    .read_only(true)
            } else {
                builder.isolation_level(IsolationLevel::ReadCommitted)
            };
            let tx = builder.start().await.map_err(|e| pg_err(&e, "BEGIN"))?;
            let mut pg = PgTx {
                tx,
                retryable: false,
            };
            let result = job(&mut pg).await;
            let PgTx { tx, retryable } = pg;
            let outcome = match result {
                Ok(v) => match tx.commit().await {
                    Ok(()) => return Ok(v),
                    Err(e) => (is_retryable(&e), pg_err(&e, "COMMIT")),
                },
                Err(e) => {
                    // A broken connection fails the rollback too; the pool
                    // drops closed connections.
                    let _ = tx.rollback().await;
                    (retryable, e)
                }
            };
            match outcome {
                (true, e) if attempt < ATTEMPTS => {
                    let backoff = 2u64 << attempt.min(6);
                    let jitter = rand::rng().random_range(0..=backoff);
                    tracing::debug!(attempt, error = %e, "retrying a PostgreSQL transaction");
                    crate::metrics::METRICS
                        .meta_transaction_retries
                        .with_label_values(&["postgres"])
                        .inc();
                    tokio::time::sleep(Duration::from_millis(backoff + jitter)).await;
                }
                (_, e) => return Err(e),
            }
        }
    }
}

#[async_trait]
impl Driver for PgDriver {
    fn kind(&self) -> &'static str {
        "postgres"
    }

    async fn write<T: Send + 'static>(&self, job: Job<T>) -> MetaResult<T> {
        self.run(&job, false).await
    }

    async fn read<T: Send + 'static>(&self, job: Job<T>) -> MetaResult<T> {
        self.run(&job, true).await
    }

    fn pool_status(&self) -> PoolStatus {
        let s = self.pool.status();
        PoolStatus {
            in_use: s.size.saturating_sub(s.available),
            idle: s.available,
            max: Some(s.max_size),
        }
    }

    async fn ping(&self) -> MetaResult<()> {
        let client = self.pool.get().await.map_err(pool_err)?;
        client
            .simple_query("SELECT 1")
            .await
            .map_err(|e| pg_err(&e, "SELECT 1"))?;
        Ok(())
    }
}

struct PgTx<'c> {
    tx: deadpool_postgres::Transaction<'c>,
    /// Set when a statement failed in a way that a fresh run may not.
    retryable: bool,
}

impl PgTx<'_> {
    fn fail(&mut self, e: &tokio_postgres::Error, sql: &str) -> MetaError {
        self.retryable |= is_retryable(e);
        pg_err(e, sql)
    }
}

fn refs(params: &[Value]) -> Vec<&(dyn ToSql + Sync)> {
    params.iter().map(|v| v as &(dyn ToSql + Sync)).collect()
}

#[async_trait]
impl Tx for PgTx<'_> {
    async fn execute(&mut self, sql: &'static str, params: &[Value]) -> MetaResult<u64> {
        let stmt = match self.tx.prepare_cached(sql).await {
            Ok(s) => s,
            Err(e) => return Err(self.fail(&e, sql)),
        };
        let result = self.tx.execute(&stmt, &refs(params)).await;
        result.map_err(|e| self.fail(&e, sql))
    }

    async fn query(&mut self, sql: &'static str, params: &[Value]) -> MetaResult<Vec<Row>> {
        let stmt = match self.tx.prepare_cached(sql).await {
            Ok(s) => s,
            Err(e) => return Err(self.fail(&e, sql)),
        };
        let result = self.tx.query(&stmt, &refs(params)).await;
        match result {
            Ok(rows) => rows.iter().map(|r| from_pg(r, sql)).collect(),
            Err(e) => Err(self.fail(&e, sql)),
        }
    }

    async fn query_each(
        &mut self,
        sql: &'static str,
        sets: &[Vec<Value>],
    ) -> MetaResult<Vec<Vec<Row>>> {
        if sets.is_empty() {
            return Ok(Vec::new());
        }
        let stmt = match self.tx.prepare_cached(sql).await {
            Ok(s) => s,
            Err(e) => return Err(self.fail(&e, sql)),
        };
        // All runs are sent before the first answer is awaited; the server
        // executes them in order.
        let tx = &self.tx;
        let stmt = &stmt;
        let runs = sets.iter().map(|set| async move {
            let params = refs(set);
            tx.query(stmt, &params).await
        });
        let result = try_join_all(runs).await;
        match result {
            Ok(all) => all
                .iter()
                .map(|rows| rows.iter().map(|r| from_pg(r, sql)).collect())
                .collect(),
            Err(e) => Err(self.fail(&e, sql)),
        }
    }

    async fn query_keys(
        &mut self,
        sql: &'static str,
        fixed: &Value,
        keys: &[Value],
    ) -> MetaResult<Vec<Row>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let any = any_form(sql)?;
        let stmt = match self.tx.prepare_cached(&any).await {
            Ok(s) => s,
            Err(e) => return Err(self.fail(&e, sql)),
        };
        let keys: Vec<&Value> = keys.iter().collect();
        let result = self.tx.query(&stmt, &[fixed, &keys]).await;
        match result {
            Ok(rows) => rows.iter().map(|r| from_pg(r, sql)).collect(),
            Err(e) => Err(self.fail(&e, sql)),
        }
    }

    async fn lock_key(&mut self, key: i64) -> MetaResult<()> {
        const LOCK: &str = "SELECT pg_advisory_xact_lock($1)";
        self.execute(LOCK, &[Value::I64(key)]).await.map(drop)
    }
}

/// `… = $2` becomes `… = ANY($2)`: one statement for a whole array of keys.
fn any_form(sql: &str) -> MetaResult<String> {
    if sql.matches("= $2").count() != 1 {
        return Err(MetaError::Internal(format!(
            "a keyed statement needs exactly one `= $2`: {}",
            sql_context(sql)
        )));
    }
    Ok(sql.replacen("= $2", "= ANY($2)", 1))
}

fn from_pg(row: &tokio_postgres::Row, sql: &str) -> MetaResult<Row> {
    let bad = |e: tokio_postgres::Error| {
        MetaError::Corrupt(format!("reading a row of {}: {e}", sql_context(sql)))
    };
    let mut out = Vec::with_capacity(row.len());
    for (i, col) in row.columns().iter().enumerate() {
        let v = match *col.type_() {
            Type::INT8 => row
                .try_get::<_, Option<i64>>(i)
                .map_err(bad)?
                .map(Value::I64),
            Type::INT4 => row
                .try_get::<_, Option<i32>>(i)
                .map_err(bad)?
                .map(|v| Value::I64(v.into())),
            Type::INT2 => row
                .try_get::<_, Option<i16>>(i)
                .map_err(bad)?
                .map(|v| Value::I64(v.into())),
            Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME => row
                .try_get::<_, Option<String>>(i)
                .map_err(bad)?
                .map(Value::Text),
            Type::BYTEA => row
                .try_get::<_, Option<Vec<u8>>>(i)
                .map_err(bad)?
                .map(Value::Bytes),
            Type::BOOL => row
                .try_get::<_, Option<bool>>(i)
                .map_err(bad)?
                .map(Value::Bool),
            ref other => {
                return Err(MetaError::Internal(format!(
                    "column {} of {} has unsupported type {other}",
                    col.name(),
                    sql_context(sql)
                )));
            }
        };
        out.push(v.unwrap_or(Value::Null));
    }
    Ok(out)
}

impl ToSql for Value {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match self {
            Value::Null => Ok(IsNull::Yes),
            Value::I64(v) => match *ty {
                Type::INT8 => v.to_sql(ty, out),
                Type::INT4 => i32::try_from(*v)?.to_sql(ty, out),
                Type::INT2 => i16::try_from(*v)?.to_sql(ty, out),
                _ => Err(Box::new(WrongType::new::<i64>(ty.clone()))),
            },
            Value::Text(s) if <String as ToSql>::accepts(ty) => s.to_sql(ty, out),
            Value::Text(_) => Err(Box::new(WrongType::new::<String>(ty.clone()))),
            Value::Bytes(b) if <Vec<u8> as ToSql>::accepts(ty) => b.to_sql(ty, out),
            Value::Bytes(_) => Err(Box::new(WrongType::new::<Vec<u8>>(ty.clone()))),
            Value::Bool(b) if *ty == Type::BOOL => b.to_sql(ty, out),
            Value::Bool(_) => Err(Box::new(WrongType::new::<bool>(ty.clone()))),
        }
    }

    /// Every variant checks the column type itself in `to_sql`.
    fn accepts(_: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

fn is_retryable(e: &tokio_postgres::Error) -> bool {
    matches!(
        e.code(),
        Some(c) if *c == SqlState::T_R_SERIALIZATION_FAILURE || *c == SqlState::T_R_DEADLOCK_DETECTED
    )
}

fn pool_err(e: PoolError) -> MetaError {
    match e {
        PoolError::Backend(e) => pg_err(&e, "connecting"),
        PoolError::Timeout(_) | PoolError::Closed => {
            MetaError::Unavailable(format!("PostgreSQL connection pool: {e}"))
        }
        other => MetaError::Internal(format!("PostgreSQL connection pool: {other}")),
    }
}

/// Connection loss, timeouts, shutdowns, exhausted resources and lost
/// contention are "try again later" (503); everything else is a bug or a
/// broken database.
/// The SQLSTATE of the Object Lock trigger of migration 0002.
const LOCK_TRIGGER_SQLSTATE: &str = "DZ001";

fn pg_err(e: &tokio_postgres::Error, ctx: &str) -> MetaError {
    let msg = match e.as_db_error() {
        Some(db) => format!("PostgreSQL: {}: {db}", sql_context(ctx)),
        None => {
            let mut msg = format!("PostgreSQL: {}: {e}", sql_context(ctx));
            let mut source = std::error::Error::source(e);
            while let Some(s) = source {
                msg.push_str(&format!(": {s}"));
                source = s.source();
            }
            msg
        }
    };
    let transient = match e.code() {
        Some(code) => {
            let c = code.code();
            c.starts_with("08")
                || c.starts_with("53")
                || c.starts_with("57")
                || c == "55P03"
                || c == "40001"
                || c == "40P01"
        }
        None => {
            e.is_closed()
                || has_io_source(e)
                || msg.contains("error connecting")
                || msg.contains("timeout")
        }
    };
    if transient {
        MetaError::Unavailable(msg)
    } else if e.code().is_some_and(|c| c.code() == LOCK_TRIGGER_SQLSTATE) {
        MetaError::Locked(msg)
    } else {
        MetaError::Internal(msg)
    }
}

fn has_io_source(e: &tokio_postgres::Error) -> bool {
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if s.is::<std::io::Error>() {
            return true;
        }
        source = s.source();
    }
    false
}
