//! The audit log in the metadata store: an append-only, hash-chained table
//! (migration 0002_audit; docs/METADATA.md "Audit log").
//!
//! Row n stores `hash_n = BLAKE3-keyed(K_audit, "dooz/v1 audit" ‖ hash_(n-1) ‖
//! row n)`. Appends from every gateway on one database serialise on one lock
//! key, read the tail and continue the chain, so `seq` has no gaps and `at`
//! never goes backwards along it (an export by time is an export by seq).
//! Retention moves an anchor (the last removed row's seq and hash) forward,
//! records that move as a chained row of its own, and only then deletes: a
//! removal without such a record is a break `dooz audit verify` reports.

use std::sync::Arc;

use async_trait::async_trait;
use zeroize::{Zeroize, ZeroizeOnDrop};

use super::codec::{now_millis, to_i64};
use super::sql::{Cols, Driver, Row, Tx, Value, lock_key, params, tx_job};
use super::store::{SqlStore, read, write};
use super::{MetaError, MetaResult};

/// What an audit row says: who did what, when, from where, with what result.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct AuditRecord {
    /// Milliseconds since the Unix epoch; set when the row is appended.
    pub at: i64,
    /// The tenant acted as or on (None: system actions, unauthenticated requests).
    pub tenant_id: Option<String>,
    /// An access key, `cli:<os user>`, or `-` for anonymous requests.
    pub actor: String,
    /// The client's address, or `cli@<host>`.
    pub source: String,
    /// `s3:PutObject`, `admin:user.create`, `audit:purge`, ...
    pub action: String,
    /// `bucket/key`, an access key, a tenant name.
    pub target: String,
    /// HTTP status for S3 requests; `ok` or `error: ...` for commands.
    pub result: String,
    pub request_id: Option<String>,
    /// JSON object with action-specific facts (sizes, version ids, ...).
    pub detail: Option<String>,
    /// The gateway (host) that wrote the row.
    pub gateway: String,
}

/// A stored row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditRow {
    pub seq: u64,
    pub record: AuditRecord,
    pub hash: [u8; 32],
}

/// The chain's starting point after retention: the last removed row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AuditAnchor {
    pub seq: u64,
    pub at: i64,
    pub hash: [u8; 32],
}

/// The key of the chain's MAC. Derived from the root tenant's master key
/// (see `crate::audit::chain_key`); never stored.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct ChainKey([u8; 32]);

impl ChainKey {
    pub fn new(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }
}

impl std::fmt::Debug for ChainKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ChainKey(<redacted>)")
    }
}

/// Which rows an export reads: `from <= at < to`, optionally one tenant's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditFilter {
    pub from: i64,
    pub to: i64,
    pub tenant_id: Option<String>,
}

/// What a retention run did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PurgeOutcome {
    /// The anchor after the run (0 when nothing was ever purged).
    pub anchor_seq: u64,
    pub deleted: u64,
}

/// The hash of one row given its predecessor's.
pub fn chain_hash(key: &ChainKey, prev: &[u8; 32], seq: u64, r: &AuditRecord) -> [u8; 32] {
    let mut h = blake3::Hasher::new_keyed(&key.0);
    h.update(b"dooz/v1 audit");
    h.update(prev);
    h.update(&seq.to_le_bytes());
    h.update(&r.at.to_le_bytes());
    for field in [
        r.tenant_id.as_deref(),
        Some(&r.actor),
        Some(&r.source),
        Some(&r.action),
        Some(&r.target),
        Some(&r.result),
        r.request_id.as_deref(),
        r.detail.as_deref(),
        Some(&r.gateway),
    ] {
        // Presence, then length, then bytes: no two rows encode alike.
        match field {
            None => {
                h.update(&[0]);
            }
            Some(s) => {
                h.update(&[1]);
                h.update(&(s.len() as u64).to_le_bytes());
                h.update(s.as_bytes());
            }
        }
    }
    *h.finalize().as_bytes()
}

