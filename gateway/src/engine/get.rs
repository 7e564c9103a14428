//! The read path: version → manifest → the chunks covering the range →
//! ranged reads of their packs (coalesced, several in flight) → AEAD open →
//! decompress → id check → stream. A chunk that fails verification is an
//! error, never served.
//!
//! Memory: each ranged read reserves its ciphertext and the plaintext it
//! opens to from the budget. The first read of a GET waits for its share;
//! read-ahead starts only while memory is free. A decrypted chunk keeps its
//! share until the HTTP stack has written the last of it.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use dooz_chunker::Keyring;
use futures::future::BoxFuture;
use futures::stream::FuturesOrdered;
use futures::{Stream, StreamExt, stream};

use super::plan::{INLINE_MANIFEST, Planner, Read};
use super::relocate::Relocate;
use super::{Action, Engine, EngineError, EngineResult, Principal};
use crate::budget::{self, MemoryBudget, Reservation, accounted};
use crate::meta::{Manifest, ManifestHead, ObjectVersion};
use crate::metrics::METRICS;
use crate::store::{PackStore, StoreError};

/// A Range header, before it meets the object size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ByteRange {
    /// bytes=first-last or bytes=first-
    FromTo { first: u64, last: Option<u64> },
    /// bytes=-len
    Suffix { len: u64 },
}

impl ByteRange {
    /// The inclusive byte span this range selects, or InvalidRange.
    pub fn resolve(self, size: u64) -> EngineResult<(u64, u64)> {
        let invalid = Err(EngineError::InvalidRange { size });
        match self {
            ByteRange::FromTo { first, last } => {
                if first >= size || last.is_some_and(|l| l < first) {
                    return invalid;
                }
                Ok((first, last.unwrap_or(u64::MAX).min(size - 1)))
            }
            ByteRange::Suffix { len } => {
                if len == 0 || size == 0 {
                    return invalid;
                }
                Ok((size - len.min(size), size - 1))
            }
        }
    }
}

/// Conditional GET/HEAD headers, dates in milliseconds since the epoch.
#[derive(Clone, Debug, Default)]
pub struct ReadConditions {
    pub if_match: Option<String>,
    pub if_none_match: Option<String>,
    pub if_modified_since: Option<i64>,
    pub if_unmodified_since: Option<i64>,
}

fn etag_matches(condition: &str, etag: &str) -> bool {
    let etag = etag.trim_matches('"');
    condition
        .split(',')
        .map(|c| c.trim().trim_start_matches("W/").trim_matches('"'))
        .any(|c| c == "*" || c == etag)
}

impl ReadConditions {
    /// RFC 7232 order, as S3 applies it: a true If-Match overrides a false
    /// If-Unmodified-Since, and a false If-None-Match overrides If-Modified-Since.
    pub fn evaluate(&self, etag: &str, last_modified_ms: i64) -> EngineResult<()> {
        // HTTP dates have second precision.
        let lm = last_modified_ms / 1000;
        match &self.if_match {
            Some(c) if !etag_matches(c, etag) => return Err(EngineError::PreconditionFailed),
            Some(_) => {}
            None => {
                if let Some(t) = self.if_unmodified_since
                    && lm > t / 1000
                {
                    return Err(EngineError::PreconditionFailed);
                }
            }
        }
        match &self.if_none_match {
            Some(c) if etag_matches(c, etag) => return Err(EngineError::NotModified),
            Some(_) => {}
            None => {
                if let Some(t) = self.if_modified_since
                    && lm <= t / 1000
                {
                    return Err(EngineError::NotModified);
                }
            }
        }
        Ok(())
    }
}

