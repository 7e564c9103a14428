//! Known-answer tests: the key derivations, SSE-C, and the Wycheproof
//! XChaCha20-Poly1305 vectors run through the secrets-at-rest layer.
//!
//! The derivation answers were computed independently of this crate with the
//! Python `blake3` package (`blake3.blake3(material, derive_key_context=ctx)`),
//! from the context strings documented in `docs/SECURITY.md`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use dooz_keyvault::secrets::{self, seal_with_nonce};
use dooz_keyvault::sse_c::{self, CustomerKeyVerifier};
use dooz_keyvault::{KeyError, SecretKey, TenantKeys, Tmk};

/// TMK = 00 01 02 ... 1f
fn fixed_tmk() -> Tmk {
    let mut b = [0u8; 32];
    for (i, x) in b.iter_mut().enumerate() {
        *x = i as u8;
    }
    Tmk::from_bytes(b)
}

fn h(k: &SecretKey) -> String {
    hex::encode(k.expose())
}

#[test]
fn derivation_known_answers() {
    let tk = TenantKeys::derive(&fixed_tmk());
    assert_eq!(
        h(tk.id_key()),
        "d565232d2deb6005feb52ce3847f50dc8d46f38d224cd8d0cac50662ff9eb8c0"
    );
    assert_eq!(
        h(tk.cdc_key()),
        "26003b51c00b2071b1eea8bd0a388a05e37a9a85076e22252512b0c5da84aebe"
    );
    assert_eq!(
        h(tk.meta_key()),
        "e04d53157f49e7aca2b3c75c72abe07a07ba452c8eb9af5ef8bfcdc8d7786d4b"
    );
    assert_eq!(
        h(tk.secret_key()),
        "d5f37938a0d26f46f0118c72a705a30793642b0b862e1df8d901a0166c50bb47"
    );
    let epochs: [(u32, &str, &str); 3] = [
        (
            0,
            "cdf8029e8adffa206befb9971f9cf3db804fad830468bcadf6d0443abf54c6a8",
            "5c380041d8592a43c0a212f34cade9ce4c10e174917d88a677ef6198a553928b",
        ),
        (
            1,
            "20d987e398fb13a2f543412ab5f7e49fd7abb922a0cdcb10ff25df0ef8c67465",
            "ad4043f6b18b1cbfaadfae8f2f4b504fba58a10bd1f665147961953d002bc150",
        ),
        (
            u32::MAX,
            "8d2bbf3449318fe7d4d8651af2b2bc3e3662607eebd6633c674ae42b0696254c",
            "af68b12ffe4a588813b259dc5a62429ed52bc71ebddb535627d81b42278aa59e",
        ),
    ];
    for (e, enc, nonce) in epochs {
        assert_eq!(h(&tk.enc_key(e)), enc, "K_enc[{e}]");
        assert_eq!(h(&tk.nonce_key(e)), nonce, "K_nonce[{e}]");
    }
    assert_eq!(
        hex::encode(fixed_tmk().commitment()),
        "a4d123cb681db7d9f5950b5ffe77a1030626f8531137dbff311ffa89d880086b"
    );
}

#[test]
fn new_epoch_keeps_old_epochs_derivable() {
    let tk = TenantKeys::derive(&fixed_tmk());
    let mut epoch = 0u32;
    let mut seen = Vec::new();
    for _ in 0..5 {
        seen.push((epoch, tk.enc_key(epoch), tk.nonce_key(epoch)));
        epoch = dooz_keyvault::next_epoch(epoch).unwrap();
    }
    // Re-deriving from a fresh TenantKeys (as after a restart) gives the same keys.
    let again = TenantKeys::derive(&fixed_tmk());
    for (e, enc, nonce) in &seen {
        assert_eq!(&again.enc_key(*e), enc);
        assert_eq!(&again.nonce_key(*e), nonce);
        assert_ne!(enc, nonce);
    }
    for i in 0..seen.len() {
        for j in i + 1..seen.len() {
            assert_ne!(seen[i].1, seen[j].1);
            assert_ne!(seen[i].2, seen[j].2);
        }
    }
    // K_id does not depend on the epoch: dedup survives a new epoch.
    assert_eq!(tk.id_key(), again.id_key());
}

