//! Known-answer tests for the AEAD layer the frames and packs use
//! (`dooz_chunker::raw` goes through the same `AeadKey` seal/open code):
//! RFC 8452 Appendix C.2/C.3 (AES-256-GCM-SIV), RFC 8439 §2.8.2
//! (ChaCha20-Poly1305), and every Wycheproof vector for both.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use dooz_chunker::Cipher;
use dooz_chunker::raw::{self, RawError};
use serde::Deserialize;

fn unhex(text: &str) -> Vec<u8> {
    let compact: String = text.split_whitespace().collect();
    hex::decode(compact).unwrap()
}

/// One vector typed in from RFC 8452: key, nonce, AAD, plaintext, and the
/// "Result" line (ciphertext ‖ tag).
struct Rfc8452 {
    key: &'static str,
    nonce: &'static str,
    aad: &'static str,
    plaintext: &'static str,
    result: &'static str,
}

const K1: &str = "0100000000000000000000000000000000000000000000000000000000000000";
const N3: &str = "030000000000000000000000";

const RFC_8452_AES_256: &[Rfc8452] = &[
    // C.2, no AAD.
    Rfc8452 {
        key: K1,
        nonce: N3,
        aad: "",
        plaintext: "",
        result: "07f5f4169bbf55a8400cd47ea6fd400f",
    },
    Rfc8452 {
        key: K1,
        nonce: N3,
        aad: "",
        plaintext: "0100000000000000",
        result: "c2ef328e5c71c83b843122130f7364b7 61e0b97427e3df28",
    },
    Rfc8452 {
        key: K1,
        nonce: N3,
        aad: "",
        plaintext: "010000000000000000000000",
        result: "9aab2aeb3faa0a34aea8e2b18ca50da9 ae6559e48fd10f6e5c9ca17e",
    },
    Rfc8452 {
        key: K1,
        nonce: N3,
        aad: "",
        plaintext: "01000000000000000000000000000000",
        result: "85a01b63025ba19b7fd3ddfc033b3e76 c9eac6fa700942702e90862383c6c366",
    },
    Rfc8452 {
        key: K1,
        nonce: N3,
        aad: "",
        plaintext: "01000000000000000000000000000000 02000000000000000000000000000000",
        result: "4a6a9db4c8c6549201b9edb53006cba8 21ec9cf850948a7c86c68ac7539d027f \
                 e819e63abcd020b006a976397632eb5d",
    },
    Rfc8452 {
        key: K1,
        nonce: N3,
        aad: "",
        plaintext: "01000000000000000000000000000000 02000000000000000000000000000000 \
                    03000000000000000000000000000000",
        result: "c00d121893a9fa603f48ccc1ca3c57ce 7499245ea0046db16c53c7c66fe717e3 \
                 9cf6c748837b61f6ee3adcee17534ed5 790bc96880a99ba804bd12c0e6a22cc4",
    },
    Rfc8452 {
        key: K1,
        nonce: N3,
        aad: "",
        plaintext: "01000000000000000000000000000000 02000000000000000000000000000000 \
                    03000000000000000000000000000000 04000000000000000000000000000000",
        result: "c2d5160a1f8683834910acdafc41fbb1 632d4a353e8b905ec9a5499ac34f96c7 \
                 e1049eb080883891a4db8caaa1f99dd0 04d80487540735234e3744512c6f90ce \
                 112864c269fc0d9d88c61fa47e39aa08",
    },
    // C.2, with AAD.
    Rfc8452 {
        key: K1,
        nonce: N3,
        aad: "01",
        plaintext: "0200000000000000",
        result: "1de22967237a813291213f267e3b452f 02d01ae33e4ec854",
    },
    Rfc8452 {
        key: K1,
        nonce: N3,
        aad: "01",
        plaintext: "020000000000000000000000",
        result: "163d6f9cc1b346cd453a2e4cc1a4a19a e800941ccdc57cc8413c277f",
    },
    Rfc8452 {
        key: K1,
        nonce: N3,
        aad: "01",
        plaintext: "02000000000000000000000000000000",
        result: "c91545823cc24f17dbb0e9e807d5ec17 b292d28ff61189e8e49f3875ef91aff7",
    },
    Rfc8452 {
        key: K1,
        nonce: N3,
        aad: "01",
        plaintext: "02000000000000000000000000000000 03000000000000000000000000000000 \
                    04000000000000000000000000000000 05000000000000000000000000000000",
        result: "67fd45e126bfb9a79930c43aad2d3696 7d3f0e4d217c1e551f59727870beefc9 \
                 8cb933a8fce9de887b1e40799988db1f c3f91880ed405b2dd298318858467c89 \
                 5bde0285037c5de81e5b570a049b62a0",
    },
    Rfc8452 {
        key: K1,
        nonce: N3,
        aad: "010000000000000000000000",
        plaintext: "02000000",
        result: "22b3f4cd1835e517741dfddccfa07fa4 661b74cf",
    },
    Rfc8452 {
        key: K1,
        nonce: N3,
        aad: "01000000000000000000000000000000 0200",
        plaintext: "03000000000000000000000000000000 04000000",
        result: "43dd0163cdb48f9fe3212bf61b201976 067f342bb879ad976d8242acc188ab59 cabfe307",
    },
    Rfc8452 {
        key: K1,
        nonce: N3,
        aad: "01000000000000000000000000000000 02000000",
        plaintext: "03000000000000000000000000000000 0400",
        result: "462401724b5ce6588d5a54aae5375513 a075cfcdf5042112aa29685c912fc205 6543",
    },
    // C.2, random keys and nonces.
    Rfc8452 {
        key: "e66021d5eb8e4f4066d4adb9c33560e4 f46e44bb3da0015c94f7088736864200",
        nonce: "e0eaf5284d884a0e77d31646",
        aad: "",
        plaintext: "",
        result: "169fbb2fbf389a995f6390af22228a62",
    },
    Rfc8452 {
        key: "bae8e37fc83441b16034566b7a806c46 bb91c3c5aedb64a6c590bc84d1a5e269",
        nonce: "e4b47801afc0577e34699b9e",
        aad: "4fbdc66f14",
        plaintext: "671fdd",
        result: "0eaccb93da9bb81333aee0c785b240d3 19719d",
    },
    Rfc8452 {
        key: "6545fc880c94a95198874296d5cc1fd1 61320b6920ce07787f86743b275d1ab3",
        nonce: "2f6d1f0434d8848c1177441f",
        aad: "6787f3ea22c127aaf195",
        plaintext: "195495860f04",
        result: "a254dad4f3f96b62b84dc40c84636a5e c12020ec8c2c",
    },
    Rfc8452 {
        key: "d1894728b3fed1473c528b8426a58299 5929a1499e9ad8780c8d63d0ab4149c0",
        nonce: "9f572c614b4745914474e7c7",
        aad: "489c8fde2be2cf97e74e932d4ed87d",
        plaintext: "c9882e5386fd9f92ec",
        result: "0df9e308678244c44bc0fd3dc6628dfe 55ebb0b9fb2295c8c2",
    },
    Rfc8452 {
        key: "a44102952ef94b02b805249bac80e6f6 1455bfac8308a2d40d8c845117808235",
        nonce: "5c9e940fea2f582950a70d5a",
        aad: "0da55210cc1c1b0abde3b2f204d1e9f8 b06bc47f",
        plaintext: "1db2316fd568378da107b52b",
        result: "8dbeb9f7255bf5769dd56692404099c2 587f64979f21826706d497d5",
    },
    Rfc8452 {
        key: "9745b3d1ae06556fb6aa7890bebc18fe 6b3db4da3d57aa94842b9803a96e07fb",
        nonce: "6de71860f762ebfbd08284e4",
        aad: "f37de21c7ff901cfe8a69615a93fdf7a 98cad481796245709f",
        plaintext: "21702de0de18baa9c9596291b08466",
        result: "793576dfa5c0f88729a7ed3c2f1bffb3 080d28f6ebb5d3648ce97bd5ba67fd",
    },
    Rfc8452 {
        key: "b18853f68d833640e42a3c02c25b6486 9e146d7b233987bddfc240871d7576f7",
        nonce: "028ec6eb5ea7e298342a94d4",
        aad: "9c2159058b1f0fe91433a5bdc20e214e ab7fecef4454a10ef0657df21ac7",
        plaintext: "b202b370ef9768ec6561c4fe6b7e7296 fa85",
        result: "857e16a64915a787637687db4a951963 5cdd454fc2a154fea91f8363a39fec7d 0a49",
    },
    Rfc8452 {
        key: "3c535de192eaed3822a2fbbe2ca9dfc8 8255e14a661b8aa82cc54236093bbc23",
        nonce: "688089e55540db1872504e1c",
        aad: "734320ccc9d9bbbb19cb81b2af4ecbc3 e72834321f7aa0f70b7282b4f33df23f 167541",
        plaintext: "ced532ce4159b035277d4dfbb7db6296 8b13cd4eec",
        result: "626660c26ea6612fb17ad91e8e767639 edd6c9faee9d6c7029675b89eaf4ba1d ed1a286594",
    },
    // C.3, counter wrap.
    Rfc8452 {
        key: "00000000000000000000000000000000 00000000000000000000000000000000",
        nonce: "000000000000000000000000",
        aad: "",
        plaintext: "00000000000000000000000000000000 4db923dc793ee6497c76dcc03a98e108",
        result: "f3f80f2cf0cb2dd9c5984fcda908456c c537703b5ba70324a6793a7bf218d3ea \
                 ffffffff000000000000000000000000",
    },
    Rfc8452 {
        key: "00000000000000000000000000000000 00000000000000000000000000000000",
        nonce: "000000000000000000000000",
        aad: "",
        plaintext: "eb3640277c7ffd1303c7a542d02d3e4c 0000000000000000",
        result: "18ce4f0b8cb4d0cac65fea8f79257b20 888e53e72299e56dffffffff00000000 \
                 0000000000000000",
    },
];

