//! Default bucket encryption (PutBucketEncryption): every object is
//! encrypted at rest with its tenant's keys, which is SSE-S3 in S3's terms,
//! so the only choice a bucket stores is S3's BucketKeyEnabled flag, kept to
//! answer GetBucketEncryption as it was put.

use serde::{Deserialize, Serialize};

use super::{Action, Engine, EngineError, EngineResult, Principal};
use crate::meta::{Bucket, ConfigKind};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BucketEncryption {
    #[serde(default)]
    pub bucket_key_enabled: bool,
}

impl Engine {
    /// GetBucketEncryption: the stored configuration, or S3's default
    /// (SSE-S3 without a bucket key) for a bucket that has none.
    pub async fn get_bucket_encryption(
        &self,
        who: &Principal,
        bucket: &str,
    ) -> EngineResult<BucketEncryption> {
        self.authorize(who, bucket, Action::Read).await?;
        let Some(json) = self
            .inner
            .meta
            .bucket_config(bucket, ConfigKind::Encryption)
            .await?
        else {
            return Ok(BucketEncryption::default());
        };
        serde_json::from_str(&json)
            .map_err(|e| EngineError::Corrupt(format!("encryption of bucket {bucket}: {e}")))
    }

    /// PutBucketEncryption (Some) and DeleteBucketEncryption (None).
    pub async fn set_bucket_encryption(
        &self,
        who: &Principal,
        bucket: &str,
        config: Option<BucketEncryption>,
    ) -> EngineResult<Bucket> {
        let b = self.authorize(who, bucket, Action::ManageBuckets).await?;
        let json = config
            .map(|c| serde_json::to_string(&c))
            .transpose()
            .map_err(|e| EngineError::Internal(format!("encoding encryption: {e}")))?;
        self.inner
            .meta
            .set_bucket_config(bucket, ConfigKind::Encryption, json.as_deref())
            .await?;
        Ok(b)
    }
}