#[test]
fn sse_c_known_answers() {
    let ck = [0x42u8; 32];
    let mut salt = [0u8; 16];
    for (i, x) in salt.iter_mut().enumerate() {
        *x = i as u8;
    }
    let mut mac = [0u8; 32];
    hex::decode_to_slice(
        "23ba6c04bff0b976ff63cc8d209388d6027e2db26f1f359d0f3aa076b59781b6",
        &mut mac,
    )
    .unwrap();
    let v = CustomerKeyVerifier { salt, mac };
    sse_c::check(&ck, &v).unwrap();
    assert!(matches!(
        sse_c::check(&[0x43; 32], &v),
        Err(KeyError::WrongKey { .. })
    ));

    // A blob sealed under the independently derived wrapping key opens.
    let mut wk = [0u8; 32];
    hex::decode_to_slice(
        "1a520378944f0c0ac7db5cca64c2bf79f96ab1f4b8e074f27f319c5a47e90e86",
        &mut wk,
    )
    .unwrap();
    let object_key = SecretKey::from_bytes([7; 32]);
    let blob = seal_with_nonce(
        &SecretKey::from_bytes(wk),
        &[9u8; 24],
        b"dooz/sse-c/object-key/v1bucket/object",
        object_key.expose(),
    )
    .unwrap();
    assert_eq!(
        sse_c::unwrap_object_key(&ck, &blob, b"bucket/object").unwrap(),
        object_key
    );
}

#[derive(serde::Deserialize)]
struct Suite {
    algorithm: String,
    #[serde(rename = "numberOfTests")]
    number_of_tests: usize,
    #[serde(rename = "testGroups")]
    groups: Vec<Group>,
}

#[derive(serde::Deserialize)]
struct Group {
    #[serde(rename = "keySize")]
    key_size: usize,
    #[serde(rename = "tagSize")]
    tag_size: usize,
    tests: Vec<Case>,
}

#[derive(serde::Deserialize)]
struct Case {
    #[serde(rename = "tcId")]
    id: u32,
    key: String,
    iv: String,
    aad: String,
    msg: String,
    ct: String,
    tag: String,
    result: String,
}

/// Every Wycheproof XChaCha20-Poly1305 vector, through `secrets`:
/// - valid: `seal_with_nonce` yields `0x01 ‖ iv ‖ ct ‖ tag` and `open` returns msg;
/// - invalid with a 24-byte nonce (modified tags, ...): `open` rejects the blob;
/// - invalid nonce sizes: `seal_with_nonce` refuses the nonce.
#[test]
fn wycheproof_xchacha20_poly1305_through_secrets() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/wycheproof/xchacha20_poly1305_test.json"
    );
    let suite: Suite = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    assert_eq!(suite.algorithm, "XCHACHA20-POLY1305");
    let (mut valid, mut rejected_blob, mut rejected_nonce) = (0usize, 0usize, 0usize);
    for g in &suite.groups {
        assert_eq!((g.key_size, g.tag_size), (256, 128));
        for c in &g.tests {
            let d = |s: &str| hex::decode(s).unwrap();
            let key = SecretKey::try_from_slice(&d(&c.key)).unwrap();
            let (iv, aad, msg, ct, tag) = (d(&c.iv), d(&c.aad), d(&c.msg), d(&c.ct), d(&c.tag));
            if iv.len() != secrets::NONCE_LEN {
                assert_eq!(c.result, "invalid", "tc {}", c.id);
                assert!(
                    matches!(
                        seal_with_nonce(&key, &iv, &aad, &msg),
                        Err(KeyError::Config { .. })
                    ),
                    "tc {}",
                    c.id
                );
                rejected_nonce += 1;
                continue;
            }
            let mut blob = vec![secrets::BLOB_V1];
            blob.extend_from_slice(&iv);
            blob.extend_from_slice(&ct);
            blob.extend_from_slice(&tag);
            match c.result.as_str() {
                "valid" | "acceptable" => {
                    assert_eq!(
                        seal_with_nonce(&key, &iv, &aad, &msg).unwrap(),
                        blob,
                        "tc {}",
                        c.id
                    );
                    assert_eq!(&secrets::open(&key, &aad, &blob).unwrap()[..], &msg[..]);
                    valid += 1;
                }
                "invalid" => {
                    assert!(
                        matches!(
                            secrets::open(&key, &aad, &blob),
                            Err(KeyError::Tampered { .. })
                        ),
                        "tc {} must be rejected",
                        c.id
                    );
                    rejected_blob += 1;
                }
                other => panic!("tc {}: unknown result {other}", c.id),
            }
        }
    }
    assert_eq!(
        valid + rejected_blob + rejected_nonce,
        suite.number_of_tests
    );
    assert_eq!(
        (valid, rejected_blob, rejected_nonce),
        (246, 60, 9),
        "vector counts changed"
    );
}
