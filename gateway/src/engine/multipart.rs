//! Multipart uploads: parts are chunked and deduplicated like any object;
//! completing an upload moves the parts' references to the new version in
//! one transaction, so nothing is copied and refcounts stay exact.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD as B64, URL_SAFE_NO_PAD};
use bytes::Bytes;
use futures::Stream;

use super::checksum::{ChecksumAlgorithm, ExpectedChecksums, etag_of, multipart, multipart_etag};
use super::put::{PutOutcome, record_write};
use super::validate::{validate_key, validate_user_metadata};
use super::{Action, Engine, EngineError, EngineResult, MAX_OBJECT_SIZE, Principal, now_millis};
use crate::meta::{
    Manifest, ManifestPart, MetaError, MultipartUpload, ObjectAttrs, ObjectCommit, ObjectLock,
    Page, Part, PartCommit, WriteConditions,
};

/// S3's limits on parts and on the objects they make.
pub const MAX_PART_NUMBER: u32 = 10_000;
pub const MIN_PART_SIZE: u64 = 5 * 1024 * 1024;
pub const MAX_MULTIPART_OBJECT_SIZE: u64 = 5 * 1024 * 1024 * 1024 * 1024;
/// Memory a completion holds per chunk of the new object: the parts'
/// manifests as read, the object's manifest, its encoding, and the parts
/// the metadata store reads again to check them.
const COMPLETION_BYTES_PER_CHUNK: usize = 4 * 48 + 36;

pub struct CreateMultipart {
    pub bucket: String,
    pub key: String,
    pub attrs: ObjectAttrs,
    pub checksum_algorithm: Option<ChecksumAlgorithm>,
    /// "COMPOSITE" or "FULL_OBJECT" as asked for.
    pub checksum_type: Option<String>,
    /// x-amz-object-lock-* headers, applied at completion.
    pub lock: Option<ObjectLock>,
}

/// One entry of a CompleteMultipartUpload request.
#[derive(Clone, Debug, Default)]
pub struct CompletedPart {
    pub part_number: u32,
    pub etag: String,
    /// Checksums the client lists for the part (algorithm -> base64).
    pub checksums: BTreeMap<String, String>,
}

pub struct CompleteRequest {
    pub bucket: String,
    pub key: String,
    pub upload_id: String,
    pub parts: Vec<CompletedPart>,
    pub conditions: WriteConditions,
    /// A whole-object checksum the client sent with the request.
    pub object_checksum: Option<(ChecksumAlgorithm, String)>,
    pub object_size: Option<u64>,
}

#[derive(Clone, Debug)]
pub struct CompleteOutcome {
    pub etag: String,
    /// The version written, as responses show it (None: no versioning).
    pub version_id: Option<String>,
    pub checksums: BTreeMap<String, String>,
    pub checksum_type: Option<String>,
}

pub fn parse_part_number(n: i32) -> EngineResult<u32> {
    u32::try_from(n)
        .ok()
        .filter(|n| (1..=MAX_PART_NUMBER).contains(n))
        .ok_or_else(|| {
            EngineError::InvalidArgument(format!(
                "Part number must be an integer between 1 and {MAX_PART_NUMBER}, inclusive"
            ))
        })
}

fn same_etag(a: &str, b: &str) -> bool {
    a.trim_matches('"') == b.trim_matches('"')
}

impl Engine {
    pub async fn create_multipart(
        &self,
        who: &Principal,
        req: CreateMultipart,
    ) -> EngineResult<MultipartUpload> {
        let bucket = self.authorize(who, &req.bucket, Action::Write).await?;
        validate_key(&req.key)?;
        validate_user_metadata(&req.attrs.user_metadata)?;
        super::versioning::check_lock_request(&bucket, req.lock.as_ref(), now_millis())?;
        let checksum_type = match (&req.checksum_algorithm, req.checksum_type.as_deref()) {
            (None, None) => None,
            (None, Some(_)) => {
                return Err(EngineError::InvalidArgument(
                    "x-amz-checksum-type requires x-amz-checksum-algorithm".into(),
                ));
            }
            (Some(ChecksumAlgorithm::Crc64Nvme), None | Some("FULL_OBJECT")) => Some("FULL_OBJECT"),
            (Some(ChecksumAlgorithm::Crc64Nvme), Some(_)) => {
                return Err(EngineError::InvalidArgument(
                    "CRC64NVME supports only the FULL_OBJECT checksum type".into(),
                ));
            }
            (Some(ChecksumAlgorithm::Sha1 | ChecksumAlgorithm::Sha256), Some("FULL_OBJECT")) => {
                return Err(EngineError::InvalidArgument(
                    "SHA checksums support only the COMPOSITE checksum type".into(),
                ));
            }
            (Some(_), None | Some("COMPOSITE")) => Some("COMPOSITE"),
            (Some(_), Some("FULL_OBJECT")) => Some("FULL_OBJECT"),
            (Some(_), Some(other)) => {
                return Err(EngineError::InvalidArgument(format!(
                    "unknown checksum type {other}"
                )));
            }
        };
        let mut attrs = req.attrs;
        attrs.checksum_type = checksum_type.map(str::to_owned);
        let upload = MultipartUpload {
            upload_id: URL_SAFE_NO_PAD.encode(rand::random::<[u8; 24]>()),
            bucket: req.bucket,
            key: req.key,
            tenant_id: who.tenant_id,
            attrs,
            checksum_algorithm: req.checksum_algorithm.map(|a| a.as_str().to_owned()),
            created_at: now_millis(),
            object_lock: req.lock,
        };
        self.inner.meta.create_multipart(&upload).await?;
        Ok(upload)
    }

