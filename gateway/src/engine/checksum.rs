//! Integrity values computed over the plaintext while it streams through:
//! MD5 for the ETag and any x-amz-checksum-* algorithm the client asked for.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use md5::Digest as _;

use super::EngineError;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ChecksumAlgorithm {
    Crc32,
    Crc32c,
    Crc64Nvme,
    Sha1,
    Sha256,
}

impl ChecksumAlgorithm {
    pub const ALL: [ChecksumAlgorithm; 5] = [
        Self::Crc32,
        Self::Crc32c,
        Self::Crc64Nvme,
        Self::Sha1,
        Self::Sha256,
    ];

    /// S3's spelling: "CRC32", "CRC32C", "CRC64NVME", "SHA1", "SHA256".
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Crc32 => "CRC32",
            Self::Crc32c => "CRC32C",
            Self::Crc64Nvme => "CRC64NVME",
            Self::Sha1 => "SHA1",
            Self::Sha256 => "SHA256",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|a| a.as_str().eq_ignore_ascii_case(s))
    }

    /// Header name, e.g. "x-amz-checksum-crc32".
    pub fn header(self) -> String {
        format!("x-amz-checksum-{}", self.as_str().to_lowercase())
    }

    fn digest_len(self) -> usize {
        match self {
            Self::Crc32 | Self::Crc32c => 4,
            Self::Crc64Nvme => 8,
            Self::Sha1 => 20,
            Self::Sha256 => 32,
        }
    }
}

enum Hasher {
    Crc32(crc32fast::Hasher),
    Crc32c(u32),
    Crc64(crc64fast_nvme::Digest),
    Sha1(sha1::Sha1),
    Sha256(sha2::Sha256),
}

impl Hasher {
    fn new(alg: ChecksumAlgorithm) -> Self {
        match alg {
            ChecksumAlgorithm::Crc32 => Self::Crc32(crc32fast::Hasher::new()),
            ChecksumAlgorithm::Crc32c => Self::Crc32c(0),
            ChecksumAlgorithm::Crc64Nvme => Self::Crc64(crc64fast_nvme::Digest::new()),
            ChecksumAlgorithm::Sha1 => Self::Sha1(sha1::Sha1::new()),
            ChecksumAlgorithm::Sha256 => Self::Sha256(sha2::Sha256::new()),
        }
    }

    fn update(&mut self, data: &[u8]) {
        match self {
            Self::Crc32(h) => h.update(data),
            Self::Crc32c(c) => *c = crc32c::crc32c_append(*c, data),
            Self::Crc64(h) => h.write(data),
            Self::Sha1(h) => h.update(data),
            Self::Sha256(h) => h.update(data),
        }
    }

    fn finish(self) -> Vec<u8> {
        match self {
            Self::Crc32(h) => h.finalize().to_be_bytes().to_vec(),
            Self::Crc32c(c) => c.to_be_bytes().to_vec(),
            Self::Crc64(h) => h.sum64().to_be_bytes().to_vec(),
            Self::Sha1(h) => h.finalize().to_vec(),
            Self::Sha256(h) => h.finalize().to_vec(),
        }
    }
}

/// MD5 plus the requested checksum algorithms, fed as the body streams.
pub struct Checksums {
    md5: md5::Md5,
    others: Vec<(ChecksumAlgorithm, Hasher)>,
}

/// Finished values.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ComputedChecksums {
    pub md5: [u8; 16],
    /// Algorithm name -> base64 value.
    pub values: BTreeMap<String, String>,
}

impl Checksums {
    pub fn new(algorithms: impl IntoIterator<Item = ChecksumAlgorithm>) -> Self {
        let mut algs: Vec<ChecksumAlgorithm> = algorithms.into_iter().collect();
        algs.sort();
        algs.dedup();
        Self {
            md5: md5::Md5::new(),
            others: algs.into_iter().map(|a| (a, Hasher::new(a))).collect(),
        }
    }

    pub fn update(&mut self, data: &[u8]) {
        self.md5.update(data);
        for (_, h) in &mut self.others {
            h.update(data);
        }
    }

    pub fn finish(self) -> ComputedChecksums {
        let mut md5 = [0u8; 16];
        md5.copy_from_slice(&self.md5.finalize());
        let values = self
            .others
            .into_iter()
            .map(|(a, h)| (a.as_str().to_owned(), B64.encode(h.finish())))
            .collect();
        ComputedChecksums { md5, values }
    }
}

