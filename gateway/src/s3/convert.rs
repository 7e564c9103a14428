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
