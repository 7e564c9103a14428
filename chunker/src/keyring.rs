//! One tenant's keys, and every derivation made from them.
//!
//! The exact derivations are part of the format; docs/FORMAT.md §2 repeats
//! them byte by byte.

use std::collections::BTreeMap;
use std::fmt;

use zeroize::Zeroizing;

use crate::chunk_id::ChunkId;
use crate::chunking::{Chunker, ChunkerError, ChunkerParams};
use crate::cipher::{AeadKey, Cipher, NONCE_LEN};
use crate::compression::CompressionPolicy;
use crate::frame::{self, FrameError, SealError};
use crate::keys::{EpochKeys, Key32, PackId, TenantId};

/// Domain string heading every chunk frame's associated data.
pub(crate) const CHUNK_AAD_PREFIX: &[u8; 7] = b"dooz/v1";
/// Domain string heading every pack footer's associated data.
pub(crate) const PACK_AAD_PREFIX: &[u8; 12] = b"dooz/v1 pack";
/// Input hashed under `K_cdc` to get the FastCDC gear seed.
const CDC_SEED_INPUT: &[u8] = b"dooz/v1 fastcdc gear seed";
/// Prefix of the input hashed under `K_enc[e]` for a per-chunk ChaCha20 key.
const CHACHA_KEY_PREFIX: &[u8] = b"dooz/v1 chacha20-poly1305 chunk key";
/// BLAKE3 `derive_key` context for a pack footer's nonce.
const PACK_NONCE_CONTEXT: &str = "dooz/v1 pack footer nonce";

/// Why a keyring could not be built.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyringError {
    /// The epoch new chunks are sealed under has no keys.
    #[error("no keys given for the current epoch {0}")]
    MissingCurrentEpoch(u32),
    /// Two key sets were given for one epoch.
    #[error("keys for epoch {0} given more than once")]
    DuplicateEpoch(u32),
}

/// Keys of one epoch, with the AES key schedule expanded once.
#[derive(Clone)]
pub(crate) struct Epoch {
    pub(crate) enc: Key32,
    pub(crate) nonce: Key32,
    pub(crate) aes: AeadKey,
}

