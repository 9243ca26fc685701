//! The bootloader's re-verification of a slot: [`VerifiedSlot`], a
//! [`SlotCheck`] that checks the signed manifest stored in the slot's
//! manifest area ([`crate::manifest_area`]) against the trust anchors, then
//! the image's size and SHA-256 digest against that manifest.
//!
//! # What a slot must pass
//!
//! 1. The manifest area exists in the [`SlotLayout`] and its header is
//!    right (magic, version, a length of at most
//!    [`MAX_MANIFEST_LEN`], CRC-32).
//! 2. `keyway_suit::verify_envelope` over the stored envelope head, with the
//!    device's [`TrustAnchors`], [`DeviceIdentity`] and stored key set:
//!    signatures (k of n), key set, vendor and class, severed members.
//! 3. Anti-rollback, **boot rule**: the manifest's sequence number must be
//!    *at least* the journal's floor (`sequence >= floor`), not above it as
//!    for an update: after [`confirm`](crate::boot::confirm) the running
//!    image's sequence number *is* the floor. It is implemented by passing
//!    `sequence_floor: floor.checked_sub(1)` to the verifier (a floor of 0,
//!    or none, accepts every sequence number). An older image (the one a
//!    confirm superseded) fails it, so the bootloader never falls back to a
//!    rolled-back image.
//! 4. The key-set version in force for the envelope is at least the
//!    journal's `keyset_version`.
//! 5. The manifest names an image with a declared size that fits the slot's
//!    image capacity; the slot's first `size` bytes, read in `CHUNK`-byte
//!    pieces, have the manifest's SHA-256 digest ([`PayloadVerifier`]).
//!
//! Any failure, a flash read error included, is [`SlotError`] (and `false`
//! through [`SlotCheck`]). No flash content makes it panic; it uses no heap
//! and writes nothing.
//!
//! # Resources
//!
//! The stored head is read into a caller-provided buffer of at least
//! [`HEAD_BUF_LEN`] bytes (often a `static`); the image is hashed through a
//! `CHUNK`-byte buffer inside the [`VerifiedSlot`] (a multiple of
//! `F::READ_SIZE`). The verifier's result (about 1.5 KB on Cortex-M) lives
//! on the stack during a check.
//!
//! The signature algorithms are those compiled into `keyway-suit`: enable
//! this crate's `ed25519` or `es256` feature (or the suit crate's) for the
//! one the vendor signs with; without any, every signature is refused.

use embedded_storage::nor_flash::NorFlash;
use keyway_suit::{DeviceIdentity, DeviceState, KeySet, PayloadVerifier, TrustAnchors};

use crate::boot::SlotCheck;
use crate::install::SlotLayout;
use crate::journal::PersistentState;
use crate::manifest_area::{self, HEADER_LEN, MAX_MANIFEST_LEN};

/// The head buffer that holds any stored head on a flash whose
/// `READ_SIZE` divides 4 KiB: the header and [`MAX_MANIFEST_LEN`] bytes.
pub const HEAD_BUF_LEN: usize = HEADER_LEN + MAX_MANIFEST_LEN;

/// The default image chunk: 256 bytes.
pub const DEFAULT_CHUNK: usize = 256;

/// Why [`VerifiedSlot::check`] refused a slot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SlotError {
    /// The layout reserves no manifest area, or the slot number is not 0
    /// or 1.
    NoManifestArea,
    /// The head buffer or `CHUNK` does not fit the flash's read size, or
    /// the buffer is shorter than the stored head.
    Buffer,
    /// A flash read failed at this offset.
    Read {
        /// The read's start offset in the flash.
        offset: u32,
    },
    /// The manifest area holds no valid header (erased, torn, another
    /// format, or a length above the bound).
    NoManifest,
    /// The stored head does not match its CRC-32 (torn or corrupted).
    Crc,
    /// The stored envelope head did not verify.
    Envelope(keyway_suit::Error),
    /// The manifest's sequence number is below the journal's floor (boot
    /// rule: `sequence >= floor`): an image a confirm superseded.
    BelowFloor {
        /// The manifest's sequence number.
        sequence: u64,
        /// The journal's anti-rollback floor.
        floor: u64,
    },
    /// The envelope's key set is older than the journal's key-set version.
    KeysetDown {
        /// The journal's key-set version.
        stored: u32,
        /// The version in force for the envelope.
        got: u32,
    },
    /// The manifest names no image, or no image size.
    NoImage,
    /// The image the manifest declares is larger than the slot's image
    /// capacity.
    ImageTooLarge {
        /// The declared size.
        size: u64,
        /// The slot's image capacity.
        capacity: u32,
    },
    /// The slot's image does not match the manifest (digest).
    Image(keyway_suit::Error),
}

