//! Access policies: a tenant's named identity policies, the policies
//! attached to each user, and a bucket's policy and Block Public Access
//! flags. Documents are checked by `crate::policy` before they get here;
//! the store keeps their text.

use serde::{Deserialize, Serialize};

use super::accounts::require_tenant;
use super::model::TenantId;
use super::objects::require_bucket;
use super::sql::{Cols, Row, Tx, params};
use super::{MetaError, MetaResult};

/// A tenant's named identity policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredPolicy {
    pub tenant_id: TenantId,
    pub name: String,
    pub document: String,
    pub created_at: i64,
}

/// S3's PublicAccessBlockConfiguration.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublicAccessBlock {
    pub block_public_acls: bool,
    pub ignore_public_acls: bool,
    pub block_public_policy: bool,
    pub restrict_public_buckets: bool,
}

impl PublicAccessBlock {
    pub const ALL: Self = Self {
        block_public_acls: true,
        ignore_public_acls: true,
        block_public_policy: true,
        restrict_public_buckets: true,
    };
}

/// What a bucket says about access: its policy text and its Block Public
/// Access flags, each None when the bucket has none.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BucketAccess {
    pub policy: Option<String>,
    pub public_access_block: Option<PublicAccessBlock>,
}

const UPSERT_POLICY: &str = "INSERT INTO policies (tenant_id, name, document, created_at) \
     VALUES ($1, $2, $3, $4) \
     ON CONFLICT (tenant_id, name) DO UPDATE SET document = excluded.document";
const POLICY: &str =
    "SELECT tenant_id, name, document, created_at FROM policies WHERE tenant_id = $1 AND name = $2";
const POLICIES: &str =
    "SELECT tenant_id, name, document, created_at FROM policies WHERE tenant_id = $1 ORDER BY name";
const DELETE_POLICY: &str = "DELETE FROM policies WHERE tenant_id = $1 AND name = $2";
const ATTACHED_TO: &str = "SELECT u.access_key FROM user_policies p \
     JOIN users u ON u.access_key = p.access_key \
     WHERE p.policy = $1 AND u.tenant_id = $2 ORDER BY u.access_key LIMIT 1";
const USER_TENANT: &str = "SELECT tenant_id FROM users WHERE access_key = $1";
const ATTACH: &str =
    "INSERT INTO user_policies (access_key, policy) VALUES ($1, $2) ON CONFLICT DO NOTHING";
const DETACH: &str = "DELETE FROM user_policies WHERE access_key = $1 AND policy = $2";
const DETACH_ALL: &str = "DELETE FROM user_policies WHERE access_key = $1";
const USER_POLICIES: &str =
    "SELECT policy FROM user_policies WHERE access_key = $1 ORDER BY policy";
const BUCKET_ACCESS: &str = "SELECT policy, public_access_block FROM buckets WHERE name = $1";
const SET_BUCKET_POLICY: &str = "UPDATE buckets SET policy = $2 WHERE name = $1";
const SET_PUBLIC_ACCESS_BLOCK: &str = "UPDATE buckets SET public_access_block = $2 WHERE name = $1";

fn policy_from(row: &Row) -> MetaResult<StoredPolicy> {
    let c = Cols::new(row, "policies");
    Ok(StoredPolicy {
        tenant_id: c.tenant(0)?,
        name: c.text(1)?,
        document: c.text(2)?,
        created_at: c.i64(3)?,
    })
}

/// Creates or replaces a tenant's named policy.
pub(crate) async fn put_policy(tx: &mut dyn Tx, p: &StoredPolicy) -> MetaResult<()> {
    if crate::policy::is_builtin(&p.name) {
        return Err(MetaError::InvalidRequest(format!(
            "{} is a built-in policy name",
            p.name
        )));
    }
    require_tenant(tx, p.tenant_id).await?;
    tx.execute(
        UPSERT_POLICY,
        &params![
            p.tenant_id,
            p.name.as_str(),
            p.document.as_str(),
            p.created_at
        ],
    )
    .await?;
    Ok(())
}

pub(crate) async fn get_policy(
    tx: &mut dyn Tx,
    tenant: TenantId,
    name: &str,
) -> MetaResult<Option<StoredPolicy>> {
    let row = tx.query_opt(POLICY, &params![tenant, name]).await?;
    row.as_ref().map(policy_from).transpose()
}

pub(crate) async fn list_policies(
    tx: &mut dyn Tx,
    tenant: TenantId,
) -> MetaResult<Vec<StoredPolicy>> {
    tx.query(POLICIES, &params![tenant])
        .await?
        .iter()
        .map(policy_from)
        .collect()
}