    /// The upload, if it exists for this bucket and key and the caller may write it.
    pub(crate) async fn upload_for(
        &self,
        who: &Principal,
        bucket: &str,
        key: &str,
        upload_id: &str,
        action: Action,
    ) -> EngineResult<(crate::meta::Bucket, MultipartUpload)> {
        let b = self.authorize(who, bucket, action).await?;
        let upload = self
            .inner
            .meta
            .get_multipart(upload_id)
            .await?
            .filter(|u| u.bucket == bucket && u.key == key)
            .ok_or_else(|| EngineError::NoSuchUpload(upload_id.to_owned()))?;
        Ok((b, upload))
    }

    #[allow(clippy::too_many_arguments)]
    pub async fn upload_part<S, E>(
        &self,
        who: &Principal,
        bucket: &str,
        key: &str,
        upload_id: &str,
        part_number: u32,
        mut expected: ExpectedChecksums,
        content_length: Option<u64>,
        body: S,
    ) -> EngineResult<PutOutcome>
    where
        S: Stream<Item = Result<Bytes, E>> + Send + Unpin,
        E: std::fmt::Display,
    {
        let (b, upload) = self
            .upload_for(who, bucket, key, upload_id, Action::Write)
            .await?;
        expected.validate()?;
        if content_length.is_some_and(|l| l > MAX_OBJECT_SIZE) {
            return Err(EngineError::EntityTooLarge {
                max: MAX_OBJECT_SIZE,
            });
        }
        let upload_alg = upload
            .checksum_algorithm
            .as_deref()
            .and_then(ChecksumAlgorithm::parse);
        let mut algorithms = expected.algorithms();
        // The part checksum of the upload's algorithm is kept even when the
        // client did not send one, so the object checksum can be built.
        algorithms.extend(upload_alg);
        let tenant = self.tenant(b.tenant_id).await?;
        let store = self.inner.backends.get(&b.backend)?.clone();
        // Held until the commit (see put_object).
        let in_flight = self.inner.uploads.begin();
        let staged = self
            .ingest(
                &tenant,
                &store,
                body,
                algorithms,
                MAX_OBJECT_SIZE,
                in_flight.fence(),
                Some(part_number),
            )
            .await?;
        let written: Vec<[u8; 16]> = staged.new_packs.iter().map(|p| p.id).collect();
        let checked = match content_length {
            Some(expected_len) if expected_len != staged.size => Err(EngineError::IncompleteBody {
                expected: expected_len,
                received: staged.size,
            }),
            _ => std::mem::take(&mut expected).verify(&staged.checksums),
        };
        let mut checksums = match checked {
            Ok(c) => c,
            Err(e) => {
                self.discard_packs(&store, &written).await;
                return Err(e);
            }
        };
        if let Some(alg) = upload_alg
            && let Some(v) = staged.checksums.values.get(alg.as_str())
        {
            checksums.insert(alg.as_str().to_owned(), v.clone());
        }
        let etag = etag_of(&staged.checksums.md5);
        let part = Part {
            part_number,
            size: staged.size,
            etag: etag.clone(),
            checksums: checksums.clone(),
            created_at: now_millis(),
            manifest: Manifest::single(staged.chunks),
        };
        let committed = self
            .inner
            .meta
            .commit_part(PartCommit {
                tenant_id: tenant.id,
                upload_id: upload_id.to_owned(),
                part,
                new_chunks: staged.new_chunks,
                new_packs: staged.new_packs,
            })
            .await;
        if let Err(e) = &committed
            && e.nothing_committed()
        {
            // A concurrent abort (NoSuchUpload) or a lost lease.
            self.discard_packs(&store, &written).await;
        }
        drop(in_flight);
        committed?;
        record_write(staged.size, staged.stored_bytes, staged.dedup_chunks);
        Ok(PutOutcome {
            etag,
            version_id: None,
            size: staged.size,
            checksums,
        })
    }