/// Everything needed to cut, identify, seal, open and pack one tenant's
/// chunks. Built by the gateway from keyvault-derived keys; holds them
/// until dropped (then they are wiped).
#[derive(Clone)]
pub struct Keyring {
    tenant: TenantId,
    id_key: Key32,
    cdc_seed: u64,
    meta: AeadKey,
    cipher: Cipher,
    current_epoch: u32,
    epochs: BTreeMap<u32, Epoch>,
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keyring")
            .field("tenant", &self.tenant)
            .field("cipher", &self.cipher)
            .field("current_epoch", &self.current_epoch)
            .field("epochs", &self.epochs.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl Keyring {
    /// A keyring for `tenant`.
    ///
    /// `id_key` is `K_id`, `cdc_key` is `K_cdc`, `meta_key` is `K_meta`.
    /// `cipher` seals new chunks; frames record theirs, so both ciphers can
    /// always be opened. `epochs` holds `K_enc[e]`/`K_nonce[e]` for every
    /// epoch whose frames must still open; `current_epoch` (new chunks) must
    /// be among them.
    pub fn new(
        tenant: TenantId,
        id_key: Key32,
        cdc_key: Key32,
        meta_key: Key32,
        cipher: Cipher,
        current_epoch: u32,
        epochs: impl IntoIterator<Item = (u32, EpochKeys)>,
    ) -> Result<Self, KeyringError> {
        let mut map = BTreeMap::new();
        for (number, keys) in epochs {
            let epoch = Epoch {
                aes: AeadKey::new(Cipher::Aes256GcmSiv, keys.enc.expose()),
                enc: keys.enc,
                nonce: keys.nonce,
            };
            if map.insert(number, epoch).is_some() {
                return Err(KeyringError::DuplicateEpoch(number));
            }
        }
        if !map.contains_key(&current_epoch) {
            return Err(KeyringError::MissingCurrentEpoch(current_epoch));
        }
        Ok(Self {
            tenant,
            cdc_seed: derive_cdc_seed(&cdc_key),
            id_key,
            meta: AeadKey::new(Cipher::Aes256GcmSiv, meta_key.expose()),
            cipher,
            current_epoch,
            epochs: map,
        })
    }

    /// The tenant these keys belong to.
    pub fn tenant(&self) -> TenantId {
        self.tenant
    }

    /// The epoch new chunks are sealed under.
    pub fn current_epoch(&self) -> u32 {
        self.current_epoch
    }

    /// The cipher new chunks are sealed with.
    pub fn cipher(&self) -> Cipher {
        self.cipher
    }

    /// Epochs this keyring can open, ascending.
    pub fn epochs(&self) -> impl Iterator<Item = u32> + '_ {
        self.epochs.keys().copied()
    }

    /// The FastCDC gear seed: the first 8 bytes, little-endian, of
    /// `BLAKE3-keyed(K_cdc, "dooz/v1 fastcdc gear seed")`.
    pub fn cdc_seed(&self) -> u64 {
        self.cdc_seed
    }

    /// A chunker for this tenant (its boundaries depend on the seed).
    pub fn chunker(&self, params: ChunkerParams) -> Result<Chunker, ChunkerError> {
        Chunker::new(params, self.cdc_seed)
    }

    /// `BLAKE3-keyed(K_id, plaintext)`.
    pub fn chunk_id(&self, plaintext: &[u8]) -> ChunkId {
        ChunkId(*blake3::keyed_hash(self.id_key.expose(), plaintext).as_bytes())
    }

    /// Compresses `plaintext` (per `policy`, probing first) and seals it
    /// under the current epoch and cipher; returns the whole frame.
    ///
    /// # Panics
    /// If `plaintext` is 4 GiB or longer: a frame records the plaintext
    /// length in 32 bits. Chunks are at most 16 MiB, so only a caller bug
    /// gets there; [`try_seal_chunk`](Self::try_seal_chunk) reports it
    /// instead.
    pub fn seal_chunk(
        &self,
        id: &ChunkId,
        plaintext: &[u8],
        policy: &CompressionPolicy,
    ) -> Vec<u8> {
        match self.try_seal_chunk(id, plaintext, policy) {
            Ok(frame) => frame,
            Err(error) => panic!("cannot seal chunk {id}: {error}"),
        }
    }

    /// [`seal_chunk`](Self::seal_chunk), reporting an oversized plaintext
    /// instead of panicking.
    pub fn try_seal_chunk(
        &self,
        id: &ChunkId,
        plaintext: &[u8],
        policy: &CompressionPolicy,
    ) -> Result<Vec<u8>, SealError> {
        let mut frame = Vec::new();
        self.seal_chunk_into(&mut frame, id, plaintext, policy)?;
        Ok(frame)
    }

    /// Seals like [`seal_chunk`](Self::seal_chunk) but appends the frame to
    /// `out` (say a pack buffer), saving a copy. Returns the frame's length.
    /// On error `out` is left as it was.
    pub fn seal_chunk_into(
        &self,
        out: &mut Vec<u8>,
        id: &ChunkId,
        plaintext: &[u8],
        policy: &CompressionPolicy,
    ) -> Result<usize, SealError> {
        frame::seal_into(self, out, id, plaintext, policy)
    }

    /// Opens one frame: parses its header, takes the keys of the epoch it
    /// names, checks the AEAD tag (which binds tenant, `expected` id and
    /// epoch), decompresses without ever producing more than `max_plain`
    /// bytes, and checks `BLAKE3-keyed(K_id, plaintext) == expected`.
    pub fn open_chunk(
        &self,
        expected: &ChunkId,
        frame: &[u8],
        max_plain: usize,
    ) -> Result<Vec<u8>, FrameError> {
        frame::open(self, expected, frame, max_plain)
    }

    pub(crate) fn epoch(&self, number: u32) -> Option<&Epoch> {
        self.epochs.get(&number)
    }

    pub(crate) fn meta(&self) -> &AeadKey {
        &self.meta
    }
}

fn derive_cdc_seed(cdc_key: &Key32) -> u64 {
    let hash = blake3::keyed_hash(cdc_key.expose(), CDC_SEED_INPUT);
    let mut seed = [0u8; 8];
    seed.copy_from_slice(&hash.as_bytes()[..8]);
    u64::from_le_bytes(seed)
}

/// `BLAKE3-keyed(K_nonce[e], id)[..12]`.
pub(crate) fn chunk_nonce(nonce_key: &Key32, id: &ChunkId) -> [u8; NONCE_LEN] {
    let hash = blake3::keyed_hash(nonce_key.expose(), &id.0);
    let mut nonce = [0u8; NONCE_LEN];
    nonce.copy_from_slice(&hash.as_bytes()[..NONCE_LEN]);
    nonce
}

/// The per-chunk ChaCha20-Poly1305 key:
/// `BLAKE3-keyed(K_enc[e], "dooz/v1 chacha20-poly1305 chunk key" ‖ id)`.
/// Deriving one key per chunk means a deterministic nonce can only ever
/// repeat together with the same key and the same plaintext.
pub(crate) fn chacha_chunk_key(enc_key: &Key32, id: &ChunkId) -> Zeroizing<[u8; 32]> {
    let mut hasher = blake3::Hasher::new_keyed(enc_key.expose());
    hasher.update(CHACHA_KEY_PREFIX);
    hasher.update(&id.0);
    Zeroizing::new(*hasher.finalize().as_bytes())
}

/// Length of [`chunk_aad`].
pub(crate) const CHUNK_AAD_LEN: usize = 7 + 16 + 32 + 4;

/// `"dooz/v1" ‖ tenant ‖ id ‖ epoch (u32 LE)`.
pub(crate) fn chunk_aad(tenant: &TenantId, id: &ChunkId, epoch: u32) -> [u8; CHUNK_AAD_LEN] {
    let mut aad = [0u8; CHUNK_AAD_LEN];
    aad[..7].copy_from_slice(CHUNK_AAD_PREFIX);
    aad[7..23].copy_from_slice(tenant);
    aad[23..55].copy_from_slice(&id.0);
    aad[55..].copy_from_slice(&epoch.to_le_bytes());
    aad
}

/// `BLAKE3-derive_key("dooz/v1 pack footer nonce", pack_id)[..12]`.
pub(crate) fn pack_nonce(pack_id: &PackId) -> [u8; NONCE_LEN] {
    let derived = blake3::derive_key(PACK_NONCE_CONTEXT, pack_id);
    let mut nonce = [0u8; NONCE_LEN];
    nonce.copy_from_slice(&derived[..NONCE_LEN]);
    nonce
}

/// Length of [`pack_aad`].
pub(crate) const PACK_AAD_LEN: usize = 12 + 16 + 16;

/// `"dooz/v1 pack" ‖ tenant ‖ pack id`.
pub(crate) fn pack_aad(tenant: &TenantId, pack_id: &PackId) -> [u8; PACK_AAD_LEN] {
    let mut aad = [0u8; PACK_AAD_LEN];
    aad[..12].copy_from_slice(PACK_AAD_PREFIX);
    aad[12..28].copy_from_slice(tenant);
    aad[28..].copy_from_slice(pack_id);
    aad
}

#[cfg(test)]
mod tests {
    use super::*;

