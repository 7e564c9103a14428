//! Property tests: chunking, sealing, and tamper resistance of frames and
//! packs. Chunker parameters are small so the debug-build suite stays fast.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashSet;

use common::{keyring, keyring_with, noise, tenant, text};
use dooz_chunker::{
    ChunkId, Chunker, ChunkerParams, Cipher, CompressionPolicy, FRAME_HEADER_LEN, FrameError,
    PackReader, PackWriter, read_pack_index,
};
use fastcdc::v2020::{FastCDC, Normalization};
use proptest::prelude::*;

/// Valid small parameters: even, ordered, within fastcdc's ranges.
fn small_params() -> impl Strategy<Value = ChunkerParams> {
    (32u32..=1024, 128u32..=4096, 512u32..=16384).prop_map(|(min, avg, max)| {
        let min = min * 2;
        let avg = (avg * 2).max(min);
        let max = (max * 2).max(avg).max(1024);
        ChunkerParams { min, avg, max }
    })
}

/// Inputs mixing noise, text and runs of one byte (the last force cuts at
/// `max`).
fn input() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec((0u8..3, 0usize..40_000, any::<u64>()), 0..6).prop_map(|parts| {
        let mut data = Vec::new();
        for (kind, len, seed) in parts {
            match kind {
                0 => data.extend(noise(len, seed)),
                1 => data.extend(text(len)),
                _ => data.extend(std::iter::repeat_n(seed as u8, len)),
            }
        }
        data
    })
}

fn one_shot(data: &[u8], params: ChunkerParams, seed: u64) -> Vec<usize> {
    FastCDC::with_level_and_seed(
        data,
        params.min as usize,
        params.avg as usize,
        params.max as usize,
        Normalization::Level1,
        seed,
    )
    .map(|chunk| chunk.length)
    .collect()
}

fn chunk_all(chunker: &mut Chunker, data: &[u8], splits: &[usize]) -> Vec<Vec<u8>> {
    let mut chunks = Vec::new();
    let mut rest = data;
    let mut sizes = splits.iter().cycle();
    while !rest.is_empty() {
        let take = sizes.next().copied().unwrap_or(rest.len()).min(rest.len());
        let (piece, tail) = rest.split_at(take);
        chunks.extend(chunker.push(piece));
        rest = tail;
    }
    chunks.extend(chunker.finish());
    chunks
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn streaming_matches_one_shot_and_reassembles(
        data in input(),
        params in small_params(),
        seed in any::<u64>(),
        splits in prop::collection::vec(1usize..20_000, 1..8),
    ) {
        let mut chunker = Chunker::new(params, seed).unwrap();
        let chunks = chunk_all(&mut chunker, &data, &splits);
        prop_assert_eq!(chunks.concat(), data.clone());
        let lengths: Vec<usize> = chunks.iter().map(Vec::len).collect();
        prop_assert_eq!(&lengths, &one_shot(&data, params, seed));
        for (i, length) in lengths.iter().enumerate() {
            prop_assert!(*length <= params.max as usize);
            prop_assert!(*length > 0);
            if i + 1 < lengths.len() {
                prop_assert!(*length >= params.min as usize);
            }
        }
        prop_assert_eq!(chunker.buffered(), 0);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 8, ..ProptestConfig::default() })]

    /// Inserting a few bytes in the middle of a 2 MiB input changes only the
    /// chunks around the edit.
    #[test]
    fn insertion_only_disturbs_nearby_chunks(
        seed in any::<u64>(),
        at in 0.3f64..0.7,
        inserted in prop::collection::vec(any::<u8>(), 1..16),
    ) {
        let params = ChunkerParams { min: 1024, avg: 4096, max: 16384 };
        let ring = keyring(Cipher::Aes256GcmSiv);
        let original = noise(2 << 20, seed);
        let position = (original.len() as f64 * at) as usize;
        let mut edited = original[..position].to_vec();
        edited.extend_from_slice(&inserted);
        edited.extend_from_slice(&original[position..]);

        let ids = |data: &[u8]| -> Vec<ChunkId> {
            let mut chunker = ring.chunker(params).unwrap();
            chunk_all(&mut chunker, data, &[65_536])
                .iter()
                .map(|chunk| ring.chunk_id(chunk))
                .collect()
        };
        let before = ids(&original);
        let after: HashSet<ChunkId> = ids(&edited).into_iter().collect();
        let shared = before.iter().filter(|id| after.contains(id)).count();
        prop_assert!(before.len() > 300, "{} chunks", before.len());
        // Typically one to three chunks differ; allow a handful.
        prop_assert!(before.len() - shared <= 5, "{} of {} chunks changed", before.len() - shared, before.len());
    }
}

