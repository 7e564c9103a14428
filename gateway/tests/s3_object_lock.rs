//! Object Lock over real TCP with aws-sdk-s3, on both metadata stores:
//! COMPLIANCE stops the root admin through S3 and through every admin
//! command; GOVERNANCE yields only to the bypass header with the permission;
//! legal holds, default retention, the lock headers of PutObject, CopyObject
//! and multipart uploads, and the errors of buckets without Object Lock.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::{ByteStream, DateTime};
use aws_sdk_s3::types::{
    BucketVersioningStatus, CompletedMultipartUpload, CompletedPart, DefaultRetention, Delete,
    ObjectIdentifier, ObjectLockConfiguration, ObjectLockEnabled, ObjectLockLegalHold,
    ObjectLockLegalHoldStatus, ObjectLockMode, ObjectLockRetention, ObjectLockRetentionMode,
    ObjectLockRule,
};
use dooz_gateway::meta::Policy;
use support::gateway::{Backend, Meta, Options, start};
use support::{code, get, put_versioning};

fn in_secs(s: i64) -> DateTime {
    DateTime::from_millis(dooz_gateway::engine::now_millis() + s * 1000)
}

async fn put_locked(
    c: &Client,
    b: &str,
    key: &str,
    body: &[u8],
    mode: Option<ObjectLockMode>,
    until: Option<DateTime>,
) -> String {
    c.put_object()
        .bucket(b)
        .key(key)
        .body(ByteStream::from(body.to_vec()))
        .set_object_lock_mode(mode)
        .set_object_lock_retain_until_date(until)
        .send()
        .await
        .unwrap_or_else(|e| panic!("put {key}: {e:?}"))
        .version_id
        .unwrap()
}

async fn delete_version(c: &Client, b: &str, key: &str, v: &str, bypass: bool) -> String {
    let r = c
        .delete_object()
        .bucket(b)
        .key(key)
        .version_id(v)
        .bypass_governance_retention(bypass)
        .send()
        .await;
    match r {
        Ok(_) => "deleted".into(),
        Err(e) => code::<_, ()>(Err(e)),
    }
}

/// PutObjectLegalHold; "ok" or the error code.
async fn legal_hold(c: &Client, b: &str, key: &str, v: Option<&str>, on: bool) -> String {
    let status = if on {
        ObjectLockLegalHoldStatus::On
    } else {
        ObjectLockLegalHoldStatus::Off
    };
    let r = c
        .put_object_legal_hold()
        .bucket(b)
        .key(key)
        .set_version_id(v.map(str::to_owned))
        .legal_hold(ObjectLockLegalHold::builder().status(status).build())
        .send()
        .await;
    match r {
        Ok(_) => "ok".into(),
        Err(e) => code::<_, ()>(Err(e)),
    }
}

fn retention(mode: ObjectLockRetentionMode, until: DateTime) -> ObjectLockRetention {
    ObjectLockRetention::builder()
        .mode(mode)
        .retain_until_date(until)
        .build()
}

