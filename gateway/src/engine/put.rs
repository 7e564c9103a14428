//! The write path: stream → FastCDC → keyed ids → dedup lookup → zstd → AEAD
//! frame → pack → backend → one metadata commit. Nothing holds a whole
//! object. An upload reserves its working set and one pack buffer from the
//! memory budget before it reads its body (waiting while they are not free);
//! further packs in flight are taken only when free, otherwise the upload
//! reuses its own buffer once that pack's write finished.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use bytes::Bytes;
use dooz_chunker::{ChunkId, Chunker, Keyring, PackWriter};
use futures::{Stream, StreamExt};
use tokio::task::{JoinHandle, JoinSet};

use super::checksum::{
    ChecksumAlgorithm, Checksums, ComputedChecksums, ExpectedChecksums, etag_of,
};
use super::validate::{validate_key, validate_user_metadata};
use super::{Action, Engine, EngineError, EngineResult, FEED_SLICE, Principal, now_millis};
use crate::budget::Reservation;
use crate::meta::{
    ChunkLocation, LeaseFence, Manifest, ManifestChunk, NewChunk, NewPack, ObjectAttrs,
    ObjectCommit, ObjectLock, Tenant, WriteConditions,
};
use crate::metrics::METRICS;
use crate::store::{PackStore, StoreError};

/// Chunks are looked up in the metadata store in batches of about this many
/// plaintext bytes (or `LOOKUP_BATCH_CHUNKS` chunks), so a large upload costs
/// one query per batch rather than one per chunk.
pub(crate) const LOOKUP_BATCH_BYTES: usize = 4 * 1024 * 1024;
const LOOKUP_BATCH_CHUNKS: usize = 64;

pub struct PutRequest {
    pub bucket: String,
    pub key: String,
    /// Representation headers and user metadata; size, etag and checksums are
    /// filled in here.
    pub attrs: ObjectAttrs,
    pub conditions: WriteConditions,
    pub expected: ExpectedChecksums,
    /// Content-Length (decoded length for aws-chunked bodies), when known.
    pub content_length: Option<u64>,
    /// x-amz-object-lock-* headers, when any was sent.
    pub lock: Option<ObjectLock>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PutOutcome {
    pub etag: String,
    /// The version written, as responses show it (None: no versioning).
    pub version_id: Option<String>,
    pub size: u64,
    pub checksums: BTreeMap<String, String>,
}

/// What an ingested body left behind: its manifest and the packs it wrote.
pub(crate) struct Staged {
    pub chunks: Vec<ManifestChunk>,
    pub new_chunks: Vec<NewChunk>,
    pub new_packs: Vec<NewPack>,
    pub size: u64,
    pub checksums: ComputedChecksums,
    pub stored_bytes: u64,
    pub dedup_chunks: u64,
}

impl Engine {
    pub async fn put_object<S, E>(
        &self,
        who: &Principal,
        mut req: PutRequest,
        body: S,
    ) -> EngineResult<PutOutcome>
    where
        S: Stream<Item = Result<Bytes, E>> + Send + Unpin,
        E: std::fmt::Display,
    {
        let bucket = self.authorize(who, &req.bucket, Action::Write).await?;
        validate_key(&req.key)?;
        validate_user_metadata(&req.attrs.user_metadata)?;
        req.expected.validate()?;
        super::versioning::check_lock_request(&bucket, req.lock.as_ref(), now_millis())?;
        if let Some(len) = req.content_length
            && len > super::MAX_OBJECT_SIZE
        {
            return Err(EngineError::EntityTooLarge {
                max: super::MAX_OBJECT_SIZE,
            });
        }
        // Cheap early answer for create-only writes; the commit decides for real.
        if req.conditions.if_none_match.as_deref() == Some("*")
            && let Some((existing, _)) = self
                .inner
                .meta
                .get_object_bounded(&req.bucket, &req.key, None, 0)
                .await?
            && !existing.delete_marker
        {
            return Err(EngineError::PreconditionFailed);
        }
        let tenant = self.tenant(bucket.tenant_id).await?;
        let store = self.inner.backends.get(&bucket.backend)?.clone();
        // Held until the commit: the collector keeps what this upload may
        // reference (chunks it finds, packs it writes) while it runs.
        let in_flight = self.inner.uploads.begin();
        let staged = self
            .ingest(
                &tenant,
                &store,
                body,
                req.expected.algorithms(),
                super::MAX_OBJECT_SIZE,
                in_flight.fence(),
                None,
            )
            .await?;
        let written: Vec<[u8; 16]> = staged.new_packs.iter().map(|p| p.id).collect();
        let checked = match req.content_length {
            Some(expected) if expected != staged.size => Err(EngineError::IncompleteBody {
                expected,
                received: staged.size,
            }),
            _ => std::mem::take(&mut req.expected).verify(&staged.checksums),
        };
        let checksums = match checked {
            Ok(c) => c,
            Err(e) => {
                self.discard_packs(&store, &written).await;
                return Err(e);
            }
        };
        let etag = etag_of(&staged.checksums.md5);
        let mut attrs = req.attrs;
        attrs.size = staged.size;
        attrs.etag = etag.clone();
        attrs.checksum_type = (!checksums.is_empty()).then(|| "FULL_OBJECT".to_owned());
        attrs.checksums = checksums.clone();
        let commit = ObjectCommit {
            tenant_id: tenant.id,
            bucket: req.bucket.clone(),
            key: req.key.clone(),
            attrs,
            created_at: now_millis(),
            manifest: Manifest::single(staged.chunks),
            new_chunks: staged.new_chunks,
            new_packs: staged.new_packs,
            conditions: req.conditions,
            lock: req.lock,
        };
        let outcome = self.inner.meta.commit_object(commit).await;
        if let Err(e) = &outcome
            && e.nothing_committed()
        {
            self.discard_packs(&store, &written).await;
        }
        drop(in_flight);
        let outcome = outcome.inspect_err(|e| {
            if matches!(e, crate::meta::MetaError::PreconditionFailed(_)) {
                METRICS
                    .commit_conflicts
                    .with_label_values(&["precondition"])
                    .inc();
            }
        })?;
        record_write(staged.size, staged.stored_bytes, staged.dedup_chunks);
        tracing::debug!(
            bucket = %req.bucket, key = %req.key, size = staged.size,
            stored = staged.stored_bytes, lost_races = outcome.lost_races, "object committed"
        );
        Ok(PutOutcome {
            etag,
            version_id: super::shown_version_id(&bucket, &outcome.version_id),
            size: staged.size,
            checksums,
        })
    }