/// The audit log's operations, on the same database as the rest.
#[async_trait]
pub trait AuditStore: Send + Sync {
    /// Appends the records in order as one transaction, continuing the
    /// chain; returns the seq of the last. `at` of each record is replaced by
    /// the append time (never earlier than the chain's last row).
    async fn audit_append(&self, key: &ChainKey, records: Vec<AuditRecord>) -> MetaResult<u64>;
    /// Rows matching the filter in (at, seq) order, after the cursor.
    async fn audit_page(
        &self,
        filter: &AuditFilter,
        after: Option<(i64, u64)>,
        limit: usize,
    ) -> MetaResult<Vec<AuditRow>>;
    /// Rows with seq > `after` in seq order (for verification).
    async fn audit_chain_page(&self, after: u64, limit: usize) -> MetaResult<Vec<AuditRow>>;
    async fn audit_anchor(&self) -> MetaResult<AuditAnchor>;
    /// Retention: moves the anchor past every row older than `before`
    /// (appending `record`, with the anchor in its detail, to the chain), then
    /// deletes the rows the anchor passed, `batch` at a time.
    async fn audit_purge(
        &self,
        key: &ChainKey,
        before: i64,
        record: AuditRecord,
        batch: usize,
    ) -> MetaResult<PurgeOutcome>;
}

/// Every append and purge holds this lock: the chain has one tail.
fn chain_lock() -> i64 {
    lock_key("audit", &["chain"])
}

const TAIL: &str = "SELECT seq, at, hash FROM audit_log ORDER BY seq DESC LIMIT 1";
const ANCHOR: &str = "SELECT seq, at, hash FROM audit_anchor WHERE id = 1";
const INSERT: &str = "INSERT INTO audit_log \
     (seq, at, tenant_id, actor, source, action, target, result, request_id, detail, gateway, hash) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)";
// Statements are static strings, so each spells out the columns row_from reads.
const PAGE_FIRST: &str = "SELECT seq, at, tenant_id, actor, source, action, target, result, request_id, detail, gateway, hash \
     FROM audit_log WHERE at >= $1 AND at < $2 ORDER BY at, seq LIMIT $3";
const PAGE_AFTER: &str = "SELECT seq, at, tenant_id, actor, source, action, target, result, request_id, detail, gateway, hash \
     FROM audit_log WHERE (at > $1 OR (at = $1 AND seq > $4)) AND at < $2 ORDER BY at, seq LIMIT $3";
const TENANT_PAGE_FIRST: &str = "SELECT seq, at, tenant_id, actor, source, action, target, result, request_id, detail, gateway, hash \
     FROM audit_log WHERE tenant_id = $4 AND at >= $1 AND at < $2 ORDER BY at, seq LIMIT $3";
const TENANT_PAGE_AFTER: &str = "SELECT seq, at, tenant_id, actor, source, action, target, result, request_id, detail, gateway, hash \
     FROM audit_log WHERE tenant_id = $4 AND (at > $1 OR (at = $1 AND seq > $5)) AND at < $2 ORDER BY at, seq LIMIT $3";
const CHAIN_PAGE: &str = "SELECT seq, at, tenant_id, actor, source, action, target, result, request_id, detail, gateway, hash \
     FROM audit_log WHERE seq > $1 ORDER BY seq LIMIT $2";
const LAST_BEFORE: &str =
    "SELECT seq, at, hash FROM audit_log WHERE at < $1 ORDER BY seq DESC LIMIT 1";
const MOVE_ANCHOR: &str = "UPDATE audit_anchor SET seq = $1, at = $2, hash = $3 WHERE id = 1";
const DELETE_PASSED: &str = "DELETE FROM audit_log WHERE seq IN \
     (SELECT seq FROM audit_log WHERE seq <= $1 ORDER BY seq LIMIT $2)";

fn hash32(c: &Cols<'_>, i: usize) -> MetaResult<[u8; 32]> {
    let b = c.bytes(i)?;
    <[u8; 32]>::try_from(b)
        .map_err(|_| MetaError::Corrupt(format!("audit hash has {} bytes", b.len())))
}

fn row_from(row: &Row) -> MetaResult<AuditRow> {
    let c = Cols::new(row, "audit_log");
    Ok(AuditRow {
        seq: c.u64(0)?,
        record: AuditRecord {
            at: c.i64(1)?,
            tenant_id: c.opt_text(2)?,
            actor: c.text(3)?,
            source: c.text(4)?,
            action: c.text(5)?,
            target: c.text(6)?,
            result: c.text(7)?,
            request_id: c.opt_text(8)?,
            detail: c.opt_text(9)?,
            gateway: c.text(10)?,
        },
        hash: hash32(&c, 11)?,
    })
}