    fn epoch_keys(tag: u8) -> EpochKeys {
        EpochKeys {
            enc: Key32::from_bytes([tag; 32]),
            nonce: Key32::from_bytes([tag.wrapping_add(1); 32]),
        }
    }

    fn keyring(current: u32, epochs: &[u32]) -> Result<Keyring, KeyringError> {
        Keyring::new(
            [1; 16],
            Key32::from_bytes([2; 32]),
            Key32::from_bytes([3; 32]),
            Key32::from_bytes([4; 32]),
            Cipher::Aes256GcmSiv,
            current,
            epochs
                .iter()
                .map(|&e| (e, epoch_keys(u8::try_from(e).unwrap_or(0)))),
        )
    }

    #[test]
    fn construction_checks_epochs() {
        let ring = keyring(2, &[1, 2]).unwrap();
        assert_eq!(ring.current_epoch(), 2);
        assert_eq!(ring.epochs().collect::<Vec<_>>(), vec![1, 2]);
        assert_eq!(ring.tenant(), [1; 16]);
        assert_eq!(ring.cipher(), Cipher::Aes256GcmSiv);
        assert_eq!(
            keyring(3, &[1, 2]).unwrap_err(),
            KeyringError::MissingCurrentEpoch(3)
        );
        assert_eq!(
            keyring(1, &[1, 1]).unwrap_err(),
            KeyringError::DuplicateEpoch(1)
        );
        assert_eq!(
            keyring(0, &[]).unwrap_err(),
            KeyringError::MissingCurrentEpoch(0)
        );
    }

    #[test]
    fn debug_shows_no_key_material() {
        let ring = keyring(1, &[1]).unwrap();
        let shown = format!("{ring:?}");
        assert!(shown.contains("current_epoch: 1"), "{shown}");
        assert!(
            !shown.contains("[2, 2") && !shown.contains("[3, 3"),
            "{shown}"
        );
    }

    #[test]
    fn derivations_follow_the_spec() {
        let ring = keyring(1, &[1]).unwrap();
        // cdc seed
        let hash = blake3::keyed_hash(&[3; 32], b"dooz/v1 fastcdc gear seed");
        let mut first = [0u8; 8];
        first.copy_from_slice(&hash.as_bytes()[..8]);
        assert_eq!(ring.cdc_seed(), u64::from_le_bytes(first));
        // chunk id
        assert_eq!(
            ring.chunk_id(b"x").0,
            *blake3::keyed_hash(&[2; 32], b"x").as_bytes()
        );
        // nonce
        let id = ChunkId([9; 32]);
        let nonce = chunk_nonce(&Key32::from_bytes([5; 32]), &id);
        assert_eq!(
            nonce[..],
            blake3::keyed_hash(&[5; 32], &[9; 32]).as_bytes()[..12]
        );
        // chacha key
        let mut input = b"dooz/v1 chacha20-poly1305 chunk key".to_vec();
        input.extend_from_slice(&[9; 32]);
        assert_eq!(
            *chacha_chunk_key(&Key32::from_bytes([6; 32]), &id),
            *blake3::keyed_hash(&[6; 32], &input).as_bytes()
        );
        // aad
        let aad = chunk_aad(&[7; 16], &id, 0x0102_0304);
        assert_eq!(&aad[..7], b"dooz/v1");
        assert_eq!(&aad[7..23], &[7; 16]);
        assert_eq!(&aad[23..55], &[9; 32]);
        assert_eq!(&aad[55..], &[4, 3, 2, 1]);
        let aad = pack_aad(&[7; 16], &[8; 16]);
        assert_eq!(&aad[..12], b"dooz/v1 pack");
        assert_eq!(&aad[28..], &[8; 16]);
        assert_eq!(
            pack_nonce(&[8; 16])[..],
            blake3::derive_key("dooz/v1 pack footer nonce", &[8; 16])[..12]
        );
    }
}