    /// Streams a body into packs on `store`, written under `fence` (the
    /// upload's lease); returns once every pack is on the backend. Commits
    /// nothing; on failure deletes the packs it wrote.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn ingest<S, E>(
        &self,
        tenant: &Tenant,
        store: &PackStore,
        mut body: S,
        algorithms: Vec<ChecksumAlgorithm>,
        max_size: u64,
        fence: Option<LeaseFence>,
        part: Option<u32>,
    ) -> EngineResult<Staged>
    where
        S: Stream<Item = Result<Bytes, E>> + Send + Unpin,
        E: std::fmt::Display,
    {
        // A part's first chunks (unless it is part 1) and its last chunk are
        // the ones completion re-chunks (`heal.rs`; the stream usually meets
        // the part's own cuts within its first two chunks): kept aside in a
        // pack of their own, so that once replaced the whole pack goes at
        // once instead of leaving dead bytes among the part's other chunks.
        // The first ones' frames wait in memory until the part ends.
        let edges = part
            .filter(|_| self.inner.cfg.heal_boundaries)
            .map(|n| EdgeChunks {
                leading: if n > 1 { LEADING_EDGE_CHUNKS } else { 0 },
                ids: HashSet::new(),
                frames: Vec::new(),
            });
        let held = match edges {
            Some(_) => {
                LEADING_EDGE_CHUNKS
                    * (self.inner.cfg.chunker.max as usize + dooz_chunker::FRAME_OVERHEAD)
            }
            None => 0,
        };
        let mut ing = self
            .start_ingest(tenant, store, algorithms, fence, held)
            .await?;
        ing.edges = edges;
        let fed = match ing.feed(&mut body, max_size).await {
            Ok(()) => ing.drain().await,
            Err(e) => Err(e),
        };
        match fed {
            Ok(()) => Ok(ing.into_staged()),
            Err(e) => {
                ing.abandon().await;
                Err(e)
            }
        }
    }

