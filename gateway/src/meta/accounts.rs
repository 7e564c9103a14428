//! Tenants, users and buckets.
//!
//! Creations insert with `ON CONFLICT DO NOTHING` and then look at what holds
//! the name, so that a concurrent race for one name ends in the same typed
//! error as a plain duplicate, on both stores.

use super::lock::{BucketLock, DefaultRetention, RetentionMode, RetentionPeriod};
use super::model::{Bucket, Page, Policy, Tenant, TenantId, User, Versioning};
use super::objects::{fetch_limit, page, prefix_successor};
use super::sql::{Cols, Row, Tx, params};
use super::{MetaError, MetaResult};

const INSERT_TENANT: &str = "INSERT INTO tenants \
     (id, name, cipher, current_epoch, wrapped_tmk, created_at) \
     VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING RETURNING id";
const TENANT_BY_ID: &str = "SELECT id, name, cipher, current_epoch, wrapped_tmk, created_at \
     FROM tenants WHERE id = $1";
const TENANT_BY_NAME: &str = "SELECT id, name, cipher, current_epoch, wrapped_tmk, created_at \
     FROM tenants WHERE name = $1";
const TENANTS: &str = "SELECT id, name, cipher, current_epoch, wrapped_tmk, created_at \
     FROM tenants ORDER BY name";
const TENANTS_FIRST: &str = "SELECT id, name, cipher, current_epoch, wrapped_tmk, created_at \
     FROM tenants ORDER BY id LIMIT $1";
const TENANTS_AFTER: &str = "SELECT id, name, cipher, current_epoch, wrapped_tmk, created_at \
     FROM tenants WHERE id > $1 ORDER BY id LIMIT $2";
const SET_EPOCH: &str = "UPDATE tenants SET current_epoch = $2 WHERE id = $1";
const SWAP_TMK: &str = "UPDATE tenants SET wrapped_tmk = $3 WHERE id = $1 AND wrapped_tmk = $2";
const TENANT_EXISTS: &str = "SELECT id FROM tenants WHERE id = $1";

const INSERT_USER: &str = "INSERT INTO users \
     (access_key, tenant_id, name, secret_sealed, policy, created_at) \
     VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING RETURNING access_key";
const USER: &str = "SELECT access_key, tenant_id, name, secret_sealed, policy, created_at \
     FROM users WHERE access_key = $1";
const USERS: &str = "SELECT access_key, tenant_id, name, secret_sealed, policy, created_at \
     FROM users ORDER BY access_key";
const USERS_OF: &str = "SELECT access_key, tenant_id, name, secret_sealed, policy, created_at \
     FROM users WHERE tenant_id = $1 ORDER BY access_key";
const DELETE_USER: &str = "DELETE FROM users WHERE access_key = $1";

const INSERT_BUCKET: &str = "INSERT INTO buckets (name, tenant_id, backend, created_at, \
     versioning, object_lock, lock_default_mode, lock_default_days, lock_default_years) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT DO NOTHING RETURNING name";
// Every read of a bucket row selects these columns, in this order (bucket_from).
const BUCKET: &str = "SELECT name, tenant_id, backend, created_at, versioning, object_lock, \
     lock_default_mode, lock_default_days, lock_default_years FROM buckets WHERE name = $1";
const BUCKETS_OF: &str = "SELECT name, tenant_id, backend, created_at, versioning, object_lock, \
     lock_default_mode, lock_default_days, lock_default_years FROM buckets \
     WHERE tenant_id = $1 ORDER BY name";
// Pages of a tenant's buckets from a lower bound (inclusive), below an
// optional upper bound (the prefix's successor).
const BUCKETS_PAGE: &str = "SELECT name, tenant_id, backend, created_at, versioning, object_lock, \
     lock_default_mode, lock_default_days, lock_default_years FROM buckets \
     WHERE tenant_id = $1 AND name >= $2 ORDER BY name LIMIT $3";
const BUCKETS_PAGE_TO: &str = "SELECT name, tenant_id, backend, created_at, versioning, object_lock, \
     lock_default_mode, lock_default_days, lock_default_years FROM buckets \
     WHERE tenant_id = $1 AND name >= $2 AND name < $3 ORDER BY name LIMIT $4";