    /// Every stored part of an upload, in order.
    pub(crate) async fn all_parts(&self, upload_id: &str) -> EngineResult<Vec<Part>> {
        let mut parts = Vec::new();
        let mut after = 0;
        loop {
            let page = self.inner.meta.list_parts(upload_id, after, 1000).await?;
            after = page.items.last().map_or(after, |p| p.part_number);
            parts.extend(page.items);
            if !page.truncated {
                return Ok(parts);
            }
        }
    }

    pub async fn complete_multipart(
        &self,
        who: &Principal,
        req: CompleteRequest,
    ) -> EngineResult<CompleteOutcome> {
        let (b, upload) = self
            .upload_for(who, &req.bucket, &req.key, &req.upload_id, Action::Write)
            .await?;
        if req.parts.is_empty() {
            return Err(EngineError::MalformedXml(
                "You must specify at least one part".into(),
            ));
        }
        if req.parts.len() > MAX_PART_NUMBER as usize {
            return Err(EngineError::MalformedXml(format!(
                "A multipart upload has at most {MAX_PART_NUMBER} parts"
            )));
        }
        if req
            .parts
            .windows(2)
            .any(|w| w[0].part_number >= w[1].part_number)
        {
            return Err(EngineError::InvalidPartOrder);
        }
        let stored: BTreeMap<u32, Part> = self
            .all_parts(&req.upload_id)
            .await?
            .into_iter()
            .map(|p| (p.part_number, p))
            .collect();
        let mut chosen = Vec::with_capacity(req.parts.len());
        for (i, want) in req.parts.iter().enumerate() {
            let part = stored
                .get(&want.part_number)
                .filter(|p| same_etag(&p.etag, &want.etag))
                .ok_or(EngineError::InvalidPart(want.part_number))?;
            for (alg, v) in &want.checksums {
                if part.checksums.get(alg).is_some_and(|ours| ours != v.trim()) {
                    return Err(EngineError::InvalidPart(want.part_number));
                }
            }
            if i + 1 < req.parts.len() && part.size < MIN_PART_SIZE {
                return Err(EngineError::EntityTooSmall(want.part_number));
            }
            chosen.push(part);
        }
        let size: u64 = chosen.iter().map(|p| p.size).sum();
        if size > MAX_MULTIPART_OBJECT_SIZE {
            return Err(EngineError::EntityTooLarge {
                max: MAX_MULTIPART_OBJECT_SIZE,
            });
        }
        // The object's manifest is built here and checked by the store:
        // memory proportional to its chunk count, reserved like any other.
        let chunk_count: usize = stored.values().map(|p| p.manifest.chunks.len()).sum();
        let _memory = self
            .inner
            .budget
            // Twice: the parts' manifest and the healed one.
            .reserve(chunk_count.saturating_mul(2 * COMPLETION_BYTES_PER_CHUNK))
            .await?;
        if let Some(declared) = req.object_size
            && declared != size
        {
            return Err(EngineError::InvalidArgument(format!(
                "x-amz-mp-object-size {declared} does not match the parts' total {size}"
            )));
        }
        let etags: Vec<&str> = chosen.iter().map(|p| p.etag.as_str()).collect();
        let etag = multipart_etag(&etags);
        let (checksums, checksum_type) = object_checksums(&upload, &chosen)?;
        if let Some((alg, sent)) = &req.object_checksum
            && checksums
                .get(alg.as_str())
                .is_some_and(|ours| ours != sent.trim())
        {
            return Err(EngineError::BadDigest(format!(
                "The {} you specified did not match the calculated checksum.",
                alg.header()
            )));
        }
        let mut manifest = Manifest::default();
        for p in &chosen {
            manifest.parts.push(ManifestPart {
                part_number: p.part_number,
                size: p.size,
                chunk_count: u32::try_from(p.manifest.chunks.len())
                    .map_err(|_| EngineError::Internal("part has too many chunks".into()))?,
                etag: p.etag.clone(),
                lead: 0,
            });
            manifest.chunks.extend(p.manifest.chunks.iter().cloned());
        }
        // Re-chunk the part boundaries (before the commit, under the
        // upload lease: packs of a completion that dies are swept).
        let tenant = self.tenant(b.tenant_id).await?;
        let store = self.inner.backends.get(&b.backend)?.clone();
        let in_flight = self.inner.uploads.begin();
        let healed = self
            .heal_boundaries(&tenant, &store, &manifest, in_flight.fence())
            .await?;
        let (object_manifest, new_chunks, new_packs) = match healed {
            Some(h) => {
                tracing::debug!(
                    upload = %req.upload_id, regions = h.regions, reread_bytes = h.reread_bytes,
                    new_chunks = h.new_chunks.len(), "re-chunked part boundaries"
                );
                (h.manifest, h.new_chunks, h.new_packs)
            }
            None => (manifest.clone(), Vec::new(), Vec::new()),
        };
        let written: Vec<[u8; 16]> = new_packs.iter().map(|p| p.id).collect();
        let mut attrs = upload.attrs.clone();
        attrs.size = size;
        attrs.etag = etag.clone();
        attrs.checksums = checksums.clone();
        attrs.checksum_type = checksum_type.clone();
        let commit = ObjectCommit {
            tenant_id: b.tenant_id,
            bucket: req.bucket.clone(),
            key: req.key.clone(),
            attrs,
            created_at: now_millis(),
            manifest: object_manifest,
            new_chunks,
            new_packs,
            conditions: req.conditions,
            lock: upload.object_lock,
        };
        let committed = self
            .inner
            .meta
            .complete_multipart_from(&req.upload_id, commit, manifest)
            .await;
        if let Err(e) = &committed
            && e.nothing_committed()
        {
            self.discard_packs(&store, &written).await;
        }
        drop(in_flight);
        let version_id = match committed {
            Ok(out) => super::shown_version_id(&b, &out.version_id),
            // A part replaced between our read and the commit.
            Err(MetaError::NotFound { what: "part", .. }) => {
                return Err(EngineError::InvalidPart(0));
            }
            Err(e) => return Err(e.into()),
        };
        Ok(CompleteOutcome {
            etag,
            version_id,
            checksums,
            checksum_type,
        })
    }

