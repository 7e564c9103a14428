//! A request fuzzer: random methods, paths, query parameters (names
//! percent-encoded at random), headers and bodies, signed with a valid key
//! or not at all, sent over TCP to an in-process gateway. Every answer must
//! be a complete HTTP response that is not a 5xx other than 503 SlowDown /
//! ServiceUnavailable or 501 NotImplemented (S3's answer for operations a
//! gateway does not implement); afterwards nothing may hold the memory
//! budget, a normal client must be served and fsck must find the metadata
//! consistent.

use std::time::Duration;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

use super::gateway::{Backend, Gateway, Meta, Options, start};
use super::raw::{addr, request, send, sign_request};

#[derive(Clone, Debug)]
pub struct FuzzRequest {
    method: String,
    path: String,
    query: Vec<(String, String)>,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    signed: bool,
}

const BUCKETS: &[&str] = &["fuzz", "fuzz-other", "nosuchbucket", "", "Bad_Name", "a"];

fn encode_some(s: &str, mask: u64) -> String {
    // Percent-encode some characters (by the mask's bits), as a client may.
    s.chars()
        .enumerate()
        .map(|(i, c)| {
            if mask >> (i % 64) & 1 == 1 && c.is_ascii() {
                format!("%{:02X}", c as u8)
            } else {
                c.to_string()
            }
        })
        .collect()
}

fn key_strategy() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        "[a-z0-9/._-]{1,40}",
        Just("k".to_owned()),
        Just("dir/sub/k".to_owned()),
        Just("%00".to_owned()),
        Just("a%FFb".to_owned()),
        Just("%C3%A9t%C3%A9".to_owned()),
        Just("..%2F..%2Fetc".to_owned()),
        Just("x".repeat(1100)),
        proptest::collection::vec(any::<u8>(), 0..24)
            .prop_map(|b| b.iter().map(|x| format!("%{x:02X}")).collect()),
    ]
}

fn value_strategy() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        "[a-zA-Z0-9/=+_-]{0,24}",
        Just("-1".to_owned()),
        Just("0".to_owned()),
        Just("10001".to_owned()),
        Just("4294967296".to_owned()),
        Just("604801".to_owned()),
        Just("%00".to_owned()),
        Just("%FF%FE".to_owned()),
        (0u32..20_000).prop_map(|n| n.to_string()),
    ]
}

const PARAMS: &[&str] = &[
    "uploads",
    "uploadId",
    "partNumber",
    "delete",
    "list-type",
    "prefix",
    "delimiter",
    "max-keys",
    "marker",
    "continuation-token",
    "start-after",
    "encoding-type",
    "versionId",
    "versions",
    "location",
    "tagging",
    "acl",
    "select",
    "max-uploads",
    "max-parts",
    "part-number-marker",
    "key-marker",
    "upload-id-marker",
    "max-buckets",
    "bucket-region",
    "X-Amz-Expires",
    "X-Amz-Signature",
    "X-Amz-Credential",
    "X-Amz-Date",
    "Signature",
    "AWSAccessKeyId",
    "response-content-type",
    "x-id",
];

fn query_strategy() -> impl Strategy<Value = Vec<(String, String)>> {
    proptest::collection::vec(
        (
            proptest::sample::select(PARAMS),
            any::<u64>(),
            value_strategy(),
            any::<bool>(),
        )
            .prop_map(|(name, mask, value, bare)| {
                let name = encode_some(name, mask);
                if bare && value.is_empty() {
                    (name, String::new())
                } else {
                    (name, value)
                }
            }),
        0..5,
    )
}

const HEADERS: &[(&str, &[&str])] = &[
    (
        "content-type",
        &[
            "multipart/form-data; boundary=x",
            "application/xml",
            "text/plain",
            "",
        ],
    ),
    ("content-md5", &["1B2M2Y8AsgTpgAmY7PhCfg==", "nope", ""]),
    ("x-amz-checksum-crc32", &["AAAAAA==", "bad", ""]),
    ("x-amz-checksum-sha256", &["AAAA", ""]),
    (
        "range",
        &[
            "bytes=0-0",
            "bytes=-1",
            "bytes=5-2",
            "bytes=0-",
            "bytes=99999999-",
            "bytes",
        ],
    ),
    ("if-match", &["*", "\"abc\"", ""]),
    ("if-none-match", &["*", "\"abc\""]),
    (
        "if-modified-since",
        &["Sat, 01 Jan 2000 00:00:00 GMT", "yesterday"],
    ),
    (
        "x-amz-copy-source",
        &[
            "/fuzz/k",
            "fuzz/dir/sub/k",
            "/nosuchbucket/k",
            "%00",
            "/fuzz/k?versionId=x",
            "",
        ],
    ),
    ("x-amz-copy-source-range", &["bytes=0-1", "bytes=9-1", "x"]),
    (
        "x-amz-decoded-content-length",
        &["0", "10", "99999999999", "x"],
    ),
    (
        "x-amz-content-sha256",
        &[
            "UNSIGNED-PAYLOAD",
            "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
            "STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
            "deadbeef",
        ],
    ),
    (
        "x-amz-trailer",
        &["x-amz-checksum-crc32", "x-amz-checksum-nope"],
    ),
    ("x-amz-meta-a", &["b"]),
    ("x-amz-tagging", &["a=b", "%%"]),
    ("x-amz-checksum-algorithm", &["CRC32", "MD5", "crc64nvme"]),
    ("x-amz-sdk-checksum-algorithm", &["CRC32"]),
    (
        "x-amz-server-side-encryption-customer-algorithm",
        &["AES256"],
    ),
    ("content-encoding", &["aws-chunked", "gzip"]),
    ("expect", &["100-continue"]),
    (
        "authorization",
        &["AWS DZX:c2ln", "AWS4-HMAC-SHA256 garbage", "Bearer x"],
    ),
];