pub(crate) const RECORD_VERSIONING: &str =
    "INSERT INTO bucket_versioning (bucket, at, status) VALUES ($1, $2, $3)";
const DELETE_VERSIONING: &str = "DELETE FROM bucket_versioning WHERE bucket = $1";
// FOR UPDATE waits for commits that hold the bucket row FOR SHARE, so the
// emptiness checks below see every version committed before the delete.
const BUCKET_EXCLUSIVE: &str = "SELECT name FROM buckets WHERE name = $1 FOR UPDATE";
const ANY_VERSION: &str = "SELECT key FROM objects WHERE bucket = $1 LIMIT 1";
const ANY_UPLOAD: &str = "SELECT upload_id FROM multipart_uploads WHERE bucket = $1 LIMIT 1";
const DELETE_BUCKET: &str = "DELETE FROM buckets WHERE name = $1";

fn tenant_from(row: &Row) -> MetaResult<Tenant> {
    let c = Cols::new(row, "tenants");
    Ok(Tenant {
        id: c.tenant(0)?,
        name: c.text(1)?,
        cipher: c.text(2)?,
        current_epoch: c.u32(3)?,
        wrapped_tmk: c.bytes(4)?.to_vec(),
        created_at: c.i64(5)?,
    })
}

fn user_from(row: &Row) -> MetaResult<User> {
    let c = Cols::new(row, "users");
    let access_key = c.text(0)?;
    let policy = c.text(4)?;
    Ok(User {
        tenant_id: c.tenant(1)?,
        name: c.text(2)?,
        secret_sealed: c.bytes(3)?.to_vec(),
        policy: Policy::parse(&policy).ok_or_else(|| {
            MetaError::Corrupt(format!("user {access_key}: unknown policy {policy:?}"))
        })?,
        created_at: c.i64(5)?,
        access_key,
    })
}

/// A bucket row as selected by `BUCKET` (and the other bucket reads).
pub(crate) fn bucket_from(row: &Row) -> MetaResult<Bucket> {
    let c = Cols::new(row, "buckets");
    let name = c.text(0)?;
    let versioning = c.text(4)?;
    let versioning = Versioning::parse(&versioning).ok_or_else(|| {
        MetaError::Corrupt(format!("bucket {name}: unknown versioning {versioning:?}"))
    })?;
    let object_lock = if c.bool(5)? {
        Some(BucketLock {
            default_retention: default_retention(&c, &name)?,
        })
    } else {
        None
    };
    Ok(Bucket {
        tenant_id: c.tenant(1)?,
        backend: c.text(2)?,
        created_at: c.i64(3)?,
        versioning,
        object_lock,
        name,
    })
}

/// Columns 6-8 of a bucket row: mode and days or years, or all NULL.
fn default_retention(c: &Cols<'_>, name: &str) -> MetaResult<Option<DefaultRetention>> {
    let Some(mode) = c.opt_text(6)? else {
        return Ok(None);
    };
    let bad = |what: &str| MetaError::Corrupt(format!("bucket {name}: default retention {what}"));
    let mode = RetentionMode::parse(&mode).ok_or_else(|| bad("has an unknown mode"))?;
    let period = match (c.opt_i64(7)?, c.opt_i64(8)?) {
        (Some(d), None) => RetentionPeriod::Days(u32::try_from(d).map_err(|_| bad("days"))?),
        (None, Some(y)) => RetentionPeriod::Years(u32::try_from(y).map_err(|_| bad("years"))?),
        _ => return Err(bad("needs exactly one of days and years")),
    };
    Ok(Some(DefaultRetention { mode, period }))
}

/// The default retention as the columns store it: (mode, days, years).
pub(crate) fn default_retention_columns(
    lock: Option<&BucketLock>,
) -> (Option<&'static str>, Option<i64>, Option<i64>) {
    match lock.and_then(|l| l.default_retention) {
        None => (None, None, None),
        Some(d) => match d.period {
            RetentionPeriod::Days(n) => (Some(d.mode.as_str()), Some(i64::from(n)), None),
            RetentionPeriod::Years(n) => (Some(d.mode.as_str()), None, Some(i64::from(n))),
        },
    }
}

fn all<T>(rows: &[Row], f: fn(&Row) -> MetaResult<T>) -> MetaResult<Vec<T>> {
    rows.iter().map(f).collect()
}

