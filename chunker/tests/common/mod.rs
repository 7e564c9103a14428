//! Helpers shared by the integration tests.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use dooz_chunker::{Cipher, EpochKeys, Key32, Keyring, TenantId};

/// Deterministic pseudo-random bytes (BLAKE3 XOF of `seed`).
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut out = vec![0u8; len];
    blake3::Hasher::new()
        .update(b"dooz test noise")
        .update(&seed.to_le_bytes())
        .finalize_xof()
        .fill(&mut out);
    out
}

/// Compressible bytes: English-ish text, repeated.
pub fn text(len: usize) -> Vec<u8> {
    b"Content-defined chunking cuts where the data says, so an insertion moves only nearby cuts. "
        .iter()
        .copied()
        .cycle()
        .take(len)
        .collect()
}

pub fn epoch_keys(enc: u8, nonce: u8) -> EpochKeys {
    EpochKeys {
        enc: Key32::from_bytes([enc; 32]),
        nonce: Key32::from_bytes([nonce; 32]),
    }
}

/// A keyring with fixed keys; `epochs` lists (epoch, enc byte, nonce byte).
pub fn keyring_with(
    tenant: TenantId,
    cipher: Cipher,
    current: u32,
    epochs: &[(u32, u8, u8)],
) -> Keyring {
    Keyring::new(
        tenant,
        Key32::from_bytes([0x11; 32]),
        Key32::from_bytes([0x22; 32]),
        Key32::from_bytes([0x33; 32]),
        cipher,
        current,
        epochs
            .iter()
            .map(|&(e, enc, nonce)| (e, epoch_keys(enc, nonce))),
    )
    .unwrap()
}

/// The tenant most tests use: bytes 0x00..0x0f.
pub fn tenant() -> TenantId {
    std::array::from_fn(|i| u8::try_from(i).unwrap())
}

pub fn keyring(cipher: Cipher) -> Keyring {
    keyring_with(tenant(), cipher, 5, &[(5, 0x44, 0x55)])
}
