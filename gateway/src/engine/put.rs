//! The write path: stream → FastCDC → keyed ids → dedup lookup → zstd → AEAD
//! frame → pack → backend → one metadata commit. Nothing holds a whole
//! object: memory per upload is bounded by a lookup batch, the pack being
//! filled and the packs in flight, and all uploads together by a global
//! budget of pack buffers.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use dooz_chunker::{ChunkId, Chunker, Keyring, PackWriter};
use futures::{Stream, StreamExt};
use tokio::sync::OwnedSemaphorePermit;
use tokio::task::{JoinHandle, JoinSet};

use super::checksum::{
    ChecksumAlgorithm, Checksums, ComputedChecksums, ExpectedChecksums, etag_of,
};
use super::validate::{validate_key, validate_user_metadata};
use super::{Action, BUDGET_UNIT, Engine, EngineError, EngineResult, Principal, now_millis};
use crate::meta::{
    ChunkLocation, Manifest, ManifestChunk, NewChunk, NewPack, ObjectAttrs, ObjectCommit,
    ObjectLock, Tenant, WriteConditions,
};
use crate::metrics::METRICS;
use crate::store::{PackStore, StoreError};

/// Chunks are looked up in the metadata store in batches of about this many
/// plaintext bytes (or `LOOKUP_BATCH_CHUNKS` chunks), so a large upload costs
/// one query per batch rather than one per chunk.
const LOOKUP_BATCH_BYTES: usize = 4 * 1024 * 1024;
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
            && let Some(existing) = self
                .inner
                .meta
                .get_object(&req.bucket, &req.key, None)
                .await?
            && !existing.delete_marker
        {
            return Err(EngineError::PreconditionFailed);
        }
        let tenant = self.tenant(bucket.tenant_id).await?;
        let store = self.inner.backends.get(&bucket.backend)?.clone();
        let staged = self
            .ingest(
                &tenant,
                &store,
                body,
                req.expected.algorithms(),
                super::MAX_OBJECT_SIZE,
            )
            .await?;
        if let Some(expected) = req.content_length
            && expected != staged.size
        {
            return Err(EngineError::IncompleteBody {
                expected,
                received: staged.size,
            });
        }
        let checksums = std::mem::take(&mut req.expected).verify(&staged.checksums)?;
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

    /// Streams a body into packs on `store`; returns once every pack is on the
    /// backend. Commits nothing.
    pub(crate) async fn ingest<S, E>(
        &self,
        tenant: &Tenant,
        store: &PackStore,
        mut body: S,
        algorithms: Vec<ChecksumAlgorithm>,
        max_size: u64,
    ) -> EngineResult<Staged>
    where
        S: Stream<Item = Result<Bytes, E>> + Send + Unpin,
        E: std::fmt::Display,
    {
        let keyring = self.keyring_of(tenant).await?;
        let cfg = &self.inner.cfg;
        let chunker = Chunker::new(cfg.chunker, keyring.cdc_seed())
            .map_err(|e| EngineError::Internal(format!("chunker: {e}")))?;
        let mut ing = Ingest {
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
            stored_bytes: 0,
            dedup_chunks: 0,
        };
        while let Some(item) = body.next().await {
            let bytes = item.map_err(|e| EngineError::BodyRead(e.to_string()))?;
            ing.size += bytes.len() as u64;
            if ing.size > max_size {
                return Err(EngineError::EntityTooLarge { max: max_size });
            }
            ing.hashes.update(&bytes);
            for chunk in ing.chunker.push(&bytes) {
                ing.add_chunk(chunk).await?;
            }
        }
        if let Some(chunk) = ing.chunker.finish() {
            ing.add_chunk(chunk).await?;
        }
        ing.finish().await
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
    permit: OwnedSemaphorePermit,
}

struct Ingest {
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
    uploads: JoinSet<Result<NewPack, StoreError>>,
    new_chunks: Vec<NewChunk>,
    new_packs: Vec<NewPack>,
    stored_bytes: u64,
    dedup_chunks: u64,
}

impl Ingest {
    async fn add_chunk(&mut self, plaintext: Vec<u8>) -> EngineResult<()> {
        let id = self.keyring.chunk_id(&plaintext);
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
            let units = u32::try_from(capacity.div_ceil(BUDGET_UNIT)).unwrap_or(u32::MAX);
            let waited = Instant::now();
            let permit = self
                .engine
                .inner
                .budget
                .clone()
                .acquire_many_owned(units)
                .await
                .map_err(|_| EngineError::Internal("upload budget closed".into()))?;
            METRICS
                .memory_budget_wait
                .observe(waited.elapsed().as_secs_f64());
            let pack_id: [u8; 16] = rand::random();
            self.pack = Some(OpenPack {
                id: pack_id,
                writer: PackWriter::with_capacity(pack_id, capacity),
                permit,
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

    /// Seals the open pack and starts its upload; waits when too many are in flight.
    async fn ship_pack(&mut self) -> EngineResult<()> {
        let Some(pack) = self.pack.take() else {
            return Ok(());
        };
        let bytes = Bytes::from(pack.writer.finish(&self.keyring));
        let store = self.store.clone();
        let permit = pack.permit;
        let id = pack.id;
        self.uploads.spawn(async move {
            let size = bytes.len() as u64;
            let res = store.put_pack(&id, bytes).await;
            drop(permit);
            res.map(|()| NewPack {
                id,
                backend: store.name().to_owned(),
                size,
            })
        });
        while self.uploads.len() >= self.engine.inner.cfg.packs_in_flight {
            self.join_one_upload().await?;
        }
        Ok(())
    }

    async fn join_one_upload(&mut self) -> EngineResult<()> {
        if let Some(res) = self.uploads.join_next().await {
            let pack =
                res.map_err(|e| EngineError::Internal(format!("pack upload task: {e}")))??;
            self.new_packs.push(pack);
        }
        Ok(())
    }

    async fn finish(mut self) -> EngineResult<Staged> {
        self.flush_pending().await?;
        self.drain_sealing().await?;
        self.ship_pack().await?;
        while !self.uploads.is_empty() {
            self.join_one_upload().await?;
        }
        Ok(Staged {
            chunks: self.chunks,
            new_chunks: self.new_chunks,
            new_packs: self.new_packs,
            size: self.size,
            checksums: self.hashes.finish(),
            stored_bytes: self.stored_bytes,
            dedup_chunks: self.dedup_chunks,
        })
    }
}