    pub async fn abort_multipart(
        &self,
        who: &Principal,
        bucket: &str,
        key: &str,
        upload_id: &str,
    ) -> EngineResult<()> {
        self.upload_for(who, bucket, key, upload_id, Action::Write)
            .await?;
        Ok(self.inner.meta.abort_multipart(upload_id).await?)
    }

    pub async fn list_parts(
        &self,
        who: &Principal,
        bucket: &str,
        key: &str,
        upload_id: &str,
        after: u32,
        max: usize,
    ) -> EngineResult<(MultipartUpload, Page<Part>)> {
        let (_, upload) = self
            .upload_for(who, bucket, key, upload_id, Action::Read)
            .await?;
        let page = self.inner.meta.list_parts(upload_id, after, max).await?;
        Ok((upload, page))
    }

    pub async fn list_multipart_uploads(
        &self,
        who: &Principal,
        bucket: &str,
        prefix: &str,
        after: Option<(&str, &str)>,
        max: usize,
    ) -> EngineResult<Page<MultipartUpload>> {
        self.authorize(who, bucket, Action::Read).await?;
        Ok(self
            .inner
            .meta
            .list_multipart(bucket, prefix, after, max)
            .await?)
    }
}

/// The object checksum of a completed upload from its parts' checksums.
fn object_checksums(
    upload: &MultipartUpload,
    parts: &[&Part],
) -> EngineResult<(BTreeMap<String, String>, Option<String>)> {
    let Some(alg) = upload
        .checksum_algorithm
        .as_deref()
        .and_then(ChecksumAlgorithm::parse)
    else {
        return Ok((BTreeMap::new(), None));
    };
    let mut raw = Vec::with_capacity(parts.len());
    for p in parts {
        let v = p.checksums.get(alg.as_str()).ok_or_else(|| {
            EngineError::InvalidArgument(format!(
                "part {} has no {} checksum",
                p.part_number,
                alg.as_str()
            ))
        })?;
        let bytes = B64.decode(v).map_err(|_| {
            EngineError::Internal(format!("stored part checksum {v} is not base64"))
        })?;
        raw.push((bytes, p.size));
    }
    let ty = upload.attrs.checksum_type.clone();
    let value = if ty.as_deref() == Some("FULL_OBJECT") {
        multipart::full_object(alg, &raw).ok_or_else(|| {
            EngineError::InvalidArgument(format!(
                "{} cannot be a full-object checksum",
                alg.as_str()
            ))
        })?
    } else {
        let only: Vec<Vec<u8>> = raw.into_iter().map(|(b, _)| b).collect();
        multipart::composite(alg, &only)
    };
    let mut out = BTreeMap::new();
    out.insert(alg.as_str().to_owned(), value);
    Ok((out, ty))
}
