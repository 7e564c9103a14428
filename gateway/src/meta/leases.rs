//! Named leases: a row per held lease (name, holder token, expiry), the one
//! mechanism background jobs use to keep each other apart across gateway
//! processes sharing a database, and uploads use to tell the collector how
//! far back their work reaches.
//!
//! - A lease is held by whoever inserted its row; the holder renews it
//!   (`expires_at` moves on) while it works and deletes it when done.
//! - An expired row is taken over only by deleting it and inserting a new
//!   one, and is ignored only once deleted ([`revoke_expired`]). A holder
//!   that lost its row finds out at its next renewal.
//! - A fence ([`check_fences`]) reads a row `FOR KEY SHARE` inside a
//!   transaction that must only commit while its lease is held: PostgreSQL
//!   makes a takeover's DELETE wait for that transaction, and a renewal (an
//!   UPDATE of non-key columns) does not. SQLite's single writer orders them
//!   anyway.

use std::collections::BTreeSet;
use std::sync::Arc;

use async_trait::async_trait;

use super::model::Millis;
use super::objects::prefix_successor;
use super::sql::{Cols, Driver, Row, Tx, Value, params, tx_job};
use super::store::{SqlStore, read, write};
use super::{MetaError, MetaResult};

const SELECT_ONE: &str = "SELECT name, holder, owner, acquired_at, expires_at, low_water \
     FROM leases WHERE name = $1 FOR UPDATE";
const DELETE_HELD: &str = "DELETE FROM leases WHERE name = $1 AND holder = $2";
const INSERT: &str = "INSERT INTO leases \
     (name, holder, owner, acquired_at, expires_at, low_water) VALUES ($1, $2, $3, $4, $5, $6) \
     ON CONFLICT (name) DO NOTHING RETURNING name";
const RENEW: &str = "UPDATE leases SET expires_at = $3, low_water = $4 \
     WHERE name = $1 AND holder = $2 RETURNING name";
const LIST_RANGE: &str = "SELECT name, holder, owner, acquired_at, expires_at, low_water \
     FROM leases WHERE name >= $1 AND name < $2 ORDER BY name";
const LIST_FROM: &str = "SELECT name, holder, owner, acquired_at, expires_at, low_water \
     FROM leases WHERE name >= $1 ORDER BY name";
const REVOKE_RANGE: &str = "DELETE FROM leases WHERE name >= $1 AND name < $2 AND expires_at < $3 \
     RETURNING name, holder, owner, acquired_at, expires_at, low_water";
const REVOKE_FROM: &str = "DELETE FROM leases WHERE name >= $1 AND expires_at < $2 \
     RETURNING name, holder, owner, acquired_at, expires_at, low_water";
const FENCE: &str = "SELECT holder FROM leases WHERE name = $1 AND holder = $2 FOR KEY SHARE";

/// Proof that work was done under a lease: a transaction carrying it commits
/// only while the row with this holder token still exists.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LeaseFence {
    pub name: String,
    pub holder: String,
}

/// A lease row as stored.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct LeaseRecord {
    pub name: String,
    /// Random token of the acquisition that holds it.
    pub holder: String,
    /// Who holds it, for people: host and process.
    pub owner: String,
    pub acquired_at: Millis,
    pub expires_at: Millis,
    /// Upload leases: no upload of the holder still running started before this.
    pub low_water: Option<Millis>,
}

impl LeaseRecord {
    pub fn fence(&self) -> LeaseFence {
        LeaseFence {
            name: self.name.clone(),
            holder: self.holder.clone(),
        }
    }
}

/// What an acquisition asks for.
#[derive(Clone, Debug)]
pub struct LeaseRequest {
    pub name: String,
    pub holder: String,
    pub owner: String,
    pub now: Millis,
    pub expires_at: Millis,
    pub low_water: Option<Millis>,
    /// A row whose `expires_at` is before this is expired and taken over.
    pub expired_before: Millis,
}

/// The answer to an acquisition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LeaseGrant {
    /// The caller holds the lease now.
    Acquired(LeaseRecord),
    /// Someone else holds it (None: it changed hands while we looked).
    Busy(Option<LeaseRecord>),
}

fn record(row: &Row) -> MetaResult<LeaseRecord> {
    let c = Cols::new(row, "leases");
    Ok(LeaseRecord {
        name: c.text(0)?,
        holder: c.text(1)?,
        owner: c.text(2)?,
        acquired_at: c.i64(3)?,
        expires_at: c.i64(4)?,
        low_water: match row.get(5) {
            Some(Value::Null) | None => None,
            Some(_) => Some(c.i64(5)?),
        },
    })
}

pub(crate) async fn acquire(tx: &mut dyn Tx, req: &LeaseRequest) -> MetaResult<LeaseGrant> {
    if let Some(row) = tx
        .query_opt(SELECT_ONE, &params![req.name.as_str()])
        .await?
    {
        let current = record(&row)?;
        if current.expires_at >= req.expired_before {
            return Ok(LeaseGrant::Busy(Some(current)));
        }
        tracing::info!(
            lease = %current.name, owner = %current.owner, expired_at = current.expires_at,
            "taking over an expired lease"
        );
        tx.execute(
            DELETE_HELD,
            &params![current.name.as_str(), current.holder.as_str()],
        )
        .await?;
    }
    let inserted = tx
        .query_opt(
            INSERT,
            &params![
                req.name.as_str(),
                req.holder.as_str(),
                req.owner.as_str(),
                req.now,
                req.expires_at,
                req.low_water,
            ],
        )
        .await?;
    Ok(match inserted {
        Some(_) => LeaseGrant::Acquired(LeaseRecord {
            name: req.name.clone(),
            holder: req.holder.clone(),
            owner: req.owner.clone(),
            acquired_at: req.now,
            expires_at: req.expires_at,
            low_water: req.low_water,
        }),
        None => LeaseGrant::Busy(None),
    })
}

