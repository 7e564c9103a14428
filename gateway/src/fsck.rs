//! `dooz fsck`: the metadata checks of the store plus what only the backends
//! can answer — does every pack the metadata references exist, with the size
//! recorded, and (with --read-packs) does its index open under the tenant's
//! keys and list the frames the chunk rows point at. Space a collector would
//! reclaim (orphan packs, staging files, dead bytes) is reported as findings
//! with sizes; it does not make the store inconsistent.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;

use crate::engine::{Engine, EngineError, EngineResult};
use crate::meta::{FsckReport, PackKey, TenantSpace};

#[derive(Debug, Default)]
pub struct Report {
    pub meta: FsckReport,
    pub packs_checked: u64,
    pub missing_packs: Vec<(String, PackKey)>,
    pub size_mismatches: Vec<(PackKey, u64, u64)>,
    pub unreadable_packs: Vec<(PackKey, String)>,
    /// Packs on a backend that no metadata references (garbage, not an error).
    pub unreferenced_packs: u64,
    /// Those packs: (backend, pack, bytes). Uploads in flight have some too.
    pub orphan_packs: Vec<(String, PackKey, u64)>,
    /// Staging files interrupted writes left on local backends: (backend, path, bytes).
    pub staging_files: Vec<(String, PathBuf, u64)>,
    /// Live, dead and reclaimable bytes per tenant, from the metadata.
    pub space: Vec<TenantSpace>,
}

impl Report {
    pub fn is_clean(&self) -> bool {
        self.meta.is_clean()
            && self.missing_packs.is_empty()
            && self.size_mismatches.is_empty()
            && self.unreadable_packs.is_empty()
    }

    pub fn to_json(&self) -> serde_json::Value {
        let hexes = |v: &[PackKey]| v.iter().map(hex::encode).collect::<Vec<_>>();
        serde_json::json!({
            "clean": self.is_clean(),
            "objects_checked": self.meta.objects_checked,
            "parts_checked": self.meta.parts_checked,
            "chunks_checked": self.meta.chunks_checked,
            "packs_checked": self.packs_checked,
            "refcount_mismatches": self.meta.refcount_mismatches.iter().map(|(t, c, stored, actual)| serde_json::json!({"tenant": t, "chunk": hex::encode(c), "stored": stored, "recomputed": actual})).collect::<Vec<_>>(),
            "missing_chunks": self.meta.missing_chunks.iter().map(|(t, c)| serde_json::json!({"tenant": t, "chunk": hex::encode(c)})).collect::<Vec<_>>(),
            "missing_pack_rows": hexes(&self.meta.missing_pack_rows),
            "live_bytes_mismatches": self.meta.live_bytes_mismatches.iter().map(|(p, s, a)| serde_json::json!({"pack": hex::encode(p), "stored": s, "recomputed": a})).collect::<Vec<_>>(),
            "missing_packs": self.missing_packs.iter().map(|(b, p)| serde_json::json!({"backend": b, "pack": hex::encode(p)})).collect::<Vec<_>>(),
            "size_mismatches": self.size_mismatches.iter().map(|(p, m, b)| serde_json::json!({"pack": hex::encode(p), "metadata": m, "backend": b})).collect::<Vec<_>>(),
            "unreadable_packs": self.unreadable_packs.iter().map(|(p, e)| serde_json::json!({"pack": hex::encode(p), "error": e})).collect::<Vec<_>>(),
            "unreferenced_packs": self.unreferenced_packs,
            "orphan_packs": self.orphan_packs.iter().map(|(b, p, n)| serde_json::json!({"backend": b, "pack": hex::encode(p), "bytes": n})).collect::<Vec<_>>(),
            "staging_files": self.staging_files.iter().map(|(b, p, n)| serde_json::json!({"backend": b, "path": p, "bytes": n})).collect::<Vec<_>>(),
            "reclaimable_bytes": self.reclaimable_bytes(),
            "space": self.space,
        })
    }

    /// What a collector run (past the grace period) would free.
    pub fn reclaimable_bytes(&self) -> u64 {
        self.space.iter().map(|s| s.reclaimable_bytes).sum::<u64>()
            + self.orphan_packs.iter().map(|(_, _, n)| n).sum::<u64>()
            + self.staging_files.iter().map(|(_, _, n)| n).sum::<u64>()
    }

