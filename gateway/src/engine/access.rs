//! A bucket's policy and Block Public Access flags, behind the same tenant
//! and role check as every bucket operation. Documents are parsed and
//! checked by the caller (`s3/policy.rs`) before they are stored.

use super::{Action, Engine, EngineResult, Principal};
use crate::meta::{BucketAccess, PublicAccessBlock};

impl Engine {
    /// The bucket's policy text and Block Public Access flags.
    pub async fn bucket_access(&self, who: &Principal, bucket: &str) -> EngineResult<BucketAccess> {
        self.authorize(who, bucket, Action::Read).await?;
        Ok(self.inner.meta.bucket_access(bucket).await?)
    }

    /// PutBucketPolicy (Some) / DeleteBucketPolicy (None).
    pub async fn set_bucket_policy(
        &self,
        who: &Principal,
        bucket: &str,
        policy: Option<&str>,
    ) -> EngineResult<()> {
        self.authorize(who, bucket, Action::ManageBuckets).await?;
        self.inner.meta.set_bucket_policy(bucket, policy).await?;
        tracing::info!(bucket, set = policy.is_some(), "bucket policy changed");
        Ok(())
    }

    /// PutPublicAccessBlock (Some) / DeletePublicAccessBlock (None).
    pub async fn set_public_access_block(
        &self,
        who: &Principal,
        bucket: &str,
        pab: Option<&PublicAccessBlock>,
    ) -> EngineResult<()> {
        self.authorize(who, bucket, Action::ManageBuckets).await?;
        self.inner.meta.set_public_access_block(bucket, pab).await?;
        tracing::info!(bucket, ?pab, "public access block changed");
        Ok(())
    }
}
