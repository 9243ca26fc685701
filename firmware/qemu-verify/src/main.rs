//! On-target test of the keyway-suit verifier (Cortex-M4, QEMU mps2-an386).
//!
//! Verifies the fixture envelopes made by scripts/qemu-verify.sh, then
//! corrupted copies that must be refused, measuring the stack each call uses.
//! Exits through semihosting: success only if every case came out as expected
//! and the stack stayed within budget. No allocator is linked.

#![no_std]
#![no_main]

mod check;
use keyway_board::stack;
mod tamper;

use core::ptr::addr_of_mut;

use cortex_m_rt::entry;
use cortex_m_semihosting::hprintln;
use keyway_board::exit;
use keyway_board::fixture;

static ED25519_ENVELOPE: &[u8] = fixture!("ed25519.suit");
static ED25519_KEY: &[u8] = fixture!("ed25519.pub");
static P256_ENVELOPE: &[u8] = fixture!("p256.suit");
#[cfg_attr(not(feature = "es256"), allow(dead_code))]
static P256_KEY: &[u8] = fixture!("p256.pub");
static PAYLOAD: &[u8] = fixture!("payload.bin");
const VENDOR_ID: [u8; 16] = *fixture!("vendor-id.bin");
const CLASS_ID: [u8; 16] = *fixture!("class-id.bin");
const SEQUENCE: u64 = keyway_board::parse_u64(fixture!("sequence.txt"));

/// Stack budget for one verification: 8 KiB, or `KEYWAY_STACK_BUDGET` bytes
/// if set at build time.
const STACK_BUDGET: usize = keyway_board::budget!("KEYWAY_STACK_BUDGET", 8 * 1024);

const fn max(a: usize, b: usize) -> usize {
    if a > b { a } else { b }
}

/// RAM copy of an envelope for the corrupted cases (in .bss, not the stack).
static mut SCRATCH: [u8; max(ED25519_ENVELOPE.len(), P256_ENVELOPE.len())] =
    [0; max(ED25519_ENVELOPE.len(), P256_ENVELOPE.len())];

#[derive(Clone, Copy, PartialEq)]
enum Tamper {
    None,
    /// Flip one bit in the middle of the integrated payload.
    Payload,
    /// Change the manifest's sequence number (still well-formed CBOR).
    Manifest,
    /// Flip one bit in the middle of the authentication wrapper (signature).
    Signature,
}

struct Case {
    name: &'static str,
    /// The signature path the case exercises (for the per-path stack figure).
    path: Path,
    envelope: &'static [u8],
    key: &'static [u8],
    tamper: Tamper,
    /// Use a vendor id the manifest was not made for.
    wrong_vendor: bool,
    accept: bool,
}

/// Which signature algorithm a case's envelope is signed with.
#[derive(Clone, Copy, PartialEq)]
enum Path {
    Ed25519,
    P256,
}

/// The build's signature algorithms, printed for the script's summary.
const CONFIG: &str = if cfg!(feature = "es256") {
    "ed25519+es256"
} else {
    "ed25519"
};

/// Cases every build runs (Ed25519 is always built).
const CASES_ED25519: &[Case] = &[
    Case {
        path: Path::Ed25519,
        name: "ed25519 envelope",
        envelope: ED25519_ENVELOPE,
        key: ED25519_KEY,
        tamper: Tamper::None,
        wrong_vendor: false,
        accept: true,
    },
    Case {
        path: Path::Ed25519,
        name: "ed25519, payload byte flipped",
        envelope: ED25519_ENVELOPE,
        key: ED25519_KEY,
        tamper: Tamper::Payload,
        wrong_vendor: false,
        accept: false,
    },
    Case {
        path: Path::Ed25519,
        name: "ed25519, manifest byte flipped",
        envelope: ED25519_ENVELOPE,
        key: ED25519_KEY,
        tamper: Tamper::Manifest,
        wrong_vendor: false,
        accept: false,
    },
    Case {
        path: Path::Ed25519,
        name: "ed25519, signature byte flipped",
        envelope: ED25519_ENVELOPE,
        key: ED25519_KEY,
        tamper: Tamper::Signature,
        wrong_vendor: false,
        accept: false,
    },
    Case {
        path: Path::Ed25519,
        name: "ed25519 envelope, other vendor",
        envelope: ED25519_ENVELOPE,
        key: ED25519_KEY,
        tamper: Tamper::None,
        wrong_vendor: true,
        accept: false,
    },
];

