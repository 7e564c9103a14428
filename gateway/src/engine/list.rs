//! Listings with prefix, delimiter and markers.

use super::{Action, Engine, EngineResult, Principal};
use crate::meta::ObjectSummary;
use crate::metrics::METRICS;

#[derive(Clone, Debug, Default)]
pub struct ListParams {
    pub prefix: String,
    pub delimiter: Option<String>,
    /// Exclusive: list keys (and prefixes) strictly after this.
    pub after: Option<String>,
    pub max_keys: usize,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ListOutcome {
    pub objects: Vec<ObjectSummary>,
    pub common_prefixes: Vec<String>,
    pub truncated: bool,
    /// The last key or common prefix returned (the next marker) when truncated.
    pub next_marker: Option<String>,
}

/// Rows a delimiter listing asks for first; later pages adapt (see
/// `list_objects`).
const FIRST_DELIMITED_PAGE: usize = 32;

/// The smallest string greater than every string that starts with `p`
/// (as far as UTF-8 keys go): listing resumes after it to skip a whole
/// common prefix in one step.
fn past_prefix(p: &str) -> String {
    format!("{p}{}", char::MAX)
}

impl Engine {
    pub async fn list_objects(
        &self,
        who: &Principal,
        bucket: &str,
        params: &ListParams,
    ) -> EngineResult<ListOutcome> {
        self.authorize(who, bucket, Action::Read).await?;
        let meta = &self.inner.meta;
        let mut out = ListOutcome::default();
        if params.max_keys == 0 {
            return Ok(out);
        }
        let delimiter = params.delimiter.as_deref().filter(|d| !d.is_empty());
        let mut cursor = params.after.clone();
        // A marker inside a common prefix that was already returned must
        // not produce that prefix again.
        if let (Some(d), Some(after)) = (delimiter, params.after.as_deref())
            && let Some(rest) = after.strip_prefix(params.prefix.as_str())
            && let Some(i) = rest.find(d)
            && after.len() == params.prefix.len() + i + d.len()
        {
            cursor = Some(past_prefix(after));
        }
        // With a delimiter, rows inside a common prefix after its first are
        // skipped, and the next query seeks past the prefix. So that a
        // prefix holding many keys costs few rows, a page asks for at most
        // twice the entries the previous one produced, plus one: every page
        // starts with a row that produces an entry, so all pages together
        // read at most FIRST_DELIMITED_PAGE + 3 × (entries returned) rows.
        let mut page_size = if delimiter.is_some() {
            FIRST_DELIMITED_PAGE
        } else {
            1000
        };
        loop {
            let want = params.max_keys - out.objects.len() - out.common_prefixes.len();
            let page = meta
                .list_objects(
                    bucket,
                    &params.prefix,
                    cursor.as_deref(),
                    want.min(page_size).clamp(1, 1000),
                )
                .await?;
            METRICS.list_rows.inc_by(page.items.len() as u64);
            let exhausted = !page.truncated;
            let mut skip_past: Option<String> = None;
            let mut produced = 0usize;
            for obj in page.items {
                if let Some(sp) = &skip_past
                    && obj.key.starts_with(sp.as_str())
                {
                    continue;
                }
                if out.objects.len() + out.common_prefixes.len() == params.max_keys {
                    out.truncated = true;
                    return Ok(out);
                }
                produced += 1;
                let rest = &obj.key[params.prefix.len()..];
                match delimiter.and_then(|d| rest.find(d).map(|i| (i, d))) {
                    Some((i, d)) => {
                        let cp = obj.key[..params.prefix.len() + i + d.len()].to_owned();
                        out.next_marker = Some(cp.clone());
                        out.common_prefixes.push(cp.clone());
                        cursor = Some(past_prefix(&cp));
                        skip_past = Some(cp);
                    }
                    None => {
                        out.next_marker = Some(obj.key.clone());
                        cursor = Some(obj.key.clone());
                        out.objects.push(obj);
                    }
                }
            }
            page_size = (2 * produced + 1).clamp(1, 1000);
            let full = out.objects.len() + out.common_prefixes.len() == params.max_keys;
            if full {
                // More only if anything lies beyond the cursor.
                let peek = meta
                    .list_objects(bucket, &params.prefix, cursor.as_deref(), 1)
                    .await?;
                out.truncated = !peek.items.is_empty();
                if !out.truncated {
                    out.next_marker = None;
                }
                return Ok(out);
            }
            if exhausted && skip_past.is_none() {
                out.next_marker = None;
                return Ok(out);
            }
            if exhausted {
                // The page ended inside a skipped prefix; the cursor already
                // jumps past it, so one more query settles whether more exist.
                let peek = meta
                    .list_objects(bucket, &params.prefix, cursor.as_deref(), 1)
                    .await?;
                if peek.items.is_empty() {
                    out.next_marker = None;
                    return Ok(out);
                }
            }
        }
    }
}