/// Deletes a named policy; refused while a user holds it. False when there
/// was none.
pub(crate) async fn delete_policy(
    tx: &mut dyn Tx,
    tenant: TenantId,
    name: &str,
) -> MetaResult<bool> {
    if let Some(row) = tx.query_opt(ATTACHED_TO, &params![name, tenant]).await? {
        let user = Cols::new(&row, "users").text(0)?;
        return Err(MetaError::InvalidRequest(format!(
            "policy {name} is attached to {user}; detach it first"
        )));
    }
    Ok(tx.execute(DELETE_POLICY, &params![tenant, name]).await? > 0)
}

async fn user_tenant(tx: &mut dyn Tx, access_key: &str) -> MetaResult<TenantId> {
    let Some(row) = tx.query_opt(USER_TENANT, &params![access_key]).await? else {
        return Err(MetaError::NotFound {
            what: "access key",
            name: access_key.to_owned(),
        });
    };
    Cols::new(&row, "users").tenant(0)
}

/// Attaches a built-in or one of the user's tenant's policies (idempotent).
pub(crate) async fn attach_user_policy(
    tx: &mut dyn Tx,
    access_key: &str,
    name: &str,
) -> MetaResult<()> {
    let tenant = user_tenant(tx, access_key).await?;
    if !crate::policy::is_builtin(name) && get_policy(tx, tenant, name).await?.is_none() {
        return Err(MetaError::NotFound {
            what: "policy",
            name: name.to_owned(),
        });
    }
    tx.execute(ATTACH, &params![access_key, name]).await?;
    Ok(())
}

/// Detaches a policy; false when it was not attached.
pub(crate) async fn detach_user_policy(
    tx: &mut dyn Tx,
    access_key: &str,
    name: &str,
) -> MetaResult<bool> {
    user_tenant(tx, access_key).await?;
    Ok(tx.execute(DETACH, &params![access_key, name]).await? > 0)
}

/// The names of a user's policies, sorted.
pub(crate) async fn user_policies(tx: &mut dyn Tx, access_key: &str) -> MetaResult<Vec<String>> {
    tx.query(USER_POLICIES, &params![access_key])
        .await?
        .iter()
        .map(|r| Cols::new(r, "user_policies").text(0))
        .collect()
}

/// Drops every attachment of a user (before the user row goes).
pub(crate) async fn detach_all(tx: &mut dyn Tx, access_key: &str) -> MetaResult<()> {
    tx.execute(DETACH_ALL, &params![access_key]).await?;
    Ok(())
}

/// Attaches a new user's role in the transaction that creates it.
pub(crate) async fn attach_role(tx: &mut dyn Tx, access_key: &str, role: &str) -> MetaResult<()> {
    tx.execute(ATTACH, &params![access_key, role]).await?;
    Ok(())
}

pub(crate) async fn bucket_access(tx: &mut dyn Tx, bucket: &str) -> MetaResult<BucketAccess> {
    let Some(row) = tx.query_opt(BUCKET_ACCESS, &params![bucket]).await? else {
        return Err(MetaError::NoSuchBucket(bucket.to_owned()));
    };
    let c = Cols::new(&row, "buckets");
    let public_access_block = match c.opt_text(1)? {
        None => None,
        Some(j) => Some(serde_json::from_str(&j).map_err(|e| {
            MetaError::Corrupt(format!("public access block of bucket {bucket}: {e}"))
        })?),
    };
    Ok(BucketAccess {
        policy: c.opt_text(0)?,
        public_access_block,
    })
}

pub(crate) async fn set_bucket_policy(
    tx: &mut dyn Tx,
    bucket: &str,
    policy: Option<&str>,
) -> MetaResult<()> {
    require_bucket(tx, bucket).await?;
    tx.execute(SET_BUCKET_POLICY, &params![bucket, policy])
        .await?;
    Ok(())
}

pub(crate) async fn set_public_access_block(
    tx: &mut dyn Tx,
    bucket: &str,
    pab: Option<&PublicAccessBlock>,
) -> MetaResult<()> {
    require_bucket(tx, bucket).await?;
    let json = pab
        .map(serde_json::to_string)
        .transpose()
        .map_err(|e| MetaError::Internal(format!("encoding public access block: {e}")))?;
    tx.execute(SET_PUBLIC_ACCESS_BLOCK, &params![bucket, json])
        .await?;
    Ok(())
}