fn cipher() -> impl Strategy<Value = Cipher> {
    prop_oneof![Just(Cipher::Aes256GcmSiv), Just(Cipher::ChaCha20Poly1305)]
}

fn plaintext() -> impl Strategy<Value = Vec<u8>> {
    (0u8..2, 0usize..20_000, any::<u64>()).prop_map(|(kind, len, seed)| match kind {
        0 => noise(len, seed),
        _ => text(len),
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn seal_open_round_trip(
        data in plaintext(),
        cipher in cipher(),
        level in prop_oneof![Just(0), Just(1), Just(3), Just(-1)],
    ) {
        let ring = keyring(cipher);
        let id = ring.chunk_id(&data);
        let policy = CompressionPolicy::new(level);
        let frame = ring.seal_chunk(&id, &data, &policy);
        // Deterministic: the same chunk always seals to the same frame.
        prop_assert_eq!(&frame, &ring.seal_chunk(&id, &data, &policy));
        prop_assert!(frame.len() <= data.len() + dooz_chunker::FRAME_OVERHEAD);
        prop_assert_eq!(ring.open_chunk(&id, &frame, data.len()).unwrap(), data);
    }

    #[test]
    fn any_bit_flip_in_a_frame_is_refused(
        data in plaintext(),
        cipher in cipher(),
        bit in any::<prop::sample::Index>(),
    ) {
        let ring = keyring(cipher);
        let id = ring.chunk_id(&data);
        let mut frame = ring.seal_chunk(&id, &data, &CompressionPolicy::default());
        let bit = bit.index(frame.len() * 8);
        frame[bit / 8] ^= 1 << (bit % 8);
        prop_assert!(ring.open_chunk(&id, &frame, 1 << 20).is_err(), "bit {} accepted", bit);
    }

    #[test]
    fn any_bit_flip_in_a_pack_is_refused(
        chunks in prop::collection::vec(plaintext(), 0..4),
        cipher in cipher(),
        bit in any::<prop::sample::Index>(),
    ) {
        let ring = keyring(cipher);
        let mut writer = PackWriter::new([0x5a; 16]);
        for chunk in &chunks {
            writer.push_chunk(&ring, ring.chunk_id(chunk), chunk, &CompressionPolicy::default()).unwrap();
        }
        let mut pack = writer.finish(&ring);
        let bit = bit.index(pack.len() * 8);
        pack[bit / 8] ^= 1 << (bit % 8);
        let refused = match PackReader::new(&pack, &ring) {
            Err(_) => true,
            Ok(reader) => reader.open_all(&ring, 1 << 20).any(|opened| opened.is_err()),
        };
        prop_assert!(refused, "bit {} of {} accepted", bit, pack.len() * 8);
    }

    /// A frame only opens for the tenant, chunk id and epoch it was sealed
    /// for, even where the keys are the same: the AAD binds them.
    #[test]
    fn moved_frames_fail_authentication(
        data in plaintext(),
        other in plaintext(),
        cipher in cipher(),
    ) {
        prop_assume!(data != other);
        // Two epochs with identical keys, so only the AAD tells them apart.
        let ring = keyring_with(tenant(), cipher, 1, &[(1, 0x44, 0x55), (2, 0x44, 0x55)]);
        let id = ring.chunk_id(&data);
        let frame = ring.seal_chunk(&id, &data, &CompressionPolicy::default());
        let refused = FrameError::AuthenticationFailed { cipher, epoch: 1 };

        let mut elsewhere = tenant();
        elsewhere[0] ^= 0xff;
        let other_tenant = keyring_with(elsewhere, cipher, 1, &[(1, 0x44, 0x55)]);
        prop_assert_eq!(other_tenant.open_chunk(&id, &frame, 1 << 20), Err(refused.clone()));

        prop_assert_eq!(ring.open_chunk(&ring.chunk_id(&other), &frame, 1 << 20), Err(refused));

        let mut epoch_two = frame.clone();
        epoch_two[6..10].copy_from_slice(&2u32.to_le_bytes());
        prop_assert_eq!(
            ring.open_chunk(&id, &epoch_two, 1 << 20),
            Err(FrameError::AuthenticationFailed { cipher, epoch: 2 })
        );
        prop_assert_eq!(ring.open_chunk(&id, &frame, 1 << 20).unwrap(), data);
    }
}

/// A valid pack and a valid frame to mutate, plus the keyring that made them.
fn specimens() -> (dooz_chunker::Keyring, Vec<u8>, Vec<u8>, ChunkId) {
    let ring = keyring(Cipher::ChaCha20Poly1305);
    let mut writer = PackWriter::new([1; 16]);
    for chunk in [text(500), noise(300, 1), Vec::new()] {
        writer
            .push_chunk(
                &ring,
                ring.chunk_id(&chunk),
                &chunk,
                &CompressionPolicy::default(),
            )
            .unwrap();
    }
    let pack = writer.finish(&ring);
    let data = text(2000);
    let id = ring.chunk_id(&data);
    let frame = ring.seal_chunk(&id, &data, &CompressionPolicy::default());
    (ring, pack, frame, id)
}

/// Runs every parser over `bytes`; they may refuse, never panic.
fn parse_everything(ring: &dooz_chunker::Keyring, bytes: &[u8], id: &ChunkId, max_plain: usize) {
    let _ = dooz_chunker::parse_frame_header(bytes);
    let _ = ring.open_chunk(id, bytes, max_plain);
    let _ = dooz_chunker::parse_pack_trailer(bytes);
    let _ = dooz_chunker::read_pack_footer(&[1; 16], bytes, ring);
    let _ = read_pack_index(bytes, ring);
    if let Ok(reader) = PackReader::new(bytes, ring) {
        for opened in reader.open_all(ring, max_plain) {
            let _ = opened;
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn parsers_survive_arbitrary_bytes(
        bytes in prop::collection::vec(any::<u8>(), 0..4096),
        max_plain in 0usize..100_000,
    ) {
        let (ring, _, _, id) = specimens();
        parse_everything(&ring, &bytes, &id, max_plain);
        // Arbitrary bodies behind a valid-looking frame header.
        let mut framed = b"DZCF\x01\x02\x05\x00\x00\x00".to_vec();
        framed.extend_from_slice(&bytes);
        parse_everything(&ring, &framed, &id, max_plain);
    }

    #[test]
    fn parsers_survive_mutated_packs_and_frames(
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        cut in any::<prop::sample::Index>(),
        truncate in any::<bool>(),
    ) {
        let (ring, pack, frame, id) = specimens();
        for original in [pack, frame] {
            let mut bytes = original.clone();
            for (at, value) in &edits {
                let i = at.index(bytes.len());
                bytes[i] = *value;
            }
            if truncate {
                bytes.truncate(cut.index(bytes.len() + 1));
            }
            parse_everything(&ring, &bytes, &id, 1 << 20);
            // Any real change must be refused by the frame opener.
            if bytes != original && original.len() > FRAME_HEADER_LEN && original[..4] == *b"DZCF" {
                prop_assert!(ring.open_chunk(&id, &bytes, 1 << 20).is_err());
            }
        }
    }
}
