//! Accounting reads and fsck: recompute what the reference invariants say
//! the chunk and pack rows should hold, and compare.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::MetaResult;
use super::codec::manifest_from;
use super::model::{ChunkKey, FsckReport, PackKey, PackRecord, TenantId, UsageStats};
use super::sql::{Cols, Row, Tx, Value, params};

const PACKS: &str =
    "SELECT id, tenant_id, backend, size, live_bytes, created_at FROM packs ORDER BY id";
const PACKS_OF: &str = "SELECT id, tenant_id, backend, size, live_bytes, created_at FROM packs \
     WHERE tenant_id = $1 ORDER BY id";

const OBJECT_TOTALS: &str = "SELECT COUNT(*), CAST(COALESCE(SUM(size), 0) AS BIGINT) \
     FROM objects WHERE NOT delete_marker";
const OBJECT_TOTALS_OF: &str = "SELECT COUNT(*), CAST(COALESCE(SUM(o.size), 0) AS BIGINT) \
     FROM objects o JOIN buckets b ON b.name = o.bucket \
     WHERE NOT o.delete_marker AND b.tenant_id = $1";
const CHUNK_TOTALS: &str = "SELECT COUNT(*), CAST(COALESCE(SUM(plain_len), 0) AS BIGINT), \
     CAST(COALESCE(SUM(len), 0) AS BIGINT) FROM chunks WHERE state = 'live'";
const CHUNK_TOTALS_OF: &str = "SELECT COUNT(*), CAST(COALESCE(SUM(plain_len), 0) AS BIGINT), \
     CAST(COALESCE(SUM(len), 0) AS BIGINT) FROM chunks WHERE state = 'live' AND tenant_id = $1";
const PACK_TOTALS: &str = "SELECT COUNT(*), CAST(COALESCE(SUM(size), 0) AS BIGINT) FROM packs";
const PACK_TOTALS_OF: &str =
    "SELECT COUNT(*), CAST(COALESCE(SUM(size), 0) AS BIGINT) FROM packs WHERE tenant_id = $1";

// fsck pages through the big tables by key so that no result set holds
// every manifest at once; it runs in one snapshot, so pages agree.
const PAGE: i64 = 500;
const OBJECT_PAGE: &str = "SELECT o.bucket, o.key, o.version_id, b.tenant_id, o.manifest \
     FROM objects o JOIN buckets b ON b.name = o.bucket \
     WHERE (o.bucket, o.key, o.version_id) > ($1, $2, $3) \
     ORDER BY o.bucket, o.key, o.version_id LIMIT $4";
const PART_PAGE: &str = "SELECT p.upload_id, p.part_number, u.tenant_id, p.manifest \
     FROM parts p JOIN multipart_uploads u ON u.upload_id = p.upload_id \
     WHERE (p.upload_id, p.part_number) > ($1, $2) \
     ORDER BY p.upload_id, p.part_number LIMIT $3";
const CHUNK_PAGE: &str = "SELECT tenant_id, chunk_id, pack_id, len, refcount, state FROM chunks \
     WHERE (tenant_id, chunk_id) > ($1, $2) ORDER BY tenant_id, chunk_id LIMIT $3";
const PACK_LIVE: &str = "SELECT id, live_bytes FROM packs";

pub(crate) async fn list_packs(
    tx: &mut dyn Tx,
    tenant: Option<TenantId>,
) -> MetaResult<Vec<PackRecord>> {
    let rows = match tenant {
        None => tx.query(PACKS, &[]).await?,
        Some(t) => tx.query(PACKS_OF, &params![t]).await?,
    };
    rows.iter().map(|row| pack_record(row)).collect()
}

/// A packs row selected as `id, tenant_id, backend, size, live_bytes, created_at`.
pub(crate) fn pack_record(row: &[Value]) -> MetaResult<PackRecord> {
    let c = Cols::new(row, "packs");
    Ok(PackRecord {
        id: c.pack_key(0)?,
        tenant_id: c.tenant(1)?,
        backend: c.text(2)?,
        size: c.u64(3)?,
        live_bytes: c.u64(4)?,
        created_at: c.i64(5)?,
    })
}

async fn totals(tx: &mut dyn Tx, sql: &'static str, params: &[Value]) -> MetaResult<Vec<u64>> {
    let row = tx.query_opt(sql, params).await?.unwrap_or_default();
    let c = Cols::new(&row, "usage");
    (0..row.len()).map(|i| c.u64(i)).collect()
}