pub(crate) async fn require_tenant(tx: &mut dyn Tx, id: TenantId) -> MetaResult<()> {
    match tx.query_opt(TENANT_EXISTS, &params![id]).await? {
        Some(_) => Ok(()),
        None => Err(MetaError::NotFound {
            what: "tenant",
            name: id.to_string(),
        }),
    }
}

pub(crate) async fn create_tenant(tx: &mut dyn Tx, t: &Tenant) -> MetaResult<()> {
    let rows = tx
        .query(
            INSERT_TENANT,
            &params![
                t.id,
                t.name.as_str(),
                t.cipher.as_str(),
                t.current_epoch,
                t.wrapped_tmk.as_slice(),
                t.created_at,
            ],
        )
        .await?;
    if rows.is_empty() {
        let taken_id = tx.query_opt(TENANT_EXISTS, &params![t.id]).await?.is_some();
        return Err(MetaError::AlreadyExists {
            what: if taken_id { "tenant id" } else { "tenant" },
            name: if taken_id {
                t.id.to_string()
            } else {
                t.name.clone()
            },
        });
    }
    Ok(())
}

pub(crate) async fn get_tenant(tx: &mut dyn Tx, id: TenantId) -> MetaResult<Option<Tenant>> {
    let row = tx.query_opt(TENANT_BY_ID, &params![id]).await?;
    row.as_ref().map(tenant_from).transpose()
}

pub(crate) async fn get_tenant_by_name(tx: &mut dyn Tx, name: &str) -> MetaResult<Option<Tenant>> {
    let row = tx.query_opt(TENANT_BY_NAME, &params![name]).await?;
    row.as_ref().map(tenant_from).transpose()
}

pub(crate) async fn list_tenants(tx: &mut dyn Tx) -> MetaResult<Vec<Tenant>> {
    all(&tx.query(TENANTS, &[]).await?, tenant_from)
}

pub(crate) async fn list_tenants_after(
    tx: &mut dyn Tx,
    after: Option<TenantId>,
    limit: usize,
) -> MetaResult<Vec<Tenant>> {
    let n = i64::try_from(limit).unwrap_or(i64::MAX);
    let rows = match after {
        None => tx.query(TENANTS_FIRST, &params![n]).await?,
        Some(id) => tx.query(TENANTS_AFTER, &params![id, n]).await?,
    };
    all(&rows, tenant_from)
}

pub(crate) async fn set_tenant_epoch(tx: &mut dyn Tx, id: TenantId, epoch: u32) -> MetaResult<()> {
    if tx.execute(SET_EPOCH, &params![id, epoch]).await? == 0 {
        return Err(MetaError::NotFound {
            what: "tenant",
            name: id.to_string(),
        });
    }
    Ok(())
}

pub(crate) async fn replace_wrapped_tmk(
    tx: &mut dyn Tx,
    id: TenantId,
    old: &[u8],
    new: &[u8],
) -> MetaResult<bool> {
    if tx.execute(SWAP_TMK, &params![id, old, new]).await? == 1 {
        return Ok(true);
    }
    require_tenant(tx, id).await?;
    Ok(false)
}

pub(crate) async fn create_user(tx: &mut dyn Tx, u: &User) -> MetaResult<()> {
    require_tenant(tx, u.tenant_id).await?;
    let rows = tx
        .query(
            INSERT_USER,
            &params![
                u.access_key.as_str(),
                u.tenant_id,
                u.name.as_str(),
                u.secret_sealed.as_slice(),
                u.policy.as_str(),
                u.created_at,
            ],
        )
        .await?;
    if rows.is_empty() {
        return Err(MetaError::AlreadyExists {
            what: "access key",
            name: u.access_key.clone(),
        });
    }
    super::access::attach_role(tx, &u.access_key, u.policy.as_str()).await
}

pub(crate) async fn get_user(tx: &mut dyn Tx, access_key: &str) -> MetaResult<Option<User>> {
    let row = tx.query_opt(USER, &params![access_key]).await?;
    row.as_ref().map(user_from).transpose()
}

pub(crate) async fn list_users(tx: &mut dyn Tx, tenant: Option<TenantId>) -> MetaResult<Vec<User>> {
    let rows = match tenant {
        None => tx.query(USERS, &[]).await?,
        Some(t) => tx.query(USERS_OF, &params![t]).await?,
    };
    all(&rows, user_from)
}

