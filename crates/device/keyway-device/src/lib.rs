//! The device side of Keyway's installer: `#![no_std]`, heap-free and
//! sans-IO, over the `embedded-storage` 0.3
//! [`NorFlash`](embedded_storage::nor_flash::NorFlash) traits.
//!
//! This crate currently holds the persistent state journal
//! ([`journal`]): the anti-rollback floor, the key-set version, the active
//! slot, the trial state, the boot attempts and the download progress,
//! kept in append-only CRC-checked records in ping-pong erase pages so that
//! a power cut at any instant leaves either the previous or the new state.
//!
//! [`layout`] is the flash map all of them read: the two image slots,
//! their manifest areas and the journal's region ([`layout::SlotLayout`]).
//!
//! [`install`] writes an update into the inactive slot in direct A/B mode:
//! streamed through a fixed buffer, hashed on the way, resumable after a
//! power cut, and recorded as installable only once its digest verifies.
//!
//! Each slot ends with a reserved manifest area ([`manifest_area`]) where
//! [`install::Installer::begin_with_manifest`] stores the signed envelope
//! head, and [`verified::VerifiedSlot`] is the bootloader's
//! [`boot::SlotCheck`] that re-verifies a slot from it: the signatures
//! against the trust anchors, anti-rollback, then the image's digest.
//!
//! [`delta`] applies a Keyway delta patch as it streams in: the active
//! slot is the base (only read), the output goes through the installer into
//! the inactive slot, a patch for another base is refused before anything
//! is written, and the RAM is fixed.
//!
//! [`boot`] holds the bootloader's decision for direct A/B mode (start a
//! trial, count its boots, revert, fall back, recovery), committed to the
//! journal before each boot, and the application's atomic `confirm`,
//! which alone raises the anti-rollback floor.
//!
//! [`swap`] is the bootloader for images linked to one address: the
//! installer stages the update in the secondary slot, one sector in, and
//! the bootloader swaps it into the primary with one erase per sector per
//! slot, resumable after any power cut, and swaps it back when its trial
//! fails.

#![no_std]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

/// `impl<E> From<$from> for $to<E>`, wrapping the error in the variant
/// `$to::$variant` (so that `?` converts it): one line per conversion.
macro_rules! wrap_error {
    ($($to:ident::$variant:ident($from:ty)),+ $(,)?) => {$(
        impl<E> From<$from> for $to<E> {
            fn from(e: $from) -> Self {
                $to::$variant(e)
            }
        }
    )+};
}

pub mod boot;
#[cfg(feature = "delta")]
pub mod delta;
pub mod install;
pub mod journal;
pub mod layout;
pub mod manifest_area;
pub mod swap;
pub mod verified;