/// What the client claims the body hashes to. Trailer values (aws-chunked)
/// arrive only after the body; `trailer` fetches them then.
#[derive(Default)]
pub struct ExpectedChecksums {
    pub content_md5: Option<String>,
    /// From headers: algorithm -> base64 value.
    pub headers: BTreeMap<ChecksumAlgorithm, String>,
    /// Algorithms announced in x-amz-trailer / x-amz-sdk-checksum-algorithm.
    pub announced: Vec<ChecksumAlgorithm>,
    pub trailer: Option<Box<dyn FnOnce() -> BTreeMap<ChecksumAlgorithm, String> + Send>>,
}

impl std::fmt::Debug for ExpectedChecksums {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExpectedChecksums")
            .field("content_md5", &self.content_md5)
            .field("headers", &self.headers)
            .field("announced", &self.announced)
            .field("trailer", &self.trailer.is_some())
            .finish()
    }
}

impl ExpectedChecksums {
    /// Every algorithm to compute while streaming.
    pub fn algorithms(&self) -> Vec<ChecksumAlgorithm> {
        let mut v: Vec<_> = self.headers.keys().copied().collect();
        v.extend(self.announced.iter().copied());
        v
    }

    /// Checks syntax before any byte is stored (InvalidDigest).
    pub fn validate(&self) -> Result<(), EngineError> {
        if let Some(md5) = &self.content_md5 {
            match B64.decode(md5.trim()) {
                Ok(b) if b.len() == 16 => {}
                _ => {
                    return Err(EngineError::InvalidDigest(
                        "Content-MD5 must be the base64 of 16 bytes".into(),
                    ));
                }
            }
        }
        for (alg, v) in &self.headers {
            match B64.decode(v.trim()) {
                Ok(b) if b.len() == alg.digest_len() => {}
                _ => {
                    return Err(EngineError::InvalidDigest(format!(
                        "{} is not a valid {} value",
                        alg.header(),
                        alg.as_str()
                    )));
                }
            }
        }
        Ok(())
    }

    /// Compares what the client sent with what was computed: BadDigest on any
    /// mismatch. Returns the checksums to store (the ones the client used).
    pub fn verify(
        self,
        computed: &ComputedChecksums,
    ) -> Result<BTreeMap<String, String>, EngineError> {
        if let Some(md5) = &self.content_md5 {
            let sent = B64.decode(md5.trim()).unwrap_or_default();
            if sent != computed.md5 {
                return Err(EngineError::BadDigest(
                    "The Content-MD5 you specified did not match what we received.".into(),
                ));
            }
        }
        let mut claimed = self.headers;
        if let Some(trailer) = self.trailer {
            claimed.extend(trailer());
        }
        for alg in &self.announced {
            if !claimed.contains_key(alg) {
                return Err(EngineError::InvalidArgument(format!(
                    "the announced trailer {} was not sent",
                    alg.header()
                )));
            }
        }
        let mut stored = BTreeMap::new();
        for (alg, value) in claimed {
            let ours = computed.values.get(alg.as_str()).ok_or_else(|| {
                EngineError::InvalidArgument(format!(
                    "{} arrived in a trailer that was not announced",
                    alg.header()
                ))
            })?;
            if ours != value.trim() {
                return Err(EngineError::BadDigest(format!(
                    "The {} you specified did not match the calculated checksum.",
                    alg.header()
                )));
            }
            stored.insert(alg.as_str().to_owned(), ours.clone());
        }
        Ok(stored)
    }
}

/// Multipart checksums: COMPOSITE is the algorithm over the concatenated
/// part checksums, suffixed "-N"; FULL_OBJECT (CRCs only) is the CRC of the
/// whole object, combined from the part CRCs and sizes without reading data.
pub mod multipart {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD as B64;

    use super::{ChecksumAlgorithm, Hasher};

    pub fn composite(alg: ChecksumAlgorithm, parts: &[Vec<u8>]) -> String {
        let mut h = Hasher::new(alg);
        for p in parts {
            h.update(p);
        }
        format!("{}-{}", B64.encode(h.finish()), parts.len())
    }

    /// Reflected polynomial and width of each CRC algorithm.
    fn crc_params(alg: ChecksumAlgorithm) -> Option<(u64, u32)> {
        match alg {
            ChecksumAlgorithm::Crc32 => Some((0xEDB8_8320, 32)),
            ChecksumAlgorithm::Crc32c => Some((0x82F6_3B78, 32)),
            ChecksumAlgorithm::Crc64Nvme => Some((0x9A6C_9329_AC4B_C9B5, 64)),
            _ => None,
        }
    }