/// The inclusive byte span of part `n` and the number of parts. An object
/// uploaded in one piece has exactly one part, and (as in S3) no parts
/// count to show: x-amz-mp-parts-count is for multipart uploads only.
pub fn part_span(version: &ObjectVersion, n: u32) -> EngineResult<((u64, u64), Option<u32>)> {
    let parts = &version.manifest.parts;
    let size = version.attrs.size;
    if parts.is_empty() {
        return if n == 1 && size > 0 {
            Ok(((0, size - 1), None))
        } else {
            Err(EngineError::InvalidPartNumber)
        };
    }
    let mut offset = 0u64;
    for p in parts {
        if p.part_number == n {
            if p.size == 0 {
                return Err(EngineError::InvalidPartNumber);
            }
            return Ok(((offset, offset + p.size - 1), Some(parts.len() as u32)));
        }
        offset += p.size;
    }
    Err(EngineError::InvalidPartNumber)
}

/// What a GET asks for.
pub struct GetRequest<'a> {
    pub bucket: &'a str,
    pub key: &'a str,
    pub version_id: Option<&'a str>,
    pub range: Option<ByteRange>,
    pub part_number: Option<u32>,
    pub conditions: ReadConditions,
}

pub type ObjectBody = Pin<Box<dyn Stream<Item = EngineResult<Bytes>> + Send>>;

pub struct GetOutcome {
    pub bucket: crate::meta::Bucket,
    pub version: ObjectVersion,
    /// With partNumber: how many parts the object has.
    pub parts_count: Option<u32>,
    /// Inclusive span served, when a range was asked for.
    pub range: Option<(u64, u64)>,
    /// Bytes the body will carry.
    pub content_length: u64,
    pub body: ObjectBody,
}

impl Read {
    /// Bytes the read holds at its peak: the ciphertext range and every
    /// chunk it opens, in whole budget units per buffer so every chunk's
    /// share can be split off exactly.
    pub(super) fn memory(&self) -> usize {
        let plain: usize = self
            .pieces
            .iter()
            .map(|p| rounded(p.loc.plain_len as usize))
            .sum();
        rounded((self.end - self.start) as usize) + plain
    }

    /// [`Read::memory`] once one more frame, ending at `end` and opening
    /// to `plain_len` bytes, joins the read.
    pub(super) fn memory_extended(&self, end: u64, plain_len: u32) -> usize {
        self.memory() - rounded((self.end - self.start) as usize)
            + rounded((end - self.start) as usize)
            + rounded(plain_len as usize)
    }
}

/// Bytes in whole budget units.
fn rounded(n: usize) -> usize {
    budget::units(n) as usize * budget::UNIT
}

impl Engine {
    /// The bucket and the version's metadata (HEAD), after conditions; no
    /// data is read. A delete marker is an error: 404 as the latest version,
    /// 405 when named by its id.
    pub async fn head_object(
        &self,
        who: &Principal,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
        conditions: &ReadConditions,
    ) -> EngineResult<(crate::meta::Bucket, ObjectVersion, Option<ManifestHead>)> {
        let bucket_rec = self.authorize(who, bucket, Action::Read).await?;
        let (version, head) = self.readable_version(bucket, key, version_id).await?;
        conditions.evaluate(&version.attrs.etag, version.created_at)?;
        Ok((bucket_rec, version, head))
    }

    /// A version's whole manifest, also when it stayed in the database (for
    /// copies, whose sources are at most 5 GiB).
    pub(crate) async fn load_manifest(
        &self,
        version: &mut ObjectVersion,
        head: Option<ManifestHead>,
    ) -> EngineResult<()> {
        let Some(head) = head else {
            return Ok(());
        };
        let len = usize::try_from(head.len)
            .map_err(|_| EngineError::Internal("manifest larger than memory".into()))?;
        let bytes = self
            .inner
            .meta
            .manifest_slice(&version.bucket, &version.key, &version.version_id, 0, len)
            .await?;
        version.manifest = Manifest::decode(&bytes).map_err(|e| {
            EngineError::Corrupt(format!(
                "manifest of {}/{}: {e}",
                version.bucket, version.key
            ))
        })?;
        Ok(())
    }

