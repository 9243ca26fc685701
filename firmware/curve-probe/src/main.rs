//! Size probe for the lock core's public-key crypto (issue 12, item 2).
//!
//! One image links what the lock core's crypto needs, every input through
//! `black_box` so nothing folds:
//!
//! * Ed25519: a key pair from a seed, a signature (the audit log's signer,
//!   the device key in the session), a strict verification (the SUIT
//!   verifier, the owner's key);
//! * the session's Diffie-Hellman: both sides, from two secrets;
//! * SPAKE2+ group operations (RFC 9383, both roles): scalars mod the
//!   group order from wide bytes, `L = w1*P`, `X = x*P + w0*M`,
//!   `Y = y*P + w0*N`, `Z = h*y*(X - w0*M)`, `V = h*y*L` and the prover's
//!   mirror, the fixed points `M`, `N` and every share decoded and encoded.
//!
//! Routes, one cargo feature each (`scripts/curve-probe.sh` builds and runs
//! them side by side):
//!
//! * `route-a`: today, ed25519-compact + `p256` (what `spake2plus` and
//!   keyway-channel use: SEC1 uncompressed points, `from_sec1_bytes`);
//! * `route-b`: curve25519-dalek (no precomputed tables, u32 backend) +
//!   ed25519-dalek on it, X25519 and edwards25519 SPAKE2+;
//! * `route-c`: ed25519-compact for Ed25519 and X25519, curve25519-dalek
//!   for SPAKE2+ only;
//! * `baseline`: the harness alone. Code of a route = its `.text+.rodata`
//!   minus the baseline's.
//!
//! The protocol code above the group (transcripts, HKDF, HMAC, the AEAD)
//! is not here: it is the same size on every route.
//!
//! The image checks its own algebra (both SPAKE2+ roles derive the same
//! `Z` and `V`; both DH sides the same secret; the signature verifies and a
//! flipped message does not) and prints the instructions of one
//! variable-base scalar multiplication, one verification, one signature
//! and one DH side (SysTick under QEMU's `-icount`, the shared meter), and
//! the stack each used (painted, the shared `stack.rs`).

#![no_std]
#![no_main]

use core::hint::black_box;
use cortex_m_rt::entry;
use cortex_m_semihosting::hprintln;
use keyway_board::exit;

use keyway_board::meter;
use keyway_board::stack;

#[cfg(any(feature = "route-a", feature = "route-c"))]
mod ed_compact;
#[cfg(any(feature = "pake-a", feature = "pake-b"))]
mod pake;
#[cfg(feature = "route-a")]
mod route_a;
#[cfg(feature = "route-b")]
mod route_b;
#[cfg(feature = "route-c")]
mod route_c;
#[cfg(any(feature = "route-b", feature = "route-c"))]
mod spake_dalek;

/// The probe's inputs (fixed bytes; read through `black_box`).
pub struct Inputs {
    /// The Ed25519 seed.
    pub seed: [u8; 32],
    /// The signed message.
    pub msg: [u8; 64],
    /// SPAKE2+ `w0s`, `w1s` (wide, reduced mod the order).
    pub w0: [u8; 64],
    /// See `w0`.
    pub w1: [u8; 64],
    /// The prover's and the verifier's random scalars (wide).
    pub x: [u8; 64],
    /// See `x`.
    pub y: [u8; 64],
    /// The two DH secrets.
    pub dh_a: [u8; 64],
    /// See `dh_a`.
    pub dh_b: [u8; 64],
}

/// The bytes of a lower-case hex string (a constant as its RFC prints it),
/// for constants: evaluated at compile time.
#[cfg(any(feature = "route-a", feature = "route-b", feature = "route-c"))]
const fn hex<const N: usize>(s: &str) -> [u8; N] {
    const fn nibble(c: u8) -> u8 {
        match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            _ => panic!("not a lower-case hex digit"),
        }
    }
    let s = s.as_bytes();
    assert!(s.len() == 2 * N, "not 2 hex digits a byte");
    let mut out = [0u8; N];
    let mut i = 0;
    while i < N {
        out[i] = (nibble(s[2 * i]) << 4) | nibble(s[2 * i + 1]);
        i += 1;
    }
    out
}

const fn pattern<const N: usize>(k: u8) -> [u8; N] {
    let mut out = [0u8; N];
    let mut i = 0;
    while i < N {
        out[i] = (i as u8).wrapping_mul(37).wrapping_add(k).rotate_left(3) ^ k;
        i += 1;
    }
    out
}

static INPUTS: Inputs = Inputs {
    seed: pattern(1),
    msg: pattern(2),
    w0: pattern(3),
    w1: pattern(4),
    x: pattern(5),
    y: pattern(6),
    dh_a: pattern(7),
    dh_b: pattern(8),
};

/// The instruction meter: one non-generic entry point (no per-closure
/// copies), the same in every build.
pub struct Meter {
    syst: cortex_m::peripheral::SYST,
}

impl Meter {
    /// Runs `f` once and prints its SysTick ticks and the stack it used
    /// (painted) under `name`.
    #[inline(never)]
    pub fn measure(&mut self, name: &str, f: &mut dyn FnMut()) {
        let syst = &mut self.syst;
        let (((), ticks), usage) = stack::measure(|| meter::timed(syst, f));
        hprintln!("ticks {}: {}", name, ticks);
        hprintln!("stack {}: {}", name, usage.call);
    }
}

/// Ends the run unless `ok`.
pub fn ensure(ok: bool, what: &str) {
    if !ok {
        hprintln!("FAIL: {}", what);
        exit(false);
    }
}

#[entry]
fn main() -> ! {
    let Some(mut syst) = meter::systick() else {
        hprintln!("FAIL: core peripherals taken");
        exit(false)
    };
    meter::calibrate(&mut syst);
    let mut m = Meter { syst };
    let inputs: &Inputs = black_box(&INPUTS);
    let mut sum = 0u8;
    #[cfg(feature = "route-a")]
    {
        hprintln!("route A: ed25519-compact + p256");
        sum ^= route_a::run(inputs, &mut m);
    }
    #[cfg(feature = "route-b")]
    {
        hprintln!("route B: curve25519-dalek + ed25519-dalek");
        sum ^= route_b::run(inputs, &mut m);
    }
    #[cfg(feature = "route-c")]
    {
        hprintln!("route C: ed25519-compact (Ed25519, X25519) + curve25519-dalek (SPAKE2+)");
        sum ^= route_c::run(inputs, &mut m);
    }
    #[cfg(any(feature = "pake-a", feature = "pake-b"))]
    {
        sum ^= pake::run(&mut m);
    }
    #[cfg(feature = "baseline")]
    {
        hprintln!("baseline: the harness alone");
        m.measure("nothing", &mut || sum ^= black_box(inputs.seed[0]));
    }
    hprintln!("digest byte {}", black_box(sum));
    hprintln!("PASS");
    exit(true)
}
