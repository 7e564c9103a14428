//! A bucket's sub-resource configurations kept as documents
//! (`bucket_configs`): CORS and default encryption, each JSON the engine
//! validated and opaque here, one row per bucket and kind.

use super::objects::require_bucket;
use super::sql::{Cols, Tx, params};
use super::{MetaError, MetaResult};

/// Which configuration of a bucket.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ConfigKind {
    /// PutBucketCors.
    Cors,
    /// PutBucketEncryption.
    Encryption,
}

impl ConfigKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Cors => "cors",
            Self::Encryption => "encryption",
        }
    }
}

const GET: &str = "SELECT body FROM bucket_configs WHERE bucket = $1 AND kind = $2";
const BUCKET_EXISTS: &str = "SELECT 1 FROM buckets WHERE name = $1";
const SET: &str = "INSERT INTO bucket_configs (bucket, kind, body) VALUES ($1, $2, $3) \
     ON CONFLICT (bucket, kind) DO UPDATE SET body = $3";
const DELETE: &str = "DELETE FROM bucket_configs WHERE bucket = $1 AND kind = $2";

pub(crate) async fn get(
    tx: &mut dyn Tx,
    bucket: &str,
    kind: ConfigKind,
) -> MetaResult<Option<String>> {
    if let Some(row) = tx.query_opt(GET, &params![bucket, kind.as_str()]).await? {
        return Cols::new(&row, "bucket_configs").text(0).map(Some);
    }
    match tx.query_opt(BUCKET_EXISTS, &params![bucket]).await? {
        Some(_) => Ok(None),
        None => Err(MetaError::NoSuchBucket(bucket.to_owned())),
    }
}

pub(crate) async fn set(
    tx: &mut dyn Tx,
    bucket: &str,
    kind: ConfigKind,
    body: Option<&str>,
) -> MetaResult<()> {
    require_bucket(tx, bucket).await?;
    match body {
        Some(b) => tx.execute(SET, &params![bucket, kind.as_str(), b]).await?,
        None => tx.execute(DELETE, &params![bucket, kind.as_str()]).await?,
    };
    Ok(())
}