pub(crate) async fn usage(tx: &mut dyn Tx, tenant: Option<TenantId>) -> MetaResult<UsageStats> {
    let (objects, chunks, packs) = match tenant {
        None => (
            totals(tx, OBJECT_TOTALS, &[]).await?,
            totals(tx, CHUNK_TOTALS, &[]).await?,
            totals(tx, PACK_TOTALS, &[]).await?,
        ),
        Some(t) => (
            totals(tx, OBJECT_TOTALS_OF, &params![t]).await?,
            totals(tx, CHUNK_TOTALS_OF, &params![t]).await?,
            totals(tx, PACK_TOTALS_OF, &params![t]).await?,
        ),
    };
    let at = |v: &[u64], i: usize| v.get(i).copied().unwrap_or(0);
    Ok(UsageStats {
        objects: at(&objects, 0),
        logical_bytes: at(&objects, 1),
        chunks: at(&chunks, 0),
        chunk_plain_bytes: at(&chunks, 1),
        chunk_stored_bytes: at(&chunks, 2),
        packs: at(&packs, 0),
        pack_bytes: at(&packs, 1),
    })
}

type Expected = HashMap<(TenantId, ChunkKey), i64>;

async fn count_object_refs(tx: &mut dyn Tx, expected: &mut Expected) -> MetaResult<u64> {
    let mut checked = 0;
    let mut cursor = (String::new(), String::new(), String::new());
    loop {
        let rows: Vec<Row> = tx
            .query(OBJECT_PAGE, &params![&cursor.0, &cursor.1, &cursor.2, PAGE])
            .await?;
        for row in &rows {
            let c = Cols::new(row, "objects");
            cursor = (c.text(0)?, c.text(1)?, c.text(2)?);
            let tenant = c.tenant(3)?;
            let whose = || format!("{}/{} version {}", cursor.0, cursor.1, cursor.2);
            for (id, n) in manifest_from(c.bytes(4)?, &whose)?.ref_counts() {
                *expected.entry((tenant, id)).or_default() += n;
            }
            checked += 1;
        }
        if (rows.len() as i64) < PAGE {
            return Ok(checked);
        }
    }
}

async fn count_part_refs(tx: &mut dyn Tx, expected: &mut Expected) -> MetaResult<u64> {
    let mut checked = 0;
    let mut cursor = (String::new(), -1i64);
    loop {
        let rows = tx
            .query(PART_PAGE, &params![&cursor.0, cursor.1, PAGE])
            .await?;
        for row in &rows {
            let c = Cols::new(row, "parts");
            cursor = (c.text(0)?, c.i64(1)?);
            let tenant = c.tenant(2)?;
            let whose = || format!("part {} of upload {}", cursor.1, cursor.0);
            for (id, n) in manifest_from(c.bytes(3)?, &whose)?.ref_counts() {
                *expected.entry((tenant, id)).or_default() += n;
            }
            checked += 1;
        }
        if (rows.len() as i64) < PAGE {
            return Ok(checked);
        }
    }
}

pub(crate) async fn fsck(tx: &mut dyn Tx) -> MetaResult<FsckReport> {
    let mut report = FsckReport::default();
    let mut expected = Expected::new();
    report.objects_checked = count_object_refs(tx, &mut expected).await?;
    report.parts_checked = count_part_refs(tx, &mut expected).await?;

    let mut stored_live: HashMap<PackKey, u64> = HashMap::new();
    for row in tx.query(PACK_LIVE, &[]).await? {
        let c = Cols::new(&row, "packs");
        stored_live.insert(c.pack_key(0)?, c.u64(1)?);
    }

    let mut computed_live: BTreeMap<PackKey, u64> = BTreeMap::new();
    let mut missing_packs = BTreeSet::new();
    let mut cursor = (String::new(), Vec::<u8>::new());
    loop {
        let rows = tx
            .query(CHUNK_PAGE, &params![&cursor.0, cursor.1.as_slice(), PAGE])
            .await?;
        for row in &rows {
            let c = Cols::new(row, "chunks");
            let tenant = c.tenant(0)?;
            let id = c.chunk_key(1)?;
            cursor = (c.text(0)?, id.to_vec());
            let pack = c.pack_key(2)?;
            let len = c.u64(3)?;
            let stored = c.i64(4)?;
            let want = expected.remove(&(tenant, id)).unwrap_or(0);
            if stored != want {
                report.refcount_mismatches.push((tenant, id, stored, want));
            }
            if !stored_live.contains_key(&pack) {
                missing_packs.insert(pack);
            }
            if c.text(5)? == "live" {
                *computed_live.entry(pack).or_default() += len;
            }
            report.chunks_checked += 1;
        }
        if (rows.len() as i64) < PAGE {
            break;
        }
    }

    let mut missing: Vec<(TenantId, ChunkKey)> = expected.into_keys().collect();
    missing.sort();
    report.missing_chunks = missing;
    report.missing_pack_rows = missing_packs.into_iter().collect();
    let mut packs: Vec<(&PackKey, &u64)> = stored_live.iter().collect();
    packs.sort();
    for (pack, stored) in packs {
        let computed = computed_live.get(pack).copied().unwrap_or(0);
        if *stored != computed {
            report
                .live_bytes_mismatches
                .push((*pack, *stored, computed));
        }
    }
    Ok(report)
}
