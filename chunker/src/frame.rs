//! The chunk frame: one sealed chunk, openable on its own from its bytes,
//! the tenant's keyring and the chunk id it should hold.
//!
//! ```text
//! offset  size  field
//!      0     4  magic "DZCF"
//!      4     1  format version (1)
//!      5     1  cipher id
//!      6     4  epoch, u32 little-endian
//!     10    12  nonce = BLAKE3-keyed(K_nonce[epoch], id)[..12]
//!     22     n  AEAD ciphertext of: payload ‖ compression id (1) ‖ plaintext length (u32 LE)
//!   22+n    16  AEAD tag
//! ```
//!
//! The compression id and plaintext length travel inside the ciphertext so
//! the backend learns nothing but the frame's size. They sit after the
//! payload so a raw payload is opened without moving it. Every clear field is
//! authenticated: the epoch through the associated data, the nonce and the
//! cipher because the tag only verifies under them, magic and version
//! because only one value is accepted. See docs/FORMAT.md §3.

use std::borrow::Cow;

use crate::chunk_id::ChunkId;
use crate::cipher::{AeadKey, Cipher, NONCE_LEN, TAG_LEN};
use crate::compression::{self, Compression, CompressionPolicy, DecompressFailure};
use crate::keyring::{Epoch, Keyring, chacha_chunk_key, chunk_aad, chunk_nonce};

/// First four bytes of every chunk frame.
pub const FRAME_MAGIC: [u8; 4] = *b"DZCF";
/// The frame format version this crate writes and reads.
pub const FRAME_VERSION: u8 = 1;
/// Bytes before the ciphertext.
pub const FRAME_HEADER_LEN: usize = 4 + 1 + 1 + 4 + NONCE_LEN;
/// Trailer of the sealed plaintext: compression id and plaintext length.
const ENVELOPE_LEN: usize = 1 + 4;
/// Bytes a frame adds to its payload; also the shortest possible frame
/// (an empty chunk).
pub const FRAME_OVERHEAD: usize = FRAME_HEADER_LEN + ENVELOPE_LEN + TAG_LEN;

/// The clear-text header of a chunk frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameHeader {
    /// Format version.
    pub version: u8,
    /// Cipher the frame is sealed with.
    pub cipher: Cipher,
    /// Encryption epoch whose keys sealed it.
    pub epoch: u32,
    /// The AEAD nonce.
    pub nonce: [u8; NONCE_LEN],
}

/// Why a frame could not be opened. Each variant names what failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// Fewer bytes than the smallest possible frame.
    #[error("frame truncated: {len} bytes, a frame has at least {min}")]
    Truncated {
        /// Bytes given.
        len: usize,
        /// Smallest frame.
        min: usize,
    },
    /// The bytes do not start with the frame magic.
    #[error("bad frame magic {found:02x?} (expected \"DZCF\")")]
    BadMagic {
        /// The first four bytes.
        found: [u8; 4],
    },
    /// A format version this crate does not read.
    #[error("unsupported frame version {0} (this build reads version 1)")]
    UnsupportedVersion(u8),
    /// A cipher id this crate does not know.
    #[error("unknown cipher id {0} in frame header")]
    UnknownCipher(u8),
    /// The frame names an epoch the keyring has no keys for.
    #[error("frame sealed under epoch {0}, for which the keyring has no keys")]
    UnknownEpoch(u32),
    /// The sealed payload is longer than any chunk of `max_plain` bytes can
    /// produce; refused before allocating for it.
    #[error("frame payload of {payload} bytes exceeds the {max_plain}-byte chunk limit")]
    TooLarge {
        /// Payload bytes in the frame.
        payload: usize,
        /// The limit given.
        max_plain: usize,
    },
    /// The AEAD tag did not verify: wrong key, tenant, chunk id or epoch, or
    /// altered bytes.
    #[error("frame authentication failed ({cipher}, epoch {epoch})")]
    AuthenticationFailed {
        /// Cipher named by the frame.
        cipher: Cipher,
        /// Epoch named by the frame.
        epoch: u32,
    },
    /// The frame authenticated but its nonce is not the one derived from
    /// the chunk id (a writer bug: frames must be deterministic).
    #[error("frame nonce does not match the nonce derived from the chunk id")]
    NonceMismatch,
    /// A compression id this crate does not know.
    #[error("unknown compression id {0} in frame")]
    UnknownCompression(u8),
    /// The recorded plaintext length exceeds `max_plain`.
    #[error("frame plaintext length {plain_len} exceeds the {max_plain}-byte chunk limit")]
    PlainLenOutOfBounds {
        /// Length recorded in the frame.
        plain_len: u32,
        /// The limit given.
        max_plain: usize,
    },
    /// An uncompressed payload whose length differs from the recorded one.
    #[error("raw frame payload is {payload} bytes but records plaintext length {plain_len}")]
    RawLengthMismatch {
        /// Length recorded in the frame.
        plain_len: u32,
        /// Payload bytes.
        payload: usize,
    },
    /// zstd could not decode the payload into the recorded length.
    #[error("zstd decompression failed: {0}")]
    Decompress(String),
    /// zstd decoded fewer bytes than recorded.
    #[error("decompressed {actual} bytes, frame records {expected}")]
    DecompressedSizeMismatch {
        /// Length recorded in the frame.
        expected: usize,
        /// Bytes decoded.
        actual: usize,
    },
    /// The plaintext does not hash to the expected chunk id.
    #[error("chunk id mismatch: expected {expected}, plaintext hashes to {actual}")]
    IdMismatch {
        /// The id asked for.
        expected: ChunkId,
        /// The id of what the frame holds.
        actual: ChunkId,
    },
}