    /// An ingest with its working memory reserved and nothing read yet:
    /// `ingest` feeds it a body; boundary healing (`heal.rs`) feeds it the
    /// plaintext around part boundaries, and reserves `extra` bytes for
    /// reading it in the same reservation (never holding one while waiting
    /// for another).
    pub(super) async fn start_ingest(
        &self,
        tenant: &Tenant,
        store: &PackStore,
        algorithms: Vec<ChecksumAlgorithm>,
        fence: Option<LeaseFence>,
        extra: usize,
    ) -> EngineResult<Ingest> {
        let keyring = self.keyring_of(tenant).await?;
        let cfg = &self.inner.cfg;
        let chunker = Chunker::new(cfg.chunker, keyring.cdc_seed())
            .map_err(|e| EngineError::Internal(format!("chunker: {e}")))?;
        // Before the first byte of the body is read (s3s reads lazily).
        let mut working = self
            .inner
            .budget
            .reserve(cfg.upload_reservation() + extra)
            .await?;
        let first_pack = working
            .split(cfg.pack_capacity())
            .ok_or_else(|| EngineError::Internal("upload reservation too small".into()))?;
        Ok(Ingest {
            _working: working,
            spare: Some(first_pack),
            engine: self.clone(),
            keyring,
            store: store.clone(),
            tenant_id: tenant.id,
            chunker,
            hashes: Checksums::new(algorithms),
            size: 0,
            chunks: Vec::new(),
            seen: HashSet::new(),
            pending: Vec::new(),
            pending_bytes: 0,
            sealing: None,
            pack: None,
            uploads: JoinSet::new(),
            new_chunks: Vec::new(),
            new_packs: Vec::new(),
            shipped: Vec::new(),
            fence,
            stored_bytes: 0,
            dedup_chunks: 0,
            edges: None,
        })
    }
}

/// New chunks are counted where they are sealed; here the rest of a write.
pub(crate) fn record_write(logical: u64, stored: u64, dedup_chunks: u64) {
    METRICS.logical_bytes.inc_by(logical);
    METRICS.stored_bytes.inc_by(stored);
    METRICS
        .chunks
        .with_label_values(&["deduplicated"])
        .inc_by(dedup_chunks);
}

type Sealed = Vec<(ChunkId, Vec<u8>, u32)>;

struct OpenPack {
    id: [u8; 16],
    writer: PackWriter,
    memory: Reservation,
}

pub(super) struct Ingest {
    /// The working set (see `EngineConfig::ingest_working_set`).
    _working: Reservation,
    /// A pack buffer's reservation not in use: the one reserved up front, or
    /// one back from a finished pack write.
    spare: Option<Reservation>,
    engine: Engine,
    keyring: Arc<Keyring>,
    store: PackStore,
    tenant_id: crate::meta::TenantId,
    chunker: Chunker,
    hashes: Checksums,
    size: u64,
    chunks: Vec<ManifestChunk>,
    /// Chunks already handled in this upload (repeats inside one object).
    seen: HashSet<ChunkId>,
    pending: Vec<(ChunkId, Vec<u8>)>,
    pending_bytes: usize,
    /// At most one batch is being sealed on the blocking pool while the next
    /// one is read and chunked.
    sealing: Option<JoinHandle<Sealed>>,
    pack: Option<OpenPack>,
    uploads: JoinSet<(Result<NewPack, StoreError>, Reservation)>,
    new_chunks: Vec<NewChunk>,
    new_packs: Vec<NewPack>,
    /// Every pack whose upload started, finished or not.
    shipped: Vec<[u8; 16]>,
    fence: Option<LeaseFence>,
    stored_bytes: u64,
    dedup_chunks: u64,
    /// For a multipart part: its edge chunks, packed apart at the end.
    edges: Option<EdgeChunks>,
}

/// A part's first chunks that go to its edge pack (see `Engine::ingest`).
const LEADING_EDGE_CHUNKS: usize = 2;

/// The chunks at a part's edges (see `Engine::ingest`).
struct EdgeChunks {
    /// How many of the next chunks cut are leading edges.
    leading: usize,
    ids: HashSet<ChunkId>,
    /// Sealed edge frames, packed by `drain`.
    frames: Vec<(ChunkId, Vec<u8>, u32)>,
}

impl Ingest {
    /// Reads, chunks and packs the whole body.
    async fn feed<S, E>(&mut self, body: &mut S, max_size: u64) -> EngineResult<()>
    where
        S: Stream<Item = Result<Bytes, E>> + Send + Unpin,
        E: std::fmt::Display,
    {
        while let Some(item) = body.next().await {
            let bytes = item.map_err(|e| EngineError::BodyRead(e.to_string()))?;
            self.size += bytes.len() as u64;
            if self.size > max_size {
                return Err(EngineError::EntityTooLarge { max: max_size });
            }
            self.hashes.update(&bytes);
            for slice in bytes.chunks(FEED_SLICE) {
                for chunk in self.chunker.push(slice) {
                    self.add_chunk(chunk, false).await?;
                }
            }
        }
        if let Some(chunk) = self.chunker.finish() {
            self.add_chunk(chunk, true).await?;
        }
        Ok(())
    }

