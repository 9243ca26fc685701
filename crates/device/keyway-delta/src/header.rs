//! The patch header: what base the patch applies to and what it produces.

use crate::PatchError;

/// The header's magic bytes.
pub const MAGIC: [u8; 4] = *b"KWDP";
/// The patch format version this crate reads and writes.
pub const VERSION: u8 = 1;
/// The header's length in bytes; the range-coded body follows it.
pub const HEADER_LEN: usize = 80;

/// A patch header (80 bytes):
///
/// | offset | size | field |
/// |---|---|---|
/// | 0 | 4 | magic `KWDP` |
/// | 4 | 1 | version (1) |
/// | 5 | 3 | reserved, 0 |
/// | 8 | 4 | base size, little-endian |
/// | 12 | 4 | output size, little-endian |
/// | 16 | 32 | SHA-256 of the base |
/// | 48 | 32 | SHA-256 of the output |
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PatchHeader {
    /// The size of the image the patch applies to.
    pub base_size: u32,
    /// The size of the image the patch produces.
    pub out_size: u32,
    /// SHA-256 of the image the patch applies to.
    pub base_digest: [u8; 32],
    /// SHA-256 of the image the patch produces.
    pub out_digest: [u8; 32],
}

impl PatchHeader {
    /// Parses the first [`HEADER_LEN`] bytes of a patch.
    pub fn parse(bytes: &[u8]) -> Result<PatchHeader, PatchError> {
        let Some(h) = bytes.get(..HEADER_LEN) else {
            return Err(PatchError::HeaderTooShort { len: bytes.len() });
        };
        if h[..4] != MAGIC {
            return Err(PatchError::BadMagic);
        }
        if h[4] != VERSION {
            return Err(PatchError::UnsupportedVersion { got: h[4] });
        }
        if h[5..8] != [0; 3] {
            return Err(PatchError::Corrupt {
                patch_offset: 5,
                what: "reserved header bytes are not zero",
            });
        }
        let word = |i: usize| u32::from_le_bytes([h[i], h[i + 1], h[i + 2], h[i + 3]]);
        let mut base_digest = [0; 32];
        base_digest.copy_from_slice(&h[16..48]);
        let mut out_digest = [0; 32];
        out_digest.copy_from_slice(&h[48..80]);
        Ok(PatchHeader {
            base_size: word(8),
            out_size: word(12),
            base_digest,
            out_digest,
        })
    }

    /// The header's bytes.
    pub fn to_bytes(&self) -> [u8; HEADER_LEN] {
        let mut h = [0; HEADER_LEN];
        h[..4].copy_from_slice(&MAGIC);
        h[4] = VERSION;
        h[8..12].copy_from_slice(&self.base_size.to_le_bytes());
        h[12..16].copy_from_slice(&self.out_size.to_le_bytes());
        h[16..48].copy_from_slice(&self.base_digest);
        h[48..80].copy_from_slice(&self.out_digest);
        h
    }

    /// Refuses the patch unless the base it was made for is the image the
    /// device holds (`size` bytes with SHA-256 `digest`).
    pub fn check_base(&self, size: u32, digest: &[u8; 32]) -> Result<(), PatchError> {
        if size != self.base_size {
            return Err(PatchError::WrongBaseSize {
                patch: self.base_size,
                installed: size,
            });
        }
        if digest != &self.base_digest {
            return Err(PatchError::WrongBaseDigest);
        }
        Ok(())
    }
}