impl core::fmt::Display for SlotError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            SlotError::NoManifestArea => f.write_str("slot: no manifest area"),
            SlotError::Buffer => f.write_str("slot: buffer does not fit the flash or the head"),
            SlotError::Read { offset } => write!(f, "slot: flash read at {offset:#x} failed"),
            SlotError::NoManifest => f.write_str("slot: no stored manifest"),
            SlotError::Crc => f.write_str("slot: stored manifest CRC mismatch"),
            SlotError::Envelope(e) => write!(f, "slot: manifest: {e}"),
            SlotError::BelowFloor { sequence, floor } => {
                write!(f, "slot: seq {sequence} < floor {floor} (boot rule)")
            }
            SlotError::KeysetDown { stored, got } => {
                write!(f, "slot: key set v{got} < v{stored}")
            }
            SlotError::NoImage => f.write_str("slot: manifest names no sized image"),
            SlotError::ImageTooLarge { size, capacity } => {
                write!(f, "slot: image of {size} bytes exceeds {capacity}")
            }
            SlotError::Image(e) => write!(f, "slot: image: {e}"),
        }
    }
}

/// What a slot that verified holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SlotInfo {
    /// The manifest's sequence number.
    pub sequence: u64,
    /// The key-set version in force for it.
    pub keyset_version: u32,
    /// The manifest digest (what was signed).
    pub manifest_digest: [u8; 32],
    /// The image size in bytes.
    pub image_size: u64,
}

/// The bootloader's [`SlotCheck`]: re-verifies a slot from its stored
/// signed manifest and its image. See the [module documentation](self).
///
/// ```ignore
/// let mut head = [0u8; HEAD_BUF_LEN];
/// let state = *journal.state();
/// let mut check = VerifiedSlot::<256>::new(&layout, &anchors, &identity, &state, stored_keyset, &mut head);
/// let decision = keyway_device::boot::boot(&mut journal, &mut flash, &mut check)?;
/// ```
pub struct VerifiedSlot<'a, const CHUNK: usize = DEFAULT_CHUNK> {
    layout: &'a SlotLayout,
    anchors: &'a TrustAnchors,
    identity: &'a DeviceIdentity,
    state: DeviceState,
    keyset_floor: u32,
    head: &'a mut [u8],
    chunk: [u8; CHUNK],
}

impl<const CHUNK: usize> core::fmt::Debug for VerifiedSlot<'_, CHUNK> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("VerifiedSlot")
            .field("layout", self.layout)
            .field("boot_floor", &self.state.sequence_floor)
            .field("keyset_floor", &self.keyset_floor)
            .field("head_buf", &self.head.len())
            .finish_non_exhaustive()
    }
}

/// The verifier's floor for the boot rule `sequence >= floor`: the
/// verifier accepts `sequence > f`, so `f = floor - 1`, and no floor for a
/// floor of 0 or none.
pub fn boot_floor(floor: Option<u64>) -> Option<u64> {
    floor.and_then(|f| f.checked_sub(1))
}

impl<'a, const CHUNK: usize> VerifiedSlot<'a, CHUNK> {
    /// A check for the slots of `layout`, with the device's immutable
    /// `anchors` and `identity`, the journal's `state` (its floor and
    /// key-set version), the key set the device stored (`None` before any
    /// delegation), and `head`, a buffer for the stored envelope head
    /// ([`HEAD_BUF_LEN`] bytes hold any).
    pub fn new(
        layout: &'a SlotLayout,
        anchors: &'a TrustAnchors,
        identity: &'a DeviceIdentity,
        state: &PersistentState,
        keyset: Option<KeySet>,
        head: &'a mut [u8],
    ) -> Self {
        VerifiedSlot {
            layout,
            anchors,
            identity,
            state: DeviceState {
                sequence_floor: boot_floor(state.floor),
                keyset,
            },
            keyset_floor: state.keyset_version,
            head,
            chunk: [0; CHUNK],
        }
    }