/// Why a chunk could not be sealed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SealError {
    /// The plaintext length does not fit the frame's 32-bit length field.
    #[error("chunk of {0} bytes is too large for a frame (limit 4 GiB - 1)")]
    TooLarge(usize),
    /// The AEAD refused (only for inputs far beyond the 32-bit limit).
    #[error("AEAD sealing failed")]
    Aead,
}

/// Parses and checks a frame's clear-text header (not its authenticity).
pub fn parse_frame_header(frame: &[u8]) -> Result<FrameHeader, FrameError> {
    if frame.len() < FRAME_OVERHEAD {
        return Err(FrameError::Truncated {
            len: frame.len(),
            min: FRAME_OVERHEAD,
        });
    }
    let mut magic = [0u8; 4];
    magic.copy_from_slice(&frame[..4]);
    if magic != FRAME_MAGIC {
        return Err(FrameError::BadMagic { found: magic });
    }
    if frame[4] != FRAME_VERSION {
        return Err(FrameError::UnsupportedVersion(frame[4]));
    }
    let cipher = Cipher::try_from(frame[5]).map_err(|e| FrameError::UnknownCipher(e.0))?;
    let mut epoch = [0u8; 4];
    epoch.copy_from_slice(&frame[6..10]);
    let mut nonce = [0u8; NONCE_LEN];
    nonce.copy_from_slice(&frame[10..FRAME_HEADER_LEN]);
    Ok(FrameHeader {
        version: FRAME_VERSION,
        cipher,
        epoch: u32::from_le_bytes(epoch),
        nonce,
    })
}

/// The AEAD instance for one chunk: AES uses the epoch key directly,
/// ChaCha20-Poly1305 a key derived for this chunk.
fn chunk_aead<'k>(cipher: Cipher, epoch: &'k Epoch, id: &ChunkId) -> Cow<'k, AeadKey> {
    match cipher {
        Cipher::Aes256GcmSiv => Cow::Borrowed(&epoch.aes),
        Cipher::ChaCha20Poly1305 => {
            let key = chacha_chunk_key(&epoch.enc, id);
            Cow::Owned(AeadKey::new(Cipher::ChaCha20Poly1305, &key))
        }
    }
}

pub(crate) fn seal_into(
    keyring: &Keyring,
    out: &mut Vec<u8>,
    id: &ChunkId,
    plaintext: &[u8],
    policy: &CompressionPolicy,
) -> Result<usize, SealError> {
    let plain_len =
        u32::try_from(plaintext.len()).map_err(|_| SealError::TooLarge(plaintext.len()))?;
    let number = keyring.current_epoch();
    let Some(epoch) = keyring.epoch(number) else {
        // `Keyring::new` refuses a current epoch without keys.
        return Err(SealError::Aead);
    };
    let cipher = keyring.cipher();
    let nonce = chunk_nonce(&epoch.nonce, id);

    let start = out.len();
    out.reserve(FRAME_OVERHEAD + plaintext.len());
    out.extend_from_slice(&FRAME_MAGIC);
    out.push(FRAME_VERSION);
    out.push(cipher.id());
    out.extend_from_slice(&number.to_le_bytes());
    out.extend_from_slice(&nonce);
    let body_start = out.len();
    let compression = compression::compress_into(out, plaintext, policy);
    out.push(compression.id());
    out.extend_from_slice(&plain_len.to_le_bytes());

    let aad = chunk_aad(&keyring.tenant(), id, number);
    let aead = chunk_aead(cipher, epoch, id);
    match aead.seal_in_place(&nonce, &aad, &mut out[body_start..]) {
        Ok(tag) => {
            out.extend_from_slice(&tag);
            Ok(out.len() - start)
        }
        Err(_) => {
            out.truncate(start);
            Err(SealError::Aead)
        }
    }
}

