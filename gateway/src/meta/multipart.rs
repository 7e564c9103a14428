//! Multipart uploads: their parts hold chunk references of their own until
//! the upload completes (references move to the object) or is aborted
//! (references are released).

use super::codec::{
    attrs_from_json, attrs_to_json, bare_etag, checksums_from_json, checksums_to_json,
    manifest_from, to_i64,
};
use super::manifest::Manifest;
use super::model::{
    CommitOutcome, Millis, MultipartUpload, ObjectCommit, Page, Part, PartCommit, TenantId,
};
use super::objects::{
    check_commit_conditions, fetch_limit, key_lock, lock_bucket_for, page, prefix_successor,
    require_bucket, store_version,
};
use super::refs::{self, RefChanges};
use super::sql::{Cols, Row, Tx, lock_key, params};
use super::{MetaError, MetaResult};

const INSERT_UPLOAD: &str = "INSERT INTO multipart_uploads \
     (upload_id, bucket, key, tenant_id, attrs, checksum_algorithm, created_at, object_lock) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING RETURNING upload_id";
const GET_UPLOAD: &str = "SELECT upload_id, bucket, key, tenant_id, attrs, checksum_algorithm, created_at, object_lock \
     FROM multipart_uploads WHERE upload_id = $1";
const UPLOAD_SHARED: &str =
    "SELECT bucket, key, tenant_id FROM multipart_uploads WHERE upload_id = $1 FOR SHARE";
const UPLOAD_EXCLUSIVE: &str =
    "SELECT bucket, key, tenant_id FROM multipart_uploads WHERE upload_id = $1 FOR UPDATE";
const UPLOAD_EXISTS: &str = "SELECT upload_id FROM multipart_uploads WHERE upload_id = $1";
const DELETE_UPLOAD: &str = "DELETE FROM multipart_uploads WHERE upload_id = $1";

const LIST_FROM_TO: &str = "SELECT upload_id, bucket, key, tenant_id, attrs, checksum_algorithm, created_at, object_lock \
     FROM multipart_uploads WHERE bucket = $1 AND key >= $2 AND key < $3 \
     ORDER BY key, upload_id LIMIT $4";
const LIST_FROM: &str = "SELECT upload_id, bucket, key, tenant_id, attrs, checksum_algorithm, created_at, object_lock \
     FROM multipart_uploads WHERE bucket = $1 AND key >= $2 \
     ORDER BY key, upload_id LIMIT $3";
const LIST_AFTER_TO: &str = "SELECT upload_id, bucket, key, tenant_id, attrs, checksum_algorithm, created_at, object_lock \
     FROM multipart_uploads WHERE bucket = $1 AND (key, upload_id) > ($2, $3) AND key < $4 \
     ORDER BY key, upload_id LIMIT $5";
const LIST_AFTER: &str = "SELECT upload_id, bucket, key, tenant_id, attrs, checksum_algorithm, created_at, object_lock \
     FROM multipart_uploads WHERE bucket = $1 AND (key, upload_id) > ($2, $3) \
     ORDER BY key, upload_id LIMIT $4";

const PART_MANIFEST: &str = "SELECT manifest FROM parts WHERE upload_id = $1 AND part_number = $2";
const DELETE_PART: &str = "DELETE FROM parts WHERE upload_id = $1 AND part_number = $2";
const INSERT_PART: &str = "INSERT INTO parts \
     (upload_id, part_number, size, etag, checksums, created_at, manifest) \
     VALUES ($1, $2, $3, $4, $5, $6, $7)";
const ALL_PARTS: &str = "SELECT part_number, etag, manifest FROM parts \
     WHERE upload_id = $1 ORDER BY part_number";
const LIST_PARTS: &str = "SELECT part_number, size, etag, checksums, created_at, manifest FROM parts \
     WHERE upload_id = $1 AND part_number > $2 ORDER BY part_number LIMIT $3";
