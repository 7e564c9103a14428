//! Access policies in the metadata store, on both stores: a tenant's named
//! policies are created, replaced, listed and deleted (never while
//! attached); a new user starts with its role attached; attachments are
//! per user and go with the user; a bucket's policy and Block Public Access
//! flags round-trip and missing buckets are refused.

use super::*;
use dooz_gateway::meta::{BucketAccess, PublicAccessBlock, StoredPolicy};

crate::for_both_stores!(
    named_policies_round_trip_and_refuse_builtin_names,
    users_start_with_their_role_and_attachments_follow_them,
    bucket_policy_and_public_access_block_round_trip,
);

fn stored(tenant: TenantId, name: &str, doc: &str) -> StoredPolicy {
    StoredPolicy {
        tenant_id: tenant,
        name: name.into(),
        document: doc.into(),
        created_at: 9,
    }
}

fn user(key: &str, tenant: TenantId, role: Policy) -> User {
    User {
        access_key: key.into(),
        tenant_id: tenant,
        name: format!("user-{key}"),
        secret_sealed: vec![1, 2, 3],
        policy: role,
        created_at: 5,
    }
}

async fn named_policies_round_trip_and_refuse_builtin_names(db: &TestDb) {
    let fx = fixture(db).await;
    let other = new_tenant("other");
    fx.store.create_tenant(&other).await.unwrap();
    let s = &fx.store;
    s.put_policy(&stored(fx.tenant, "ci", "{\"v\":1}"))
        .await
        .unwrap();
    s.put_policy(&stored(fx.tenant, "audit", "{}"))
        .await
        .unwrap();
    s.put_policy(&stored(other.id, "ci", "{\"theirs\":1}"))
        .await
        .unwrap();
    // Replacing keeps one row with the new text.
    s.put_policy(&stored(fx.tenant, "ci", "{\"v\":2}"))
        .await
        .unwrap();
    let got = s.get_policy(fx.tenant, "ci").await.unwrap().unwrap();
    assert_eq!(got.document, "{\"v\":2}");
    let names: Vec<String> = s
        .list_policies(fx.tenant)
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.name)
        .collect();
    assert_eq!(names, ["audit", "ci"]);
    // Tenants do not see each other's policies.
    assert_eq!(
        s.get_policy(other.id, "ci")
            .await
            .unwrap()
            .unwrap()
            .document,
        "{\"theirs\":1}"
    );
    assert!(s.get_policy(other.id, "audit").await.unwrap().is_none());
    // Built-in names are the binary's.
    let e = s.put_policy(&stored(fx.tenant, "admin", "{}")).await;
    assert!(matches!(e, Err(MetaError::InvalidRequest(_))), "{e:?}");
    assert!(s.get_policy(fx.tenant, "admin").await.unwrap().is_none());
    // An unknown tenant is NotFound and stores nothing.
    let ghost = uuid::Uuid::new_v4();
    let e = s.put_policy(&stored(ghost, "x", "{}")).await;
    assert!(matches!(e, Err(MetaError::NotFound { .. })), "{e:?}");
    assert!(s.list_policies(ghost).await.unwrap().is_empty());
    // Delete: true once, then false.
    assert!(s.delete_policy(fx.tenant, "audit").await.unwrap());
    assert!(!s.delete_policy(fx.tenant, "audit").await.unwrap());
    assert_eq!(s.list_policies(fx.tenant).await.unwrap().len(), 1);
}

