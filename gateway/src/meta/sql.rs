//! The small SQL surface both stores share: values, rows, a transaction handle
//! and the driver that runs jobs in transactions.
//!
//! Every metadata operation is written once, as a job against [`Tx`], in a
//! common dialect: `$N` placeholders, `CAST(.. AS BIGINT)`, `TRUE`/`FALSE`,
//! `ON CONFLICT`, `RETURNING`, and an optional trailing `FOR UPDATE` /
//! `FOR SHARE`. The drivers translate what SQLite spells differently.

use std::sync::Arc;

use async_trait::async_trait;
use futures::future::BoxFuture;

use super::model::{ChunkKey, PackKey, TenantId};
use super::{MetaError, MetaResult};

/// A parameter or column value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Value {
    Null,
    I64(i64),
    Text(String),
    Bytes(Vec<u8>),
    Bool(bool),
}

impl Value {
    fn type_name(&self) -> &'static str {
        match self {
            Value::Null => "NULL",
            Value::I64(_) => "integer",
            Value::Text(_) => "text",
            Value::Bytes(_) => "bytes",
            Value::Bool(_) => "boolean",
        }
    }
}

impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Value::I64(v)
    }
}

impl From<u32> for Value {
    fn from(v: u32) -> Self {
        Value::I64(i64::from(v))
    }
}

impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Value::Bool(v)
    }
}

impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::Text(v.to_owned())
    }
}

impl From<String> for Value {
    fn from(v: String) -> Self {
        Value::Text(v)
    }
}

impl From<&String> for Value {
    fn from(v: &String) -> Self {
        Value::Text(v.clone())
    }
}

impl From<Vec<u8>> for Value {
    fn from(v: Vec<u8>) -> Self {
        Value::Bytes(v)
    }
}

impl From<&[u8]> for Value {
    fn from(v: &[u8]) -> Self {
        Value::Bytes(v.to_vec())
    }
}

impl From<&ChunkKey> for Value {
    fn from(v: &ChunkKey) -> Self {
        Value::Bytes(v.to_vec())
    }
}

impl From<&PackKey> for Value {
    fn from(v: &PackKey) -> Self {
        Value::Bytes(v.to_vec())
    }
}

impl From<TenantId> for Value {
    fn from(v: TenantId) -> Self {
        Value::Text(v.to_string())
    }
}

impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Self {
        v.map_or(Value::Null, Into::into)
    }
}

/// Builds a parameter array: `&params![a, b, c]` is a `&[Value]`.
macro_rules! params {
    ($($v:expr),* $(,)?) => { [$($crate::meta::sql::Value::from($v)),*] };
}
pub(crate) use params;

pub(crate) type Row = Vec<Value>;

/// Typed access to a row's columns; a value of the wrong type is corrupt
/// metadata, never a panic.
pub(crate) struct Cols<'r> {
    row: &'r [Value],
    what: &'static str,
}

impl<'r> Cols<'r> {
    pub(crate) fn new(row: &'r [Value], what: &'static str) -> Self {
        Self { row, what }
    }