    /// A version (the latest when no id is given) that is not a delete
    /// marker, or the S3 error for it. A huge manifest is not read here (its
    /// head says where it is); a GET reads what it needs.
    pub(crate) async fn readable_version(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
    ) -> EngineResult<(ObjectVersion, Option<ManifestHead>)> {
        super::versioning::check_version_id(version_id)?;
        let (version, head) = self
            .inner
            .meta
            .get_object_bounded(bucket, key, version_id, INLINE_MANIFEST)
            .await?
            .ok_or_else(|| match version_id {
                Some(v) => EngineError::NoSuchVersion(v.to_owned()),
                None => EngineError::NoSuchKey(key.to_owned()),
            })?;
        if version.delete_marker {
            return Err(EngineError::DeleteMarker {
                key: key.to_owned(),
                version_id: version.version_id,
                last_modified: version.created_at,
                addressed: version_id.is_some(),
            });
        }
        Ok((version, head))
    }

    pub async fn get_object(
        &self,
        who: &Principal,
        req: &GetRequest<'_>,
    ) -> EngineResult<GetOutcome> {
        let (bucket_rec, version, head) = self
            .head_object(who, req.bucket, req.key, req.version_id, &req.conditions)
            .await?;
        let (range, part_number) = (req.range, req.part_number);
        let size = version.attrs.size;
        let (span, parts_count) = match (range, part_number) {
            (Some(_), Some(_)) => {
                return Err(EngineError::InvalidRequest(
                    "Cannot specify both Range header and partNumber query parameter".into(),
                ));
            }
            (Some(r), None) => (Some(r.resolve(size)?), None),
            (None, Some(n)) => {
                let (span, count) = part_span(&version, n)?;
                (Some(span), count)
            }
            (None, None) => (None, None),
        };
        let (start, end_excl) = match span {
            Some((a, b)) => (a, b + 1),
            None => (0, size),
        };
        let mut body = self
            .open_body(&bucket_rec, &version, head, start, end_excl)
            .await?;
        // Fetch the first piece before answering, so that an unreachable
        // backend or a corrupt chunk becomes a status code, not a cut stream.
        let first = match body.next().await {
            Some(Ok(b)) => Some(b),
            Some(Err(e)) => return Err(e),
            None => None,
        };
        let body: ObjectBody = Box::pin(stream::iter(first.map(Ok)).chain(body));
        Ok(GetOutcome {
            bucket: bucket_rec,
            version,
            parts_count,
            range: span,
            content_length: end_excl - start,
            body,
        })
    }

    /// The plaintext of `[start, end)` of a version, streamed.
    pub(crate) async fn open_body(
        &self,
        bucket: &crate::meta::Bucket,
        version: &ObjectVersion,
        head: Option<ManifestHead>,
        start: u64,
        end: u64,
    ) -> EngineResult<ObjectBody> {
        let tenant = self.tenant(bucket.tenant_id).await?;
        let keyring = self.keyring_of(&tenant).await?;
        let mut planner = Planner::new(self, tenant.id, version, head, start, end);
        let reads: VecDeque<Read> = planner.next_reads().await?.into();
        // Waiting for memory happens here, before the client gets a status,
        // and once: the floor covers the largest read the body can need
        // (all of them when the plan is complete, else the cap on any read),
        // so a started body never waits for memory behind new requests.
        let largest = reads.iter().map(Read::memory).max().unwrap_or(0);
        let floor_bytes = if planner.done {
            largest
        } else {
            largest.max(super::plan::MAX_READ_MEMORY)
        };
        let floor = match floor_bytes {
            0 => Reservation::none(),
            n => self.inner.budget.reserve(n).await?,
        };
        Ok(read_stream(ReadState {
            planner,
            keyring,
            reads,
            floor,
            floor_busy: false,
            budget: self.inner.budget.clone(),
            read_ahead: self.inner.cfg.read_ahead,
            in_flight: FuturesOrdered::new(),
            ready: VecDeque::new(),
            failed: false,
            relocate: Relocate {
                engine: self.clone(),
                tenant: tenant.id,
            },
        }))
    }
}

