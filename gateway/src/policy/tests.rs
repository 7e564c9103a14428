//! The table-driven evaluation suite: each row is one request against a
//! set of identity policies and an optional bucket policy, with the
//! decision it must get.

use super::*;

const ALICE: &str = "arn:dooz:iam::acme:user/alice";
const ACME: &str = "arn:dooz:iam::acme:root";
const BOB: &str = "arn:dooz:iam::acme:user/bob";
const BOB_ROOT: &str = ACME;
const EVE: &str = "arn:dooz:iam::evil:user/eve";
const EVIL: &str = "arn:dooz:iam::evil:root";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Want {
    Allow,
    Deny,
    Implicit,
}
use Want::*;

struct Case {
    name: &'static str,
    identity: &'static [&'static str],
    bucket: Option<&'static str>,
    caller: Option<(&'static str, &'static str)>,
    action: &'static str,
    resource: &'static str,
    cx: &'static [(&'static str, &'static str)],
    want: Want,
}

const fn case(name: &'static str) -> Case {
    Case {
        name,
        identity: &[],
        bucket: None,
        caller: Some((ALICE, ACME)),
        action: "s3:GetObject",
        resource: "arn:aws:s3:::b/k",
        cx: &[],
        want: Implicit,
    }
}

fn decide(c: &Case) -> Decision {
    let docs: Vec<PolicyDocument> = c
        .identity
        .iter()
        .map(|t| {
            PolicyDocument::parse(t, Kind::Identity).unwrap_or_else(|e| panic!("{}: {e}", c.name))
        })
        .collect();
    let named: Vec<Named<'_>> = docs
        .iter()
        .enumerate()
        .map(|(i, d)| Named {
            name: ["p0", "p1", "p2"][i],
            doc: d,
        })
        .collect();
    let bucket = c.bucket.map(|t| {
        PolicyDocument::parse(t, Kind::Bucket).unwrap_or_else(|e| panic!("{}: {e}", c.name))
    });
    let mut cx = Context::new();
    for (k, v) in c.cx {
        if let Some(list) = v.strip_prefix("LIST:") {
            cx.set_many(
                k,
                list.split(',')
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect(),
            );
        } else {
            cx.set(k, *v);
        }
    }
    let caller = match c.caller {
        Some((arn, tenant_arn)) => Caller::User { arn, tenant_arn },
        None => Caller::Anonymous,
    };
    evaluate(
        &named,
        bucket.as_ref().map(|doc| BucketPolicy {
            doc,
            ignore_public: false,
        }),
        &Request {
            caller,
            action: c.action,
            resource: c.resource,
            context: &cx,
        },
    )
}

fn want_of(d: &Decision) -> Want {
    match d {
        Decision::Allow(_) => Allow,
        Decision::ExplicitDeny(_) => Deny,
        Decision::ImplicitDeny => Implicit,
    }
}

/// An identity policy allowing `action` on `*` under one condition.
macro_rules! cond {
    ($op:literal, $key:literal, $val:literal) => {
        concat!(
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"*","Condition":{""#,
            $op,
            r#"":{""#,
            $key,
            r#"":"#,
            $val,
            "}}}]}"
        )
    };
}

const ALLOW_GET: &str = r#"{"Version":"2012-10-17","Statement":[{"Sid":"Get","Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*"}]}"#;
const DENY_GET: &str = r#"{"Version":"2012-10-17","Statement":{"Sid":"NoGet","Effect":"Deny","Action":"s3:GetObject","Resource":"*"}}"#;
const CI_BUILDS: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["s3:PutObject","s3:AbortMultipartUpload"],"Resource":"arn:aws:s3:::ci/builds/*"}]}"#;
const PUBLIC_READ: &str = r#"{"Version":"2012-10-17","Statement":[{"Sid":"Public","Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*"}]}"#;