    /// Re-verifies `slot` (0 or 1): the stored manifest, then the image.
    /// See the [module documentation](self).
    pub fn check<F: NorFlash>(&mut self, flash: &mut F, slot: u8) -> Result<SlotInfo, SlotError> {
        let place = self
            .layout
            .place::<F>(slot)
            .ok_or(SlotError::NoManifestArea)?;
        let area = place.manifest.ok_or(SlotError::NoManifestArea)?;
        let capacity = place.image.end - place.image.start;
        let image_start = place.image.start;
        let read = F::READ_SIZE.max(1);
        if CHUNK == 0 || !CHUNK.is_multiple_of(read) {
            return Err(SlotError::Buffer);
        }

        // 1. The header, then the head, read in whole READ_SIZE units.
        let header_len = HEADER_LEN.div_ceil(read) * read;
        let header = self.head.get_mut(..header_len).ok_or(SlotError::Buffer)?;
        read_at(flash, &area, 0, header)?;
        let (len, crc) = manifest_area::parse_header(header).ok_or(SlotError::NoManifest)?;
        let total = (HEADER_LEN + len).div_ceil(read) * read;
        if total as u64 > u64::from(area.end - area.start) {
            return Err(SlotError::NoManifest);
        }
        let stored = self.head.get_mut(..total).ok_or(SlotError::Buffer)?;
        read_at(flash, &area, 0, stored)?;
        let head = stored
            .get(HEADER_LEN..HEADER_LEN + len)
            .ok_or(SlotError::Buffer)?;
        if manifest_area::crc32(head) != crc {
            return Err(SlotError::Crc);
        }

        // 2.-4. The signed manifest, with the boot rule's floor.
        // The slot chooses a try-each alternative (component-slot).
        let identity = keyway_suit::DeviceIdentity {
            slot: Some(u64::from(slot)),
            ..*self.identity
        };
        let verified = keyway_suit::verify_envelope(head, self.anchors, &identity, &self.state)
            .map_err(|e| match e {
                // The verifier was given `floor - 1`: name the journal's floor.
                keyway_suit::Error::Rollback { floor, got } => SlotError::BelowFloor {
                    sequence: got,
                    floor: floor.saturating_add(1),
                },
                e => SlotError::Envelope(e),
            })?;
        if verified.keyset_version < self.keyset_floor {
            return Err(SlotError::KeysetDown {
                stored: self.keyset_floor,
                got: verified.keyset_version,
            });
        }
        // A delta update's slot holds the image the patch produced, not
        // the patch: its expectation is the delta binding's output.
        #[cfg(feature = "delta")]
        let expectation = match verified.delta.as_ref() {
            Some(d) => &d.out,
            None => verified.payload.as_ref().ok_or(SlotError::NoImage)?,
        };
        #[cfg(not(feature = "delta"))]
        let expectation = verified.payload.as_ref().ok_or(SlotError::NoImage)?;
        let size = expectation.size.ok_or(SlotError::NoImage)?;
        if size > u64::from(capacity) {
            return Err(SlotError::ImageTooLarge { size, capacity });
        }

        // 5. The image, streamed through the chunk buffer.
        let mut payload = PayloadVerifier::new(expectation);
        let image = image_start..image_start + capacity;
        let mut at = 0u64;
        while at < size {
            let n = usize::try_from((size - at).min(CHUNK as u64)).unwrap_or(CHUNK);
            let padded = n.div_ceil(read) * read;
            let buf = self.chunk.get_mut(..padded).ok_or(SlotError::Buffer)?;
            let offset = u32::try_from(at).map_err(|_| SlotError::Buffer)?;
            read_at(flash, &image, offset, buf)?;
            payload
                .update(buf.get(..n).unwrap_or(&[]))
                .map_err(SlotError::Image)?;
            at += n as u64;
        }
        payload.finish().map_err(SlotError::Image)?;
        Ok(SlotInfo {
            sequence: verified.sequence,
            keyset_version: verified.keyset_version,
            manifest_digest: verified.manifest_digest,
            image_size: size,
        })
    }
}

/// Reads `buf.len()` bytes at `offset` inside `region`; a read that would
/// leave the region, or fails, is [`SlotError::Read`].
fn read_at<F: NorFlash>(
    flash: &mut F,
    region: &core::ops::Range<u32>,
    offset: u32,
    buf: &mut [u8],
) -> Result<(), SlotError> {
    let start = region.start.checked_add(offset);
    let end = start.and_then(|s| u32::try_from(buf.len()).ok()?.checked_add(s));
    match (start, end) {
        (Some(start), Some(end)) if end <= region.end => flash
            .read(start, buf)
            .map_err(|_| SlotError::Read { offset: start }),
        _ => Err(SlotError::Read {
            offset: region.start.saturating_add(offset),
        }),
    }
}

impl<F: NorFlash, const CHUNK: usize> SlotCheck<F> for VerifiedSlot<'_, CHUNK> {
    fn verified(&mut self, flash: &mut F, slot: u8) -> bool {
        self.check(flash, slot).is_ok()
    }
}