    fn gf2_times(mat: &[u64; 64], mut vec: u64) -> u64 {
        let mut sum = 0;
        let mut i = 0;
        while vec != 0 {
            if vec & 1 == 1 {
                sum ^= mat[i];
            }
            vec >>= 1;
            i += 1;
        }
        sum
    }

    fn gf2_square(square: &mut [u64; 64], mat: &[u64; 64], width: usize) {
        for n in 0..width {
            square[n] = gf2_times(mat, mat[n]);
        }
    }

    /// CRC(A ‖ B) from CRC(A), CRC(B) and len(B): zlib's crc32_combine,
    /// generalised to any reflected CRC whose init equals its final xor.
    fn combine(crc1: u64, crc2: u64, mut len2: u64, poly: u64, width: u32) -> u64 {
        if len2 == 0 {
            return crc1;
        }
        let w = width as usize;
        let mut even = [0u64; 64];
        let mut odd = [0u64; 64];
        // The operator for one zero bit.
        odd[0] = poly;
        let mut row = 1u64;
        for slot in odd.iter_mut().take(w).skip(1) {
            *slot = row;
            row <<= 1;
        }
        gf2_square(&mut even, &odd, w); // two zero bits
        gf2_square(&mut odd, &even, w); // four zero bits
        let mut crc1 = crc1;
        loop {
            gf2_square(&mut even, &odd, w);
            if len2 & 1 == 1 {
                crc1 = gf2_times(&even, crc1);
            }
            len2 >>= 1;
            if len2 == 0 {
                break;
            }
            gf2_square(&mut odd, &even, w);
            if len2 & 1 == 1 {
                crc1 = gf2_times(&odd, crc1);
            }
            len2 >>= 1;
            if len2 == 0 {
                break;
            }
        }
        crc1 ^ crc2
    }

    fn to_u64(b: &[u8]) -> u64 {
        b.iter().fold(0u64, |acc, &x| (acc << 8) | u64::from(x))
    }

    /// The whole object's CRC from (part CRC bytes, part size) in order; None
    /// for algorithms that cannot be combined (SHA).
    pub fn full_object(alg: ChecksumAlgorithm, parts: &[(Vec<u8>, u64)]) -> Option<String> {
        let (poly, width) = crc_params(alg)?;
        let mut iter = parts.iter();
        let (first, _) = iter.next()?;
        let mut crc = to_u64(first);
        for (p, len) in iter {
            crc = combine(crc, to_u64(p), *len, poly, width);
        }
        let bytes = crc.to_be_bytes();
        let n = (width / 8) as usize;
        Some(B64.encode(&bytes[8 - n..]))
    }
}

/// The quoted ETag of a multipart object: MD5 of the part MD5s, "-N".
pub fn multipart_etag(part_etags: &[&str]) -> String {
    let mut h = md5::Md5::new();
    for e in part_etags {
        let raw = hex::decode(e.trim_matches('"')).unwrap_or_default();
        h.update(&raw);
    }
    format!("\"{}-{}\"", hex::encode(h.finalize()), part_etags.len())
}