/// P-256 cases: only in a build with ES256.
#[cfg(feature = "es256")]
const CASES_P256: &[Case] = &[
    Case {
        path: Path::P256,
        name: "p256 envelope",
        envelope: P256_ENVELOPE,
        key: P256_KEY,
        tamper: Tamper::None,
        wrong_vendor: false,
        accept: true,
    },
    Case {
        path: Path::P256,
        name: "p256, payload byte flipped",
        envelope: P256_ENVELOPE,
        key: P256_KEY,
        tamper: Tamper::Payload,
        wrong_vendor: false,
        accept: false,
    },
    Case {
        path: Path::P256,
        name: "p256, manifest byte flipped",
        envelope: P256_ENVELOPE,
        key: P256_KEY,
        tamper: Tamper::Manifest,
        wrong_vendor: false,
        accept: false,
    },
    Case {
        path: Path::P256,
        name: "p256, signature byte flipped",
        envelope: P256_ENVELOPE,
        key: P256_KEY,
        tamper: Tamper::Signature,
        wrong_vendor: false,
        accept: false,
    },
    Case {
        path: Path::Ed25519,
        name: "ed25519 envelope, only p256 key trusted",
        envelope: ED25519_ENVELOPE,
        key: P256_KEY,
        tamper: Tamper::None,
        wrong_vendor: false,
        accept: false,
    },
];

/// Without ES256 a P-256 envelope must be refused (unsupported algorithm),
/// even though its manifest is fine.
#[cfg(not(feature = "es256"))]
const CASES_P256: &[Case] = &[Case {
    path: Path::P256,
    name: "p256 envelope, ES256 not built",
    envelope: P256_ENVELOPE,
    key: ED25519_KEY,
    tamper: Tamper::None,
    wrong_vendor: false,
    accept: false,
}];

fn cases() -> impl Iterator<Item = &'static Case> {
    CASES_ED25519.iter().chain(CASES_P256)
}

/// Returns the envelope for a case: the fixture itself, or a corrupted copy.
fn prepare(case: &Case) -> Result<&'static [u8], &'static str> {
    if case.tamper == Tamper::None {
        return Ok(case.envelope);
    }
    let layout = tamper::layout(case.envelope).ok_or("cannot find manifest/payload in fixture")?;
    let at = match case.tamper {
        Tamper::None => unreachable!(),
        Tamper::Payload => {
            if layout.payload.is_empty() {
                return Err("fixture payload is empty");
            }
            (layout.payload.start + layout.payload.end) / 2
        }
        Tamper::Manifest => {
            tamper::sequence_byte(case.envelope, &layout).ok_or("cannot find sequence number")?
        }
        Tamper::Signature => (layout.auth.start + layout.auth.end) / 2,
    };
    // SAFETY: single-threaded, no interrupts; the previous borrow of
    // SCRATCH ended with the previous case.
    let scratch = unsafe { &mut *addr_of_mut!(SCRATCH) };
    let copy = &mut scratch[..case.envelope.len()];
    copy.copy_from_slice(case.envelope);
    copy[at] ^= 0x01;
    Ok(copy)
}

