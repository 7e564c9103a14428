//! Bucket operations and the authorization every object operation starts with.

use super::validate::validate_bucket_name;
use super::{Action, Engine, EngineError, EngineResult, Principal, now_millis};
use crate::meta::{Bucket, BucketLock, Versioning};

impl Engine {
    /// The bucket, if the principal may perform `action` on it. Another
    /// tenant's bucket is AccessDenied, never visible.
    pub async fn authorize(
        &self,
        who: &Principal,
        bucket: &str,
        action: Action,
    ) -> EngineResult<Bucket> {
        let b = self
            .inner
            .meta
            .get_bucket(bucket)
            .await?
            .ok_or_else(|| EngineError::NoSuchBucket(bucket.to_owned()))?;
        if b.tenant_id != who.tenant_id {
            return Err(EngineError::AccessDenied(format!(
                "bucket {bucket} belongs to another tenant"
            )));
        }
        if !who.allows(action) {
            return Err(EngineError::AccessDenied(format!(
                "{} may not {action:?} in {bucket}",
                who.access_key
            )));
        }
        Ok(b)
    }

    /// A new bucket; with Object Lock (x-amz-bucket-object-lock-enabled) it
    /// is versioned from the start and stays so.
    pub async fn create_bucket(
        &self,
        who: &Principal,
        name: &str,
        object_lock: bool,
    ) -> EngineResult<Bucket> {
        validate_bucket_name(name)?;
        if !who.allows(Action::ManageBuckets) {
            return Err(EngineError::AccessDenied(format!(
                "{} may not create buckets",
                who.access_key
            )));
        }
        let bucket = Bucket {
            name: name.to_owned(),
            tenant_id: who.tenant_id,
            backend: self.inner.cfg.default_backend.clone(),
            created_at: now_millis(),
            versioning: if object_lock {
                Versioning::Enabled
            } else {
                Versioning::Unversioned
            },
            object_lock: object_lock.then(BucketLock::default),
        };
        self.inner.meta.create_bucket(&bucket).await?;
        tracing::info!(bucket = name, tenant = %who.tenant_id, "bucket created");
        Ok(bucket)
    }

    pub async fn delete_bucket(&self, who: &Principal, name: &str) -> EngineResult<()> {
        self.authorize(who, name, Action::ManageBuckets).await?;
        self.inner.meta.delete_bucket(name).await?;
        tracing::info!(bucket = name, tenant = %who.tenant_id, "bucket deleted");
        Ok(())
    }

    pub async fn head_bucket(&self, who: &Principal, name: &str) -> EngineResult<Bucket> {
        self.authorize(who, name, Action::Read).await
    }

    /// A page of the caller's buckets (ListBuckets is paginated, never the
    /// whole tenant at once).
    pub async fn list_buckets(
        &self,
        who: &Principal,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> EngineResult<crate::meta::Page<Bucket>> {
        Ok(self
            .inner
            .meta
            .list_buckets_page(who.tenant_id, prefix, after, limit)
            .await?)
    }
}