#[test]
fn rfc_8452_aes_256_gcm_siv() {
    for (i, v) in RFC_8452_AES_256.iter().enumerate() {
        let (key, nonce, aad, plaintext, result) = (
            unhex(v.key),
            unhex(v.nonce),
            unhex(v.aad),
            unhex(v.plaintext),
            unhex(v.result),
        );
        let sealed = raw::seal(Cipher::Aes256GcmSiv, &key, &nonce, &aad, &plaintext).unwrap();
        assert_eq!(hex::encode(&sealed), hex::encode(&result), "vector {i}");
        let opened = raw::open(Cipher::Aes256GcmSiv, &key, &nonce, &aad, &result).unwrap();
        assert_eq!(opened, plaintext, "vector {i}");
        let mut tampered = result.clone();
        let last = tampered.len() - 1;
        tampered[last] ^= 1;
        assert_eq!(
            raw::open(Cipher::Aes256GcmSiv, &key, &nonce, &aad, &tampered),
            Err(RawError::Authentication),
            "vector {i}"
        );
    }
    assert_eq!(RFC_8452_AES_256.len(), 24);
}

#[test]
fn rfc_8439_chacha20_poly1305() {
    let key = unhex("808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f");
    let nonce = unhex("070000004041424344454647");
    let aad = unhex("50515253c0c1c2c3c4c5c6c7");
    let plaintext = b"Ladies and Gentlemen of the class of '99: If I could offer you only one \
tip for the future, sunscreen would be it.";
    let expected = unhex(
        "d31a8d34648e60db7b86afbc53ef7ec2a4aded51296e08fea9e2b5a736ee62d6\
         3dbea45e8ca9671282fafb69da92728b1a71de0a9e060b2905d6a5b67ecd3b36\
         92ddbd7f2d778b8c9803aee328091b58fab324e4fad675945585808b4831d7bc\
         3ff4def08e4b7a9de576d26586cec64b6116\
         1ae10b594f09e26a7e902ecbd0600691",
    );
    assert_eq!(plaintext.len(), 114);
    let sealed = raw::seal(Cipher::ChaCha20Poly1305, &key, &nonce, &aad, plaintext).unwrap();
    assert_eq!(hex::encode(&sealed), hex::encode(&expected));
    let opened = raw::open(Cipher::ChaCha20Poly1305, &key, &nonce, &aad, &expected).unwrap();
    assert_eq!(opened, plaintext);
    assert_eq!(
        raw::open(Cipher::ChaCha20Poly1305, &key, &nonce, b"", &expected),
        Err(RawError::Authentication)
    );
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WycheproofFile {
    algorithm: String,
    number_of_tests: usize,
    test_groups: Vec<WycheproofGroup>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WycheproofGroup {
    key_size: usize,
    iv_size: usize,
    tag_size: usize,
    tests: Vec<WycheproofTest>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WycheproofTest {
    tc_id: u32,
    key: String,
    iv: String,
    aad: String,
    msg: String,
    ct: String,
    tag: String,
    result: String,
    flags: Vec<String>,
}

#[derive(Debug, Default, PartialEq, Eq)]
struct Tally {
    valid: usize,
    invalid: usize,
    skipped: usize,
}

/// Runs every vector of a Wycheproof AEAD file through our layer. Valid
/// vectors must seal to the given bytes and open; invalid ones must fail to
/// open (including nonces of a size we refuse). Only key sizes the crate
/// never uses are skipped.
fn run_wycheproof(path: &str, cipher: Cipher, algorithm: &str) -> Tally {
    let text = std::fs::read_to_string(path).unwrap();
    let file: WycheproofFile = serde_json::from_str(&text).unwrap();
    assert_eq!(file.algorithm, algorithm);
    let mut tally = Tally::default();
    let mut seen = 0;
    for group in &file.test_groups {
        assert_eq!(group.tag_size, 128);
        for test in &group.tests {
            seen += 1;
            if group.key_size != 256 {
                tally.skipped += 1;
                continue;
            }
            let (key, nonce, aad, msg) = (
                unhex(&test.key),
                unhex(&test.iv),
                unhex(&test.aad),
                unhex(&test.msg),
            );
            let mut sealed = unhex(&test.ct);
            sealed.extend(unhex(&test.tag));
            let opened = raw::open(cipher, &key, &nonce, &aad, &sealed);
            let id = format!("{algorithm} tcId {} {:?}", test.tc_id, test.flags);
            match test.result.as_str() {
                "valid" => {
                    assert_eq!(group.iv_size, 96, "{id}");
                    assert_eq!(opened.as_deref(), Ok(&msg[..]), "{id}");
                    let ours = raw::seal(cipher, &key, &nonce, &aad, &msg).unwrap();
                    assert_eq!(hex::encode(ours), hex::encode(&sealed), "{id}");
                    tally.valid += 1;
                }
                "invalid" => {
                    assert!(opened.is_err(), "{id} opened");
                    if group.iv_size != 96 {
                        assert_eq!(
                            opened,
                            Err(RawError::NonceLength(group.iv_size / 8)),
                            "{id}"
                        );
                    }
                    tally.invalid += 1;
                }
                other => panic!("{id}: unexpected result {other:?}"),
            }
        }
    }
    assert_eq!(seen, file.number_of_tests);
    tally
}

#[test]
fn wycheproof_aes_gcm_siv() {
    let tally = run_wycheproof(
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/data/wycheproof/aes_gcm_siv_test.json"
        ),
        Cipher::Aes256GcmSiv,
        "AES-GCM-SIV",
    );
    // 99 AES-128 vectors are skipped: the crate only uses 256-bit keys.
    assert_eq!(
        tally,
        Tally {
            valid: 69,
            invalid: 34,
            skipped: 99
        }
    );
}

#[test]
fn wycheproof_chacha20_poly1305() {
    let tally = run_wycheproof(
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/data/wycheproof/chacha20_poly1305_test.json"
        ),
        Cipher::ChaCha20Poly1305,
        "CHACHA20-POLY1305",
    );
    assert_eq!(
        tally,
        Tally {
            valid: 256,
            invalid: 69,
            skipped: 0
        }
    );
}
