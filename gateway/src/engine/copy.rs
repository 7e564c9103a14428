//! CopyObject and UploadPartCopy: new references to chunks that already
//! exist in the tenant, never new chunks.

use futures::StreamExt;

use super::checksum::{ChecksumAlgorithm, Checksums, ComputedChecksums, etag_of};
use super::get::{ByteRange, ReadConditions};
use super::plan::Planner;
use super::validate::{validate_key, validate_user_metadata};
use super::{Action, Engine, EngineError, EngineResult, MAX_OBJECT_SIZE, Principal, now_millis};
use crate::meta::{
    Manifest, ManifestChunk, ManifestHead, ObjectAttrs, ObjectCommit, ObjectLock, ObjectVersion,
    Part, PartCommit, Tags, WriteConditions,
};

pub struct CopySource {
    pub bucket: String,
    pub key: String,
    pub version_id: Option<String>,
    /// x-amz-copy-source-if-* (a failed one is 412, never 304).
    pub conditions: ReadConditions,
}

pub enum MetadataDirective {
    Copy,
    /// New representation headers and user metadata.
    Replace(Box<ObjectAttrs>),
}

#[derive(Clone, Debug)]
pub struct CopyOutcome {
    pub etag: String,
    pub last_modified: i64,
    pub checksums: std::collections::BTreeMap<String, String>,
    pub checksum_type: Option<String>,
    pub source_version: Option<String>,
    /// The version the copy wrote (CopyObject), as responses show it.
    pub version_id: Option<String>,
}

/// The entries of `manifest` covering `[start, end)`, slicing the edge chunks.
pub fn slice_manifest(manifest: &Manifest, start: u64, end: u64) -> Vec<ManifestChunk> {
    let mut out = Vec::new();
    let mut offset = 0u64;
    for c in &manifest.chunks {
        let (slice_off, len) = c.span();
        let (c_start, c_end) = (offset, offset + u64::from(len));
        offset = c_end;
        if c_end <= start || c_start >= end || len == 0 {
            continue;
        }
        let from = start.max(c_start) - c_start;
        let to = end.min(c_end) - c_start;
        let new_off = u64::from(slice_off) + from;
        let new_len = to - from;
        // Both fit in u32: they lie inside a chunk whose length is a u32.
        let (new_off, new_len) = (new_off as u32, new_len as u32);
        out.push(ManifestChunk {
            id: c.id,
            plain_len: c.plain_len,
            slice: (new_off != 0 || new_len != c.plain_len).then_some((new_off, new_len)),
        });
        if c_end >= end {
            break;
        }
    }
    out
}

impl Engine {
    async fn copy_source(
        &self,
        who: &Principal,
        src: &CopySource,
    ) -> EngineResult<(crate::meta::Bucket, ObjectVersion, Option<ManifestHead>)> {
        let found = self
            .head_object(
                who,
                &src.bucket,
                &src.key,
                src.version_id.as_deref(),
                &src.conditions,
            )
            .await;
        match found {
            // For copy sources a failed If-None-Match / If-Modified-Since is 412.
            Err(EngineError::NotModified) => Err(EngineError::PreconditionFailed),
            Err(EngineError::DeleteMarker {
                addressed: true, ..
            }) => Err(EngineError::InvalidRequest(
                "The source of a copy request may not specifically refer to a delete marker by version id."
                    .into(),
            )),
            other => other,
        }
    }

    /// MD5 and `algorithms` of `[start, end)` of a version, read once
    /// (which also proves its chunks intact).
    async fn digest(
        &self,
        bucket: &crate::meta::Bucket,
        version: &ObjectVersion,
        head: Option<ManifestHead>,
        (start, end): (u64, u64),
        algorithms: impl IntoIterator<Item = ChecksumAlgorithm>,
    ) -> EngineResult<ComputedChecksums> {
        let mut hashes = Checksums::new(algorithms);
        let mut body = self.open_body(bucket, version, head, start, end).await?;
        let mut read = 0u64;
        while let Some(piece) = body.next().await {
            let piece = piece?;
            read += piece.len() as u64;
            hashes.update(&piece);
        }
        if read != end - start {
            return Err(EngineError::Corrupt(format!(
                "copy source {} read {read} bytes, expected {}",
                version.key,
                end - start
            )));
        }
        Ok(hashes.finish())
    }

