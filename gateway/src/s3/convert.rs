//! Between s3s DTO values and the engine's records.

use s3s::dto::{ETag, ETagCondition, Timestamp, TimestampFormat};

/// Millis since the epoch as an s3s timestamp.
pub fn timestamp(ms: i64) -> Timestamp {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    Timestamp::from(t)
}

pub fn millis(t: &Timestamp) -> i64 {
    let t: time::OffsetDateTime = t.clone().into();
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

/// Our stored ETags carry their quotes; s3s wants the bare value.
pub fn etag(stored: &str) -> ETag {
    ETag::Strong(stored.trim_matches('"').to_owned())
}

/// An If-Match / If-None-Match value as the engine compares it.
pub fn etag_condition(c: &ETagCondition) -> String {
    match c {
        ETagCondition::Any => "*".to_owned(),
        ETagCondition::ETag(e) => e.value().to_owned(),
    }
}

/// HTTP-date text of an Expires header, as it is stored.
pub fn http_date(t: &Timestamp) -> Option<String> {
    let mut buf = Vec::new();
    t.format(TimestampFormat::HttpDate, &mut buf).ok()?;
    String::from_utf8(buf).ok()
}

/// HTTP-date text of a millisecond time (Last-Modified of error responses).
pub fn http_date_of(ms: i64) -> String {
    http_date(&timestamp(ms)).unwrap_or_default()
}

pub fn parse_http_date(s: &str) -> Option<Timestamp> {
    Timestamp::parse(TimestampFormat::HttpDate, s).ok()
}

/// Percent-encodes for `encoding-type=url` listings: everything but
/// unreserved characters and '/'.
pub fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The five `checksum_*` fields S3 inputs and outputs carry, with their algorithm.
macro_rules! checksum_fields {
    ($x:expr) => {{
        use $crate::engine::ChecksumAlgorithm as A;
        [
            (A::Crc32, $x.checksum_crc32.clone()),
            (A::Crc32c, $x.checksum_crc32c.clone()),
            (A::Crc64Nvme, $x.checksum_crc64nvme.clone()),
            (A::Sha1, $x.checksum_sha1.clone()),
            (A::Sha256, $x.checksum_sha256.clone()),
        ]
    }};
}
pub(super) use checksum_fields;

/// The representation headers and user metadata of a write request.
macro_rules! request_attrs {
    ($i:expr) => {
        $crate::meta::ObjectAttrs {
            content_type: $i.content_type.clone(),
            content_encoding: $i.content_encoding.clone(),
            content_disposition: $i.content_disposition.clone(),
            content_language: $i.content_language.clone(),
            cache_control: $i.cache_control.clone(),
            expires: $i.expires.as_ref().and_then($crate::s3::convert::http_date),
            user_metadata: $i
                .metadata
                .clone()
                .unwrap_or_default()
                .into_iter()
                .collect(),
            ..Default::default()
        }
    };
}
pub(super) use request_attrs;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_encoding_escapes_what_clients_unquote() {
        assert_eq!(url_encode("a b+c/é"), "a%20b%2Bc/%C3%A9");
    }

    #[test]
    fn timestamps_round_trip_to_the_millisecond() {
        let ms = 1_764_000_000_123;
        assert_eq!(millis(&timestamp(ms)), ms);
        let d = http_date(&timestamp(1_764_000_000_000)).unwrap();
        assert!(d.ends_with("GMT"), "{d}");
        assert_eq!(millis(&parse_http_date(&d).unwrap()), 1_764_000_000_000);
    }
}
