//! Conversions between records and column values that can fail: JSON
//! columns, manifest blobs, and integers that must fit a signed BIGINT.

use std::collections::BTreeMap;

use super::manifest::Manifest;
use super::model::{Millis, ObjectAttrs};
use super::{MetaError, MetaResult};

pub(crate) fn now_millis() -> Millis {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Sizes are u64 in records and BIGINT in the database.
pub(crate) fn to_i64(v: u64, what: &str) -> MetaResult<i64> {
    i64::try_from(v).map_err(|_| MetaError::Internal(format!("{what} {v} does not fit a BIGINT")))
}

pub(crate) fn attrs_to_json(attrs: &ObjectAttrs) -> MetaResult<String> {
    serde_json::to_string(attrs).map_err(|e| MetaError::Internal(format!("encoding attrs: {e}")))
}

pub(crate) fn attrs_from_json(json: &str, whose: &dyn Fn() -> String) -> MetaResult<ObjectAttrs> {
    serde_json::from_str(json).map_err(|e| MetaError::Corrupt(format!("attrs of {}: {e}", whose())))
}

pub(crate) fn checksums_to_json(c: &BTreeMap<String, String>) -> MetaResult<String> {
    serde_json::to_string(c).map_err(|e| MetaError::Internal(format!("encoding checksums: {e}")))
}

pub(crate) fn checksums_from_json(
    json: &str,
    whose: &dyn Fn() -> String,
) -> MetaResult<BTreeMap<String, String>> {
    serde_json::from_str(json)
        .map_err(|e| MetaError::Corrupt(format!("checksums of {}: {e}", whose())))
}

pub(crate) fn manifest_from(bytes: &[u8], whose: &dyn Fn() -> String) -> MetaResult<Manifest> {
    Manifest::decode(bytes).map_err(|e| MetaError::Corrupt(format!("manifest of {}: {e}", whose())))
}

/// Removes one layer of quotes (and a weak-validator prefix) from an ETag.
pub(crate) fn bare_etag(etag: &str) -> &str {
    let e = etag.trim();
    let e = e.strip_prefix("W/").unwrap_or(e);
    e.strip_prefix('"')
        .and_then(|s| s.strip_suffix('"'))
        .unwrap_or(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etags_compare_without_quotes() {
        assert_eq!(bare_etag("\"abc\""), "abc");
        assert_eq!(bare_etag(" abc "), "abc");
        assert_eq!(bare_etag("W/\"abc-2\""), "abc-2");
        assert_eq!(bare_etag("\"abc"), "\"abc");
    }

    #[test]
    fn sizes_beyond_bigint_are_refused() {
        assert!(to_i64(u64::MAX, "size").is_err());
        assert_eq!(to_i64(5, "size").ok(), Some(5));
    }
}
