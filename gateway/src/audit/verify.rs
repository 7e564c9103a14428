//! `dooz audit verify`: walks the chain from the retention anchor to the
//! newest row and recomputes every link. A row edited, inserted or removed,
//! an anchor moved without the purge record that must announce it, or time
//! running backwards is a break. Reads page by page (bounded memory).

use super::AuditError;
use crate::meta::{AuditAnchor, ChainKey, MetaStore, audit::chain_hash};

const PAGE: usize = 1000;
/// Breaks listed in full; more are only counted.
const MAX_LISTED: usize = 100;

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Break {
    /// Rows between `expected` and `found` are missing.
    Gap { expected: u64, found: u64 },
    /// The row's stored hash is not the hash of its content and predecessor.
    Altered { seq: u64 },
    /// The row is older than its predecessor.
    TimeBackwards { seq: u64 },
    /// The anchor moved past rows with no purge record saying so.
    UnannouncedAnchor { seq: u64 },
    /// The row the operator expected (`--expect SEQ:HASH`) is missing or different.
    Expected { seq: u64, reason: String },
}

impl std::fmt::Display for Break {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Break::Gap { expected, found } => write!(
                f,
                "rows {expected}..{} are missing (next row is {found})",
                found.saturating_sub(1)
            ),
            Break::Altered { seq } => write!(f, "row {seq} was altered (hash mismatch)"),
            Break::TimeBackwards { seq } => write!(f, "row {seq} is older than the row before it"),
            Break::UnannouncedAnchor { seq } => write!(
                f,
                "rows up to {seq} were removed without a retention (audit:purge) record"
            ),
            Break::Expected { seq, reason } => write!(f, "expected row {seq}: {reason}"),
        }
    }
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct VerifyReport {
    pub rows: u64,
    pub anchor_seq: u64,
    /// The newest row: (seq, hash). Keep it somewhere else and pass it back
    /// with `--expect` to detect the newest rows being removed.
    pub head_seq: u64,
    pub head_hash: String,
    pub breaks: Vec<Break>,
    pub breaks_total: u64,
}

impl VerifyReport {
    pub fn is_intact(&self) -> bool {
        self.breaks_total == 0
    }
}

fn announces(detail: Option<&str>, anchor: &AuditAnchor) -> bool {
    let Some(d) = detail.and_then(|d| serde_json::from_str::<serde_json::Value>(d).ok()) else {
        return false;
    };
    d["anchor_seq"].as_u64() == Some(anchor.seq)
        && d["anchor_hash"].as_str() == Some(hex::encode(anchor.hash).as_str())
}

fn found(report: &mut VerifyReport, b: Break) {
    report.breaks_total += 1;
    if report.breaks.len() < MAX_LISTED {
        report.breaks.push(b);
    }
}

/// Checks the whole chain. `expect`: a (seq, hash) recorded earlier, e.g. the
/// head printed by a previous run.
pub async fn verify(
    meta: &dyn MetaStore,
    key: &ChainKey,
    expect: Option<(u64, [u8; 32])>,
) -> Result<VerifyReport, AuditError> {
    let anchor = meta.audit().audit_anchor().await?;
    let mut report = VerifyReport {
        rows: 0,
        anchor_seq: anchor.seq,
        head_seq: anchor.seq,
        head_hash: hex::encode(anchor.hash),
        breaks: Vec::new(),
        breaks_total: 0,
    };
    let (mut prev, mut prev_at, mut expected) = (anchor.hash, anchor.at, anchor.seq + 1);
    let mut announced = anchor.seq == 0;
    let mut expect_seen = false;
    // Rows at or below the anchor are leftovers of an interrupted purge.
    let mut after = anchor.seq;
    loop {
        let page = meta.audit().audit_chain_page(after, PAGE).await?;
        let Some(last) = page.last() else { break };
        after = last.seq;
        for row in &page {
            let r = &row.record;
            if row.seq != expected {
                found(
                    &mut report,
                    Break::Gap {
                        expected,
                        found: row.seq,
                    },
                );
            } else if chain_hash(key, &prev, row.seq, r) != row.hash {
                found(&mut report, Break::Altered { seq: row.seq });
            }
            if r.at < prev_at {
                found(&mut report, Break::TimeBackwards { seq: row.seq });
            }
            if r.action == "audit:purge" && announces(r.detail.as_deref(), &anchor) {
                announced = true;
            }
            if let Some((seq, hash)) = expect
                && seq == row.seq
            {
                expect_seen = true;
                if hash != row.hash {
                    found(
                        &mut report,
                        Break::Expected {
                            seq,
                            reason: format!(
                                "hash is {}, expected {}",
                                hex::encode(row.hash),
                                hex::encode(hash)
                            ),
                        },
                    );
                }
            }
            // The stored hash continues the chain, so one altered row is one
            // break, not a cascade.
            prev = row.hash;
            prev_at = r.at;
            expected = row.seq + 1;
            report.rows += 1;
            report.head_seq = row.seq;
            report.head_hash = hex::encode(row.hash);
        }
        if page.len() < PAGE {
            break;
        }
    }
    if !announced {
        found(&mut report, Break::UnannouncedAnchor { seq: anchor.seq });
    }
    if let Some((seq, hash)) = expect
        && !expect_seen
    {
        let reason = if seq > report.head_seq {
            format!(
                "the chain ends at {}: newer rows were removed",
                report.head_seq
            )
        } else if seq > anchor.seq {
            "missing".to_owned()
        } else if seq == anchor.seq && hash != anchor.hash {
            format!("the retention anchor has hash {}", hex::encode(anchor.hash))
        } else {
            String::new() // removed by retention, announced above
        };
        if !reason.is_empty() {
            found(&mut report, Break::Expected { seq, reason });
        }
    }
    Ok(report)
}

/// `SEQ:HEX` as printed by `dooz audit verify`.
pub fn parse_expect(s: &str) -> Result<(u64, [u8; 32]), AuditError> {
    let bad = || {
        AuditError::Invalid(format!(
            "--expect {s:?}: use SEQ:HASH as printed by `dooz audit verify`"
        ))
    };
    let (seq, hash) = s.split_once(':').ok_or_else(bad)?;
    let seq = seq.parse().map_err(|_| bad())?;
    let hash: [u8; 32] = hex::decode(hash)
        .ok()
        .and_then(|h| h.try_into().ok())
        .ok_or_else(bad)?;
    Ok((seq, hash))
}
