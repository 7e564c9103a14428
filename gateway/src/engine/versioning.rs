//! Versioning and Object Lock: the bucket settings, deletes (which add
//! delete markers on versioned buckets), the version listing, and a
//! version's retention and legal hold. Enforcement of locks lives in the
//! metadata transactions, so no caller can skip it.

use super::{Action, Engine, EngineError, EngineResult, Principal, now_millis};
use crate::meta::{
    Bucket, BucketLock, DefaultRetention, DeleteOutcome, LockUpdate, ObjectLock, Retention,
    VersionSummary, Versioning, is_valid_version_id,
};

/// ListObjectVersions' parameters.
#[derive(Clone, Debug, Default)]
pub struct VersionListParams {
    pub prefix: String,
    pub delimiter: Option<String>,
    pub key_marker: Option<String>,
    pub version_id_marker: Option<String>,
    pub max_keys: usize,
}

/// One page of ListObjectVersions: versions and delete markers in one
/// sequence (keys in order, each key's versions newest first).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VersionListOutcome {
    pub entries: Vec<VersionSummary>,
    pub common_prefixes: Vec<String>,
    pub truncated: bool,
    pub next_key_marker: Option<String>,
    pub next_version_id_marker: Option<String>,
}

/// The smallest string greater than every string that starts with `p`
/// (as far as UTF-8 keys go).
fn past_prefix(p: &str) -> String {
    format!("{p}{}", char::MAX)
}

/// S3's "Invalid version id specified" for ids that cannot be ours.
pub(crate) fn check_version_id(version_id: Option<&str>) -> EngineResult<()> {
    match version_id {
        Some(v) if !is_valid_version_id(v) => Err(EngineError::InvalidArgument(
            "Invalid version id specified".into(),
        )),
        _ => Ok(()),
    }
}

/// The version id a response shows: none for the "null" version of a
/// bucket that never had versioning, as S3 does.
pub fn shown_version_id(bucket: &Bucket, version_id: &str) -> Option<String> {
    (version_id != "null" || bucket.versioning != Versioning::Unversioned)
        .then(|| version_id.to_owned())
}

/// S3's answer to Object Lock calls and headers on a bucket without it.
fn require_object_lock(bucket: &Bucket) -> EngineResult<()> {
    match bucket.object_lock {
        Some(_) => Ok(()),
        None => Err(EngineError::InvalidRequest(
            "Bucket is missing Object Lock Configuration".into(),
        )),
    }
}

/// x-amz-object-lock-* headers make sense only on a bucket with Object Lock,
/// and a retain-until date only in the future.
pub(crate) fn check_lock_request(
    bucket: &Bucket,
    lock: Option<&ObjectLock>,
    now: i64,
) -> EngineResult<()> {
    let Some(lock) = lock else {
        return Ok(());
    };
    require_object_lock(bucket)?;
    if lock.retention.is_some_and(|r| r.until <= now) {
        return Err(EngineError::InvalidArgument(
            "The retain until date must be in the future!".into(),
        ));
    }
    Ok(())
}

impl Engine {
    /// Whether the caller may bypass GOVERNANCE retention: it asked to, and
    /// its policy holds s3:BypassGovernanceRetention (today: `admin`).
    fn bypasses_governance(&self, who: &Principal, asked: bool) -> bool {
        asked && who.allows(Action::BypassGovernanceRetention)
    }

    pub async fn put_bucket_versioning(
        &self,
        who: &Principal,
        bucket: &str,
        status: Versioning,
        mfa_delete: bool,
    ) -> EngineResult<()> {
        self.authorize(who, bucket, Action::ManageBuckets).await?;
        if mfa_delete {
            return Err(EngineError::NotImplemented(
                "MFA delete is not supported".into(),
            ));
        }
        self.inner
            .meta
            .set_bucket_versioning(bucket, status, now_millis())
            .await?;
        tracing::info!(
            bucket,
            versioning = status.as_str(),
            "bucket versioning changed"
        );
        Ok(())
    }

    pub async fn get_bucket_versioning(
        &self,
        who: &Principal,
        bucket: &str,
    ) -> EngineResult<Versioning> {
        Ok(self.authorize(who, bucket, Action::Read).await?.versioning)
    }

    /// PutObjectLockConfiguration: enables Object Lock (on a versioned
    /// bucket; permanent) and sets or clears the default retention.
    pub async fn put_object_lock_configuration(
        &self,
        who: &Principal,
        bucket: &str,
        default_retention: Option<DefaultRetention>,
    ) -> EngineResult<()> {
        self.authorize(who, bucket, Action::ManageBuckets).await?;
        self.inner
            .meta
            .set_bucket_object_lock(bucket, BucketLock { default_retention })
            .await?;
        tracing::info!(bucket, ?default_retention, "object lock configured");
        Ok(())
    }

    pub async fn get_object_lock_configuration(
        &self,
        who: &Principal,
        bucket: &str,
    ) -> EngineResult<BucketLock> {
        self.authorize(who, bucket, Action::Read)
            .await?
            .object_lock
            .ok_or_else(|| EngineError::ObjectLockConfigurationNotFound(bucket.to_owned()))
    }

    /// DeleteObject: a delete marker on a versioned bucket without a version
    /// id; with one, that version goes for good unless Object Lock forbids it.
    pub async fn delete_object(
        &self,
        who: &Principal,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
        bypass_governance: bool,
    ) -> EngineResult<(Bucket, DeleteOutcome)> {
        let b = self.authorize(who, bucket, Action::Write).await?;
        check_version_id(version_id)?;
        let bypass = self.bypasses_governance(who, bypass_governance);
        let out = self
            .inner
            .meta
            .delete_object(bucket, key, version_id, bypass)
            .await?;
        Ok((b, out))
    }

