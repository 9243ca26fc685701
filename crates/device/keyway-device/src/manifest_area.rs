//! The per-slot manifest area: the signed envelope head stored beside each
//! image, so that the bootloader can re-verify the image ([`crate::verified`]).
//!
//! # Where
//!
//! The last [`SlotLayout::manifest_sectors`](crate::install::SlotLayout)
//! erase sectors of each slot (at least [`MANIFEST_AREA_MIN`] bytes). They
//! are reserved: the image capacity of a slot is its size minus its
//! manifest area.
//!
//! # What
//!
//! The *envelope head* is the envelope's bytes before the first byte of its
//! integrated payload, `envelope[..IntegratedPayload::offset]`: the tag,
//! the map head, the authentication wrapper, the manifest, the release
//! notes, a carried key set, and the payload's key and byte-string head.
//! `keyway_suit::verify_envelope` accepts exactly this prefix (the payload
//! is then checked as it streams). An envelope with a detached payload is
//! its own head. At most [`MAX_MANIFEST_LEN`] bytes.
//!
//! # Format
//!
//! | Offset | Bytes | Field |
//! |---|---|---|
//! | 0 | 4 | magic `KWMF` |
//! | 4 | 4 | format version, 1, LE |
//! | 8 | 4 | head length `n`, LE |
//! | 12 | 4 | CRC-32 (ISO-HDLC) of the head, LE |
//! | 16 | `n` | the envelope head |
//!
//! padded with the erased value to the write size. The CRC only tells a
//! written area from a torn or erased one; trust comes from the signature
//! check that [`crate::verified::VerifiedSlot`] runs over the head.

/// The header's length in bytes.
pub const HEADER_LEN: usize = 16;

/// The largest envelope head the installer stores: 4 KiB less the header,
/// so the header and the head fill at most 4 KiB.
pub const MAX_MANIFEST_LEN: usize = MANIFEST_AREA_MIN as usize - HEADER_LEN;

/// The smallest manifest area a [`SlotLayout`](crate::install::SlotLayout)
/// accepts: 4 KiB.
pub const MANIFEST_AREA_MIN: u32 = 4096;

/// The header's magic, `KWMF`.
pub const MAGIC: [u8; 4] = *b"KWMF";

/// The format version written in the header.
pub const VERSION: u32 = 1;

/// The CRC-32 the header records for `head` (the journal's CRC).
pub(crate) fn crc32(head: &[u8]) -> u32 {
    crate::journal::CRC.checksum(head)
}

/// The header for a head of `head`'s length and contents.
pub(crate) fn header(head: &[u8]) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[..4].copy_from_slice(&MAGIC);
    h[4..8].copy_from_slice(&VERSION.to_le_bytes());
    h[8..12].copy_from_slice(&(head.len() as u32).to_le_bytes());
    h[12..16].copy_from_slice(&crc32(head).to_le_bytes());
    h
}

/// A header read back: the head's length and CRC, if the magic, the
/// version and the length bound are right (`None` for an erased, torn or
/// foreign area). `h` is the area's first [`HEADER_LEN`] bytes or more;
/// the head is then `area[HEADER_LEN..HEADER_LEN + len]`, and its CRC is
/// the caller's to check. Public so that whoever reads a slot's manifest
/// area (the bootloader's [`VerifiedSlot`](crate::verified::VerifiedSlot),
/// the simulated lock on the host) reads it by this one rule.
pub fn parse_header(h: &[u8]) -> Option<(usize, u32)> {
    let word = |at: usize| -> Option<u32> {
        let b: [u8; 4] = h.get(at..at + 4)?.try_into().ok()?;
        Some(u32::from_le_bytes(b))
    };
    if h.get(..4)? != MAGIC || word(4)? != VERSION {
        return None;
    }
    let len = usize::try_from(word(8)?).ok()?;
    if len > MAX_MANIFEST_LEN {
        return None;
    }
    Some((len, word(12)?))
}
