//! Put/Get/DeleteBucketLifecycleConfiguration: S3's XML form to and from
//! the rules Dooz stores (`engine::BucketLifecycle`), refusing with S3's
//! codes what the form allows but S3 does not; and `x-amz-expiration`.

use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};

use super::DoozS3;
use super::convert::{http_date_of, millis, timestamp};
use super::errors::IntoS3;
use crate::engine::{BucketLifecycle, Expiration, NoncurrentExpiration, RuleFilter};
use crate::meta::{Millis, Tags};

type Rule = crate::engine::LifecycleRule;

fn malformed() -> s3s::S3Error {
    s3_error!(
        MalformedXML,
        "The XML you provided was not well-formed or did not validate against our published schema"
    )
}

/// A count that must be a positive integer.
fn positive(v: i32, what: &str, action: &str) -> S3Result<u32> {
    u32::try_from(v).ok().filter(|&n| n > 0).ok_or_else(|| {
        s3_error!(
            InvalidArgument,
            "'{what}' for {action} action must be a positive integer"
        )
    })
}

fn size_bound(v: Option<i64>, what: &str) -> S3Result<Option<u64>> {
    v.map(|n| {
        u64::try_from(n)
            .map_err(|_| s3_error!(InvalidArgument, "{what} must be a non-negative integer"))
    })
    .transpose()
}

fn tag_pair(t: Tag) -> S3Result<(String, String)> {
    match (t.key, t.value) {
        (Some(k), Some(v)) => Ok((k, v)),
        _ => Err(malformed()),
    }
}

fn filter_from(f: LifecycleRuleFilter) -> S3Result<RuleFilter> {
    let given = [
        f.prefix.is_some(),
        f.tag.is_some(),
        f.and.is_some(),
        f.object_size_greater_than.is_some(),
        f.object_size_less_than.is_some(),
    ];
    // One condition, or several under <And>.
    if given.iter().filter(|g| **g).count() > 1 {
        return Err(malformed());
    }
    let mut out = RuleFilter {
        prefix: f.prefix.unwrap_or_default(),
        size_greater_than: size_bound(f.object_size_greater_than, "ObjectSizeGreaterThan")?,
        size_less_than: size_bound(f.object_size_less_than, "ObjectSizeLessThan")?,
        ..Default::default()
    };
    let mut tags = Vec::new();
    if let Some(t) = f.tag {
        tags.push(tag_pair(t)?);
    }
    if let Some(a) = f.and {
        out.prefix = a.prefix.unwrap_or_default();
        out.size_greater_than = size_bound(a.object_size_greater_than, "ObjectSizeGreaterThan")?;
        out.size_less_than = size_bound(a.object_size_less_than, "ObjectSizeLessThan")?;
        for t in a.tags.unwrap_or_default() {
            tags.push(tag_pair(t)?);
        }
    }
    let mut set = Tags::new();
    for (k, v) in tags {
        if set.insert(k, v).is_some() {
            return Err(s3_error!(
                InvalidRequest,
                "Duplicate Tag Keys are not allowed."
            ));
        }
    }
    out.tags = set;
    Ok(out)
}

fn expiration_from(e: LifecycleExpiration) -> S3Result<Option<Expiration>> {
    let marker = e.expired_object_delete_marker;
    match (e.days, e.date, marker) {
        (Some(d), None, None | Some(false)) => {
            Ok(Some(Expiration::Days(positive(d, "Days", "Expiration")?)))
        }
        (None, Some(t), None | Some(false)) => Ok(Some(Expiration::Date(millis(&t)))),
        (None, None, Some(true)) => Ok(Some(Expiration::ExpiredObjectDeleteMarker)),
        (None, None, Some(false)) => Ok(None),
        _ => Err(malformed()),
    }
}

fn rule_from(r: LifecycleRule) -> S3Result<Rule> {
    if r.transitions.as_ref().is_some_and(|t| !t.is_empty())
        || r.noncurrent_version_transitions
            .as_ref()
            .is_some_and(|t| !t.is_empty())
    {
        return Err(s3_error!(
            NotImplemented,
            "Transition rules are not supported yet: Dooz has no storage classes to move objects to"
        ));
    }
    let enabled = match r.status.as_str() {
        ExpirationStatus::ENABLED => true,
        ExpirationStatus::DISABLED => false,
        _ => return Err(malformed()),
    };
    let filter = match (r.prefix, r.filter) {
        (Some(_), Some(_)) => return Err(malformed()),
        (Some(p), None) => RuleFilter {
            prefix: p,
            legacy_prefix: true,
            ..Default::default()
        },
        (None, Some(f)) => filter_from(f)?,
        (None, None) => RuleFilter::default(),
    };
    let noncurrent = match r.noncurrent_version_expiration {
        None => None,
        Some(n) => Some(NoncurrentExpiration {
            days: positive(
                n.noncurrent_days.ok_or_else(malformed)?,
                "NoncurrentDays",
                "NoncurrentVersionExpiration",
            )?,
            newer_versions: n
                .newer_noncurrent_versions
                .map(|v| positive(v, "NewerNoncurrentVersions", "NoncurrentVersionExpiration"))
                .transpose()?,
        }),
    };
    let abort_after_days = match r.abort_incomplete_multipart_upload {
        None => None,
        Some(a) => Some(positive(
            a.days_after_initiation.ok_or_else(malformed)?,
            "DaysAfterInitiation",
            "AbortIncompleteMultipartUpload",
        )?),
    };
    Ok(Rule {
        id: r.id.unwrap_or_default(),
        enabled,
        filter,
        expiration: r.expiration.map(expiration_from).transpose()?.flatten(),
        noncurrent,
        abort_after_days,
    })
}