    /// The lock of a version (the latest when no id is given), for
    /// GetObjectRetention and GetObjectLegalHold.
    pub async fn object_lock_of(
        &self,
        who: &Principal,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
    ) -> EngineResult<ObjectLock> {
        let b = self.authorize(who, bucket, Action::Read).await?;
        require_object_lock(&b)?;
        let (v, _) = self.readable_version(bucket, key, version_id).await?;
        Ok(v.lock)
    }

    /// PutObjectRetention / PutObjectLegalHold.
    pub async fn update_object_lock(
        &self,
        who: &Principal,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
        update: LockUpdate,
    ) -> EngineResult<ObjectLock> {
        let b = self.authorize(who, bucket, Action::Write).await?;
        let now = now_millis();
        let update = match update {
            LockUpdate::Retention {
                retention,
                bypass_governance,
            } => {
                check_lock_request(
                    &b,
                    Some(&ObjectLock {
                        retention,
                        legal_hold: false,
                    }),
                    now,
                )?;
                LockUpdate::Retention {
                    retention,
                    bypass_governance: self.bypasses_governance(who, bypass_governance),
                }
            }
            hold @ LockUpdate::LegalHold(_) => {
                require_object_lock(&b)?;
                hold
            }
        };
        // A delete marker answers 405, as for GET.
        self.readable_version(bucket, key, version_id).await?;
        Ok(self
            .inner
            .meta
            .update_object_lock(bucket, key, version_id, update, now)
            .await?)
    }

    pub async fn list_object_versions(
        &self,
        who: &Principal,
        bucket: &str,
        params: &VersionListParams,
    ) -> EngineResult<(Bucket, VersionListOutcome)> {
        let b = self.authorize(who, bucket, Action::Read).await?;
        if params.version_id_marker.is_some() && params.key_marker.is_none() {
            return Err(EngineError::InvalidArgument(
                "A version-id marker cannot be specified without a key marker.".into(),
            ));
        }
        check_version_id(params.version_id_marker.as_deref())?;
        let meta = &self.inner.meta;
        let mut out = VersionListOutcome::default();
        if params.max_keys == 0 {
            return Ok((b, out));
        }
        let delimiter = params.delimiter.as_deref().filter(|d| !d.is_empty());
        let prefix = params.prefix.as_str();
        let mut cursor: Option<(String, Option<String>)> = params
            .key_marker
            .clone()
            .map(|k| (k, params.version_id_marker.clone()));
        // A key marker that is a common prefix already returned resumes
        // after every key under it.
        if let (Some(d), Some(k)) = (delimiter, params.key_marker.as_deref())
            && let Some(rest) = k.strip_prefix(prefix)
            && let Some(i) = rest.find(d)
            && k.len() == prefix.len() + i + d.len()
        {
            cursor = Some((past_prefix(k), None));
        }
        let count = |o: &VersionListOutcome| o.entries.len() + o.common_prefixes.len();
        loop {
            let want = params.max_keys - count(&out);
            let after = cursor.as_ref().map(|(k, v)| (k.as_str(), v.as_deref()));
            let page = meta
                .list_versions(bucket, prefix, after, want.clamp(1, 1000))
                .await?;
            let exhausted = !page.truncated;
            let mut skip_past: Option<String> = None;
            for v in page.items {
                if let Some(sp) = &skip_past
                    && v.key.starts_with(sp.as_str())
                {
                    continue;
                }
                if count(&out) == params.max_keys {
                    out.truncated = true;
                    return Ok((b, out));
                }
                let rest = &v.key[prefix.len()..];
                match delimiter.and_then(|d| rest.find(d).map(|i| (i, d))) {
                    Some((i, d)) => {
                        let cp = v.key[..prefix.len() + i + d.len()].to_owned();
                        out.next_key_marker = Some(cp.clone());
                        out.next_version_id_marker = None;
                        out.common_prefixes.push(cp.clone());
                        cursor = Some((past_prefix(&cp), None));
                        skip_past = Some(cp);
                    }
                    None => {
                        out.next_key_marker = Some(v.key.clone());
                        out.next_version_id_marker = Some(v.version_id.clone());
                        cursor = Some((v.key.clone(), Some(v.version_id.clone())));
                        out.entries.push(v);
                    }
                }
            }
            let full = count(&out) == params.max_keys;
            if !full && exhausted && skip_past.is_none() {
                break;
            }
            if full || exhausted {
                // More only if anything lies beyond the cursor (which jumps
                // past a skipped prefix the page may have ended in).
                let after = cursor.as_ref().map(|(k, v)| (k.as_str(), v.as_deref()));
                let more = !meta
                    .list_versions(bucket, prefix, after, 1)
                    .await?
                    .items
                    .is_empty();
                if full {
                    out.truncated = more;
                    break;
                }
                if !more {
                    break;
                }
            }
        }
        if !out.truncated {
            out.next_key_marker = None;
            out.next_version_id_marker = None;
        }
        Ok((b, out))
    }
}

/// A retention from S3's mode and date, both or neither.
pub fn retention_from(
    mode: Option<crate::meta::RetentionMode>,
    until: Option<i64>,
) -> EngineResult<Option<Retention>> {
    match (mode, until) {
        (None, None) => Ok(None),
        (Some(mode), Some(until)) => Ok(Some(Retention { mode, until })),
        _ => Err(EngineError::InvalidArgument(
            "x-amz-object-lock-retain-until-date and x-amz-object-lock-mode must both be supplied"
                .into(),
        )),
    }
}