fn headers_strategy() -> impl Strategy<Value = Vec<(String, String)>> {
    proptest::collection::vec(
        (0..HEADERS.len(), any::<prop::sample::Index>()).prop_map(|(i, v)| {
            let (name, values) = HEADERS[i];
            (name.to_owned(), v.get(values).to_string())
        }),
        0..4,
    )
}

fn body_strategy() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        Just(Vec::new()),
        proptest::collection::vec(any::<u8>(), 0..2048),
        Just(b"<Delete><Object><Key>k</Key></Object></Delete>".to_vec()),
        Just(b"<Delete><Quiet>true</Quiet><Object><Key>%00</Key></Object>".to_vec()),
        Just(b"<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>\"x\"</ETag></Part></CompleteMultipartUpload>".to_vec()),
        Just(b"<CreateBucketConfiguration><LocationConstraint>mars</LocationConstraint></CreateBucketConfiguration>".to_vec()),
        Just(b"400;chunk-signature=00\r\nabc\r\n0\r\n\r\n".to_vec()),
        Just(b"fffffffff\r\nxx".to_vec()),
        Just(b"--x\r\nContent-Disposition: form-data; name=\"key\"\r\n\r\nk\r\n--x--\r\n".to_vec()),
    ]
}

pub fn request_strategy() -> impl Strategy<Value = FuzzRequest> {
    (
        prop_oneof![
            Just("GET"),
            Just("HEAD"),
            Just("PUT"),
            Just("POST"),
            Just("DELETE"),
            Just("OPTIONS"),
            Just("PATCH"),
        ],
        proptest::sample::select(BUCKETS),
        key_strategy(),
        query_strategy(),
        headers_strategy(),
        body_strategy(),
        any::<bool>(),
    )
        .prop_map(|(method, bucket, key, query, headers, body, signed)| {
            let path = match (bucket.is_empty(), key.is_empty()) {
                (true, _) => "/".to_owned(),
                (false, true) => format!("/{bucket}"),
                (false, false) => format!("/{bucket}/{key}"),
            };
            FuzzRequest {
                method: method.to_owned(),
                path,
                query,
                headers,
                body,
                signed,
            }
        })
}

fn path_and_query(r: &FuzzRequest) -> String {
    if r.query.is_empty() {
        return r.path.clone();
    }
    let q: Vec<String> = r
        .query
        .iter()
        .map(|(k, v)| {
            if v.is_empty() {
                k.clone()
            } else {
                format!("{k}={v}")
            }
        })
        .collect();
    format!("{}?{}", r.path, q.join("&"))
}

/// Sends one fuzzed request; Err when the answer breaks an invariant.
async fn check(g: &Gateway, r: &FuzzRequest) -> Result<(), String> {
    let a = addr(&g.endpoint);
    let pq = path_and_query(r);
    let headers: Vec<(&str, &str)> = r
        .headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let built = std::panic::catch_unwind(|| request(&r.method, &a, &pq, &headers, r.body.clone()));
    let Ok(mut req) = built else {
        // Not even a valid HTTP request for the http crate: nothing to send.
        return Ok(());
    };
    if r.signed {
        sign_request(&mut req, &g.access_key, &g.secret_key);
    }
    let resp = send(&a, &req).await;
    let bad_5xx = resp.status >= 500 && resp.status != 503 && resp.status != 501;
    let wrong_501 = resp.status == 501 && resp.code().as_deref() != Some("NotImplemented");
    if bad_5xx || wrong_501 {
        return Err(format!(
            "{} {pq} (signed: {}) headers {:?} body {} bytes -> {} {}",
            r.method,
            r.signed,
            r.headers,
            r.body.len(),
            resp.status,
            resp.text()
        ));
    }
    Ok(())
}

/// Runs `cases` random requests (`DOOZ_FUZZ_CASES` overrides) against a
/// fresh gateway with a bucket holding a few objects.
pub fn run(default_cases: u32, meta: Meta) {
    let cases = std::env::var("DOOZ_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default_cases);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let g = rt.block_on(async {
        let g = start(Options::new(meta, Backend::Local)).await;
        let c = g.client();
        c.create_bucket()
            .bucket("fuzz")
            .send()
            .await
            .expect("bucket");
        super::put(&c, "fuzz", "k", b"fuzzed object").await;
        super::put(&c, "fuzz", "dir/sub/k", &super::pseudo_random(300_000, 1)).await;
        g
    });
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    let result = runner.run(&request_strategy(), |r| {
        rt.block_on(check(&g, &r)).map_err(TestCaseError::fail)
    });
    rt.block_on(async {
        // Whatever was thrown at it, the gateway holds no memory for it,
        // serves a normal client and its metadata is consistent.
        let mut in_use = g.engine().budget().in_use_bytes();
        for _ in 0..200 {
            if in_use == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
            in_use = g.engine().budget().in_use_bytes();
        }
        assert_eq!(in_use, 0, "memory budget leaked");
        // A fresh bucket: the fuzzer may have emptied and deleted "fuzz",
        // which is S3 behaving, not the gateway failing.
        let c = g.client();
        c.create_bucket()
            .bucket("after-storm")
            .send()
            .await
            .expect("create a bucket after the storm");
        super::put(&c, "after-storm", "after", b"after the storm").await;
        assert_eq!(
            super::get(&c, "after-storm", "after").await,
            b"after the storm"
        );
        g.fsck_clean().await;
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}