fn point_from(row: &Row, what: &'static str) -> MetaResult<AuditAnchor> {
    let c = Cols::new(row, what);
    Ok(AuditAnchor {
        seq: c.u64(0)?,
        at: c.i64(1)?,
        hash: hash32(&c, 2)?,
    })
}

async fn anchor(tx: &mut dyn Tx) -> MetaResult<AuditAnchor> {
    let row = tx
        .query_opt(ANCHOR, &[])
        .await?
        .ok_or_else(|| MetaError::Corrupt("audit_anchor has no row".into()))?;
    point_from(&row, "audit_anchor")
}

/// The chain's last link: the newest row, or the anchor when retention
/// removed every row.
async fn tail(tx: &mut dyn Tx) -> MetaResult<AuditAnchor> {
    match tx.query_opt(TAIL, &[]).await? {
        Some(row) => point_from(&row, "audit_log"),
        None => anchor(tx).await,
    }
}

async fn append(
    tx: &mut dyn Tx,
    key: &ChainKey,
    records: &[AuditRecord],
    now: i64,
) -> MetaResult<u64> {
    tx.lock_key(chain_lock()).await?;
    let mut last = tail(tx).await?;
    let at = now.max(last.at);
    let mut sets = Vec::with_capacity(records.len());
    for r in records {
        let seq = last.seq + 1;
        let mut r = r.clone();
        r.at = at;
        let hash = chain_hash(key, &last.hash, seq, &r);
        sets.push(
            params![
                to_i64(seq, "audit seq")?,
                r.at,
                r.tenant_id,
                r.actor,
                r.source,
                r.action,
                r.target,
                r.result,
                r.request_id,
                r.detail,
                r.gateway,
                hash.to_vec(),
            ]
            .to_vec(),
        );
        last = AuditAnchor { seq, at, hash };
    }
    tx.query_each(INSERT, &sets).await?;
    Ok(last.seq)
}

/// Moves the anchor past the rows older than `before`, recording the move in
/// the chain. None when no row is old enough.
async fn move_anchor(
    tx: &mut dyn Tx,
    key: &ChainKey,
    before: i64,
    mut record: AuditRecord,
    now: i64,
) -> MetaResult<Option<u64>> {
    tx.lock_key(chain_lock()).await?;
    let current = anchor(tx).await?;
    let Some(row) = tx.query_opt(LAST_BEFORE, &[Value::I64(before)]).await? else {
        return Ok(None);
    };
    let to = point_from(&row, "audit_log")?;
    if to.seq <= current.seq {
        return Ok(None);
    }
    record.detail = Some(
        serde_json::json!({
            "anchor_seq": to.seq,
            "anchor_at": to.at,
            "anchor_hash": hex::encode(to.hash),
            "before": before,
        })
        .to_string(),
    );
    append(tx, key, &[record], now).await?;
    tx.execute(
        MOVE_ANCHOR,
        &params![to_i64(to.seq, "audit seq")?, to.at, to.hash.to_vec()],
    )
    .await?;
    Ok(Some(to.seq))
}

fn limit_value(limit: usize) -> Value {
    Value::I64(i64::try_from(limit).unwrap_or(i64::MAX))
}

#[async_trait]
impl<D: Driver> AuditStore for SqlStore<D> {
    async fn audit_append(&self, key: &ChainKey, records: Vec<AuditRecord>) -> MetaResult<u64> {
        if records.is_empty() {
            return Ok(0);
        }
        let key = Arc::new(key.clone());
        let records = Arc::new(records);
        write(
            &self.db,
            "audit_append",
            tx_job!(tx, [key, records] => append(tx, &key, &records, now_millis()).await),
        )
        .await
    }

    async fn audit_page(
        &self,
        filter: &AuditFilter,
        after: Option<(i64, u64)>,
        limit: usize,
    ) -> MetaResult<Vec<AuditRow>> {
        let filter = Arc::new(filter.clone());
        read(
            &self.db,
            "audit_page",
            tx_job!(tx, [filter] => {
                let (from, to, n) = (Value::I64(filter.from), Value::I64(filter.to), limit_value(limit));
                let rows = match (&filter.tenant_id, after) {
                    (None, None) => tx.query(PAGE_FIRST, &[from, to, n]).await?,
                    (None, Some((at, seq))) => {
                        tx.query(PAGE_AFTER, &[Value::I64(at), to, n, Value::I64(to_i64(seq, "audit seq")?)]).await?
                    }
                    (Some(t), None) => tx.query(TENANT_PAGE_FIRST, &[from, to, n, Value::from(t)]).await?,
                    (Some(t), Some((at, seq))) => {
                        tx.query(
                            TENANT_PAGE_AFTER,
                            &[Value::I64(at), to, n, Value::from(t), Value::I64(to_i64(seq, "audit seq")?)],
                        )
                        .await?
                    }
                };
                rows.iter().map(row_from).collect()
            }),
        )
        .await
    }