    fn get(&self, i: usize) -> MetaResult<&'r Value> {
        self.row
            .get(i)
            .ok_or_else(|| MetaError::Internal(format!("{}: no column {i}", self.what)))
    }

    fn bad(&self, i: usize, want: &str, got: &Value) -> MetaError {
        MetaError::Corrupt(format!(
            "{}: column {i} should be {want}, found {}",
            self.what,
            got.type_name()
        ))
    }

    pub(crate) fn i64(&self, i: usize) -> MetaResult<i64> {
        match self.get(i)? {
            Value::I64(v) => Ok(*v),
            other => Err(self.bad(i, "an integer", other)),
        }
    }

    pub(crate) fn u64(&self, i: usize) -> MetaResult<u64> {
        let v = self.i64(i)?;
        u64::try_from(v)
            .map_err(|_| MetaError::Corrupt(format!("{}: column {i} is negative ({v})", self.what)))
    }

    pub(crate) fn u32(&self, i: usize) -> MetaResult<u32> {
        let v = self.i64(i)?;
        u32::try_from(v).map_err(|_| {
            MetaError::Corrupt(format!("{}: column {i} out of u32 range ({v})", self.what))
        })
    }

    /// SQLite has no boolean type: 0/1 integers count too.
    pub(crate) fn bool(&self, i: usize) -> MetaResult<bool> {
        match self.get(i)? {
            Value::Bool(b) => Ok(*b),
            Value::I64(0) => Ok(false),
            Value::I64(1) => Ok(true),
            other => Err(self.bad(i, "a boolean", other)),
        }
    }

    pub(crate) fn text(&self, i: usize) -> MetaResult<String> {
        match self.get(i)? {
            Value::Text(s) => Ok(s.clone()),
            other => Err(self.bad(i, "text", other)),
        }
    }

    pub(crate) fn opt_i64(&self, i: usize) -> MetaResult<Option<i64>> {
        match self.get(i)? {
            Value::Null => Ok(None),
            _ => self.i64(i).map(Some),
        }
    }

    pub(crate) fn opt_text(&self, i: usize) -> MetaResult<Option<String>> {
        match self.get(i)? {
            Value::Null => Ok(None),
            _ => self.text(i).map(Some),
        }
    }

    pub(crate) fn bytes(&self, i: usize) -> MetaResult<&'r [u8]> {
        match self.get(i)? {
            Value::Bytes(b) => Ok(b),
            other => Err(self.bad(i, "bytes", other)),
        }
    }

    pub(crate) fn chunk_key(&self, i: usize) -> MetaResult<ChunkKey> {
        let b = self.bytes(i)?;
        ChunkKey::try_from(b).map_err(|_| {
            MetaError::Corrupt(format!("{}: chunk id has {} bytes", self.what, b.len()))
        })
    }

    pub(crate) fn pack_key(&self, i: usize) -> MetaResult<PackKey> {
        let b = self.bytes(i)?;
        PackKey::try_from(b).map_err(|_| {
            MetaError::Corrupt(format!("{}: pack id has {} bytes", self.what, b.len()))
        })
    }

    pub(crate) fn tenant(&self, i: usize) -> MetaResult<TenantId> {
        let s = self.text(i)?;
        TenantId::parse_str(&s)
            .map_err(|e| MetaError::Corrupt(format!("{}: tenant id {s:?}: {e}", self.what)))
    }
}

/// One open transaction. Statements are static strings: nothing user-supplied
/// is ever spliced into SQL.
#[async_trait]
pub(crate) trait Tx: Send {
    /// Runs a statement that returns no rows; the number of rows it changed.
    async fn execute(&mut self, sql: &'static str, params: &[Value]) -> MetaResult<u64>;
    async fn query(&mut self, sql: &'static str, params: &[Value]) -> MetaResult<Vec<Row>>;
    /// Runs one statement once per parameter set, in the given order, and
    /// returns the rows of each run. PostgreSQL pipelines the runs in one
    /// round trip; SQLite loops over one prepared statement.
    async fn query_each(
        &mut self,
        sql: &'static str,
        sets: &[Vec<Value>],
    ) -> MetaResult<Vec<Vec<Row>>>;
    /// Runs a read whose `$2` is one key (`… = $2`, exactly once) for many
    /// keys, with `$1` = `fixed`. SQLite loops over the keys; PostgreSQL runs
    /// it once as `= ANY($2)` over an array of them. Rows come back in no
    /// particular order, so the statement should select its key.
    async fn query_keys(
        &mut self,
        sql: &'static str,
        fixed: &Value,
        keys: &[Value],
    ) -> MetaResult<Vec<Row>>;
    /// Holds a lock on `key` until the transaction ends, serialising every
    /// transaction that names the same key. A no-op where writers are
    /// already serialised (SQLite).
    async fn lock_key(&mut self, key: i64) -> MetaResult<()>;

    async fn query_opt(&mut self, sql: &'static str, params: &[Value]) -> MetaResult<Option<Row>> {
        Ok(self.query(sql, params).await?.into_iter().next())
    }

    /// `len` bytes (fewer at its end) from byte `offset` of the manifest of
    /// one object version; None when the version does not exist. SQL's
    /// `substr` serves PostgreSQL, which reads only the TOAST chunks it
    /// needs; SQLite would load the whole value for it and reads the blob
    /// in place instead.
    async fn manifest_range(
        &mut self,
        object: [&str; 3],
        offset: u64,
        len: usize,
    ) -> MetaResult<Option<Vec<u8>>> {
        const SLICE: &str = "SELECT substr(manifest, CAST($4 AS INTEGER), CAST($5 AS INTEGER)) \
             FROM objects WHERE bucket = $1 AND key = $2 AND version_id = $3";
        // SQL counts from 1.
        let from = i64::try_from(offset + 1).unwrap_or(i64::MAX);
        let len = i64::try_from(len).unwrap_or(i64::MAX);
        let [bucket, key, version] = object;
        match self
            .query_opt(SLICE, &params![bucket, key, version, from, len])
            .await?
        {
            Some(row) => Ok(Some(Cols::new(&row, "objects").bytes(0)?.to_vec())),
            None => Ok(None),
        }
    }
}

/// A unit of work run inside one transaction. It is a `Fn` because a driver
/// may run it again after a serialization failure or deadlock.
pub(crate) type Job<T> =
    Arc<dyn for<'t> Fn(&'t mut dyn Tx) -> BoxFuture<'t, MetaResult<T>> + Send + Sync>;

pub(crate) fn job<T, F>(f: F) -> Job<T>
where
    F: for<'t> Fn(&'t mut dyn Tx) -> BoxFuture<'t, MetaResult<T>> + Send + Sync + 'static,
{
    Arc::new(f)
}