pub(crate) fn open(
    keyring: &Keyring,
    expected: &ChunkId,
    frame: &[u8],
    max_plain: usize,
) -> Result<Vec<u8>, FrameError> {
    let header = parse_frame_header(frame)?;
    let epoch = keyring
        .epoch(header.epoch)
        .ok_or(FrameError::UnknownEpoch(header.epoch))?;
    // `parse_frame_header` checked `frame.len() >= FRAME_OVERHEAD`.
    let (sealed, tag) =
        frame[FRAME_HEADER_LEN..].split_at(frame.len() - FRAME_HEADER_LEN - TAG_LEN);
    let payload_len = sealed.len() - ENVELOPE_LEN;
    // A raw payload is as long as the chunk and a zstd one shorter, so this
    // bounds the copy below by `max_plain` before anything is decrypted.
    if payload_len > max_plain {
        return Err(FrameError::TooLarge {
            payload: payload_len,
            max_plain,
        });
    }
    let mut tag_bytes = [0u8; TAG_LEN];
    tag_bytes.copy_from_slice(tag);

    let mut body = sealed.to_vec();
    let aad = chunk_aad(&keyring.tenant(), expected, header.epoch);
    chunk_aead(header.cipher, epoch, expected)
        .open_in_place(&header.nonce, &aad, &mut body, &tag_bytes)
        .map_err(|_| FrameError::AuthenticationFailed {
            cipher: header.cipher,
            epoch: header.epoch,
        })?;
    if header.nonce != chunk_nonce(&epoch.nonce, expected) {
        return Err(FrameError::NonceMismatch);
    }

    let compression_id = body[payload_len];
    let mut len_bytes = [0u8; 4];
    len_bytes.copy_from_slice(&body[payload_len + 1..]);
    let plain_len = u32::from_le_bytes(len_bytes);
    let compression =
        Compression::try_from(compression_id).map_err(|e| FrameError::UnknownCompression(e.0))?;
    let plain_usize = usize::try_from(plain_len).unwrap_or(usize::MAX);
    if plain_usize > max_plain {
        return Err(FrameError::PlainLenOutOfBounds {
            plain_len,
            max_plain,
        });
    }
    let plaintext =
        match compression {
            Compression::None => {
                if payload_len != plain_usize {
                    return Err(FrameError::RawLengthMismatch {
                        plain_len,
                        payload: payload_len,
                    });
                }
                body.truncate(payload_len);
                body
            }
            Compression::Zstd => compression::decompress(&body[..payload_len], plain_usize)
                .map_err(|failure| match failure {
                    DecompressFailure::Zstd(reason) => FrameError::Decompress(reason.to_owned()),
                    DecompressFailure::NoContext => {
                        FrameError::Decompress("no zstd context could be allocated".to_owned())
                    }
                    DecompressFailure::Short { expected, actual } => {
                        FrameError::DecompressedSizeMismatch { expected, actual }
                    }
                })?,
        };
    let actual = keyring.chunk_id(&plaintext);
    if actual != *expected {
        return Err(FrameError::IdMismatch {
            expected: *expected,
            actual,
        });
    }
    Ok(plaintext)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::{EpochKeys, Key32};

    fn keyring(cipher: Cipher) -> Keyring {
        Keyring::new(
            [0x11; 16],
            Key32::from_bytes([0x22; 32]),
            Key32::from_bytes([0x33; 32]),
            Key32::from_bytes([0x44; 32]),
            cipher,
            7,
            [(
                7,
                EpochKeys {
                    enc: Key32::from_bytes([0x55; 32]),
                    nonce: Key32::from_bytes([0x66; 32]),
                },
            )],
        )
        .unwrap()
    }

    /// Seals an arbitrary sealed body (envelope included) as a frame would,
    /// to reach checks that only a key holder's bug could trigger.
    fn forge(ring: &Keyring, id: &ChunkId, nonce: [u8; 12], mut body: Vec<u8>) -> Vec<u8> {
        let epoch = ring.epoch(7).unwrap();
        let aad = chunk_aad(&ring.tenant(), id, 7);
        let tag = chunk_aead(ring.cipher(), epoch, id)
            .seal_in_place(&nonce, &aad, &mut body)
            .unwrap();
        let mut frame = FRAME_MAGIC.to_vec();
        frame.push(FRAME_VERSION);
        frame.push(ring.cipher().id());
        frame.extend_from_slice(&7u32.to_le_bytes());
        frame.extend_from_slice(&nonce);
        frame.extend_from_slice(&body);
        frame.extend_from_slice(&tag);
        frame
    }

    fn envelope(payload: &[u8], compression: u8, plain_len: u32) -> Vec<u8> {
        let mut body = payload.to_vec();
        body.push(compression);
        body.extend_from_slice(&plain_len.to_le_bytes());
        body
    }

    #[test]
    fn layout_of_a_raw_frame() {
        let ring = keyring(Cipher::Aes256GcmSiv);
        let id = ring.chunk_id(b"abc");
        let frame = ring.seal_chunk(&id, b"abc", &CompressionPolicy::OFF);
        assert_eq!(frame.len(), FRAME_OVERHEAD + 3);
        assert_eq!(&frame[..4], b"DZCF");
        assert_eq!(frame[4], 1);
        assert_eq!(frame[5], 1);
        assert_eq!(&frame[6..10], &7u32.to_le_bytes());
        assert_eq!(
            frame[10..22],
            chunk_nonce(&Key32::from_bytes([0x66; 32]), &id)
        );
        let header = parse_frame_header(&frame).unwrap();
        assert_eq!(header.epoch, 7);
        assert_eq!(header.cipher, Cipher::Aes256GcmSiv);
        assert_eq!(ring.open_chunk(&id, &frame, 3).unwrap(), b"abc");
    }

    #[test]
    fn header_errors() {
        let ring = keyring(Cipher::ChaCha20Poly1305);
        let id = ring.chunk_id(b"");
        let frame = ring.seal_chunk(&id, b"", &CompressionPolicy::default());
        assert_eq!(frame.len(), FRAME_OVERHEAD);
        assert_eq!(ring.open_chunk(&id, &frame, 0).unwrap(), b"");
        assert_eq!(
            ring.open_chunk(&id, &frame[..FRAME_OVERHEAD - 1], 0),
            Err(FrameError::Truncated {
                len: FRAME_OVERHEAD - 1,
                min: FRAME_OVERHEAD
            })
        );
        let mut bad = frame.clone();
        bad[0] = b'X';
        assert!(matches!(
            ring.open_chunk(&id, &bad, 0),
            Err(FrameError::BadMagic { .. })
        ));
        let mut bad = frame.clone();
        bad[4] = 2;
        assert_eq!(
            ring.open_chunk(&id, &bad, 0),
            Err(FrameError::UnsupportedVersion(2))
        );
        let mut bad = frame.clone();
        bad[5] = 9;
        assert_eq!(
            ring.open_chunk(&id, &bad, 0),
            Err(FrameError::UnknownCipher(9))
        );
        let mut bad = frame.clone();
        bad[6] = 8;
        assert_eq!(
            ring.open_chunk(&id, &bad, 0),
            Err(FrameError::UnknownEpoch(8))
        );
        let mut bad = frame;
        bad[5] = Cipher::Aes256GcmSiv.id();
        assert_eq!(
            ring.open_chunk(&id, &bad, 0),
            Err(FrameError::AuthenticationFailed {
                cipher: Cipher::Aes256GcmSiv,
                epoch: 7
            })
        );
    }

    #[test]
    fn size_limits_are_enforced_before_and_after_decryption() {
        let ring = keyring(Cipher::Aes256GcmSiv);
        let data = vec![b'a'; 10_000];
        let id = ring.chunk_id(&data);
        let raw = ring.seal_chunk(&id, &data, &CompressionPolicy::OFF);
        assert_eq!(
            ring.open_chunk(&id, &raw, 9_999),
            Err(FrameError::TooLarge {
                payload: 10_000,
                max_plain: 9_999
            })
        );
        let packed = ring.seal_chunk(&id, &data, &CompressionPolicy::default());
        assert!(packed.len() < 200);
        assert_eq!(
            ring.open_chunk(&id, &packed, 9_999),
            Err(FrameError::PlainLenOutOfBounds {
                plain_len: 10_000,
                max_plain: 9_999
            })
        );
        assert_eq!(ring.open_chunk(&id, &packed, 10_000).unwrap(), data);
    }

    #[test]
    fn id_mismatch_is_reported() {
        let ring = keyring(Cipher::Aes256GcmSiv);
        let wrong = ring.chunk_id(b"something else");
        let frame = ring.seal_chunk(&wrong, b"payload", &CompressionPolicy::OFF);
        assert_eq!(
            ring.open_chunk(&wrong, &frame, 100),
            Err(FrameError::IdMismatch {
                expected: wrong,
                actual: ring.chunk_id(b"payload")
            })
        );
    }

    #[test]
    fn checks_behind_the_tag() {
        for cipher in Cipher::ALL {
            let ring = keyring(cipher);
            let id = ring.chunk_id(b"hello");
            let nonce = chunk_nonce(&ring.epoch(7).unwrap().nonce, &id);
            let open = |frame: &[u8]| ring.open_chunk(&id, frame, 1000);

            assert_eq!(
                open(&forge(&ring, &id, nonce, envelope(b"hello", 0, 5))).unwrap(),
                b"hello"
            );
            assert_eq!(
                open(&forge(&ring, &id, [0; 12], envelope(b"hello", 0, 5))),
                Err(FrameError::NonceMismatch)
            );
            assert_eq!(
                open(&forge(&ring, &id, nonce, envelope(b"hello", 7, 5))),
                Err(FrameError::UnknownCompression(7))
            );
            assert_eq!(
                open(&forge(&ring, &id, nonce, envelope(b"hello", 0, 4))),
                Err(FrameError::RawLengthMismatch {
                    plain_len: 4,
                    payload: 5
                })
            );
            assert!(matches!(
                open(&forge(&ring, &id, nonce, envelope(b"hello", 1, 5))),
                Err(FrameError::Decompress(_))
            ));
            let zstd = zstd::bulk::compress(b"hello", 1).unwrap();
            assert_eq!(
                open(&forge(&ring, &id, nonce, envelope(&zstd, 1, 5))).unwrap(),
                b"hello"
            );
            assert!(matches!(
                open(&forge(&ring, &id, nonce, envelope(&zstd, 1, 4))),
                Err(FrameError::Decompress(_))
            ));
            assert_eq!(
                open(&forge(&ring, &id, nonce, envelope(&zstd, 1, 6))),
                Err(FrameError::DecompressedSizeMismatch {
                    expected: 6,
                    actual: 5
                })
            );
            assert_eq!(
                open(&forge(&ring, &id, nonce, envelope(b"hello", 0, 2000))),
                Err(FrameError::PlainLenOutOfBounds {
                    plain_len: 2000,
                    max_plain: 1000
                })
            );
        }
    }

    #[test]
    fn seal_into_appends_and_reports_length() {
        let ring = keyring(Cipher::ChaCha20Poly1305);
        let id = ring.chunk_id(b"chunk");
        let mut out = b"existing".to_vec();
        let len = ring
            .seal_chunk_into(&mut out, &id, b"chunk", &CompressionPolicy::default())
            .unwrap();
        assert_eq!(out.len(), 8 + len);
        assert_eq!(&out[..8], b"existing");
        assert_eq!(ring.open_chunk(&id, &out[8..], 5).unwrap(), b"chunk");
        assert_eq!(
            out[8..],
            ring.seal_chunk(&id, b"chunk", &CompressionPolicy::default())
        );
    }

    #[test]
    fn error_messages_say_what_failed() {
        let message = FrameError::AuthenticationFailed {
            cipher: Cipher::ChaCha20Poly1305,
            epoch: 3,
        }
        .to_string();
        assert_eq!(
            message,
            "frame authentication failed (chacha20-poly1305, epoch 3)"
        );
        assert!(
            FrameError::BadMagic { found: *b"ABCD" }
                .to_string()
                .contains("bad frame magic")
        );
    }
}
