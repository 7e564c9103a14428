//! Object and bucket tagging under S3's rules: at most 10 tags on an object
//! version and 50 on a bucket, keys of 1–128 and values of 0–256 Unicode
//! characters (letters, digits, spaces and `+ - = . _ : / @`), unique keys,
//! no `aws:` prefix. Tags belong to one version: each version has its own.

use super::{Action, Engine, EngineError, EngineResult, Principal};
use crate::meta::{Bucket, Tags};

pub const MAX_OBJECT_TAGS: usize = 10;
pub const MAX_BUCKET_TAGS: usize = 50;
pub const MAX_TAG_KEY_CHARS: usize = 128;
pub const MAX_TAG_VALUE_CHARS: usize = 256;

/// Whose tags are checked: the limits and messages differ.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TagTarget {
    Object,
    Bucket,
}

fn allowed_char(c: char) -> bool {
    c.is_alphanumeric() || c.is_whitespace() || "+-=._:/@".contains(c)
}

/// Checks a tag set given as (key, value) pairs in request order and
/// returns it as a set. A missing key or value is MalformedXML (the caller
/// passes None for them).
pub fn validate_tags(
    pairs: Vec<(Option<String>, Option<String>)>,
    target: TagTarget,
) -> EngineResult<Tags> {
    match target {
        TagTarget::Object if pairs.len() > MAX_OBJECT_TAGS => {
            return Err(EngineError::BadRequest(format!(
                "Object tags cannot be greater than {MAX_OBJECT_TAGS}"
            )));
        }
        TagTarget::Bucket if pairs.len() > MAX_BUCKET_TAGS => {
            return Err(EngineError::InvalidTag(format!(
                "Bucket tag count cannot be greater than {MAX_BUCKET_TAGS}"
            )));
        }
        _ => {}
    }
    let mut tags = Tags::new();
    for (key, value) in pairs {
        let (Some(key), Some(value)) = (key, value) else {
            return Err(EngineError::MalformedXml(
                "The XML you provided was not well-formed or did not validate against our published schema".into(),
            ));
        };
        check_tag(&key, &value)?;
        if tags.insert(key, value).is_some() {
            return Err(EngineError::InvalidTag(
                "Cannot provide multiple Tags with the same key".into(),
            ));
        }
    }
    Ok(tags)
}

fn check_tag(key: &str, value: &str) -> EngineResult<()> {
    let key_chars = key.chars().count();
    if key_chars == 0 {
        return Err(EngineError::InvalidTag(
            "The TagKey you have provided is invalid".into(),
        ));
    }
    if key_chars > MAX_TAG_KEY_CHARS {
        return Err(EngineError::InvalidTag(format!(
            "The TagKey you have provided is too long, max {MAX_TAG_KEY_CHARS}"
        )));
    }
    if value.chars().count() > MAX_TAG_VALUE_CHARS {
        return Err(EngineError::InvalidTag(format!(
            "The TagValue you have provided is too long, max {MAX_TAG_VALUE_CHARS}"
        )));
    }
    if key.to_ascii_lowercase().starts_with("aws:") {
        return Err(EngineError::InvalidTag(
            "Your TagKey cannot be prefixed with aws:".into(),
        ));
    }
    if !key.chars().all(allowed_char) {
        return Err(EngineError::InvalidTag(
            "The TagKey you have provided is invalid".into(),
        ));
    }
    if !value.chars().all(allowed_char) {
        return Err(EngineError::InvalidTag(
            "The TagValue you have provided is invalid".into(),
        ));
    }
    Ok(())
}

/// The `x-amz-tagging` header of PutObject, CreateMultipartUpload and
/// CopyObject: URL query syntax, `k1=v1&k2=v2` (a key without `=` has an
/// empty value).
pub fn parse_tagging_header(header: &str) -> EngineResult<Tags> {
    let mut pairs = Vec::new();
    for part in header.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = part.split_once('=').unwrap_or((part, ""));
        pairs.push((Some(query_decode(k)?), Some(query_decode(v)?)));
    }
    validate_tags(pairs, TagTarget::Object)
}

/// Percent-decoding of one query component (`+` is a space).
fn query_decode(s: &str) -> EngineResult<String> {
    let bad = || {
        EngineError::InvalidArgument("The header 'x-amz-tagging' shall be encoded as UTF-8 then URLEncoded URL query parameters without tag name duplicates.".into())
    };
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = b.get(i + 1..i + 3).ok_or_else(bad)?;
                let hex = std::str::from_utf8(hex).map_err(|_| bad())?;
                out.push(u8::from_str_radix(hex, 16).map_err(|_| bad())?);
                i += 2;
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|_| bad())
}

