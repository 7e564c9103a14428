//! Throttling overrides (`limit_overrides`): stored, replaced, listed in
//! order and removed, on both stores; the scope is checked by the schema.

use super::*;

crate::for_both_stores!(limit_overrides_set_replace_list_and_remove);

async fn limit_overrides_set_replace_list_and_remove(db: &TestDb) {
    let s = db.open().await;
    assert!(s.limit_overrides().await.unwrap().is_empty());
    assert!(
        s.set_limit_override("key", "DZK1", Some("{\"requests\":\"2/s\"}"))
            .await
            .unwrap()
    );
    assert!(
        s.set_limit_override("bucket", "logs", Some("{\"egress\":\"1MiB/s\"}"))
            .await
            .unwrap()
    );
    // Replaced in place, not added.
    assert!(
        s.set_limit_override("key", "DZK1", Some("{\"requests\":\"5/s\"}"))
            .await
            .unwrap()
    );
    let rows = s.limit_overrides().await.unwrap();
    let flat: Vec<(&str, &str, &str)> = rows
        .iter()
        .map(|r| (r.scope.as_str(), r.subject.as_str(), r.body.as_str()))
        .collect();
    assert_eq!(
        flat,
        vec![
            ("bucket", "logs", "{\"egress\":\"1MiB/s\"}"),
            ("key", "DZK1", "{\"requests\":\"5/s\"}"),
        ]
    );
    assert!(s.set_limit_override("key", "DZK1", None).await.unwrap());
    assert!(
        !s.set_limit_override("key", "DZK1", None).await.unwrap(),
        "nothing left to remove"
    );
    assert_eq!(s.limit_overrides().await.unwrap().len(), 1);
    // Only tenant, key and bucket scopes exist.
    assert!(
        s.set_limit_override("global", "-", Some("{}"))
            .await
            .is_err()
    );
}
