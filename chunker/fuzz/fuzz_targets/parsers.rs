//! Feeds arbitrary bytes to every frame and pack parser. They may refuse
//! anything; they must never panic, hang or allocate without bound.
//!
//! The first input byte picks the plaintext limit, the rest is the bytes
//! under test. Seed the corpus with real frames and packs (see
//! docs/FORMAT.md, "Fuzzing") so mutations start from valid structure.
#![no_main]

use std::sync::OnceLock;

use dooz_chunker::{
    ChunkId, Cipher, EpochKeys, Key32, Keyring, PackReader, parse_frame_header, parse_pack_trailer,
    read_pack_footer, read_pack_index,
};
use libfuzzer_sys::fuzz_target;

fn keyring() -> &'static Keyring {
    static KEYRING: OnceLock<Keyring> = OnceLock::new();
    KEYRING.get_or_init(|| {
        let epoch = |enc: u8, nonce: u8| EpochKeys {
            enc: Key32::from_bytes([enc; 32]),
            nonce: Key32::from_bytes([nonce; 32]),
        };
        match Keyring::new(
            [0; 16],
            Key32::from_bytes([0x11; 32]),
            Key32::from_bytes([0x22; 32]),
            Key32::from_bytes([0x33; 32]),
            Cipher::Aes256GcmSiv,
            5,
            [(5, epoch(0x44, 0x55)), (6, epoch(0x66, 0x77))],
        ) {
            Ok(keyring) => keyring,
            Err(error) => panic!("fixed fuzz keyring refused: {error}"),
        }
    })
}

fuzz_target!(|input: &[u8]| {
    let Some((&limit, bytes)) = input.split_first() else {
        return;
    };
    let ring = keyring();
    let max_plain = 1usize << (limit % 25);
    let id = ChunkId([0x42; 32]);

    let _ = parse_frame_header(bytes);
    let _ = ring.open_chunk(&id, bytes, max_plain);
    let _ = parse_pack_trailer(bytes);
    let _ = read_pack_footer(&[0; 16], bytes, ring);
    let _ = read_pack_index(bytes, ring);
    if let Ok(reader) = PackReader::new(bytes, ring) {
        for opened in reader.open_all(ring, max_plain) {
            let _ = opened;
        }
    }
});