    async fn audit_chain_page(&self, after: u64, limit: usize) -> MetaResult<Vec<AuditRow>> {
        read(
            &self.db,
            "audit_chain_page",
            tx_job!(tx, [] => {
                let rows = tx
                    .query(CHAIN_PAGE, &[Value::I64(to_i64(after, "audit seq")?), limit_value(limit)])
                    .await?;
                rows.iter().map(row_from).collect()
            }),
        )
        .await
    }

    async fn audit_anchor(&self) -> MetaResult<AuditAnchor> {
        read(
            &self.db,
            "audit_anchor",
            tx_job!(tx, [] => anchor(tx).await),
        )
        .await
    }

    async fn audit_purge(
        &self,
        key: &ChainKey,
        before: i64,
        record: AuditRecord,
        batch: usize,
    ) -> MetaResult<PurgeOutcome> {
        let key = Arc::new(key.clone());
        let record = Arc::new(record);
        write(
            &self.db,
            "audit_purge",
            tx_job!(tx, [key, record] =>
                move_anchor(tx, &key, before, (*record).clone(), now_millis()).await),
        )
        .await?;
        // Also finishes the deletions of an earlier, interrupted run.
        let anchor = self.audit_anchor().await?;
        let mut deleted = 0;
        loop {
            let n = write(
                &self.db,
                "audit_purge",
                tx_job!(tx, [] => tx.execute(
                        DELETE_PASSED,
                        &[Value::I64(to_i64(anchor.seq, "audit seq")?), limit_value(batch.max(1))],
                    ).await),
            )
            .await?;
            deleted += n;
            if n == 0 {
                break;
            }
        }
        Ok(PurgeOutcome {
            anchor_seq: anchor.seq,
            deleted,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> AuditRecord {
        AuditRecord {
            at: 1,
            tenant_id: Some("t".into()),
            actor: "a".into(),
            source: "127.0.0.1:1".into(),
            action: "s3:PutObject".into(),
            target: "b/k".into(),
            result: "200".into(),
            request_id: None,
            detail: None,
            gateway: "g".into(),
        }
    }

    #[test]
    fn every_field_and_the_key_change_the_hash() {
        let key = ChainKey::new([7; 32]);
        let base = chain_hash(&key, &[0; 32], 1, &record());
        assert_ne!(
            base,
            chain_hash(&ChainKey::new([8; 32]), &[0; 32], 1, &record())
        );
        assert_ne!(base, chain_hash(&key, &[1; 32], 1, &record()));
        assert_ne!(base, chain_hash(&key, &[0; 32], 2, &record()));
        type Edit = Box<dyn Fn(&mut AuditRecord)>;
        let edits: Vec<Edit> = vec![
            Box::new(|r| r.at = 2),
            Box::new(|r| r.tenant_id = None),
            Box::new(|r| r.actor = "b".into()),
            Box::new(|r| r.source = "x".into()),
            Box::new(|r| r.action = "s3:DeleteObject".into()),
            Box::new(|r| r.target = "b/l".into()),
            Box::new(|r| r.result = "403".into()),
            Box::new(|r| r.request_id = Some(String::new())),
            Box::new(|r| r.detail = Some("{}".into())),
            Box::new(|r| r.gateway = "h".into()),
        ];
        for edit in edits {
            let mut r = record();
            edit(&mut r);
            assert_ne!(base, chain_hash(&key, &[0; 32], 1, &r), "{r:?}");
        }
        // Field boundaries are part of the encoding.
        let mut a = record();
        a.actor = "ab".into();
        a.source = "c".into();
        let mut b = record();
        b.actor = "a".into();
        b.source = "bc".into();
        assert_ne!(
            chain_hash(&key, &[0; 32], 1, &a),
            chain_hash(&key, &[0; 32], 1, &b)
        );
    }
}