const DELETE_PARTS: &str = "DELETE FROM parts WHERE upload_id = $1";

fn upload_from(row: &Row) -> MetaResult<MultipartUpload> {
    let c = Cols::new(row, "multipart_uploads");
    let upload_id = c.text(0)?;
    let whose = || format!("multipart upload {upload_id}");
    let attrs = attrs_from_json(&c.text(4)?, &whose)?;
    Ok(MultipartUpload {
        bucket: c.text(1)?,
        key: c.text(2)?,
        tenant_id: c.tenant(3)?,
        attrs,
        checksum_algorithm: c.opt_text(5)?,
        created_at: c.i64(6)?,
        object_lock: c
            .opt_text(7)?
            .map(|j| serde_json::from_str(&j))
            .transpose()
            .map_err(|e| MetaError::Corrupt(format!("object lock of {}: {e}", whose())))?,
        upload_id,
    })
}

pub(crate) async fn create(tx: &mut dyn Tx, u: &MultipartUpload) -> MetaResult<()> {
    let bucket = lock_bucket_for(tx, &u.bucket, u.tenant_id).await?;
    if u.object_lock.is_some() && bucket.object_lock.is_none() {
        return Err(MetaError::InvalidRequest(
            "Bucket is missing Object Lock Configuration".into(),
        ));
    }
    let object_lock = u
        .object_lock
        .map(|l| serde_json::to_string(&l))
        .transpose()
        .map_err(|e| MetaError::Internal(format!("encoding an object lock: {e}")))?;
    let rows = tx
        .query(
            INSERT_UPLOAD,
            &params![
                u.upload_id.as_str(),
                u.bucket.as_str(),
                u.key.as_str(),
                u.tenant_id,
                attrs_to_json(&u.attrs)?,
                u.checksum_algorithm.as_deref(),
                u.created_at,
                object_lock,
            ],
        )
        .await?;
    if rows.is_empty() {
        return Err(MetaError::AlreadyExists {
            what: "multipart upload",
            name: u.upload_id.clone(),
        });
    }
    Ok(())
}

pub(crate) async fn get(tx: &mut dyn Tx, upload_id: &str) -> MetaResult<Option<MultipartUpload>> {
    let row = tx.query_opt(GET_UPLOAD, &params![upload_id]).await?;
    row.as_ref().map(upload_from).transpose()
}

pub(crate) async fn list(
    tx: &mut dyn Tx,
    bucket: &str,
    prefix: &str,
    after: Option<(&str, &str)>,
    limit: usize,
) -> MetaResult<Page<MultipartUpload>> {
    require_bucket(tx, bucket).await?;
    let n = fetch_limit(limit);
    let upper = prefix_successor(prefix);
    // A marker before the prefix range does not narrow it.
    let rows = match (after.filter(|(k, _)| *k >= prefix), upper) {
        (None, Some(u)) => {
            tx.query(LIST_FROM_TO, &params![bucket, prefix, u, n])
                .await?
        }
        (None, None) => tx.query(LIST_FROM, &params![bucket, prefix, n]).await?,
        (Some((k, id)), Some(u)) => {
            tx.query(LIST_AFTER_TO, &params![bucket, k, id, u, n])
                .await?
        }
        (Some((k, id)), None) => tx.query(LIST_AFTER, &params![bucket, k, id, n]).await?,
    };
    let items = rows
        .iter()
        .map(upload_from)
        .collect::<MetaResult<Vec<_>>>()?;
    Ok(page(items, limit))
}

struct UploadRow {
    bucket: String,
    key: String,
    tenant: TenantId,
}

async fn lock_upload(tx: &mut dyn Tx, upload_id: &str, exclusive: bool) -> MetaResult<UploadRow> {
    let sql = if exclusive {
        UPLOAD_EXCLUSIVE
    } else {
        UPLOAD_SHARED
    };
    let Some(row) = tx.query_opt(sql, &params![upload_id]).await? else {
        return Err(MetaError::NoSuchUpload(upload_id.to_owned()));
    };
    let c = Cols::new(&row, "multipart_uploads");
    Ok(UploadRow {
        bucket: c.text(0)?,
        key: c.text(1)?,
        tenant: c.tenant(2)?,
    })
}

