//! S3's limits on names and sizes.

use super::EngineError;

/// 5 GiB: the largest single PUT or part S3 accepts.
pub const MAX_OBJECT_SIZE: u64 = 5 * 1024 * 1024 * 1024;
pub const MAX_KEY_LEN: usize = 1024;
/// User metadata (names and values of x-amz-meta-*) in bytes.
pub const MAX_USER_METADATA: usize = 2048;

/// The rules for general-purpose bucket names.
pub fn validate_bucket_name(name: &str) -> Result<(), EngineError> {
    let bad = |why: &str| Err(EngineError::InvalidBucketName(format!("{name}: {why}")));
    if !(3..=63).contains(&name.len()) {
        return bad("must be 3 to 63 characters long");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
    {
        return bad("only lowercase letters, digits, dots and hyphens are allowed");
    }
    let first = name.as_bytes()[0];
    let last = name.as_bytes()[name.len() - 1];
    if !(first.is_ascii_alphanumeric() && last.is_ascii_alphanumeric()) {
        return bad("must begin and end with a letter or digit");
    }
    if name.contains("..") || name.contains(".-") || name.contains("-.") {
        return bad("adjacent periods or a period next to a hyphen");
    }
    if name.parse::<std::net::Ipv4Addr>().is_ok() {
        return bad("must not be formatted as an IP address");
    }
    if name.starts_with("xn--") || name.starts_with("sthree-") || name.ends_with("-s3alias") {
        return bad("reserved prefix or suffix");
    }
    Ok(())
}

pub fn validate_key(key: &str) -> Result<(), EngineError> {
    if key.is_empty() {
        return Err(EngineError::InvalidArgument(
            "object key must not be empty".into(),
        ));
    }
    if key.len() > MAX_KEY_LEN {
        return Err(EngineError::KeyTooLong { len: key.len() });
    }
    if key.contains('\0') {
        return Err(EngineError::InvalidArgument(
            "object keys must not contain the NUL character".into(),
        ));
    }
    Ok(())
}

pub fn validate_user_metadata<'a>(
    meta: impl IntoIterator<Item = (&'a String, &'a String)>,
) -> Result<(), EngineError> {
    let total: usize = meta.into_iter().map(|(k, v)| k.len() + v.len()).sum();
    if total > MAX_USER_METADATA {
        return Err(EngineError::MetadataTooLarge);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_names() {
        for ok in ["abc", "my-bucket.data", "a1b", &"x".repeat(63)] {
            assert!(validate_bucket_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "ab",
            &"x".repeat(64),
            "Upper",
            "under_score",
            "-lead",
            "trail-",
            "a..b",
            "a.-b",
            "192.168.1.1",
            "xn--abc",
            "bucket-s3alias",
        ] {
            assert!(
                matches!(
                    validate_bucket_name(bad),
                    Err(EngineError::InvalidBucketName(_))
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn keys_and_metadata() {
        assert!(validate_key(&"k".repeat(1024)).is_ok());
        assert!(matches!(
            validate_key(&"k".repeat(1025)),
            Err(EngineError::KeyTooLong { len: 1025 })
        ));
        let mut m = std::collections::BTreeMap::new();
        m.insert("a".to_string(), "v".repeat(2047));
        assert!(validate_user_metadata(&m).is_ok());
        m.insert("b".to_string(), "v".to_string());
        assert!(matches!(
            validate_user_metadata(&m),
            Err(EngineError::MetadataTooLarge)
        ));
    }
}