    /// Chunks plaintext that is not a request body (no checksums, no size
    /// cap): the bytes around part boundaries being re-chunked.
    pub(super) async fn push_plain(&mut self, bytes: &[u8]) -> EngineResult<()> {
        self.size += bytes.len() as u64;
        for slice in bytes.chunks(FEED_SLICE) {
            for chunk in self.chunker.push(slice) {
                self.add_chunk(chunk, false).await?;
            }
        }
        Ok(())
    }

    /// Forgets plaintext pushed since the last chunk was cut (see
    /// `Chunker::discard`).
    pub(super) fn discard_buffered(&mut self) {
        let n = self.chunker.discard();
        self.size -= n as u64;
    }

    /// Whether what was pushed so far ends exactly at a chunk boundary.
    pub(super) fn at_cut(&self) -> bool {
        self.chunker.buffered() == 0
    }

    /// Cuts the stream here, as the end of a body would.
    pub(super) async fn cut(&mut self) -> EngineResult<()> {
        if let Some(chunk) = self.chunker.finish() {
            self.add_chunk(chunk, false).await?;
        }
        Ok(())
    }

    /// The manifest entries of every chunk cut so far.
    pub(super) fn chunks(&self) -> &[ManifestChunk] {
        &self.chunks
    }

    /// After a failure: lets the pack uploads in flight end, then deletes
    /// every pack this upload wrote (nothing references them).
    pub(super) async fn abandon(mut self) {
        while self.uploads.join_next().await.is_some() {}
        self.engine.discard_packs(&self.store, &self.shipped).await;
    }

    /// `last`: the chunk the end of the body cut.
    async fn add_chunk(&mut self, plaintext: Vec<u8>, last: bool) -> EngineResult<()> {
        let id = self.keyring.chunk_id(&plaintext);
        if let Some(e) = &mut self.edges {
            let leading = e.leading > 0;
            e.leading = e.leading.saturating_sub(1);
            if leading || last {
                e.ids.insert(id);
            }
        }
        let plain_len = u32::try_from(plaintext.len())
            .map_err(|_| EngineError::Internal("chunk larger than 4 GiB".into()))?;
        self.chunks.push(ManifestChunk::whole(id.0, plain_len));
        if !self.seen.insert(id) {
            self.dedup_chunks += 1;
            return Ok(());
        }
        self.pending_bytes += plaintext.len();
        self.pending.push((id, plaintext));
        if self.pending_bytes >= LOOKUP_BATCH_BYTES || self.pending.len() >= LOOKUP_BATCH_CHUNKS {
            self.flush_pending().await?;
        }
        Ok(())
    }