    #[allow(clippy::too_many_arguments)]
    pub async fn copy_object(
        &self,
        who: &Principal,
        src: CopySource,
        bucket: &str,
        key: &str,
        directive: MetadataDirective,
        conditions: WriteConditions,
        lock: Option<ObjectLock>,
        tagging: Option<Tags>,
    ) -> EngineResult<CopyOutcome> {
        validate_key(key)?;
        // Held until the commit: the source's chunks may lose their last
        // other reference meanwhile, and the collector must keep them.
        let _in_flight = self.inner.uploads.begin();
        let (src_bucket, mut version, head) = self.copy_source(who, &src).await?;
        let dst = self.authorize(who, bucket, Action::Write).await?;
        super::versioning::check_lock_request(&dst, lock.as_ref(), now_millis())?;
        if dst.tenant_id != src_bucket.tenant_id {
            return Err(EngineError::AccessDenied(
                "copies between tenants are not allowed".into(),
            ));
        }
        if version.attrs.size > MAX_OBJECT_SIZE {
            return Err(EngineError::InvalidRequest(format!(
                "The specified copy source is larger than the maximum allowable size for a copy source: {MAX_OBJECT_SIZE}"
            )));
        }
        // At most 5 GiB: its whole manifest is small enough to hold.
        self.load_manifest(&mut version, head).await?;
        // Copying a version onto its own key restores it: not "to itself".
        let same_object = src.bucket == bucket && src.key == key && src.version_id.is_none();
        let mut attrs = match directive {
            MetadataDirective::Copy if same_object => {
                return Err(EngineError::InvalidRequest(
                    "This copy request is illegal because it is trying to copy an object to itself without changing the object's metadata, storage class, website redirect location or encryption attributes.".into(),
                ));
            }
            MetadataDirective::Copy => version.attrs.clone(),
            MetadataDirective::Replace(new) => {
                validate_user_metadata(&new.user_metadata)?;
                ObjectAttrs {
                    size: version.attrs.size,
                    etag: version.attrs.etag.clone(),
                    checksums: version.attrs.checksums.clone(),
                    checksum_type: version.attrs.checksum_type.clone(),
                    ..*new
                }
            }
        };
        attrs.size = version.manifest.size();
        let mut manifest = version.manifest.clone();
        if !manifest.parts.is_empty() {
            // As in S3, the copy of a multipart object is a single-part
            // object: its ETag is the MD5 of the content and its checksums
            // are full-object ones of the source's algorithms. Computing
            // them reads the source once; the chunks are still shared.
            let algorithms: Vec<ChecksumAlgorithm> = version
                .attrs
                .checksums
                .keys()
                .filter_map(|k| ChecksumAlgorithm::parse(k))
                .collect();
            let computed = self
                .digest(&src_bucket, &version, None, (0, attrs.size), algorithms)
                .await?;
            attrs.etag = etag_of(&computed.md5);
            attrs.checksum_type = (!computed.values.is_empty()).then(|| "FULL_OBJECT".to_owned());
            attrs.checksums = computed.values;
            manifest.parts.clear();
        }
        // x-amz-tagging-directive is independent of the metadata directive:
        // COPY (None) keeps the source version's tags, REPLACE sets these.
        attrs.tags = tagging.unwrap_or_else(|| version.attrs.tags.clone());
        let created_at = now_millis();
        let commit = ObjectCommit {
            tenant_id: dst.tenant_id,
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            attrs: attrs.clone(),
            created_at,
            manifest,
            new_chunks: Vec::new(),
            new_packs: Vec::new(),
            conditions,
            lock,
        };
        let out = self.inner.meta.commit_object(commit).await?;
        super::put::record_write(attrs.size, 0, version.manifest.chunks.len() as u64);
        Ok(CopyOutcome {
            etag: attrs.etag,
            last_modified: created_at,
            checksums: attrs.checksums,
            checksum_type: attrs.checksum_type,
            source_version: super::shown_version_id(&src_bucket, &version.version_id),
            version_id: super::shown_version_id(&dst, &out.version_id),
        })
    }