struct ReadState {
    planner: Planner,
    keyring: Arc<Keyring>,
    reads: VecDeque<Read>,
    /// Memory this GET holds for its whole life: its first read's, reserved
    /// before the GET answered. Every read that fits is made with it once
    /// the previous such read's bytes have been handed on, so a body that
    /// has started never queues behind new requests for memory (tokio's
    /// semaphore is FIFO: it would wait behind uploads' working sets, and
    /// clients give up on a body that stalls for seconds).
    floor: Reservation,
    /// A read made with the floor is in flight.
    floor_busy: bool,
    budget: MemoryBudget,
    read_ahead: usize,
    /// Reads in order, each with whether it was made with the floor.
    in_flight: FuturesOrdered<BoxFuture<'static, (bool, EngineResult<Vec<Bytes>>)>>,
    ready: VecDeque<Bytes>,
    failed: bool,
    /// Where a read whose pack compaction removed finds its chunks now.
    relocate: Relocate,
}

impl ReadState {
    /// Starts reads up to the read-ahead: with the floor when it is free
    /// (called only once `ready` is empty, so the floor read's bytes have
    /// been handed to the HTTP stack), read-ahead only with memory free
    /// right now, and a read larger than the floor (well-compressed chunks)
    /// waits for its memory only when nothing else is in flight.
    async fn start_reads(&mut self) -> EngineResult<()> {
        while self.in_flight.len() < self.read_ahead {
            if self.reads.is_empty() && !self.planner.done {
                self.reads = self.planner.next_reads().await?.into();
            }
            let Some(read) = self.reads.front() else {
                return Ok(());
            };
            let need = read.memory();
            let (memory, on_floor) = if !self.floor_busy && need <= self.floor.bytes() {
                (Reservation::none(), true)
            } else if self.in_flight.is_empty() {
                // The client has its 200 already: wait rather than cut the body.
                (self.budget.reserve_patiently(need).await, false)
            } else {
                match self.budget.try_reserve(need) {
                    Some(r) => (r, false),
                    None => return Ok(()),
                }
            };
            let Some(read) = self.reads.pop_front() else {
                return Ok(());
            };
            let store = self.planner.stores.get(&read.pack_id).cloned();
            let fetched = fetch(
                store,
                self.keyring.clone(),
                read,
                memory,
                self.relocate.clone(),
            );
            self.floor_busy |= on_floor;
            self.in_flight
                .push_back(Box::pin(async move { (on_floor, fetched.await) }));
        }
        Ok(())
    }
}

fn read_stream(state: ReadState) -> ObjectBody {
    Box::pin(stream::unfold(state, |mut st| async move {
        loop {
            if let Some(b) = st.ready.pop_front() {
                METRICS.s3_sent_bytes.inc_by(b.len() as u64);
                return Some((Ok(b), st));
            }
            if st.failed {
                return None;
            }
            if let Err(e) = st.start_reads().await {
                st.failed = true;
                return Some((Err(e), st));
            }
            match st.in_flight.next().await {
                Some((on_floor, Ok(pieces))) => {
                    st.floor_busy &= !on_floor;
                    st.ready.extend(pieces);
                }
                Some((_, Err(e))) => {
                    st.failed = true;
                    return Some((Err(e), st));
                }
                None => return None,
            }
        }
    }))
}

pub(super) async fn fetch(
    store: Option<PackStore>,
    keyring: Arc<Keyring>,
    read: Read,
    memory: Reservation,
    relocate: Relocate,
) -> EngineResult<Vec<Bytes>> {
    let Some(store) = store else {
        // The pack row went away after the plan: compaction moved the chunks.
        return relocate.refetch(keyring, read, memory).await;
    };
    let bytes = match store.get_range(&read.pack_id, read.start..read.end).await {
        Ok(b) => b,
        Err(StoreError::NotFound { .. }) => return relocate.refetch(keyring, read, memory).await,
        Err(e) => return Err(e.into()),
    };
    open_pieces(bytes, keyring, read, memory).await
}

