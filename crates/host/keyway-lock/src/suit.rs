//! The lock's calls into `keyway-suit`, counted: every parse of an
//! envelope head goes through [`inspect`] or [`verify`] here, or through
//! [`crate::device::DeviceCore::verify`] (the bootloader's `VerifiedSlot`, which
//! parses the stored head and streams the image). [`head_parses`] is how a
//! test holds the upload path to the parses it needs (issue 12 measured
//! about five per upload).

use std::cell::Cell;

use keyway_suit::{DeviceIdentity, DeviceState, Error, Inspected, Verified};

use crate::device::Trust;

thread_local! {
    static PARSES: Cell<u64> = const { Cell::new(0) };
}

/// Envelope heads parsed on this thread so far (the server runs on its
/// caller's thread, so a test sees only its own lock's parses).
pub fn head_parses() -> u64 {
    PARSES.with(Cell::get)
}

pub(crate) fn count() {
    PARSES.with(|p| p.set(p.get() + 1));
}

/// `keyway_suit::inspect_envelope`, counted.
pub fn inspect(head: &[u8]) -> Result<Inspected<'_>, Error> {
    count();
    keyway_suit::inspect_envelope(head)
}

/// The head stored in `slot`, inspected for that slot, counted: an A/B
/// manifest's try-each takes the alternative whose component-slot
/// condition names it (its image size and digest), as the bootloader's
/// check does. Signatures are not checked (`DeviceCore::verify` does).
pub fn inspect_slot(head: &[u8], slot: u8) -> Result<Inspected<'_>, Error> {
    count();
    let identity = DeviceIdentity {
        slot: Some(u64::from(slot)),
        ..DeviceIdentity::ANY
    };
    keyway_suit::inspect_envelope_with(head, &identity)
}

/// `keyway_suit::verify_envelope` against the lock's `trust` (its root
/// keys and identity), counted.
pub fn verify<'a>(
    head: &'a [u8],
    trust: &Trust,
    state: &DeviceState,
) -> Result<Verified<'a>, Error> {
    count();
    keyway_suit::verify_envelope(head, &trust.anchors, &trust.identity, state)
}