struct StoredPart {
    number: u32,
    etag: String,
    manifest: Manifest,
}

async fn stored_parts(tx: &mut dyn Tx, upload_id: &str) -> MetaResult<Vec<StoredPart>> {
    let rows = tx.query(ALL_PARTS, &params![upload_id]).await?;
    let mut parts = Vec::with_capacity(rows.len());
    for row in &rows {
        let c = Cols::new(row, "parts");
        let number = c.u32(0)?;
        let whose = || format!("part {number} of upload {upload_id}");
        parts.push(StoredPart {
            number,
            etag: c.text(1)?,
            manifest: manifest_from(c.bytes(2)?, &whose)?,
        });
    }
    Ok(parts)
}

pub(crate) async fn commit_part(
    tx: &mut dyn Tx,
    commit: &PartCommit,
    now: Millis,
) -> MetaResult<()> {
    let (upload_id, number) = (commit.upload_id.as_str(), commit.part.part_number);
    // Concurrent uploads of the same part number must not both keep the
    // references of the part they replace.
    tx.lock_key(lock_key("part", &[upload_id, &number.to_string()]))
        .await?;
    let upload = lock_upload(tx, upload_id, false).await?;
    if upload.tenant != commit.tenant_id {
        return Err(MetaError::Internal(format!(
            "upload {upload_id} belongs to tenant {}, not to the committing tenant {}",
            upload.tenant, commit.tenant_id
        )));
    }
    let mut changes = RefChanges::default();
    changes.add(&commit.part.manifest);
    let old = tx
        .query_opt(PART_MANIFEST, &params![upload_id, number])
        .await?;
    if let Some(row) = &old {
        let whose = || format!("part {number} of upload {upload_id}");
        changes.release(&manifest_from(Cols::new(row, "parts").bytes(0)?, &whose)?);
    }
    refs::apply(
        tx,
        commit.tenant_id,
        changes,
        &commit.new_chunks,
        &commit.new_packs,
        now,
    )
    .await?;
    if old.is_some() {
        tx.execute(DELETE_PART, &params![upload_id, number]).await?;
    }
    let p = &commit.part;
    tx.execute(
        INSERT_PART,
        &params![
            upload_id,
            number,
            to_i64(p.size, "part size")?,
            p.etag.as_str(),
            checksums_to_json(&p.checksums)?,
            p.created_at,
            p.manifest.encode(),
        ],
    )
    .await?;
    Ok(())
}

pub(crate) async fn list_parts(
    tx: &mut dyn Tx,
    upload_id: &str,
    after: u32,
    limit: usize,
) -> MetaResult<Page<Part>> {
    if tx
        .query_opt(UPLOAD_EXISTS, &params![upload_id])
        .await?
        .is_none()
    {
        return Err(MetaError::NoSuchUpload(upload_id.to_owned()));
    }
    let rows = tx
        .query(LIST_PARTS, &params![upload_id, after, fetch_limit(limit)])
        .await?;
    let mut items = Vec::with_capacity(rows.len());
    for row in &rows {
        let c = Cols::new(row, "parts");
        let part_number = c.u32(0)?;
        let whose = || format!("part {part_number} of upload {upload_id}");
        items.push(Part {
            part_number,
            size: c.u64(1)?,
            etag: c.text(2)?,
            checksums: checksums_from_json(&c.text(3)?, &whose)?,
            created_at: c.i64(4)?,
            manifest: manifest_from(c.bytes(5)?, &whose)?,
        });
    }
    Ok(page(items, limit))
}