/// The quoted hex ETag of a single-part object.
pub fn etag_of(md5: &[u8; 16]) -> String {
    format!("\"{}\"", hex::encode(md5))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn computed(data: &[u8], algs: &[ChecksumAlgorithm]) -> ComputedChecksums {
        let mut c = Checksums::new(algs.iter().copied());
        // Feed in pieces: streaming must equal one shot.
        for piece in data.chunks(7) {
            c.update(piece);
        }
        c.finish()
    }

    #[test]
    fn known_values() {
        // "123456789" is the check input of every CRC catalogue.
        let c = computed(b"123456789", &ChecksumAlgorithm::ALL);
        let hexv = |alg: &str| hex::encode(B64.decode(&c.values[alg]).unwrap());
        assert_eq!(hexv("CRC32"), "cbf43926");
        assert_eq!(hexv("CRC32C"), "e3069283");
        assert_eq!(hexv("CRC64NVME"), "ae8b14860a799888");
        assert_eq!(hexv("SHA1"), "f7c3bc1d808e04732adf679965ccc34ca7ae3441");
        assert_eq!(
            hexv("SHA256"),
            "15e2b0d3c33891ebb0f1ef609ec419420c20e320ce94c65fbc8c3312448eb225"
        );
        assert_eq!(etag_of(&c.md5), "\"25f9e794323b453885f5181f1b624d0b\"");
    }

    #[test]
    fn mismatches_are_bad_digest() {
        let c = computed(b"hello", &[ChecksumAlgorithm::Crc32]);
        let good = ExpectedChecksums {
            headers: [(ChecksumAlgorithm::Crc32, c.values["CRC32"].clone())].into(),
            ..Default::default()
        };
        assert!(good.verify(&c).is_ok());
        let bad = ExpectedChecksums {
            headers: [(ChecksumAlgorithm::Crc32, B64.encode([0u8; 4]))].into(),
            ..Default::default()
        };
        assert!(matches!(bad.verify(&c), Err(EngineError::BadDigest(_))));
        let bad_md5 = ExpectedChecksums {
            content_md5: Some(B64.encode([0u8; 16])),
            ..Default::default()
        };
        assert!(matches!(bad_md5.verify(&c), Err(EngineError::BadDigest(_))));
        let malformed = ExpectedChecksums {
            content_md5: Some("nope".into()),
            ..Default::default()
        };
        assert!(matches!(
            malformed.validate(),
            Err(EngineError::InvalidDigest(_))
        ));
    }

    #[test]
    fn multipart_checksums_combine_like_the_whole() {
        let data: Vec<u8> = (0..100_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let cuts = [0usize, 30_000, 30_001, 99_000, 100_000];
        for alg in [
            ChecksumAlgorithm::Crc32,
            ChecksumAlgorithm::Crc32c,
            ChecksumAlgorithm::Crc64Nvme,
        ] {
            let whole = computed(&data, &[alg]).values[alg.as_str()].clone();
            let parts: Vec<(Vec<u8>, u64)> = cuts
                .windows(2)
                .map(|w| {
                    let c = computed(&data[w[0]..w[1]], &[alg]);
                    (
                        B64.decode(&c.values[alg.as_str()]).unwrap(),
                        (w[1] - w[0]) as u64,
                    )
                })
                .collect();
            assert_eq!(
                multipart::full_object(alg, &parts).unwrap(),
                whole,
                "{alg:?}"
            );
        }
        assert!(multipart::full_object(ChecksumAlgorithm::Sha256, &[]).is_none());
        // Composite: the algorithm over the raw part values, "-N".
        let p1 = B64
            .decode(computed(b"abc", &[ChecksumAlgorithm::Sha256]).values["SHA256"].clone())
            .unwrap();
        let p2 = B64
            .decode(computed(b"def", &[ChecksumAlgorithm::Sha256]).values["SHA256"].clone())
            .unwrap();
        let mut cat = p1.clone();
        cat.extend_from_slice(&p2);
        let expect = computed(&cat, &[ChecksumAlgorithm::Sha256]).values["SHA256"].clone();
        assert_eq!(
            multipart::composite(ChecksumAlgorithm::Sha256, &[p1, p2]),
            format!("{expect}-2")
        );
    }

    #[test]
    fn multipart_etag_is_md5_of_md5s() {
        // Two parts "a" and "b".
        let ea = etag_of(&computed(b"a", &[]).md5);
        let eb = etag_of(&computed(b"b", &[]).md5);
        let mut cat = computed(b"a", &[]).md5.to_vec();
        cat.extend_from_slice(&computed(b"b", &[]).md5);
        let expect = hex::encode(computed(&cat, &[]).md5);
        assert_eq!(multipart_etag(&[&ea, &eb]), format!("\"{expect}-2\""));
    }

    #[test]
    fn trailer_values_are_checked_after_the_body() {
        let c = computed(b"trailer body", &[ChecksumAlgorithm::Crc32c]);
        let value = c.values["CRC32C"].clone();
        let exp = ExpectedChecksums {
            announced: vec![ChecksumAlgorithm::Crc32c],
            trailer: Some(Box::new(move || {
                [(ChecksumAlgorithm::Crc32c, value)].into()
            })),
            ..Default::default()
        };
        let stored = exp.verify(&c).unwrap();
        assert_eq!(stored.len(), 1);
        let missing = ExpectedChecksums {
            announced: vec![ChecksumAlgorithm::Crc32c],
            trailer: Some(Box::new(BTreeMap::new)),
            ..Default::default()
        };
        assert!(missing.verify(&c).is_err());
    }
}