#[rustfmt::skip]
const CASES: &[Case] = &[
    // --- allow, explicit deny, implicit deny ---
    Case { identity: &[ALLOW_GET], want: Allow, ..case("identity allow") },
    Case { identity: &[], want: Implicit, ..case("nothing applies") },
    Case { identity: &[ALLOW_GET], resource: "arn:aws:s3:::other/k", want: Implicit, ..case("allow of another bucket") },
    Case { identity: &[ALLOW_GET], action: "s3:PutObject", want: Implicit, ..case("allow of another action") },
    Case { identity: &[ALLOW_GET, DENY_GET], want: Deny, ..case("explicit deny wins over allow") },
    Case { identity: &[DENY_GET, ALLOW_GET], want: Deny, ..case("deny wins whatever the order") },
    Case { identity: &[ALLOW_GET], bucket: Some(r#"{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Principal":{"AWS":"arn:dooz:iam::acme:user/alice"},"Action":"s3:*","Resource":"arn:aws:s3:::b/*"}]}"#), want: Deny, ..case("bucket deny beats identity allow") },
    Case { bucket: Some(r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:dooz:iam::acme:user/alice"},"Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*"}]}"#), want: Allow, ..case("bucket policy alone allows same tenant user") },
    Case { bucket: Some(r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:dooz:iam::acme:user/alice"},"Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*"}]}"#), caller: Some((BOB, BOB_ROOT)), want: Implicit, ..case("bucket policy names another user") },
    Case { bucket: Some(r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"acme"},"Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*"}]}"#), caller: Some((BOB, BOB_ROOT)), want: Allow, ..case("bare tenant name is its root") },
    Case { bucket: Some(r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":["arn:dooz:iam::acme:root"]},"Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*"}]}"#), caller: Some((EVE, EVIL)), want: Implicit, ..case("tenant root does not match other tenant") },
    // --- anonymous ---
    Case { bucket: Some(PUBLIC_READ), caller: None, want: Allow, ..case("anonymous read of public bucket") },
    Case { bucket: Some(PUBLIC_READ), caller: None, action: "s3:PutObject", want: Implicit, ..case("anonymous write of public-read bucket") },
    Case { bucket: None, caller: None, want: Implicit, ..case("anonymous without policy") },
    Case { bucket: Some(r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:dooz:iam::acme:root"},"Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*"}]}"#), caller: None, want: Implicit, ..case("anonymous is not a tenant") },
    Case { bucket: Some(r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"*"},"Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*"}]}"#), caller: None, want: Allow, ..case("AWS star is anyone") },
    // --- NotPrincipal ---
    Case { bucket: Some(r#"{"Version":"2012-10-17","Statement":[{"Effect":"Deny","NotPrincipal":{"AWS":"arn:dooz:iam::acme:user/alice"},"Action":"s3:*","Resource":"arn:aws:s3:::b/*"},{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*"}]}"#), want: Allow, ..case("NotPrincipal deny spares the named user") },
    Case { bucket: Some(r#"{"Version":"2012-10-17","Statement":[{"Effect":"Deny","NotPrincipal":{"AWS":"arn:dooz:iam::acme:user/alice"},"Action":"s3:*","Resource":"arn:aws:s3:::b/*"},{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*"}]}"#), caller: Some((BOB, BOB_ROOT)), want: Deny, ..case("NotPrincipal deny hits everyone else") },
    Case { bucket: Some(r#"{"Version":"2012-10-17","Statement":[{"Effect":"Deny","NotPrincipal":{"AWS":"arn:dooz:iam::acme:user/alice"},"Action":"s3:*","Resource":"arn:aws:s3:::b/*"}]}"#), caller: None, want: Deny, ..case("NotPrincipal deny hits anonymous") },
    Case { bucket: Some(r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","NotPrincipal":{"AWS":"arn:dooz:iam::acme:root"},"Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*"}]}"#), want: Implicit, ..case("NotPrincipal allow excludes the tenant") },
    // --- NotAction / NotResource ---
    Case { identity: &[r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","NotAction":"s3:Delete*","Resource":"*"}]}"#], action: "s3:PutObject", want: Allow, ..case("NotAction allows the rest") },
    Case { identity: &[r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","NotAction":"s3:Delete*","Resource":"*"}]}"#], action: "s3:DeleteObject", want: Implicit, ..case("NotAction leaves out the named") },
    Case { identity: &[ALLOW_GET, r#"{"Version":"2012-10-17","Statement":[{"Effect":"Deny","NotAction":["s3:GetObject","s3:ListBucket"],"Resource":"*"}]}"#], want: Allow, ..case("NotAction deny spares the named") },
    Case { identity: &[r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"},{"Effect":"Deny","NotAction":["s3:GetObject"],"Resource":"*"}]}"#], action: "s3:PutObject", want: Deny, ..case("NotAction deny hits the rest") },
    Case { identity: &[r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","NotResource":"arn:aws:s3:::secret/*"}]}"#], want: Allow, ..case("NotResource allows outside") },
    Case { identity: &[r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","NotResource":"arn:aws:s3:::secret/*"}]}"#], resource: "arn:aws:s3:::secret/k", want: Implicit, ..case("NotResource excludes inside") },
    // --- wildcards ---
    Case { identity: &[r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:Get*","Resource":"*"}]}"#], action: "s3:GetObjectTagging", want: Allow, ..case("action wildcard") },
    Case { identity: &[r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"S3:GETOBJECT","Resource":"*"}]}"#], want: Allow, ..case("actions are case-insensitive") },
    Case { identity: &[r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:?etObject","Resource":"*"}]}"#], want: Allow, ..case("action question mark") },
    Case { identity: &[r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#], action: "s3:DeleteBucket", resource: "arn:aws:s3:::b", want: Allow, ..case("star action") },
    Case { identity: &[CI_BUILDS], action: "s3:PutObject", resource: "arn:aws:s3:::ci/builds/1/app.tar", want: Allow, ..case("least privilege: write under builds") },
    Case { identity: &[CI_BUILDS], action: "s3:PutObject", resource: "arn:aws:s3:::ci/src/main.rs", want: Implicit, ..case("least privilege: not elsewhere") },
    Case { identity: &[CI_BUILDS], action: "s3:PutObject", resource: "arn:aws:s3:::other/builds/x", want: Implicit, ..case("least privilege: not another bucket") },
    Case { identity: &[CI_BUILDS], action: "s3:GetObject", resource: "arn:aws:s3:::ci/builds/x", want: Implicit, ..case("least privilege: no read") },
    Case { identity: &[CI_BUILDS], action: "s3:DeleteObject", resource: "arn:aws:s3:::ci/builds/x", want: Implicit, ..case("least privilege: no delete") },
    Case { identity: &[r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*.jpg"}]}"#], resource: "arn:aws:s3:::b/a/b/c.jpg", want: Allow, ..case("resource star crosses slashes") },
    Case { identity: &[r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/?"}]}"#], resource: "arn:aws:s3:::b/ab", want: Implicit, ..case("resource question mark is one char") },
    Case { identity: &[r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::B/*"}]}"#], want: Implicit, ..case("resources are case-sensitive") },
    Case { identity: &[r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/home/${aws:username}/*"}]}"#], resource: "arn:aws:s3:::b/home/alice/x", cx: &[("aws:username", "alice")], want: Allow, ..case("policy variable in resource") },
    Case { identity: &[r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/home/${aws:username}/*"}]}"#], resource: "arn:aws:s3:::b/home/bob/x", cx: &[("aws:username", "alice")], want: Implicit, ..case("policy variable of another user") },
    // --- String operators ---
    Case { identity: &[cond!("StringEquals", "s3:prefix", r#""docs/""#)], cx: &[("s3:prefix", "docs/")], want: Allow, ..case("StringEquals match") },
    Case { identity: &[cond!("StringEquals", "s3:prefix", r#""docs/""#)], cx: &[("s3:prefix", "Docs/")], want: Implicit, ..case("StringEquals is case-sensitive") },
    Case { identity: &[cond!("StringEquals", "s3:prefix", r#""docs/""#)], want: Implicit, ..case("StringEquals absent key") },
    Case { identity: &[cond!("StringEquals", "s3:prefix", r#"["a/","docs/"]"#)], cx: &[("s3:prefix", "docs/")], want: Allow, ..case("StringEquals values OR") },
    Case { identity: &[cond!("StringEquals", "S3:Prefix", r#""docs/""#)], cx: &[("s3:prefix", "docs/")], want: Allow, ..case("condition keys are case-insensitive") },
    Case { identity: &[cond!("StringNotEquals", "s3:x-amz-acl", r#""public-read""#)], cx: &[("s3:x-amz-acl", "private")], want: Allow, ..case("StringNotEquals other value") },
    Case { identity: &[cond!("StringNotEquals", "s3:x-amz-acl", r#"["public-read","public-read-write"]"#)], cx: &[("s3:x-amz-acl", "public-read-write")], want: Implicit, ..case("StringNotEquals any listed") },
    Case { identity: &[cond!("StringNotEquals", "s3:x-amz-acl", r#""public-read""#)], want: Allow, ..case("StringNotEquals absent key holds") },
    Case { identity: &[cond!("StringEqualsIgnoreCase", "aws:username", r#""ALICE""#)], cx: &[("aws:username", "alice")], want: Allow, ..case("StringEqualsIgnoreCase") },
    Case { identity: &[cond!("StringNotEqualsIgnoreCase", "aws:username", r#""ALICE""#)], cx: &[("aws:username", "alice")], want: Implicit, ..case("StringNotEqualsIgnoreCase") },
    Case { identity: &[cond!("StringLike", "s3:prefix", r#""home/*""#)], cx: &[("s3:prefix", "home/alice/")], want: Allow, ..case("StringLike") },
    Case { identity: &[cond!("StringLike", "s3:prefix", r#""home/${aws:username}/*""#)], cx: &[("s3:prefix", "home/alice/x"), ("aws:username", "alice")], want: Allow, ..case("StringLike with variable") },
    Case { identity: &[cond!("StringNotLike", "s3:prefix", r#""secret*""#)], cx: &[("s3:prefix", "secrets/")], want: Implicit, ..case("StringNotLike") },
    Case { identity: &[cond!("StringEqualsIfExists", "s3:prefix", r#""docs/""#)], want: Allow, ..case("IfExists absent key holds") },
    Case { identity: &[cond!("StringEqualsIfExists", "s3:prefix", r#""docs/""#)], cx: &[("s3:prefix", "x/")], want: Implicit, ..case("IfExists present key compared") },
    // --- Numeric ---
    Case { identity: &[cond!("NumericEquals", "s3:max-keys", r#""10""#)], cx: &[("s3:max-keys", "10")], want: Allow, ..case("NumericEquals") },
    Case { identity: &[cond!("NumericNotEquals", "s3:max-keys", "10")], cx: &[("s3:max-keys", "10")], want: Implicit, ..case("NumericNotEquals") },
    Case { identity: &[cond!("NumericLessThan", "s3:max-keys", "10")], cx: &[("s3:max-keys", "9")], want: Allow, ..case("NumericLessThan") },
    Case { identity: &[cond!("NumericLessThan", "s3:max-keys", "10")], cx: &[("s3:max-keys", "10")], want: Implicit, ..case("NumericLessThan edge") },
    Case { identity: &[cond!("NumericLessThanEquals", "s3:max-keys", "10")], cx: &[("s3:max-keys", "10")], want: Allow, ..case("NumericLessThanEquals") },
    Case { identity: &[cond!("NumericGreaterThan", "s3:signatureAge", "600000")], cx: &[("s3:signatureAge", "600001")], want: Allow, ..case("NumericGreaterThan") },
    Case { identity: &[cond!("NumericGreaterThanEquals", "s3:max-keys", "10")], cx: &[("s3:max-keys", "9")], want: Implicit, ..case("NumericGreaterThanEquals") },
    Case { identity: &[cond!("NumericLessThan", "s3:max-keys", "10")], cx: &[("s3:max-keys", "many")], want: Implicit, ..case("Numeric of a non-number") },
    // --- Date ---
    Case { identity: &[cond!("DateLessThan", "aws:CurrentTime", r#""2030-01-01T00:00:00Z""#)], cx: &[("aws:CurrentTime", "2026-12-05T05:00:00Z")], want: Allow, ..case("DateLessThan") },
    Case { identity: &[cond!("DateGreaterThan", "aws:CurrentTime", r#""2030-01-01""#)], cx: &[("aws:CurrentTime", "2026-12-05T05:00:00Z")], want: Implicit, ..case("DateGreaterThan") },
    Case { identity: &[cond!("DateEquals", "aws:CurrentTime", "1893456000")], cx: &[("aws:CurrentTime", "2030-01-01T00:00:00Z")], want: Allow, ..case("DateEquals epoch") },
    Case { identity: &[cond!("DateNotEquals", "aws:CurrentTime", r#""2030-01-01T00:00:00Z""#)], cx: &[("aws:CurrentTime", "2030-01-01T00:00:00Z")], want: Implicit, ..case("DateNotEquals") },
    Case { identity: &[cond!("DateLessThanEquals", "aws:CurrentTime", r#""2030-01-01T00:00:00Z""#)], cx: &[("aws:CurrentTime", "2030-01-01T00:00:00Z")], want: Allow, ..case("DateLessThanEquals") },
    Case { identity: &[cond!("DateGreaterThanEquals", "aws:CurrentTime", r#""2030-01-01T00:00:00+01:00""#)], cx: &[("aws:CurrentTime", "2029-12-31T23:30:00Z")], want: Allow, ..case("DateGreaterThanEquals with offset") },
    // --- Bool ---
    Case { identity: &[cond!("Bool", "aws:SecureTransport", r#""true""#)], cx: &[("aws:SecureTransport", "true")], want: Allow, ..case("Bool true") },
    Case { identity: &[cond!("Bool", "aws:SecureTransport", "true")], cx: &[("aws:SecureTransport", "false")], want: Implicit, ..case("Bool false") },
    Case { identity: &[ALLOW_GET, r#"{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Action":"s3:*","Resource":"*","Condition":{"Bool":{"aws:SecureTransport":"false"}}}]}"#], cx: &[("aws:SecureTransport", "false")], want: Deny, ..case("deny plain HTTP") },
    // --- IP ---
    Case { identity: &[cond!("IpAddress", "aws:SourceIp", r#""10.0.0.0/8""#)], cx: &[("aws:SourceIp", "10.1.2.3")], want: Allow, ..case("IpAddress in") },
    Case { identity: &[cond!("IpAddress", "aws:SourceIp", r#""10.0.0.0/8""#)], cx: &[("aws:SourceIp", "11.1.2.3")], want: Implicit, ..case("IpAddress out") },
    Case { identity: &[cond!("IpAddress", "aws:SourceIp", r#""10.0.0.0/8""#)], cx: &[("aws:SourceIp", "::ffff:10.1.2.3")], want: Allow, ..case("IpAddress v4-mapped v6") },
    Case { identity: &[cond!("IpAddress", "aws:SourceIp", r#"["192.168.1.7","2001:db8::/32"]"#)], cx: &[("aws:SourceIp", "2001:db8::1")], want: Allow, ..case("IpAddress v6") },
    Case { identity: &[cond!("IpAddress", "aws:SourceIp", r#""192.168.1.7""#)], cx: &[("aws:SourceIp", "192.168.1.8")], want: Implicit, ..case("IpAddress single host") },
    Case { identity: &[cond!("NotIpAddress", "aws:SourceIp", r#""10.0.0.0/8""#)], cx: &[("aws:SourceIp", "10.1.2.3")], want: Implicit, ..case("NotIpAddress in") },
    Case { identity: &[cond!("NotIpAddress", "aws:SourceIp", r#""10.0.0.0/8""#)], cx: &[("aws:SourceIp", "127.0.0.1")], want: Allow, ..case("NotIpAddress out") },
    // --- ARN ---
    Case { identity: &[cond!("ArnLike", "aws:PrincipalArn", r#""arn:dooz:iam::acme:user/*""#)], cx: &[("aws:PrincipalArn", ALICE)], want: Allow, ..case("ArnLike") },
    Case { identity: &[cond!("ArnEquals", "aws:PrincipalArn", r#""arn:dooz:iam::acme:user/bob""#)], cx: &[("aws:PrincipalArn", ALICE)], want: Implicit, ..case("ArnEquals other") },
    Case { identity: &[cond!("ArnNotLike", "aws:PrincipalArn", r#""arn:dooz:iam::evil:*""#)], cx: &[("aws:PrincipalArn", ALICE)], want: Allow, ..case("ArnNotLike") },
    Case { identity: &[cond!("ArnNotEquals", "aws:PrincipalArn", r#""arn:dooz:iam::acme:user/alice""#)], cx: &[("aws:PrincipalArn", ALICE)], want: Implicit, ..case("ArnNotEquals") },
    // --- Null ---
    Case { identity: &[cond!("Null", "s3:x-amz-acl", r#""true""#)], want: Allow, ..case("Null true absent") },
    Case { identity: &[cond!("Null", "s3:x-amz-acl", "true")], cx: &[("s3:x-amz-acl", "private")], want: Implicit, ..case("Null true present") },
    Case { identity: &[cond!("Null", "s3:x-amz-acl", r#""false""#)], cx: &[("s3:x-amz-acl", "private")], want: Allow, ..case("Null false present") },
    // --- set operators ---
    Case { identity: &[cond!("ForAnyValue:StringEquals", "s3:RequestObjectTagKeys", r#"["team","env"]"#)], cx: &[("s3:RequestObjectTagKeys", "LIST:owner,env")], want: Allow, ..case("ForAnyValue one matches") },
    Case { identity: &[cond!("ForAnyValue:StringEquals", "s3:RequestObjectTagKeys", r#"["team"]"#)], cx: &[("s3:RequestObjectTagKeys", "LIST:owner,env")], want: Implicit, ..case("ForAnyValue none matches") },
    Case { identity: &[cond!("ForAnyValue:StringEquals", "s3:RequestObjectTagKeys", r#"["team"]"#)], want: Implicit, ..case("ForAnyValue absent key") },
    Case { identity: &[cond!("ForAllValues:StringEquals", "s3:RequestObjectTagKeys", r#"["team","env"]"#)], cx: &[("s3:RequestObjectTagKeys", "LIST:team,env")], want: Allow, ..case("ForAllValues all match") },
    Case { identity: &[cond!("ForAllValues:StringEquals", "s3:RequestObjectTagKeys", r#"["team","env"]"#)], cx: &[("s3:RequestObjectTagKeys", "LIST:team,owner")], want: Implicit, ..case("ForAllValues one outside") },
    Case { identity: &[cond!("ForAllValues:StringEquals", "s3:RequestObjectTagKeys", r#"["team"]"#)], want: Allow, ..case("ForAllValues absent key is vacuous") },
    Case { identity: &[cond!("ForAnyValue:StringLike", "s3:RequestObjectTagKeys", r#""tmp-*""#)], cx: &[("s3:RequestObjectTagKeys", "LIST:a,tmp-x")], want: Allow, ..case("ForAnyValue StringLike") },
    Case { identity: &[cond!("ForAllValues:StringNotEquals", "s3:RequestObjectTagKeys", r#""secret""#)], cx: &[("s3:RequestObjectTagKeys", "LIST:a,b")], want: Allow, ..case("ForAllValues negated") },
    Case { identity: &[cond!("ForAllValues:StringNotEquals", "s3:RequestObjectTagKeys", r#""secret""#)], cx: &[("s3:RequestObjectTagKeys", "LIST:a,secret")], want: Implicit, ..case("ForAllValues negated hit") },
    // --- several conditions AND ---
    Case { identity: &[r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"*","Condition":{"Bool":{"aws:SecureTransport":"true"},"IpAddress":{"aws:SourceIp":"10.0.0.0/8"}}}]}"#], cx: &[("aws:SecureTransport", "true"), ("aws:SourceIp", "10.0.0.1")], want: Allow, ..case("conditions AND: both") },
    Case { identity: &[r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"*","Condition":{"Bool":{"aws:SecureTransport":"true"},"IpAddress":{"aws:SourceIp":"10.0.0.0/8"}}}]}"#], cx: &[("aws:SecureTransport", "true"), ("aws:SourceIp", "11.0.0.1")], want: Implicit, ..case("conditions AND: one fails") },
    Case { identity: &[r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"*","Condition":{"StringEquals":{"s3:prefix":"a","s3:delimiter":"/"}}}]}"#], cx: &[("s3:prefix", "a")], want: Implicit, ..case("keys of one operator AND") },
    // --- built-in roles ---
    Case { identity: &[builtin::READ_ONLY], action: "s3:ListBucket", resource: "arn:aws:s3:::b", want: Allow, ..case("read-only lists") },
    Case { identity: &[builtin::READ_ONLY], action: "s3:PutObject", want: Implicit, ..case("read-only cannot write") },
    Case { identity: &[builtin::READ_WRITE], action: "s3:PutObject", want: Allow, ..case("read-write writes") },
    Case { identity: &[builtin::READ_WRITE], action: "s3:DeleteObjectVersion", want: Allow, ..case("read-write deletes versions") },
    Case { identity: &[builtin::READ_WRITE], action: "s3:CreateBucket", resource: "arn:aws:s3:::n", want: Implicit, ..case("read-write cannot create buckets") },
    Case { identity: &[builtin::READ_WRITE], action: "s3:PutBucketPolicy", resource: "arn:aws:s3:::b", want: Implicit, ..case("read-write cannot set policies") },
    Case { identity: &[builtin::READ_WRITE], action: "s3:BypassGovernanceRetention", want: Implicit, ..case("read-write cannot bypass governance") },
    Case { identity: &[builtin::ADMIN], action: "s3:BypassGovernanceRetention", want: Allow, ..case("admin bypasses governance") },
    Case { identity: &[builtin::ADMIN], action: "s3:ListAllMyBuckets", resource: "*", want: Allow, ..case("admin lists buckets") },
];

#[test]
fn evaluation_table() {
    let mut failures = Vec::new();
    for c in CASES {
        let got = decide(c);
        if want_of(&got) != c.want {
            failures.push(format!("{}: want {:?}, got {got}", c.name, c.want));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        CASES.len(),
        failures.join("\n")
    );
}

#[test]
fn the_deciding_statement_is_named() {
    let c = Case {
        identity: &[ALLOW_GET, DENY_GET],
        ..case("")
    };
    assert_eq!(
        decide(&c),
        Decision::ExplicitDeny(Decider {
            source: Source::Identity("p1".into()),
            index: 0,
            sid: Some("NoGet".into())
        })
    );
    let c = Case {
        bucket: Some(PUBLIC_READ),
        caller: None,
        ..case("")
    };
    let d = decide(&c);
    assert_eq!(
        d.to_string(),
        "allow by bucket policy Statement[0] (Sid Public)"
    );
}

#[test]
fn restrict_public_buckets_ignores_public_allows() {
    let doc = PolicyDocument::parse(PUBLIC_READ, Kind::Bucket).unwrap();
    let cx = Context::new();
    let req = Request {
        caller: Caller::Anonymous,
        action: "s3:GetObject",
        resource: "arn:aws:s3:::b/k",
        context: &cx,
    };
    assert!(
        evaluate(
            &[],
            Some(BucketPolicy {
                doc: &doc,
                ignore_public: false
            }),
            &req
        )
        .allowed()
    );
    assert_eq!(
        evaluate(
            &[],
            Some(BucketPolicy {
                doc: &doc,
                ignore_public: true
            }),
            &req
        ),
        Decision::ImplicitDeny
    );
}

#[test]
fn public_policies_are_recognised() {
    let public = |t: &str| is_public(&PolicyDocument::parse(t, Kind::Bucket).unwrap());
    assert!(public(PUBLIC_READ));
    assert!(public(
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","NotPrincipal":{"AWS":"acme"},"Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*"}]}"#
    ));
    assert!(!public(
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*","Condition":{"IpAddress":{"aws:SourceIp":"10.0.0.0/8"}}}]}"#
    ));
    assert!(public(
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*","Condition":{"IpAddress":{"aws:SourceIp":"0.0.0.0/0"}}}]}"#
    ));
    assert!(public(
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*","Condition":{"StringLike":{"aws:PrincipalArn":"*"}}}]}"#
    ));
    assert!(!public(
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*"}]}"#
    ));
    assert!(!public(
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:dooz:iam::acme:root"},"Action":"s3:*","Resource":"arn:aws:s3:::b/*"}]}"#
    ));
}

#[test]
fn malformed_policies_say_where() {
    let cases: &[(&str, Kind, &str)] = &[
        ("not json", Kind::Identity, "valid JSON"),
        ("[]", Kind::Identity, "JSON object"),
        (
            r#"{"Version":"2012-10-17"}"#,
            Kind::Identity,
            "Missing required field Statement",
        ),
        (
            r#"{"Version":"2020-01-01","Statement":[]}"#,
            Kind::Identity,
            "Version: The policy language version 2020-01-01",
        ),
        (
            r#"{"Version":"2012-10-17","Statement":[]}"#,
            Kind::Identity,
            "Statement: must hold at least one",
        ),
        (
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"*"},{"Effect":"Maybe","Action":"s3:GetObject","Resource":"*"}]}"#,
            Kind::Identity,
            "Statement[1].Effect",
        ),
        (
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Resource":"*"}]}"#,
            Kind::Identity,
            "Statement[0]: Missing required field Action",
        ),
        (
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject"}]}"#,
            Kind::Identity,
            "Statement[0]: Missing required field Resource",
        ),
        (
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"ec2:RunInstances","Resource":"*"}]}"#,
            Kind::Identity,
            "Statement[0].Action: Invalid action ec2:RunInstances",
        ),
        (
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["s3:GetObject", 7],"Resource":"*"}]}"#,
            Kind::Identity,
            "Statement[0].Action[1]: must be a string",
        ),
        (
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:ec2:::x"}]}"#,
            Kind::Identity,
            "Statement[0].Resource: Invalid resource",
        ),
        (
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","NotAction":"s3:PutObject","Resource":"*"}]}"#,
            Kind::Identity,
            "exclusive",
        ),
        (
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"*"}]}"#,
            Kind::Identity,
            "must not name a Principal",
        ),
        (
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"*"}]}"#,
            Kind::Bucket,
            "Missing required field Principal",
        ),
        (
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:dooz:iam::acme:group/x"},"Action":"s3:GetObject","Resource":"*"}]}"#,
            Kind::Bucket,
            "Statement[0].Principal.AWS[0]: Invalid principal",
        ),
        (
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"x"},"Action":"s3:GetObject","Resource":"*"}]}"#,
            Kind::Bucket,
            "Statement[0].Principal.Service",
        ),
        (
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"*","Condition":{"StringEqualz":{"s3:prefix":"a"}}}]}"#,
            Kind::Identity,
            "Statement[0].Condition.StringEqualz: Unknown condition operator",
        ),
        (
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"*","Condition":{"NumericLessThan":{"s3:max-keys":"ten"}}}]}"#,
            Kind::Identity,
            "Statement[0].Condition.NumericLessThan.s3:max-keys: ten is not a number",
        ),
        (
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"*","Condition":{"IpAddress":{"aws:SourceIp":"10.0.0.0/33"}}}]}"#,
            Kind::Identity,
            "not an IP address or CIDR",
        ),
        (
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"*","Condition":{"DateLessThan":{"aws:CurrentTime":"tomorrow"}}}]}"#,
            Kind::Identity,
            "tomorrow is not a date",
        ),
        (
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"*","Condition":{"Bool":{"aws:SecureTransport":"yes"}}}]}"#,
            Kind::Identity,
            "yes is not true or false",
        ),
        (
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"*","Condition":{"NullIfExists":{"s3:prefix":"true"}}}]}"#,
            Kind::Identity,
            "Null takes no IfExists",
        ),
        (
            r#"{"Version":"2012-10-17","Statement":[{"Sid":"A","Effect":"Allow","Action":"s3:GetObject","Resource":"*"},{"Sid":"A","Effect":"Deny","Action":"s3:GetObject","Resource":"*"}]}"#,
            Kind::Identity,
            "must be unique",
        ),
        (
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"*","Extra":1}]}"#,
            Kind::Identity,
            "Statement[0]: Unknown field Extra",
        ),
    ];
    for (text, kind, want) in cases {
        match PolicyDocument::parse(text, *kind) {
            Ok(_) => panic!("accepted {text}"),
            Err(MalformedPolicy(msg)) => assert!(
                msg.contains(want),
                "{text}\n  said {msg:?}\n  want {want:?}"
            ),
        }
    }
    let big = format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Sid":"{}","Effect":"Allow","Action":"s3:GetObject","Resource":"*"}}]}}"#,
        "a".repeat(21 * 1024)
    );
    assert!(
        PolicyDocument::parse(&big, Kind::Identity)
            .unwrap_err()
            .0
            .contains("at most")
    );
}

#[test]
fn builtins_parse_and_names_are_checked() {
    for (name, _, _) in builtin::BUILTIN {
        assert!(builtin(name).is_some(), "{name}");
    }
    assert!(builtin("nope").is_none());
    assert!(valid_policy_name("ci-builds_v2"));
    assert!(!valid_policy_name("with space"));
    assert!(!valid_policy_name(""));
}

#[test]
fn every_served_operation_maps_to_an_s3_action() {
    for op in [
        "GetObject",
        "PutObject",
        "ListObjectsV2",
        "DeleteObjects",
        "PutBucketPolicy",
        "ListBuckets",
    ] {
        let (a, _) = action_for(op, false);
        assert!(a.starts_with("s3:") && a != "s3:Unsupported", "{op}");
    }
    assert_eq!(action_for("GetObject", true).0, "s3:GetObjectVersion");
    assert_eq!(action_for("ListBuckets", false).1, Level::Service);
    assert_eq!(
        action_for("UploadPart", false),
        ("s3:PutObject", Level::Object)
    );
}

/// The cost of deciding one request against the built-in admin role plus a
/// 3-statement tenant policy and a public bucket policy with a condition:
/// printed (run with --nocapture); the assertion is on the decisions.
#[test]
fn evaluation_cost_of_a_typical_request() {
    let admin = builtin("admin").unwrap();
    let ci = PolicyDocument::parse(CI_BUILDS, Kind::Identity).unwrap();
    let extra = PolicyDocument::parse(
        r#"{"Version":"2012-10-17","Statement":[
            {"Effect":"Deny","Action":"s3:Delete*","Resource":"arn:aws:s3:::prod/*","Condition":{"NotIpAddress":{"aws:SourceIp":"10.0.0.0/8"}}},
            {"Effect":"Allow","Action":["s3:Get*","s3:List*"],"Resource":["arn:aws:s3:::b","arn:aws:s3:::b/*"]},
            {"Effect":"Allow","Action":"s3:PutObject","Resource":"arn:aws:s3:::b/home/${aws:username}/*"}]}"#,
        Kind::Identity,
    )
    .unwrap();
    let bucket = PolicyDocument::parse(
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/public/*","Condition":{"Bool":{"aws:SecureTransport":"true"}}}]}"#,
        Kind::Bucket,
    )
    .unwrap();
    let named = [
        Named {
            name: "admin",
            doc: admin,
        },
        Named {
            name: "ci",
            doc: &ci,
        },
        Named {
            name: "extra",
            doc: &extra,
        },
    ];
    let mut cx = Context::new();
    cx.set("aws:SourceIp", "10.1.2.3")
        .set("aws:username", "alice")
        .set("aws:SecureTransport", "false")
        .set("aws:CurrentTime", "2026-12-05T05:00:00Z");
    let req = Request {
        caller: Caller::User {
            arn: ALICE,
            tenant_arn: ACME,
        },
        action: "s3:GetObject",
        resource: "arn:aws:s3:::b/some/key.bin",
        context: &cx,
    };
    let bp = Some(BucketPolicy {
        doc: &bucket,
        ignore_public: false,
    });
    const N: u32 = 100_000;
    let started = std::time::Instant::now();
    let mut allowed = 0;
    for _ in 0..N {
        allowed += u32::from(std::hint::black_box(evaluate(&named, bp, &req)).allowed());
    }
    let per = started.elapsed() / N;
    eprintln!("policy evaluation: {per:?} per request ({N} requests)");
    assert_eq!(allowed, N);
    let anon = Request {
        caller: Caller::Anonymous,
        ..req
    };
    assert_eq!(evaluate(&[], bp, &anon), Decision::ImplicitDeny);
}
