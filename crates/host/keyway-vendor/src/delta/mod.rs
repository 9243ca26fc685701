//! `keyway diff` and `keyway patch`: delta patches between firmware images.
//!
//! The diff is bsdiff's method on a suffix array of the old image
//! (divsufsort): scan the new image for long matches in the old one, extend
//! each match forwards and backwards while at least half the bytes still
//! agree (so changed pointers inside otherwise equal code stay in one
//! `add` with non-zero diff bytes), and emit what no match covers as
//! `extra` bytes. The ops are coded by `keyway_delta::encode`, the same
//! model the lock decodes with; [`apply()`] runs the lock's
//! [`keyway_delta::Patcher`], with its fixed RAM.
//!
//! A patch is untrusted input and its header declares the sizes. Nothing
//! here sizes a buffer from the header: [`check_sizes`] refuses a base or
//! a declared output over [`MAX_IMAGE`] before anything is allocated (the
//! flash simulation must allocate its whole flash up front, so it needs a
//! cap), and [`apply()`]'s output grows only as the decoder produces bytes.
//! With the cap, `keyway patch --flash-sim` stays under 100 MB on any
//! patch (issue 12: a 206-byte patch declaring 4 GiB once took 5.3 GB).
//!
//! Four jobs, one module each: [`diff`](mod@diff) makes a patch,
//! [`apply`](mod@apply) runs one (in memory, or on the simulated flash
//! through the lock's installer), [`timing`] models an update's end-to-end
//! time over a link (the BLE figures in BENCHMARKS.md), and
//! [`choose`](mod@choose) picks which envelope of a release to send a lock.

use anyhow::{Result, bail};
use keyway_delta::PatchHeader;
use sha2::{Digest, Sha256};

pub mod apply;
pub mod choose;
pub mod diff;
pub mod timing;

pub use apply::{FlashApply, apply, apply_on_flash};
pub use choose::{Choice, ChooseError, choose};
pub use diff::{MIN_GAIN, diff, encode, ops, ops_with};
pub use timing::{UpdateTime, update_times};

/// The largest image (base or declared output) [`apply()`] and
/// [`apply_on_flash`] take: 8 MiB, eight times the nRF52840's whole
/// flash, and small enough that the flash simulation (1.5 bytes of host
/// RAM per simulated byte, both slots) stays far under 100 MB.
pub const MAX_IMAGE: u32 = 8 << 20;

/// The largest patch file `keyway patch` reads: a patch of incompressible
/// new bytes is a little larger than the image it makes.
pub const MAX_PATCH: u64 = 2 * MAX_IMAGE as u64;

/// Refuses a base of `base_len` bytes or a header that declares an output
/// over [`MAX_IMAGE`], naming the size; nothing is allocated before this.
pub fn check_sizes(base_len: usize, header: &PatchHeader) -> Result<()> {
    let mib = MAX_IMAGE >> 20;
    if base_len > MAX_IMAGE as usize {
        bail!("the old image is {base_len} bytes; patches apply to images of at most {mib} MiB");
    }
    if header.out_size > MAX_IMAGE {
        bail!(
            "the patch header declares a {}-byte output; patches make images of at most {mib} MiB \
             (refused before anything was allocated)",
            header.out_size
        );
    }
    Ok(())
}
/// SHA-256 of `data`.
fn sha256(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}