    /// Looks the pending chunks up, and hands the new ones to a sealing job.
    async fn flush_pending(&mut self) -> EngineResult<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let batch = std::mem::take(&mut self.pending);
        self.pending_bytes = 0;
        let ids: Vec<[u8; 32]> = batch.iter().map(|(id, _)| id.0).collect();
        let existing: HashSet<[u8; 32]> = self
            .engine
            .inner
            .meta
            .lookup_chunks(self.tenant_id, &ids)
            .await?
            .into_iter()
            .collect();
        let fresh: Vec<(ChunkId, Vec<u8>)> = batch
            .into_iter()
            .filter(|(id, _)| !existing.contains(&id.0))
            .collect();
        self.dedup_chunks += existing.len() as u64;
        self.drain_sealing().await?;
        if fresh.is_empty() {
            return Ok(());
        }
        let keyring = self.keyring.clone();
        let policy = self.engine.inner.cfg.compression;
        self.sealing = Some(tokio::task::spawn_blocking(move || {
            fresh
                .into_iter()
                .map(|(id, pt)| {
                    let frame = keyring.seal_chunk(&id, &pt, &policy);
                    (id, frame, pt.len() as u32)
                })
                .collect()
        }));
        Ok(())
    }

    /// Waits for the sealing job and appends its frames to packs.
    async fn drain_sealing(&mut self) -> EngineResult<()> {
        let Some(job) = self.sealing.take() else {
            return Ok(());
        };
        let sealed = job
            .await
            .map_err(|e| EngineError::Internal(format!("sealing task: {e}")))?;
        METRICS
            .chunks
            .with_label_values(&["new"])
            .inc_by(sealed.len() as u64);
        for (id, frame, plain_len) in sealed {
            if let Some(e) = &mut self.edges
                && e.ids.contains(&id)
            {
                e.frames.push((id, frame, plain_len));
                continue;
            }
            self.append_frame(id, &frame, plain_len).await?;
        }
        Ok(())
    }

    async fn append_frame(
        &mut self,
        id: ChunkId,
        frame: &[u8],
        plain_len: u32,
    ) -> EngineResult<()> {
        if self.pack.is_none() {
            let capacity = self.engine.inner.cfg.pack_capacity();
            let memory = self.pack_memory(capacity).await?;
            let pack_id: [u8; 16] = rand::random();
            self.pack = Some(OpenPack {
                id: pack_id,
                writer: PackWriter::with_capacity(pack_id, capacity),
                memory,
            });
        }
        let epoch = self.keyring.current_epoch();
        let Some(pack) = self.pack.as_mut() else {
            return Err(EngineError::Internal("no open pack".into()));
        };
        let loc = pack.writer.push_frame(id, frame, plain_len);
        self.stored_bytes += u64::from(loc.len);
        self.new_chunks.push(NewChunk {
            id: id.0,
            loc: ChunkLocation {
                pack_id: pack.id,
                offset: loc.offset,
                len: loc.len,
                plain_len,
                epoch,
            },
        });
        if pack.writer.len() >= self.engine.inner.cfg.pack_target {
            self.ship_pack().await?;
        }
        Ok(())
    }

    /// Memory for the next pack buffer without waiting on the shared budget
    /// (this upload already holds its share): the spare one, a free one, or
    /// the one of this upload's oldest pack once its write finishes.
    async fn pack_memory(&mut self, capacity: usize) -> EngineResult<Reservation> {
        loop {
            if let Some(r) = self.spare.take() {
                return Ok(r);
            }
            if let Some(r) = self.engine.inner.budget.try_reserve(capacity) {
                return Ok(r);
            }
            if self.uploads.is_empty() {
                // The spare, the open pack or a write in flight always holds it.
                return Err(EngineError::Internal("upload lost its pack budget".into()));
            }
            self.join_one_upload().await?;
        }
    }

    /// Seals the open pack and starts its upload; waits when too many are in flight.
    async fn ship_pack(&mut self) -> EngineResult<()> {
        let Some(pack) = self.pack.take() else {
            return Ok(());
        };
        let bytes = Bytes::from(pack.writer.finish(&self.keyring));
        let store = self.store.clone();
        let memory = pack.memory;
        let id = pack.id;
        let fence = self.fence.clone();
        self.shipped.push(id);
        self.uploads.spawn(async move {
            let size = bytes.len() as u64;
            let res = store.put_pack(&id, bytes).await;
            let res = res.map(|()| NewPack {
                id,
                backend: store.name().to_owned(),
                size,
                fence,
            });
            (res, memory)
        });
        while self.uploads.len() >= self.engine.inner.cfg.packs_in_flight {
            self.join_one_upload().await?;
        }
        Ok(())
    }

    async fn join_one_upload(&mut self) -> EngineResult<()> {
        if let Some(res) = self.uploads.join_next().await {
            let (pack, memory) =
                res.map_err(|e| EngineError::Internal(format!("pack upload task: {e}")))?;
            // Keep one buffer's worth for the next pack; more goes back.
            if self.spare.is_none() {
                self.spare = Some(memory);
            }
            self.new_packs.push(pack?);
        }
        Ok(())
    }

    /// Packs what is still pending and waits for every pack upload.
    pub(super) async fn drain(&mut self) -> EngineResult<()> {
        self.flush_pending().await?;
        self.drain_sealing().await?;
        self.ship_pack().await?;
        if let Some(edges) = self.edges.take()
            && !edges.frames.is_empty()
        {
            for (id, frame, plain_len) in edges.frames {
                self.append_frame(id, &frame, plain_len).await?;
            }
            self.ship_pack().await?;
        }
        while !self.uploads.is_empty() {
            self.join_one_upload().await?;
        }
        Ok(())
    }

    pub(super) fn into_staged(self) -> Staged {
        Staged {
            chunks: self.chunks,
            new_chunks: self.new_chunks,
            new_packs: self.new_packs,
            size: self.size,
            checksums: self.hashes.finish(),
            stored_bytes: self.stored_bytes,
            dedup_chunks: self.dedup_chunks,
        }
    }
}