pub(crate) async fn delete_user(tx: &mut dyn Tx, access_key: &str) -> MetaResult<bool> {
    super::access::detach_all(tx, access_key).await?;
    Ok(tx.execute(DELETE_USER, &params![access_key]).await? > 0)
}

pub(crate) async fn create_bucket(tx: &mut dyn Tx, b: &Bucket) -> MetaResult<()> {
    require_tenant(tx, b.tenant_id).await?;
    if b.object_lock.is_some() && b.versioning != Versioning::Enabled {
        return Err(MetaError::InvalidBucketState(format!(
            "bucket {}: Object Lock needs versioning enabled",
            b.name
        )));
    }
    // The holder of the name can vanish between our insert and our look
    // (a concurrent delete): then the name is free again, try once more.
    for _ in 0..3 {
        let (mode, days, years) = default_retention_columns(b.object_lock.as_ref());
        let rows = tx
            .query(
                INSERT_BUCKET,
                &params![
                    b.name.as_str(),
                    b.tenant_id,
                    b.backend.as_str(),
                    b.created_at,
                    b.versioning.as_str(),
                    b.object_lock.is_some(),
                    mode,
                    days,
                    years,
                ],
            )
            .await?;
        if !rows.is_empty() {
            // Point-in-time restore reads the state a bucket was created in.
            tx.execute(
                RECORD_VERSIONING,
                &params![b.name.as_str(), b.created_at, b.versioning.as_str()],
            )
            .await?;
            return Ok(());
        }
        if let Some(row) = tx.query_opt(BUCKET, &params![b.name.as_str()]).await? {
            let holder = bucket_from(&row)?;
            return Err(if holder.tenant_id == b.tenant_id {
                MetaError::BucketAlreadyOwnedByYou(b.name.clone())
            } else {
                MetaError::BucketAlreadyExists(b.name.clone())
            });
        }
    }
    Err(MetaError::Internal(format!(
        "bucket name {} kept changing hands while being created",
        b.name
    )))
}

pub(crate) async fn get_bucket(tx: &mut dyn Tx, name: &str) -> MetaResult<Option<Bucket>> {
    let row = tx.query_opt(BUCKET, &params![name]).await?;
    row.as_ref().map(bucket_from).transpose()
}

pub(crate) async fn list_buckets(tx: &mut dyn Tx, tenant: TenantId) -> MetaResult<Vec<Bucket>> {
    all(&tx.query(BUCKETS_OF, &params![tenant]).await?, bucket_from)
}

/// At most `limit` of a tenant's buckets whose names start with `prefix`
/// and sort after `after`.
pub(crate) async fn list_buckets_page(
    tx: &mut dyn Tx,
    tenant: TenantId,
    prefix: &str,
    after: Option<&str>,
    limit: usize,
) -> MetaResult<Page<Bucket>> {
    // Bucket names use no character below '-', so `after` followed by
    // U+0001 is the least name greater than `after`.
    let from = match after {
        Some(a) if a >= prefix => format!("{a}\u{1}"),
        _ => prefix.to_owned(),
    };
    let n = fetch_limit(limit);
    let rows = match prefix_successor(prefix) {
        Some(to) => {
            tx.query(BUCKETS_PAGE_TO, &params![tenant, from, to, n])
                .await?
        }
        None => tx.query(BUCKETS_PAGE, &params![tenant, from, n]).await?,
    };
    Ok(page(all(&rows, bucket_from)?, limit))
}

pub(crate) async fn delete_bucket(tx: &mut dyn Tx, name: &str) -> MetaResult<()> {
    if tx
        .query_opt(BUCKET_EXCLUSIVE, &params![name])
        .await?
        .is_none()
    {
        return Err(MetaError::NoSuchBucket(name.to_owned()));
    }
    if tx.query_opt(ANY_VERSION, &params![name]).await?.is_some()
        || tx.query_opt(ANY_UPLOAD, &params![name]).await?.is_some()
    {
        return Err(MetaError::BucketNotEmpty(name.to_owned()));
    }
    tx.execute(DELETE_VERSIONING, &params![name]).await?;
    tx.execute(DELETE_BUCKET, &params![name]).await?;
    Ok(())
}