/// `tx_job!(tx, [captured, ...] => body)`: a [`Job`] whose body gets fresh
/// clones of the captured values on every run.
macro_rules! tx_job {
    ($tx:ident, [$($cap:ident),* $(,)?] => $body:expr) => {
        $crate::meta::sql::job(move |$tx| {
            $(let $cap = $cap.clone();)*
            Box::pin(async move { $body })
        })
    };
}
pub(crate) use tx_job;

/// Runs jobs in transactions on one database.
#[async_trait]
pub(crate) trait Driver: Send + Sync + 'static {
    fn kind(&self) -> &'static str;
    /// A read-write transaction; on PostgreSQL READ COMMITTED, retried on
    /// serialization failures and deadlocks.
    async fn write<T: Send + 'static>(&self, job: Job<T>) -> MetaResult<T>;
    /// A read-only transaction that sees one snapshot.
    async fn read<T: Send + 'static>(&self, job: Job<T>) -> MetaResult<T>;
    async fn ping(&self) -> MetaResult<()>;
    fn pool_status(&self) -> super::model::PoolStatus;
}

/// The first line of a statement, for error messages.
pub(crate) fn sql_context(sql: &str) -> String {
    let flat: String = sql.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.len() > 90 {
        let mut end = 90;
        while !flat.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}…", &flat[..end])
    } else {
        flat
    }
}

/// Stable 64-bit lock key for a name in a namespace; both stores and every
/// gateway process must agree on it, so no std hasher.
pub(crate) fn lock_key(namespace: &str, parts: &[&str]) -> i64 {
    let mut h = blake3::Hasher::new();
    h.update(namespace.as_bytes());
    for p in parts {
        h.update(&(p.len() as u64).to_le_bytes());
        h.update(p.as_bytes());
    }
    let d = h.finalize();
    let mut b = [0u8; 8];
    b.copy_from_slice(&d.as_bytes()[..8]);
    i64::from_le_bytes(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_keys_separate_namespaces_and_boundaries() {
        assert_ne!(lock_key("obj", &["ab", "c"]), lock_key("obj", &["a", "bc"]));
        assert_ne!(lock_key("obj", &["a", "b"]), lock_key("part", &["a", "b"]));
        assert_eq!(lock_key("obj", &["a", "b"]), lock_key("obj", &["a", "b"]));
    }

    #[test]
    fn wrong_types_are_corrupt_not_panics() {
        let row = vec![
            Value::Text("x".into()),
            Value::I64(-1),
            Value::Bytes(vec![1]),
        ];
        let c = Cols::new(&row, "t");
        assert!(matches!(c.i64(0), Err(MetaError::Corrupt(_))));
        assert!(matches!(c.u64(1), Err(MetaError::Corrupt(_))));
        assert!(matches!(c.chunk_key(2), Err(MetaError::Corrupt(_))));
        assert!(matches!(c.text(7), Err(MetaError::Internal(_))));
    }
}