/// Moves the expiry (and the low-water mark) on; false if the row is gone
/// (the lease was taken over or revoked).
pub(crate) async fn renew(
    tx: &mut dyn Tx,
    fence: &LeaseFence,
    expires_at: Millis,
    low_water: Option<Millis>,
) -> MetaResult<bool> {
    let row = tx
        .query_opt(
            RENEW,
            &params![
                fence.name.as_str(),
                fence.holder.as_str(),
                expires_at,
                low_water
            ],
        )
        .await?;
    Ok(row.is_some())
}

pub(crate) async fn release(tx: &mut dyn Tx, fence: &LeaseFence) -> MetaResult<bool> {
    let n = tx
        .execute(
            DELETE_HELD,
            &params![fence.name.as_str(), fence.holder.as_str()],
        )
        .await?;
    Ok(n > 0)
}

/// Leases whose name starts with `prefix`.
pub(crate) async fn list(tx: &mut dyn Tx, prefix: &str) -> MetaResult<Vec<LeaseRecord>> {
    let rows = match prefix_successor(prefix) {
        Some(upper) => tx.query(LIST_RANGE, &params![prefix, upper]).await?,
        None => tx.query(LIST_FROM, &params![prefix]).await?,
    };
    rows.iter().map(record).collect()
}

/// Deletes the leases under `prefix` that expired before `expired_before`;
/// returns them. Only a deleted row may be ignored: its holder can no longer
/// renew it, and its fences fail from now on.
pub(crate) async fn revoke_expired(
    tx: &mut dyn Tx,
    prefix: &str,
    expired_before: Millis,
) -> MetaResult<Vec<LeaseRecord>> {
    let rows = match prefix_successor(prefix) {
        Some(upper) => {
            tx.query(REVOKE_RANGE, &params![prefix, upper, expired_before])
                .await?
        }
        None => {
            tx.query(REVOKE_FROM, &params![prefix, expired_before])
                .await?
        }
    };
    rows.iter().map(record).collect()
}

/// Fails with `LeaseLost` unless every fence's lease row still exists with
/// its holder; the rows stay locked against takeover until the transaction
/// ends.
pub(crate) async fn check_fences<'a>(
    tx: &mut dyn Tx,
    fences: impl Iterator<Item = &'a LeaseFence>,
) -> MetaResult<()> {
    let distinct: BTreeSet<&LeaseFence> = fences.collect();
    for f in distinct {
        let held = tx
            .query_opt(FENCE, &params![f.name.as_str(), f.holder.as_str()])
            .await?;
        if held.is_none() {
            return Err(MetaError::LeaseLost(f.name.clone()));
        }
    }
    Ok(())
}

/// Lease operations of a metadata store (a supertrait of `MetaStore`).
#[async_trait]
pub trait LeaseStore: Send + Sync {
    /// Takes the named lease if it is free or expired (before
    /// `req.expired_before`); otherwise says who holds it.
    async fn acquire_lease(&self, req: &LeaseRequest) -> MetaResult<LeaseGrant>;
    /// False if the lease was taken over or revoked meanwhile.
    async fn renew_lease(
        &self,
        fence: &LeaseFence,
        expires_at: Millis,
        low_water: Option<Millis>,
    ) -> MetaResult<bool>;
    /// Gives the lease up; false if it was no longer held.
    async fn release_lease(&self, fence: &LeaseFence) -> MetaResult<bool>;
    /// Leases whose name starts with `prefix`, by name.
    async fn list_leases(&self, prefix: &str) -> MetaResult<Vec<LeaseRecord>>;
    /// Deletes (and returns) the leases under `prefix` that expired before
    /// `expired_before`.
    async fn revoke_expired_leases(
        &self,
        prefix: &str,
        expired_before: Millis,
    ) -> MetaResult<Vec<LeaseRecord>>;
}

#[async_trait]
impl<D: Driver> LeaseStore for SqlStore<D> {
    async fn acquire_lease(&self, req: &LeaseRequest) -> MetaResult<LeaseGrant> {
        let req = Arc::new(req.clone());
        write(
            &self.db,
            "acquire_lease",
            tx_job!(tx, [req] => acquire(tx, &req).await),
        )
        .await
    }

    async fn renew_lease(
        &self,
        fence: &LeaseFence,
        expires_at: Millis,
        low_water: Option<Millis>,
    ) -> MetaResult<bool> {
        let fence = Arc::new(fence.clone());
        write(
            &self.db,
            "renew_lease",
            tx_job!(tx, [fence] => renew(tx, &fence, expires_at, low_water).await),
        )
        .await
    }

    async fn release_lease(&self, fence: &LeaseFence) -> MetaResult<bool> {
        let fence = Arc::new(fence.clone());
        write(
            &self.db,
            "release_lease",
            tx_job!(tx, [fence] => release(tx, &fence).await),
        )
        .await
    }

    async fn list_leases(&self, prefix: &str) -> MetaResult<Vec<LeaseRecord>> {
        let prefix = prefix.to_owned();
        read(
            &self.db,
            "list_leases",
            tx_job!(tx, [prefix] => list(tx, &prefix).await),
        )
        .await
    }

    async fn revoke_expired_leases(
        &self,
        prefix: &str,
        expired_before: Millis,
    ) -> MetaResult<Vec<LeaseRecord>> {
        let prefix = prefix.to_owned();
        write(
            &self.db,
            "revoke_expired_leases",
            tx_job!(tx, [prefix] => revoke_expired(tx, &prefix, expired_before).await),
        )
        .await
    }
}