    /// A part made of (a range of) another object: references to its chunks,
    /// slices at the edges. The part's ETag and checksum are computed by
    /// reading the range once, which also proves the source chunks intact.
    #[allow(clippy::too_many_arguments)]
    pub async fn upload_part_copy(
        &self,
        who: &Principal,
        src: CopySource,
        range: Option<ByteRange>,
        bucket: &str,
        key: &str,
        upload_id: &str,
        part_number: u32,
    ) -> EngineResult<CopyOutcome> {
        let (dst, upload) = self
            .upload_for(who, bucket, key, upload_id, Action::Write)
            .await?;
        // Held until the commit (see copy_object).
        let _in_flight = self.inner.uploads.begin();
        let (src_bucket, version, head) = self.copy_source(who, &src).await?;
        if dst.tenant_id != src_bucket.tenant_id {
            return Err(EngineError::AccessDenied(
                "copies between tenants are not allowed".into(),
            ));
        }
        let size = version.attrs.size;
        let (start, end) = match range {
            // A copy range must lie inside the source; it is not clamped like a GET's.
            Some(ByteRange::FromTo {
                last: Some(last), ..
            }) if last >= size => {
                return Err(EngineError::InvalidRange { size });
            }
            Some(r) => {
                let (a, b) = r.resolve(size)?;
                (a, b + 1)
            }
            None => (0, size),
        };
        if end - start > MAX_OBJECT_SIZE {
            return Err(EngineError::InvalidRequest(
                "The specified copy range is larger than 5 GiB".into(),
            ));
        }
        let chunks = match head {
            None => slice_manifest(&version.manifest, start, end),
            // A range of a huge source: only its entries are read.
            Some(_) => {
                let tenant = self.tenant(src_bucket.tenant_id).await?;
                Planner::new(self, tenant.id, &version, head, start, end)
                    .sliced_entries()
                    .await?
            }
        };
        let upload_alg = upload
            .checksum_algorithm
            .as_deref()
            .and_then(ChecksumAlgorithm::parse);
        let computed = self
            .digest(&src_bucket, &version, head, (start, end), upload_alg)
            .await?;
        let etag = etag_of(&computed.md5);
        let created_at = now_millis();
        let part = Part {
            part_number,
            size: end - start,
            etag: etag.clone(),
            checksums: computed.values.clone(),
            created_at,
            manifest: Manifest::single(chunks),
        };
        self.inner
            .meta
            .commit_part(PartCommit {
                tenant_id: dst.tenant_id,
                upload_id: upload_id.to_owned(),
                part,
                new_chunks: Vec::new(),
                new_packs: Vec::new(),
            })
            .await?;
        Ok(CopyOutcome {
            etag,
            last_modified: created_at,
            checksums: computed.values,
            checksum_type: None,
            source_version: super::shown_version_id(&src_bucket, &version.version_id),
            version_id: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slices_cover_exactly_the_range() {
        let m = Manifest::single(vec![
            ManifestChunk::whole([1; 32], 100),
            ManifestChunk::whole([2; 32], 50),
            ManifestChunk::whole([3; 32], 80),
        ]);
        let s = slice_manifest(&m, 0, 230);
        assert_eq!(s, m.chunks, "the whole object needs no slices");
        let s = slice_manifest(&m, 90, 160);
        assert_eq!(s.len(), 3);
        assert_eq!(s[0].slice, Some((90, 10)));
        assert_eq!(s[1].slice, None);
        assert_eq!(s[2].slice, Some((0, 10)));
        let total: u64 = s.iter().map(|c| u64::from(c.len())).sum();
        assert_eq!(total, 70);
        // Slicing a slice keeps offsets relative to the chunk.
        let m2 = Manifest::single(s);
        let s2 = slice_manifest(&m2, 5, 8);
        assert_eq!(
            s2,
            vec![ManifestChunk {
                id: [1; 32],
                plain_len: 100,
                slice: Some((95, 3))
            }]
        );
    }
}
