//! The built-in named policies: the three fixed roles Dooz had before
//! policies (`admin`, `read-write`, `read-only`), written as identity
//! policies so that every existing key keeps exactly its rights. Their names
//! are reserved: a tenant cannot create a policy with one of them.

use std::sync::LazyLock;

use super::document::{Kind, PolicyDocument};

/// Everything in the tenant, buckets included.
pub const ADMIN: &str = r#"{
  "Version": "2012-10-17",
  "Statement": [{"Sid": "Everything", "Effect": "Allow", "Action": "s3:*", "Resource": "*"}]
}"#;

/// Read and write objects; cannot create, delete or configure buckets.
pub const READ_WRITE: &str = r#"{
  "Version": "2012-10-17",
  "Statement": [
    {"Sid": "Read", "Effect": "Allow", "Action": ["s3:Get*", "s3:List*"], "Resource": "*"},
    {"Sid": "WriteObjects", "Effect": "Allow",
     "Action": ["s3:PutObject", "s3:PutObjectTagging", "s3:PutObjectVersionTagging",
                "s3:PutObjectRetention", "s3:PutObjectLegalHold",
                "s3:DeleteObject", "s3:DeleteObjectVersion",
                "s3:DeleteObjectTagging", "s3:DeleteObjectVersionTagging",
                "s3:AbortMultipartUpload"],
     "Resource": "*"}
  ]
}"#;

/// List and read only.
pub const READ_ONLY: &str = r#"{
  "Version": "2012-10-17",
  "Statement": [{"Sid": "Read", "Effect": "Allow", "Action": ["s3:Get*", "s3:List*"], "Resource": "*"}]
}"#;

/// (name, what it grants, document)
pub const BUILTIN: &[(&str, &str, &str)] = &[
    ("admin", "everything in the tenant, buckets included", ADMIN),
    (
        "read-write",
        "read and write objects; cannot create, delete or configure buckets",
        READ_WRITE,
    ),
    ("read-only", "list and read only", READ_ONLY),
];

static PARSED: LazyLock<Vec<(&'static str, Option<PolicyDocument>)>> = LazyLock::new(|| {
    BUILTIN
        .iter()
        .map(|(name, _, text)| (*name, PolicyDocument::parse(text, Kind::Identity).ok()))
        .collect()
});

/// The parsed built-in policy of that name.
pub fn builtin(name: &str) -> Option<&'static PolicyDocument> {
    PARSED
        .iter()
        .find(|(n, _)| *n == name)
        .and_then(|(_, d)| d.as_ref())
}

pub fn is_builtin(name: &str) -> bool {
    BUILTIN.iter().any(|(n, _, _)| *n == name)
}

/// Names of custom policies: 1 to 128 letters, digits and `+=,.@_-`, as
/// IAM allows.
pub fn valid_policy_name(name: &str) -> bool {
    (1..=128).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+=,.@_-".contains(&b))
}