/// The parts the completed manifest names must be stored with the ETag the
/// client gave and exactly the chunks the manifest lists for them: a part
/// replaced since the engine read it is an invalid part, not a silent mix.
fn check_chosen_parts(
    upload_id: &str,
    manifest: &Manifest,
    stored: &[StoredPart],
) -> MetaResult<()> {
    let invalid = |n: u32, why: &str| MetaError::NotFound {
        what: "part",
        name: format!("{upload_id} part {n} ({why})"),
    };
    let covered: u64 = manifest
        .parts
        .iter()
        .map(|p| u64::from(p.chunk_count))
        .sum();
    if !manifest.parts.is_empty() && covered != manifest.chunks.len() as u64 {
        return Err(MetaError::Internal(format!(
            "completed manifest of {upload_id}: parts cover {covered} chunks, it lists {}",
            manifest.chunks.len()
        )));
    }
    let mut offset = 0usize;
    for mp in &manifest.parts {
        let count = mp.chunk_count as usize;
        // `stored` is in part-number order (ALL_PARTS sorts it).
        let Ok(at) = stored.binary_search_by_key(&mp.part_number, |s| s.number) else {
            return Err(invalid(mp.part_number, "not uploaded"));
        };
        let sp = &stored[at];
        if bare_etag(&sp.etag) != bare_etag(&mp.etag) {
            return Err(invalid(mp.part_number, "ETag differs"));
        }
        if manifest.chunks.get(offset..offset + count) != Some(sp.manifest.chunks.as_slice()) {
            return Err(invalid(mp.part_number, "changed since it was listed"));
        }
        offset += count;
    }
    Ok(())
}

pub(crate) async fn complete(
    tx: &mut dyn Tx,
    upload_id: &str,
    commit: &ObjectCommit,
    joined: &Manifest,
    now: Millis,
) -> MetaResult<CommitOutcome> {
    tx.lock_key(key_lock(&commit.bucket, &commit.key)).await?;
    let upload = lock_upload(tx, upload_id, true).await?;
    if upload.bucket != commit.bucket || upload.key != commit.key {
        return Err(MetaError::NoSuchUpload(upload_id.to_owned()));
    }
    if upload.tenant != commit.tenant_id {
        return Err(MetaError::Internal(format!(
            "upload {upload_id} belongs to tenant {}, not to the committing tenant {}",
            upload.tenant, commit.tenant_id
        )));
    }
    let bucket = lock_bucket_for(tx, &commit.bucket, commit.tenant_id).await?;
    check_commit_conditions(tx, commit).await?;
    let parts = stored_parts(tx, upload_id).await?;
    check_chosen_parts(upload_id, joined, &parts)?;
    if joined.size() != commit.manifest.size() {
        return Err(MetaError::Internal(format!(
            "completed manifest of {upload_id} holds {} bytes, its parts {}",
            commit.manifest.size(),
            joined.size()
        )));
    }
    // Every part's references go; the object's manifest adds back those of
    // the chosen parts (their refcounts do not move at all), plus the
    // re-chunked boundary chunks that replace some of them.
    let mut changes = RefChanges::default();
    for p in &parts {
        changes.release(&p.manifest);
    }
    tx.execute(DELETE_PARTS, &params![upload_id]).await?;
    tx.execute(DELETE_UPLOAD, &params![upload_id]).await?;
    store_version(tx, commit, &bucket, changes, now).await
}

pub(crate) async fn abort(tx: &mut dyn Tx, upload_id: &str, now: Millis) -> MetaResult<()> {
    let upload = lock_upload(tx, upload_id, true).await?;
    let mut changes = RefChanges::default();
    for p in stored_parts(tx, upload_id).await? {
        changes.release(&p.manifest);
    }
    refs::apply(tx, upload.tenant, changes, &[], &[], now).await?;
    tx.execute(DELETE_PARTS, &params![upload_id]).await?;
    tx.execute(DELETE_UPLOAD, &params![upload_id]).await?;
    Ok(())
}