/// Opens the frames of one ranged read and cuts out the requested plaintext;
/// each piece carries its share of `memory` until the client has it.
pub(super) async fn open_pieces(
    bytes: Bytes,
    keyring: Arc<Keyring>,
    read: Read,
    mut memory: Reservation,
) -> EngineResult<Vec<Bytes>> {
    if bytes.len() as u64 != read.end - read.start {
        return Err(EngineError::Corrupt(format!(
            "pack {} is shorter than its index says",
            hex::encode(read.pack_id)
        )));
    }
    let pieces = tokio::task::spawn_blocking(move || {
        read.pieces
            .into_iter()
            .map(|p| {
                let from = (p.loc.offset - read.start) as usize;
                let frame = &bytes[from..from + p.loc.len as usize];
                let plain = keyring
                    .open_chunk(&p.id, frame, p.loc.plain_len as usize)
                    .map_err(|e| {
                        tracing::error!(chunk = %p.id, pack = %hex::encode(read.pack_id), error = %e, "chunk failed verification");
                        EngineError::Corrupt(format!("chunk {}: {e}", p.id))
                    })?;
                if plain.len() != p.loc.plain_len as usize {
                    return Err(EngineError::Corrupt(format!(
                        "chunk {} opened to {} bytes, expected {}",
                        p.id,
                        plain.len(),
                        p.loc.plain_len
                    )));
                }
                // The reservation covers every piece's plaintext, so a share
                // is always there; it leaves with the bytes.
                let share = memory.split(plain.len()).unwrap_or_else(Reservation::none);
                let plain = accounted(plain, share);
                Ok(plain.slice(p.skip..p.skip + p.take))
            })
            .collect::<EngineResult<Vec<Bytes>>>()
    })
    .await
    .map_err(|e| EngineError::Internal(format!("open task: {e}")))??;
    Ok(pieces)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_resolve_like_s3() {
        let r = |first, last| ByteRange::FromTo { first, last };
        assert_eq!(r(0, Some(9)).resolve(100).unwrap(), (0, 9));
        assert_eq!(r(90, Some(200)).resolve(100).unwrap(), (90, 99));
        assert_eq!(r(10, None).resolve(100).unwrap(), (10, 99));
        assert_eq!(
            ByteRange::Suffix { len: 10 }.resolve(100).unwrap(),
            (90, 99)
        );
        assert_eq!(
            ByteRange::Suffix { len: 500 }.resolve(100).unwrap(),
            (0, 99)
        );
        for bad in [
            r(100, None).resolve(100),
            r(5, Some(4)).resolve(100),
            ByteRange::Suffix { len: 0 }.resolve(100),
            r(0, Some(0)).resolve(0),
        ] {
            assert!(
                matches!(bad, Err(EngineError::InvalidRange { .. })),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn conditions_follow_rfc7232_precedence() {
        let etag = "\"abc\"";
        let t = 10_000_000; // ms
        let c =
            |m: Option<&str>, n: Option<&str>, ms: Option<i64>, us: Option<i64>| ReadConditions {
                if_match: m.map(Into::into),
                if_none_match: n.map(Into::into),
                if_modified_since: ms,
                if_unmodified_since: us,
            };
        assert!(c(Some("abc"), None, None, None).evaluate(etag, t).is_ok());
        assert!(
            c(Some("\"abc\""), None, None, None)
                .evaluate(etag, t)
                .is_ok()
        );
        assert!(matches!(
            c(Some("xyz"), None, None, None).evaluate(etag, t),
            Err(EngineError::PreconditionFailed)
        ));
        // True If-Match wins over a false If-Unmodified-Since.
        assert!(
            c(Some("abc"), None, None, Some(t - 5000))
                .evaluate(etag, t)
                .is_ok()
        );
        assert!(matches!(
            c(None, None, None, Some(t - 5000)).evaluate(etag, t),
            Err(EngineError::PreconditionFailed)
        ));
        assert!(matches!(
            c(None, Some("abc"), None, None).evaluate(etag, t),
            Err(EngineError::NotModified)
        ));
        assert!(matches!(
            c(None, None, Some(t), None).evaluate(etag, t),
            Err(EngineError::NotModified)
        ));
        // A non-matching If-None-Match overrides If-Modified-Since.
        assert!(
            c(None, Some("xyz"), Some(t), None)
                .evaluate(etag, t)
                .is_ok()
        );
        assert!(
            c(None, None, Some(t - 5000), None)
                .evaluate(etag, t)
                .is_ok()
        );
    }
}
