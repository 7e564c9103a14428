//! `dooz audit export`: the rows of a time range (optionally one tenant's)
//! as JSON lines or CSV, streamed page by page, so a year of a busy gateway
//! needs no more memory than one page.

use std::io::Write;

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::AuditError;
use crate::meta::{AuditFilter, AuditRow, MetaStore};

/// Rows read per query.
const PAGE: usize = 1000;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// One JSON object per line.
    Jsonl,
    /// RFC 4180 CSV with a header line; `detail` is a JSON string.
    Csv,
}

const CSV_HEADER: &str =
    "seq,at,tenant_id,actor,source,action,target,result,request_id,detail,gateway,hash\r\n";

/// Writes every matching row in (time, seq) order; returns how many.
pub async fn export(
    meta: &dyn MetaStore,
    filter: &AuditFilter,
    format: Format,
    out: &mut dyn Write,
) -> Result<u64, AuditError> {
    if format == Format::Csv {
        out.write_all(CSV_HEADER.as_bytes())?;
    }
    let mut after = None;
    let mut n = 0u64;
    loop {
        let page = meta.audit().audit_page(filter, after, PAGE).await?;
        let Some(last) = page.last() else { break };
        after = Some((last.record.at, last.seq));
        for row in &page {
            match format {
                Format::Jsonl => {
                    serde_json::to_writer(&mut *out, &json(row)).map_err(std::io::Error::other)?;
                    out.write_all(b"\n")?;
                }
                Format::Csv => out.write_all(csv_line(row).as_bytes())?,
            }
            n += 1;
        }
        if page.len() < PAGE {
            break;
        }
    }
    out.flush()?;
    Ok(n)
}

pub(super) fn rfc3339(ms: i64) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| ms.to_string())
}

fn json(row: &AuditRow) -> serde_json::Value {
    let r = &row.record;
    let detail = r.detail.as_deref().map(|d| {
        serde_json::from_str(d).unwrap_or_else(|_| serde_json::Value::String(d.to_owned()))
    });
    serde_json::json!({
        "seq": row.seq,
        "at": rfc3339(r.at),
        "at_ms": r.at,
        "tenant_id": r.tenant_id,
        "actor": r.actor,
        "source": r.source,
        "action": r.action,
        "target": r.target,
        "result": r.result,
        "request_id": r.request_id,
        "detail": detail,
        "gateway": r.gateway,
        "hash": hex::encode(row.hash),
    })
}

/// A field quoted when it must be (comma, quote, CR or LF), quotes doubled.
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\r', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

fn csv_line(row: &AuditRow) -> String {
    let r = &row.record;
    let fields = [
        row.seq.to_string(),
        rfc3339(r.at),
        r.tenant_id.clone().unwrap_or_default(),
        r.actor.clone(),
        r.source.clone(),
        r.action.clone(),
        r.target.clone(),
        r.result.clone(),
        r.request_id.clone().unwrap_or_default(),
        r.detail.clone().unwrap_or_default(),
        r.gateway.clone(),
        hex::encode(row.hash),
    ];
    let mut line = fields
        .iter()
        .map(|f| csv_field(f))
        .collect::<Vec<_>>()
        .join(",");
    line.push_str("\r\n");
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::meta::AuditRecord;

    #[test]
    fn csv_quotes_what_needs_it() {
        let row = AuditRow {
            seq: 7,
            record: AuditRecord {
                at: 0,
                tenant_id: None,
                actor: "a".into(),
                source: "s".into(),
                action: "s3:PutObject".into(),
                target: "b/with,comma \"and\" quotes\nand a line".into(),
                result: "200".into(),
                request_id: Some("R".into()),
                detail: Some("{\"x\":1}".into()),
                gateway: "g".into(),
            },
            hash: [0xab; 32],
        };
        let line = csv_line(&row);
        assert!(line.starts_with("7,1970-01-01T00:00:00Z,,a,s,s3:PutObject,\"b/with,comma \"\"and\"\" quotes\nand a line\",200,R,\"{\"\"x\"\":1}\",g,abab"));
        assert!(line.ends_with("\r\n"));
    }
}
