//! The lifecycle worker's pass mechanics on both metadata stores (the rule
//! semantics are covered through boto3 in conformance/suite/test_lifecycle.py):
//! a pass that stopped resumes after its saved cursor and finishes the
//! bucket; one pass at a time (`dooz lifecycle run` exits 3 while another
//! holds the lease); the pass's work shows in `dooz_lifecycle_*`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use aws_sdk_s3::Client;
use aws_sdk_s3::types::{
    BucketLifecycleConfiguration, ExpirationStatus, LifecycleExpiration, LifecycleRule,
    LifecycleRuleFilter,
};
use dooz_gateway::jobs::lease::{HeldLease, LeaseTimings};
use dooz_gateway::jobs::{LifecycleConfig, LifecycleError, LifecycleWorker};
use dooz_gateway::meta::LifecycleState;
use support::gateway::{Backend, Meta, Options, start};
use support::metrics::metric;
use support::put;

async fn expire_everything_after_a_day(c: &Client, bucket: &str) {
    let rule = LifecycleRule::builder()
        .id("all")
        .status(ExpirationStatus::Enabled)
        .filter(LifecycleRuleFilter::builder().prefix("").build())
        .expiration(LifecycleExpiration::builder().days(1).build())
        .build()
        .unwrap();
    c.put_bucket_lifecycle_configuration()
        .bucket(bucket)
        .lifecycle_configuration(
            BucketLifecycleConfiguration::builder()
                .rules(rule)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
}

async fn keys(c: &Client, bucket: &str) -> Vec<String> {
    c.list_objects_v2()
        .bucket(bucket)
        .send()
        .await
        .unwrap()
        .contents()
        .iter()
        .filter_map(|o| o.key().map(str::to_owned))
        .collect()
}

async fn resumes_after_its_cursor_one_pass_at_a_time(meta: Meta) {
    let mut g = start(Options::new(meta, Backend::Local)).await;
    let c = g.client();
    c.create_bucket().bucket("lcycle").send().await.unwrap();
    expire_everything_after_a_day(&c, "lcycle").await;
    for k in ["k0", "k1", "k2", "k3", "k4", "k5"] {
        put(&c, "lcycle", k, k.as_bytes()).await;
    }
    // A pass that stopped after handling k0..k2 (a crash, a lost lease):
    // its bucket's cursor was saved after that batch.
    let meta_store = g.engine().meta().clone();
    meta_store
        .save_lifecycle_state(&LifecycleState {
            bucket: "lcycle".into(),
            cursor_key: Some("k2".into()),
            pass_started: Some(dooz_gateway::engine::now_millis() - 1000),
            ..Default::default()
        })
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(1200)).await;

    let cfg = LifecycleConfig {
        debug_day_secs: Some(1),
        batch_size: 2,
        ..Default::default()
    };
    let timings = LeaseTimings::from_config(&g.cfg.gc);
    let worker = LifecycleWorker::new(g.engine().clone(), cfg, timings);
    let mut batches = 0;
    let mut count = |_: &str, _: &dooz_gateway::jobs::LifecycleReport| batches += 1;
    let r = worker.run(Some("lcycle"), false, &mut count).await.unwrap();
    assert_eq!((r.resumed, r.objects_expired), (1, 3), "{r:?}");
    assert!(
        batches >= 2,
        "batches of two keys: {batches} progress reports"
    );
    assert_eq!(
        keys(&c, "lcycle").await,
        ["k0", "k1", "k2"],
        "resumed after k2"
    );
    let state = meta_store.lifecycle_state("lcycle").await.unwrap().unwrap();
    assert_eq!((state.cursor_key, state.pass_started), (None, None));
    assert!(state.last_finished.is_some() && state.last_summary.is_some());
    assert!(
        metric(
            &g.admin,
            "dooz_lifecycle_actions_total",
            &["objects_expired"]
        )
        .await
            >= 3.0
    );

    // The next pass starts from the beginning.
    let mut quiet = |_: &str, _: &dooz_gateway::jobs::LifecycleReport| {};
    let r = worker.run(Some("lcycle"), false, &mut quiet).await.unwrap();
    assert_eq!((r.resumed, r.objects_expired), (0, 3), "{r:?}");
    assert!(keys(&c, "lcycle").await.is_empty());

    // One pass at a time, across processes.
    let held = HeldLease::try_acquire(meta_store.clone(), "lifecycle", timings)
        .await
        .unwrap()
        .unwrap_or_else(|_| panic!("the lifecycle lease is free"));
    let busy = worker.run(Some("lcycle"), false, &mut quiet).await;
    assert!(matches!(busy, Err(f) if matches!(f.error, LifecycleError::Busy(_))));
    g.cfg.lifecycle.debug_day_secs = Some(1);
    let out = g.dooz(&["lifecycle", "run", "--bucket", "lcycle"]);
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    held.release().await;
    let out = g.dooz(&["lifecycle", "run", "--bucket", "lcycle", "--json"]);
    assert!(out.status.success(), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("debug_day_secs") && stderr.contains("never set it in production"),
        "the test-only day length is logged loudly: {stderr}"
    );
    // Passes run by an operator are in the audit log, with what they did.
    let audit = g.dooz(&["audit", "export", "--format", "jsonl"]);
    let runs: Vec<serde_json::Value> = String::from_utf8_lossy(&audit.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|r| r["action"] == "lifecycle:run")
        .collect();
    assert_eq!(runs.len(), 2, "the busy run and the pass: {runs:?}");
    assert_eq!(runs[1]["target"], "lcycle");
    assert_eq!(runs[1]["result"], "ok");
    let status = g.dooz(&["lifecycle", "status", "--json"]);
    let rows: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(rows[0]["bucket"], "lcycle");
    assert_eq!(rows[0]["pass_in_progress"], false);
    g.stop().await;
}

macro_rules! both_stores {
    ($test:ident) => {
        mod $test {
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$test(Meta::Sqlite).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$test(Meta::Postgres).await
            }
        }
    };
}

both_stores!(resumes_after_its_cursor_one_pass_at_a_time);