    pub fn render(&self) -> String {
        let m = &self.meta;
        let mut s = format!(
            "checked {} object versions, {} parts, {} chunks, {} packs\n",
            m.objects_checked, m.parts_checked, m.chunks_checked, self.packs_checked
        );
        let mut line = |what: &str, n: usize| {
            if n > 0 {
                s.push_str(&format!("  {n} {what}\n"));
            }
        };
        line("refcount mismatches", m.refcount_mismatches.len());
        line(
            "manifest chunks without a chunk row",
            m.missing_chunks.len(),
        );
        line(
            "chunk rows pointing at no pack row",
            m.missing_pack_rows.len(),
        );
        line("packs with wrong live bytes", m.live_bytes_mismatches.len());
        line("packs missing on their backend", self.missing_packs.len());
        line(
            "packs whose size differs from the metadata",
            self.size_mismatches.len(),
        );
        line(
            "packs whose index does not open",
            self.unreadable_packs.len(),
        );
        let orphan_bytes: u64 = self.orphan_packs.iter().map(|(_, _, n)| n).sum();
        if !self.orphan_packs.is_empty() {
            s.push_str(&format!(
                "  finding: {} orphan packs ({orphan_bytes} bytes) on the backends have no metadata (failed or interrupted uploads, or uploads in flight; `dooz gc` removes them after the grace period)\n",
                self.orphan_packs.len()
            ));
        }
        let staging_bytes: u64 = self.staging_files.iter().map(|(_, _, n)| n).sum();
        if !self.staging_files.is_empty() {
            s.push_str(&format!(
                "  finding: {} staging files ({staging_bytes} bytes) of interrupted pack writes\n",
                self.staging_files.len()
            ));
        }
        let live: u64 = self.space.iter().map(|t| t.live_bytes).sum();
        let dead: u64 = self.space.iter().map(|t| t.dead_bytes).sum();
        let zombie: u64 = self.space.iter().map(|t| t.zombie_bytes).sum();
        s.push_str(&format!(
            "  space: {live} live bytes, {dead} dead bytes in packs ({zombie} of them zombie chunks), {} bytes reclaimable\n",
            self.reclaimable_bytes()
        ));
        s.push_str(if self.is_clean() {
            "clean\n"
        } else {
            "INCONSISTENT\n"
        });
        s
    }
}

/// `compact_permille`: the collector's compaction threshold, for the
/// reclaimable figures.
pub async fn run(engine: &Engine, read_packs: bool, compact_permille: u32) -> EngineResult<Report> {
    let meta = engine.meta();
    let mut report = Report {
        meta: meta.fsck().await?,
        ..Default::default()
    };
    let mut on_backend: HashMap<String, HashMap<PackKey, u64>> = HashMap::new();
    for b in engine.backends().iter() {
        on_backend.insert(
            b.name().to_owned(),
            b.list_packs().await?.into_iter().collect(),
        );
        for f in b.list_staging().await? {
            report
                .staging_files
                .push((b.name().to_owned(), f.path, f.size));
        }
    }
    // Rows are read after the listings: a pack committed meanwhile is no orphan.
    let packs = meta.list_packs(None).await?;
    report.space = meta.gc_space(compact_permille).await?;
    let referenced: HashSet<PackKey> = packs.iter().map(|p| p.id).collect();
    for (backend, listed) in &on_backend {
        for (id, size) in listed {
            if !referenced.contains(id) {
                report.orphan_packs.push((backend.clone(), *id, *size));
            }
        }
    }
    report.orphan_packs.sort();
    report.unreferenced_packs = report.orphan_packs.len() as u64;
    let mut tenants = HashMap::new();
    for p in &packs {
        report.packs_checked += 1;
        let Some(present) = on_backend.get(&p.backend) else {
            report.missing_packs.push((p.backend.clone(), p.id));
            continue;
        };
        match present.get(&p.id) {
            None if missing_now(engine, p).await? => {
                report.missing_packs.push((p.backend.clone(), p.id));
            }
            None => {}
            Some(&size) if size != p.size => report.size_mismatches.push((p.id, p.size, size)),
            Some(_) => {}
        }
        if read_packs && present.contains_key(&p.id) {
            let keyring = match tenants.entry(p.tenant_id) {
                std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::hash_map::Entry::Vacant(v) => {
                    let t = meta.get_tenant(p.tenant_id).await?.ok_or_else(|| {
                        EngineError::Internal(format!("pack of unknown tenant {}", p.tenant_id))
                    })?;
                    v.insert(engine.keyring_of(&t).await?)
                }
            };
            let bytes = engine.backends().get(&p.backend)?.get_pack(&p.id).await?;
            if let Err(e) = dooz_chunker::read_pack_index(&bytes, keyring) {
                report.unreadable_packs.push((p.id, e.to_string()));
            }
        }
    }
    Ok(report)
}

/// A pack row the listing did not show: committed after the listing (the
/// pack is there now), or dropped with its pack by a collector meanwhile
/// (the row is gone now), or really missing.
async fn missing_now(engine: &Engine, p: &crate::meta::PackRecord) -> EngineResult<bool> {
    match engine.backends().get(&p.backend)?.pack_size(&p.id).await {
        Ok(_) => return Ok(false),
        Err(crate::store::StoreError::NotFound { .. }) => {}
        Err(e) => return Err(e.into()),
    }
    let row = engine.meta().pack_backends(p.tenant_id, &[p.id]).await?;
    Ok(!row.is_empty())
}
