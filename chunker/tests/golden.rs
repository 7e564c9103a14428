//! Golden vectors: fixed keys and inputs must produce these exact bytes.
//!
//! The files under `tests/data/golden/` pin the frame and pack formats (and
//! the derivations feeding them: ids, nonces, per-chunk keys, AAD, the cdc
//! seed and the chunk boundaries). If this test fails, the bytes on disk of
//! every deployment would change: that needs a new format version, not new
//! golden files. The one legitimate exception is a zstd upgrade that
//! compresses differently; then check that the old files still open (the
//! second half of each test does exactly that) before regenerating with
//! `DOOZ_BLESS_GOLDEN=1 cargo test -p dooz-chunker --test golden`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{keyring, noise, text};
use dooz_chunker::{
    Chunker, ChunkerParams, Cipher, CompressionPolicy, PackWriter, read_pack_index,
};

fn golden_path(name: &str) -> String {
    format!("{}/tests/data/golden/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// Compares `actual` with the checked-in file (hex, 64 bytes per line), or
/// rewrites the file when blessing.
fn check(name: &str, actual: &[u8]) -> Vec<u8> {
    let path = golden_path(name);
    let encoded: String = actual
        .chunks(64)
        .map(|line| format!("{}\n", hex::encode(line)))
        .collect();
    if std::env::var_os("DOOZ_BLESS_GOLDEN").is_some() {
        std::fs::write(&path, encoded).unwrap();
    }
    let stored = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let expected = hex::decode(stored.split_whitespace().collect::<String>()).unwrap();
    assert!(
        expected == actual,
        "{name} changed: the format is pinned (see this file's header)\nexpected {}\n  actual {}",
        hex::encode(&expected),
        hex::encode(actual)
    );
    expected
}

fn cipher_tag(cipher: Cipher) -> &'static str {
    match cipher {
        Cipher::Aes256GcmSiv => "aes",
        Cipher::ChaCha20Poly1305 => "chacha",
    }
}

#[test]
fn golden_frames() {
    let compressible = text(3000);
    let incompressible = noise(1000, 7);
    for cipher in Cipher::ALL {
        let ring = keyring(cipher);
        for (kind, data) in [("zstd", &compressible), ("raw", &incompressible)] {
            let id = ring.chunk_id(data);
            let frame = ring.seal_chunk(&id, data, &CompressionPolicy::new(3));
            let name = format!("frame_{}_{kind}.hex", cipher_tag(cipher));
            let stored = check(&name, &frame);
            assert_eq!(
                &ring.open_chunk(&id, &stored, 4096).unwrap(),
                data,
                "{name}"
            );
            assert_eq!(stored[5], cipher as u8, "{name}");
        }
    }
}

#[test]
fn golden_packs() {
    let chunks = [text(3000), noise(1000, 7), Vec::new()];
    for cipher in Cipher::ALL {
        let ring = keyring(cipher);
        let mut writer = PackWriter::new(std::array::from_fn(|i| 0xa0 + i as u8));
        for chunk in &chunks {
            let id = ring.chunk_id(chunk);
            writer
                .push_chunk(&ring, id, chunk, &CompressionPolicy::new(3))
                .unwrap();
        }
        let pack = writer.finish(&ring);
        let name = format!("pack_{}.hex", cipher_tag(cipher));
        let stored = check(&name, &pack);
        let index = read_pack_index(&stored, &ring).unwrap();
        assert_eq!(index.entries.len(), 3, "{name}");
        for (entry, chunk) in index.entries.iter().zip(&chunks) {
            let frame = &stored[entry.offset as usize..][..entry.len as usize];
            assert_eq!(&ring.open_chunk(&entry.id, frame, 4096).unwrap(), chunk);
        }
    }
}

#[test]
fn golden_ids_seed_and_boundaries() {
    let ring = keyring(Cipher::Aes256GcmSiv);
    let mut summary = Vec::new();
    summary.extend_from_slice(&ring.chunk_id(b"dooz").0);
    summary.extend_from_slice(&ring.cdc_seed().to_le_bytes());
    let params = ChunkerParams {
        min: 1024,
        avg: 4096,
        max: 16384,
    };
    let mut chunker = Chunker::new(params, ring.cdc_seed()).unwrap();
    let data = noise(100_000, 1);
    let mut lengths: Vec<usize> = chunker.push(&data).iter().map(Vec::len).collect();
    lengths.extend(chunker.finish().map(|c| c.len()));
    for length in lengths {
        summary.extend_from_slice(&u32::try_from(length).unwrap().to_le_bytes());
    }
    check("ids_seed_boundaries.hex", &summary);
}

/// Decodes the golden files by hand, following docs/FORMAT.md rather than the
/// crate's own parsing code: header fields, the nonce, key and AAD
/// derivations, the sealed envelope, and the pack footer.
#[test]
fn golden_bytes_follow_the_written_spec() {
    let tenant = common::tenant();
    let (k_id, k_meta, k_enc, k_nonce) = ([0x11u8; 32], [0x33u8; 32], [0x44u8; 32], [0x55u8; 32]);
    let read = |name: &str| {
        let text = std::fs::read_to_string(golden_path(name)).unwrap();
        hex::decode(text.split_whitespace().collect::<String>()).unwrap()
    };
    let open_frame = |frame: &[u8], id: &[u8; 32]| -> Vec<u8> {
        assert_eq!(&frame[0..4], b"DZCF");
        assert_eq!(frame[4], 1);
        let cipher = Cipher::try_from(frame[5]).unwrap();
        let epoch = u32::from_le_bytes(frame[6..10].try_into().unwrap());
        assert_eq!(epoch, 5);
        let nonce = &frame[10..22];
        assert_eq!(nonce, &blake3::keyed_hash(&k_nonce, id).as_bytes()[..12]);
        let key: [u8; 32] = match cipher {
            Cipher::Aes256GcmSiv => k_enc,
            Cipher::ChaCha20Poly1305 => {
                let mut input = b"dooz/v1 chacha20-poly1305 chunk key".to_vec();
                input.extend_from_slice(id);
                *blake3::keyed_hash(&k_enc, &input).as_bytes()
            }
        };
        let mut aad = b"dooz/v1".to_vec();
        aad.extend_from_slice(&tenant);
        aad.extend_from_slice(id);
        aad.extend_from_slice(&epoch.to_le_bytes());
        let body = dooz_chunker::raw::open(cipher, &key, nonce, &aad, &frame[22..]).unwrap();
        let (payload, envelope) = body.split_at(body.len() - 5);
        let plain_len = u32::from_le_bytes(envelope[1..5].try_into().unwrap()) as usize;
        let plaintext = match envelope[0] {
            0 => payload.to_vec(),
            1 => zstd::decode_all(payload).unwrap(),
            other => panic!("compression id {other}"),
        };
        assert_eq!(plaintext.len(), plain_len);
        assert_eq!(blake3::keyed_hash(&k_id, &plaintext).as_bytes(), id);
        plaintext
    };

    for (name, expected, compression) in [
        ("frame_aes_zstd.hex", text(3000), 1u8),
        ("frame_chacha_zstd.hex", text(3000), 1),
        ("frame_aes_raw.hex", noise(1000, 7), 0),
        ("frame_chacha_raw.hex", noise(1000, 7), 0),
    ] {
        let frame = read(name);
        let id = *blake3::keyed_hash(&k_id, &expected).as_bytes();
        assert_eq!(open_frame(&frame, &id), expected, "{name}");
        if compression == 0 {
            assert_eq!(frame.len(), 22 + expected.len() + 5 + 16, "{name}");
        }
    }

    for name in ["pack_aes.hex", "pack_chacha.hex"] {
        let pack = read(name);
        let pack_id: [u8; 16] = std::array::from_fn(|i| 0xa0 + i as u8);
        assert_eq!(&pack[..4], b"DZPK");
        assert_eq!(pack[4], 1);
        assert_eq!(&pack[5..21], &pack_id);
        let trailer = &pack[pack.len() - 33..];
        assert_eq!(&trailer[..16], &pack_id);
        let footer_offset = u64::from_le_bytes(trailer[16..24].try_into().unwrap()) as usize;
        let footer_len = u32::from_le_bytes(trailer[24..28].try_into().unwrap()) as usize;
        assert_eq!(trailer[28], 1);
        assert_eq!(&trailer[29..], b"DZPT");
        assert_eq!(footer_offset + footer_len, pack.len() - 33);
        let nonce = &blake3::derive_key("dooz/v1 pack footer nonce", &pack_id)[..12];
        let mut aad = b"dooz/v1 pack".to_vec();
        aad.extend_from_slice(&tenant);
        aad.extend_from_slice(&pack_id);
        let footer = &pack[footer_offset..footer_offset + footer_len];
        let index =
            dooz_chunker::raw::open(Cipher::Aes256GcmSiv, &k_meta, nonce, &aad, footer).unwrap();
        let count = u32::from_le_bytes(index[..4].try_into().unwrap()) as usize;
        assert_eq!(count, 3);
        assert_eq!(index.len(), 4 + 48 * count);
        let mut expected_offset = 21;
        for (entry, chunk) in index[4..]
            .chunks(48)
            .zip([text(3000), noise(1000, 7), Vec::new()])
        {
            let id: [u8; 32] = entry[..32].try_into().unwrap();
            let offset = u64::from_le_bytes(entry[32..40].try_into().unwrap()) as usize;
            let len = u32::from_le_bytes(entry[40..44].try_into().unwrap()) as usize;
            let plain_len = u32::from_le_bytes(entry[44..48].try_into().unwrap()) as usize;
            assert_eq!(offset, expected_offset);
            assert_eq!(plain_len, chunk.len());
            assert_eq!(open_frame(&pack[offset..offset + len], &id), chunk);
            expected_offset += len;
        }
        assert_eq!(expected_offset, footer_offset);
    }
}