#[entry]
fn main() -> ! {
    hprintln!(
        "keyway qemu-verify ({}): {} cases; stack {:#010x}..{:#010x} ({} bytes free)",
        CONFIG,
        cases().count(),
        stack::stack_limit(),
        stack::stack_top(),
        stack::stack_top() - stack::stack_limit()
    );
    for (name, size) in check::type_sizes() {
        hprintln!("size_of {}: {} bytes", name, size);
    }
    // Opaque, so the code after the cases is the same in both builds.
    let baseline = core::hint::black_box(cfg!(feature = "baseline"));
    let mut failed = 0u32;
    let mut worst_call = 0usize;
    let mut worst_total = 0usize;
    let mut worst_path = [0usize; 2];

    for case in cases() {
        let envelope = match prepare(case) {
            Ok(e) => e,
            Err(why) => {
                hprintln!("FAIL  {}: {}", case.name, why);
                failed += 1;
                continue;
            }
        };
        let mut vendor = VENDOR_ID;
        if case.wrong_vendor {
            vendor[15] ^= 0x01;
        }
        // Two measured calls: building the trust anchors from the raw key,
        // then the verification (the anchors live here, between them, as a
        // lock keeps them in RAM). The figure is the deeper of the two.
        let (trust, key_usage) = stack::measure(|| check::trust(case.key));
        let (result, mut usage) =
            stack::measure(|| check::check(envelope, &trust, vendor, CLASS_ID));
        usage.call = usage.call.max(key_usage.call);
        usage.total = usage.total.max(key_usage.total);
        worst_call = worst_call.max(usage.call);
        let slot = &mut worst_path[case.path as usize];
        *slot = (*slot).max(usage.call);
        worst_total = worst_total.max(usage.total);

        let verdict = match (&result, case.accept) {
            (Ok(a), true) if a.sequence != SEQUENCE => {
                hprintln!(
                    "FAIL  {}: sequence {} != fixture {}",
                    case.name,
                    a.sequence,
                    SEQUENCE
                );
                false
            }
            (Ok(a), true) if a.payload != PAYLOAD => {
                hprintln!(
                    "FAIL  {}: integrated payload differs from the fixture ({} bytes vs {})",
                    case.name,
                    a.payload.len(),
                    PAYLOAD.len()
                );
                false
            }
            (Ok(a), true) => {
                hprintln!(
                    "ok    {}: accepted, sequence {}, payload {} bytes [stack {} B]",
                    case.name,
                    a.sequence,
                    a.payload.len(),
                    usage.call
                );
                true
            }
            (Err(e), false) => {
                hprintln!(
                    "ok    {}: rejected ({}) [stack {} B]",
                    case.name,
                    e,
                    usage.call
                );
                true
            }
            (Ok(_), false) => {
                hprintln!("FAIL  {}: ACCEPTED but must be rejected", case.name);
                false
            }
            (Err(e), true) => {
                hprintln!("FAIL  {}: rejected: {}", case.name, e);
                false
            }
        };
        if !verdict && !baseline {
            failed += 1;
        }
    }

    hprintln!("config: {}", CONFIG);
    hprintln!(
        "stack ed25519 path: {} bytes",
        worst_path[Path::Ed25519 as usize]
    );
    hprintln!("stack p256 path: {} bytes", worst_path[Path::P256 as usize]);
    hprintln!(
        "stack high-water: {} bytes (verifier call; {} bytes from reset SP)",
        worst_call,
        worst_total
    );
    if baseline {
        hprintln!("baseline build: verifier not linked, verdicts ignored");
        exit(true);
    }
    // The stack budget is one more check after the cases.
    if worst_call > STACK_BUDGET {
        hprintln!(
            "FAIL  stack budget: {} > {} bytes",
            worst_call,
            STACK_BUDGET
        );
        failed += 1;
    } else {
        hprintln!(
            "ok    stack budget: {} <= {} bytes",
            worst_call,
            STACK_BUDGET
        );
    }
    let checks = cases().count() as u32 + 1;
    hprintln!("{} passed, {} failed", checks - failed, failed);
    exit(failed == 0)
}
