//! `dooz fsck`: the metadata checks of the store plus what only the backends
//! can answer — does every pack the metadata references exist, with the size
//! recorded, and (with --read-packs) does its index open under the tenant's
//! keys and list the frames the chunk rows point at.

use std::collections::{HashMap, HashSet};

use crate::engine::{Engine, EngineError, EngineResult};
use crate::meta::{FsckReport, PackKey};

#[derive(Debug, Default)]
pub struct Report {
    pub meta: FsckReport,
    pub packs_checked: u64,
    pub missing_packs: Vec<(String, PackKey)>,
    pub size_mismatches: Vec<(PackKey, u64, u64)>,
    pub unreadable_packs: Vec<(PackKey, String)>,
    /// Packs on a backend that no metadata references (garbage, not an error).
    pub unreferenced_packs: u64,
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
        })
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
        if self.unreferenced_packs > 0 {
            s.push_str(&format!(
                "  note: {} packs on the backends are referenced by no metadata (left by failed uploads; GC removes them)\n",
                self.unreferenced_packs
            ));
        }
        s.push_str(if self.is_clean() {
            "clean\n"
        } else {
            "INCONSISTENT\n"
        });
        s
    }
}

pub async fn run(engine: &Engine, read_packs: bool) -> EngineResult<Report> {
    let meta = engine.meta();
    let mut report = Report {
        meta: meta.fsck().await?,
        ..Default::default()
    };
    let packs = meta.list_packs(None).await?;
    let mut on_backend: HashMap<String, HashMap<PackKey, u64>> = HashMap::new();
    for b in engine.backends().iter() {
        on_backend.insert(
            b.name().to_owned(),
            b.list_packs().await?.into_iter().collect(),
        );
    }
    let referenced: HashSet<PackKey> = packs.iter().map(|p| p.id).collect();
    report.unreferenced_packs = on_backend
        .values()
        .flat_map(|m| m.keys())
        .filter(|k| !referenced.contains(*k))
        .count() as u64;
    let mut tenants = HashMap::new();
    for p in &packs {
        report.packs_checked += 1;
        let Some(present) = on_backend.get(&p.backend) else {
            report.missing_packs.push((p.backend.clone(), p.id));
            continue;
        };
        match present.get(&p.id) {
            None => report.missing_packs.push((p.backend.clone(), p.id)),
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