async fn object_lock(meta: Meta) {
    let g = start(Options::new(meta, Backend::Local)).await;
    let c = g.client();
    let b = "vault";
    c.create_bucket()
        .bucket(b)
        .object_lock_enabled_for_bucket(true)
        .send()
        .await
        .unwrap();
    let v = c.get_bucket_versioning().bucket(b).send().await.unwrap();
    assert_eq!(v.status(), Some(&BucketVersioningStatus::Enabled));
    let cfg = c
        .get_object_lock_configuration()
        .bucket(b)
        .send()
        .await
        .unwrap();
    let cfg = cfg.object_lock_configuration().unwrap();
    assert_eq!(cfg.object_lock_enabled(), Some(&ObjectLockEnabled::Enabled));
    assert!(cfg.rule().is_none());
    assert_eq!(
        code(put_versioning(&c, b, BucketVersioningStatus::Suspended).await),
        "InvalidBucketState"
    );

    // COMPLIANCE: not even the root admin, bypass or not.
    let until = in_secs(3600);
    let comp = put_locked(
        &c,
        b,
        "ledger",
        b"v1",
        Some(ObjectLockMode::Compliance),
        Some(until),
    )
    .await;
    let head = c
        .head_object()
        .bucket(b)
        .key("ledger")
        .version_id(&comp)
        .send()
        .await
        .unwrap();
    assert_eq!(head.object_lock_mode(), Some(&ObjectLockMode::Compliance));
    assert_eq!(
        head.object_lock_retain_until_date().map(|d| d.secs()),
        Some(until.secs())
    );
    let got = c.get_object().bucket(b).key("ledger").send().await.unwrap();
    assert_eq!(got.object_lock_mode(), Some(&ObjectLockMode::Compliance));
    for bypass in [false, true] {
        assert_eq!(
            delete_version(&c, b, "ledger", &comp, bypass).await,
            "AccessDenied"
        );
    }
    // Retention only extends.
    let shorter = c
        .put_object_retention()
        .bucket(b)
        .key("ledger")
        .version_id(&comp)
        .bypass_governance_retention(true)
        .retention(retention(ObjectLockRetentionMode::Governance, in_secs(60)))
        .send()
        .await;
    assert_eq!(code(shorter), "AccessDenied");
    let longer = in_secs(7200);
    c.put_object_retention()
        .bucket(b)
        .key("ledger")
        .version_id(&comp)
        .retention(retention(ObjectLockRetentionMode::Compliance, longer))
        .send()
        .await
        .unwrap();
    let r = c
        .get_object_retention()
        .bucket(b)
        .key("ledger")
        .version_id(&comp)
        .send()
        .await
        .unwrap();
    let r = r.retention().unwrap();
    assert_eq!(r.mode(), Some(&ObjectLockRetentionMode::Compliance));
    assert_eq!(r.retain_until_date().map(|d| d.secs()), Some(longer.secs()));
    // A delete without a version id only adds a marker; the data stays.
    let del = c
        .delete_object()
        .bucket(b)
        .key("ledger")
        .send()
        .await
        .unwrap();
    assert_eq!(del.delete_marker(), Some(true));
    let back = c
        .get_object()
        .bucket(b)
        .key("ledger")
        .version_id(&comp)
        .send()
        .await
        .unwrap();
    assert_eq!(back.body.collect().await.unwrap().to_vec(), b"v1");

    // GOVERNANCE: the bypass header with the permission (admin) lifts it;
    // a read-write user with the header does not get through.
    let gov = put_locked(
        &c,
        b,
        "draft",
        b"g",
        Some(ObjectLockMode::Governance),
        Some(in_secs(3600)),
    )
    .await;
    let (ak, sk) = g.user("writer", Policy::ReadWrite).await;
    let w = g.client_as(&ak, &sk);
    assert_eq!(
        delete_version(&c, b, "draft", &gov, false).await,
        "AccessDenied"
    );
    assert_eq!(
        delete_version(&w, b, "draft", &gov, true).await,
        "AccessDenied"
    );
    let shorten = w
        .put_object_retention()
        .bucket(b)
        .key("draft")
        .version_id(&gov)
        .bypass_governance_retention(true)
        .retention(retention(ObjectLockRetentionMode::Governance, in_secs(10)))
        .send()
        .await;
    assert_eq!(code(shorten), "AccessDenied");
    assert_eq!(delete_version(&c, b, "draft", &gov, true).await, "deleted");

    // Legal hold: on stops every delete; off lets it go.
    let held = put_locked(&c, b, "evidence", b"h", None, None).await;
    assert_eq!(legal_hold(&c, b, "evidence", Some(&held), true).await, "ok");
    let lh = c
        .get_object_legal_hold()
        .bucket(b)
        .key("evidence")
        .send()
        .await
        .unwrap();
    assert_eq!(
        lh.legal_hold().and_then(|l| l.status()),
        Some(&ObjectLockLegalHoldStatus::On)
    );
    assert_eq!(
        delete_version(&c, b, "evidence", &held, true).await,
        "AccessDenied"
    );
    assert_eq!(
        code(
            c.get_object_retention()
                .bucket(b)
                .key("evidence")
                .send()
                .await
        ),
        "NoSuchObjectLockConfiguration"
    );

    // DeleteObjects: locked versions fail their own entries only.
    let free = put_locked(&c, b, "free", b"f", None, None).await;
    let out = c
        .delete_objects()
        .bucket(b)
        .bypass_governance_retention(true)
        .delete(
            Delete::builder()
                .objects(
                    ObjectIdentifier::builder()
                        .key("ledger")
                        .version_id(&comp)
                        .build()
                        .unwrap(),
                )
                .objects(
                    ObjectIdentifier::builder()
                        .key("evidence")
                        .version_id(&held)
                        .build()
                        .unwrap(),
                )
                .objects(
                    ObjectIdentifier::builder()
                        .key("free")
                        .version_id(&free)
                        .build()
                        .unwrap(),
                )
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let failed: Vec<(&str, &str)> = out
        .errors()
        .iter()
        .map(|e| (e.key().unwrap(), e.code().unwrap()))
        .collect();
    assert_eq!(
        failed,
        [("ledger", "AccessDenied"), ("evidence", "AccessDenied")]
    );
    assert_eq!(out.deleted().len(), 1);
    assert_eq!(out.deleted()[0].key(), Some("free"));

    // Every admin command stops at the locks too: S3 DeleteBucket, and
    // `dooz admin bucket delete --force` deletes nothing.
    assert_eq!(
        code(c.delete_bucket().bucket(b).send().await),
        "BucketNotEmpty"
    );
    let out = g.dooz(&["admin", "bucket", "delete", b, "--force"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("under Object Lock; nothing was deleted"),
        "{err}"
    );
    assert_eq!(
        String::from_utf8_lossy(
            &c.get_object()
                .bucket(b)
                .key("ledger")
                .version_id(&comp)
                .send()
                .await
                .unwrap()
                .body
                .collect()
                .await
                .unwrap()
                .to_vec()
        ),
        "v1"
    );
    assert_eq!(get(&c, b, "evidence").await, b"h");

    assert_eq!(
        legal_hold(&c, b, "evidence", Some(&held), false).await,
        "ok"
    );
    assert_eq!(
        delete_version(&c, b, "evidence", &held, false).await,
        "deleted"
    );

    // Default retention, set by the bucket configuration.
    c.put_object_lock_configuration()
        .bucket(b)
        .object_lock_configuration(
            ObjectLockConfiguration::builder()
                .object_lock_enabled(ObjectLockEnabled::Enabled)
                .rule(
                    ObjectLockRule::builder()
                        .default_retention(
                            DefaultRetention::builder()
                                .mode(ObjectLockRetentionMode::Governance)
                                .days(1)
                                .build(),
                        )
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap();
    let cfg = c
        .get_object_lock_configuration()
        .bucket(b)
        .send()
        .await
        .unwrap();
    let d = cfg
        .object_lock_configuration()
        .and_then(|c| c.rule())
        .and_then(|r| r.default_retention())
        .unwrap();
    assert_eq!(
        (d.mode(), d.days()),
        (Some(&ObjectLockRetentionMode::Governance), Some(1))
    );
    let dv = put_locked(&c, b, "defaulted", b"d", None, None).await;
    let head = c
        .head_object()
        .bucket(b)
        .key("defaulted")
        .send()
        .await
        .unwrap();
    assert_eq!(head.version_id(), Some(dv.as_str()));
    assert_eq!(head.object_lock_mode(), Some(&ObjectLockMode::Governance));
    let until = head.object_lock_retain_until_date().unwrap().secs();
    let day = (dooz_gateway::engine::now_millis() / 1000) + 86_400;
    assert!((day - 120..=day).contains(&until), "{until} vs {day}");

    // Lock headers of CopyObject and of multipart uploads.
    let copied = c
        .copy_object()
        .bucket(b)
        .key("copied")
        .copy_source(format!("{b}/defaulted"))
        .object_lock_mode(ObjectLockMode::Compliance)
        .object_lock_retain_until_date(in_secs(3600))
        .send()
        .await
        .unwrap();
    let copied_v = copied.version_id().unwrap().to_owned();
    assert_eq!(
        delete_version(&c, b, "copied", &copied_v, true).await,
        "AccessDenied"
    );
    let up = c
        .create_multipart_upload()
        .bucket(b)
        .key("mp")
        .object_lock_legal_hold_status(ObjectLockLegalHoldStatus::On)
        .send()
        .await
        .unwrap();
    let id = up.upload_id().unwrap();
    let part = c
        .upload_part()
        .bucket(b)
        .key("mp")
        .upload_id(id)
        .part_number(1)
        .body(ByteStream::from_static(b"multipart body"))
        .send()
        .await
        .unwrap();
    let done = c
        .complete_multipart_upload()
        .bucket(b)
        .key("mp")
        .upload_id(id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .parts(
                    CompletedPart::builder()
                        .part_number(1)
                        .e_tag(part.e_tag().unwrap())
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap();
    let mp_v = done.version_id().unwrap().to_owned();
    let head = c.head_object().bucket(b).key("mp").send().await.unwrap();
    assert_eq!(
        head.object_lock_legal_hold_status(),
        Some(&ObjectLockLegalHoldStatus::On)
    );
    assert_eq!(
        delete_version(&c, b, "mp", &mp_v, true).await,
        "AccessDenied"
    );

    // Buckets without Object Lock refuse lock headers and lock calls.
    c.create_bucket().bucket("plain").send().await.unwrap();
    let r = c
        .put_object()
        .bucket("plain")
        .key("k")
        .body(ByteStream::from_static(b"x"))
        .object_lock_mode(ObjectLockMode::Governance)
        .object_lock_retain_until_date(in_secs(60))
        .send()
        .await;
    assert_eq!(code(r), "InvalidRequest");
    let r = c
        .create_multipart_upload()
        .bucket("plain")
        .key("k")
        .object_lock_legal_hold_status(ObjectLockLegalHoldStatus::On)
        .send()
        .await;
    assert_eq!(code(r), "InvalidRequest");
    assert_eq!(
        code(
            c.get_object_lock_configuration()
                .bucket("plain")
                .send()
                .await
        ),
        "ObjectLockConfigurationNotFoundError"
    );
    let r = c
        .put_object_lock_configuration()
        .bucket("plain")
        .object_lock_configuration(
            ObjectLockConfiguration::builder()
                .object_lock_enabled(ObjectLockEnabled::Enabled)
                .build(),
        )
        .send()
        .await;
    assert_eq!(
        code(r),
        "InvalidBucketState",
        "Object Lock needs versioning"
    );
    support::put(&c, "plain", "k", b"x").await;
    assert_eq!(
        legal_hold(&c, "plain", "k", None, true).await,
        "InvalidRequest"
    );
    // Malformed lock headers: a mode without a date; a date in the past.
    let r = c
        .put_object()
        .bucket(b)
        .key("bad")
        .body(ByteStream::from_static(b"x"))
        .object_lock_mode(ObjectLockMode::Governance)
        .send()
        .await;
    assert_eq!(code(r), "InvalidArgument");
    let r = c
        .put_object()
        .bucket(b)
        .key("bad")
        .body(ByteStream::from_static(b"x"))
        .object_lock_mode(ObjectLockMode::Governance)
        .object_lock_retain_until_date(in_secs(-60))
        .send()
        .await;
    assert_eq!(code(r), "InvalidArgument");
    assert_eq!(
        code(c.get_object().bucket(b).key("bad").send().await),
        "NoSuchKey"
    );
    g.fsck_clean().await;
}

mod object_lock {
    use super::*;
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        super::object_lock(Meta::Sqlite).await
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        super::object_lock(Meta::Postgres).await
    }
}