impl Engine {
    /// GetObjectTagging: the version's id (as shown) and its tags.
    pub async fn object_tags(
        &self,
        who: &Principal,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
    ) -> EngineResult<(Option<String>, Tags)> {
        let b = self.authorize(who, bucket, Action::Read).await?;
        let (v, _) = self.readable_version(bucket, key, version_id).await?;
        Ok((super::shown_version_id(&b, &v.version_id), v.attrs.tags))
    }

    /// PutObjectTagging / DeleteObjectTagging (an empty set): replaces the
    /// version's tags; returns its id as shown.
    pub async fn set_object_tags(
        &self,
        who: &Principal,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
        tags: &Tags,
    ) -> EngineResult<Option<String>> {
        let b = self.authorize(who, bucket, Action::Write).await?;
        // A delete marker answers 404 / 405, as for GET.
        self.readable_version(bucket, key, version_id).await?;
        let version = self
            .inner
            .meta
            .set_object_tags(bucket, key, version_id, tags)
            .await?;
        Ok(super::shown_version_id(&b, &version))
    }

    /// GetBucketTagging: NoSuchTagSet when the bucket has none.
    pub async fn bucket_tags(&self, who: &Principal, bucket: &str) -> EngineResult<Tags> {
        self.authorize(who, bucket, Action::Read).await?;
        self.inner
            .meta
            .bucket_tags(bucket)
            .await?
            .filter(|t| !t.is_empty())
            .ok_or_else(|| EngineError::NoSuchTagSet(bucket.to_owned()))
    }

    /// PutBucketTagging (Some) / DeleteBucketTagging (None).
    pub async fn set_bucket_tags(
        &self,
        who: &Principal,
        bucket: &str,
        tags: Option<&Tags>,
    ) -> EngineResult<Bucket> {
        let b = self.authorize(who, bucket, Action::ManageBuckets).await?;
        self.inner.meta.set_bucket_tags(bucket, tags).await?;
        Ok(b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(k: &str, v: &str) -> (Option<String>, Option<String>) {
        (Some(k.into()), Some(v.into()))
    }

    #[test]
    fn limits_and_characters() {
        let ok = validate_tags(
            vec![pair("a", ""), pair("ü b+-=._:/@", "x y")],
            TagTarget::Object,
        );
        assert_eq!(ok.map(|t| t.len()).ok(), Some(2));
        let eleven = (0..11).map(|i| pair(&format!("k{i}"), "v")).collect();
        assert!(matches!(
            validate_tags(eleven, TagTarget::Object),
            Err(EngineError::BadRequest(_))
        ));
        let eleven = (0..11).map(|i| pair(&format!("k{i}"), "v")).collect();
        assert!(validate_tags(eleven, TagTarget::Bucket).is_ok());
        let k128 = "é".repeat(128);
        assert!(validate_tags(vec![pair(&k128, "v")], TagTarget::Object).is_ok());
        for bad in [
            vec![pair(&"k".repeat(129), "v")],
            vec![pair("k", &"v".repeat(257))],
            vec![pair("a", "1"), pair("a", "2")],
            vec![pair("AWS:x", "1")],
            vec![pair("", "1")],
            vec![pair("a*", "1")],
        ] {
            assert!(matches!(
                validate_tags(bad, TagTarget::Object),
                Err(EngineError::InvalidTag(_))
            ),);
        }
        assert!(matches!(
            validate_tags(vec![(Some("a".into()), None)], TagTarget::Object),
            Err(EngineError::MalformedXml(_))
        ));
    }

    #[test]
    fn header_is_url_query_syntax() {
        let t = parse_tagging_header("a=1&b%20c=d+e&empty").unwrap_or_default();
        assert_eq!(t.get("a").map(String::as_str), Some("1"));
        assert_eq!(t.get("b c").map(String::as_str), Some("d e"));
        assert_eq!(t.get("empty").map(String::as_str), Some(""));
        assert!(parse_tagging_header("a=%zz").is_err());
        assert!(matches!(
            parse_tagging_header("a=1&a=2"),
            Err(EngineError::InvalidTag(_))
        ));
    }
}