fn tag_of(k: &str, v: &str) -> Tag {
    Tag {
        key: Some(k.to_owned()),
        value: Some(v.to_owned()),
    }
}

fn filter_to(f: &RuleFilter) -> LifecycleRuleFilter {
    let conditions = usize::from(!f.prefix.is_empty())
        + f.tags.len()
        + usize::from(f.size_greater_than.is_some())
        + usize::from(f.size_less_than.is_some());
    let gt = f.size_greater_than.and_then(|n| i64::try_from(n).ok());
    let lt = f.size_less_than.and_then(|n| i64::try_from(n).ok());
    if conditions > 1 {
        return LifecycleRuleFilter {
            and: Some(LifecycleRuleAndOperator {
                prefix: (!f.prefix.is_empty()).then(|| f.prefix.clone()),
                tags: (!f.tags.is_empty())
                    .then(|| f.tags.iter().map(|(k, v)| tag_of(k, v)).collect()),
                object_size_greater_than: gt,
                object_size_less_than: lt,
            }),
            ..Default::default()
        };
    }
    LifecycleRuleFilter {
        prefix: (conditions == 0 || !f.prefix.is_empty()).then(|| f.prefix.clone()),
        tag: f.tags.iter().next().map(|(k, v)| tag_of(k, v)),
        object_size_greater_than: gt,
        object_size_less_than: lt,
        and: None,
    }
}

fn days_out(n: u32) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

fn rule_to(r: &Rule) -> LifecycleRule {
    LifecycleRule {
        id: Some(r.id.clone()),
        status: ExpirationStatus::from_static(if r.enabled {
            ExpirationStatus::ENABLED
        } else {
            ExpirationStatus::DISABLED
        }),
        prefix: r.filter.legacy_prefix.then(|| r.filter.prefix.clone()),
        filter: (!r.filter.legacy_prefix).then(|| filter_to(&r.filter)),
        expiration: r.expiration.map(|e| match e {
            Expiration::Days(d) => LifecycleExpiration {
                days: Some(days_out(d)),
                ..Default::default()
            },
            Expiration::Date(t) => LifecycleExpiration {
                date: Some(timestamp(t)),
                ..Default::default()
            },
            Expiration::ExpiredObjectDeleteMarker => LifecycleExpiration {
                expired_object_delete_marker: Some(true),
                ..Default::default()
            },
        }),
        noncurrent_version_expiration: r.noncurrent.map(|n| NoncurrentVersionExpiration {
            noncurrent_days: Some(days_out(n.days)),
            newer_noncurrent_versions: n.newer_versions.map(days_out),
        }),
        abort_incomplete_multipart_upload: r.abort_after_days.map(|d| {
            AbortIncompleteMultipartUpload {
                days_after_initiation: Some(days_out(d)),
            }
        }),
        transitions: None,
        noncurrent_version_transitions: None,
    }
}

/// The `x-amz-expiration` header value for an expiry and its rule.
pub(super) fn expiration_value(expiry: Option<(Millis, String)>) -> Option<String> {
    let (at, rule) = expiry?;
    Some(format!(
        "expiry-date=\"{}\", rule-id=\"{}\"",
        http_date_of(at),
        rule.replace('\\', "\\\\").replace('"', "\\\"")
    ))
}

pub async fn put_bucket_lifecycle_configuration(
    s: &DoozS3,
    req: S3Request<PutBucketLifecycleConfigurationInput>,
) -> S3Result<S3Response<PutBucketLifecycleConfigurationOutput>> {
    let who = s.principal(&req).await?;
    let i = req.input;
    let config = i.lifecycle_configuration.ok_or_else(malformed)?;
    let rules = config
        .rules
        .into_iter()
        .map(rule_from)
        .collect::<S3Result<Vec<_>>>()?;
    s.engine
        .set_bucket_lifecycle(&who, &i.bucket, Some(BucketLifecycle { rules }))
        .await
        .s3()?;
    Ok(S3Response::new(
        PutBucketLifecycleConfigurationOutput::default(),
    ))
}

pub async fn get_bucket_lifecycle_configuration(
    s: &DoozS3,
    req: S3Request<GetBucketLifecycleConfigurationInput>,
) -> S3Result<S3Response<GetBucketLifecycleConfigurationOutput>> {
    let who = s.principal(&req).await?;
    let config = s
        .engine
        .get_bucket_lifecycle(&who, &req.input.bucket)
        .await
        .s3()?;
    Ok(S3Response::new(GetBucketLifecycleConfigurationOutput {
        rules: Some(config.rules.iter().map(rule_to).collect()),
        transition_default_minimum_object_size: None,
    }))
}

pub async fn delete_bucket_lifecycle(
    s: &DoozS3,
    req: S3Request<DeleteBucketLifecycleInput>,
) -> S3Result<S3Response<DeleteBucketLifecycleOutput>> {
    let who = s.principal(&req).await?;
    s.engine
        .set_bucket_lifecycle(&who, &req.input.bucket, None)
        .await
        .s3()?;
    let mut resp = S3Response::new(DeleteBucketLifecycleOutput::default());
    resp.status = Some(http::StatusCode::NO_CONTENT);
    Ok(resp)
}