async fn users_start_with_their_role_and_attachments_follow_them(db: &TestDb) {
    let fx = fixture(db).await;
    let other = new_tenant("other");
    fx.store.create_tenant(&other).await.unwrap();
    let s = &fx.store;
    s.create_user(&user("AK1", fx.tenant, Policy::ReadWrite))
        .await
        .unwrap();
    s.create_user(&user("AK2", other.id, Policy::ReadOnly))
        .await
        .unwrap();
    assert_eq!(s.user_policies("AK1").await.unwrap(), ["read-write"]);
    assert_eq!(s.user_policies("AK2").await.unwrap(), ["read-only"]);

    s.put_policy(&stored(fx.tenant, "ci", "{}")).await.unwrap();
    s.attach_user_policy("AK1", "ci").await.unwrap();
    s.attach_user_policy("AK1", "ci").await.unwrap(); // idempotent
    s.attach_user_policy("AK1", "read-only").await.unwrap();
    assert_eq!(
        s.user_policies("AK1").await.unwrap(),
        ["ci", "read-only", "read-write"]
    );
    // Another tenant's policy is not attachable; nor is an unknown one.
    let e = s.attach_user_policy("AK2", "ci").await;
    assert!(
        matches!(e, Err(MetaError::NotFound { what: "policy", .. })),
        "{e:?}"
    );
    let e = s.attach_user_policy("AK1", "nope").await;
    assert!(
        matches!(e, Err(MetaError::NotFound { what: "policy", .. })),
        "{e:?}"
    );
    let e = s.attach_user_policy("NOBODY", "admin").await;
    assert!(
        matches!(
            e,
            Err(MetaError::NotFound {
                what: "access key",
                ..
            })
        ),
        "{e:?}"
    );
    assert_eq!(s.user_policies("AK2").await.unwrap(), ["read-only"]);

    // An attached policy cannot be deleted.
    let e = s.delete_policy(fx.tenant, "ci").await;
    assert!(matches!(e, Err(MetaError::InvalidRequest(_))), "{e:?}");
    assert!(s.get_policy(fx.tenant, "ci").await.unwrap().is_some());

    // Detaching the role leaves a user with only what is attached.
    assert!(s.detach_user_policy("AK1", "read-write").await.unwrap());
    assert!(!s.detach_user_policy("AK1", "read-write").await.unwrap());
    assert_eq!(s.user_policies("AK1").await.unwrap(), ["ci", "read-only"]);

    // Deleting the user drops its attachments; the policy can then go.
    assert!(s.delete_user("AK1").await.unwrap());
    assert!(s.user_policies("AK1").await.unwrap().is_empty());
    assert!(s.delete_policy(fx.tenant, "ci").await.unwrap());
}

async fn bucket_policy_and_public_access_block_round_trip(db: &TestDb) {
    let fx = fixture(db).await;
    let s = &fx.store;
    assert_eq!(
        s.bucket_access(&fx.bucket).await.unwrap(),
        BucketAccess::default()
    );
    s.set_bucket_policy(&fx.bucket, Some("{\"Statement\":[]}"))
        .await
        .unwrap();
    let pab = PublicAccessBlock {
        block_public_policy: true,
        ..PublicAccessBlock::default()
    };
    s.set_public_access_block(&fx.bucket, Some(&pab))
        .await
        .unwrap();
    let got = s.bucket_access(&fx.bucket).await.unwrap();
    assert_eq!(got.policy.as_deref(), Some("{\"Statement\":[]}"));
    assert_eq!(got.public_access_block, Some(pab));
    // The bucket itself is untouched.
    let b = s.get_bucket(&fx.bucket).await.unwrap().unwrap();
    assert_eq!(b.tenant_id, fx.tenant);

    s.set_bucket_policy(&fx.bucket, None).await.unwrap();
    s.set_public_access_block(&fx.bucket, None).await.unwrap();
    assert_eq!(
        s.bucket_access(&fx.bucket).await.unwrap(),
        BucketAccess::default()
    );

    for r in [
        s.set_bucket_policy("nope", Some("{}")).await,
        s.set_public_access_block("nope", Some(&PublicAccessBlock::ALL))
            .await,
        s.bucket_access("nope").await.map(|_| ()),
    ] {
        assert!(matches!(r, Err(MetaError::NoSuchBucket(_))), "{r:?}");
    }
}
