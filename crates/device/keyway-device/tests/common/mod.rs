//! Shared helpers for the journal, install and boot tests.
#![allow(dead_code)]

use keyway_device::boot::{
    Boot, Confirmation, Decision, MAX_TRIAL_BOOTS, Reason, RevertCause, SelfTest,
};
use keyway_device::install::SlotLayout;
use keyway_device::journal::{Config, Journal};
use keyway_device::journal::{Download, PersistentState, SwapPhase, SwapProgress, TrialState};
use keyway_device::verified::{HEAD_BUF_LEN, VerifiedSlot};
use keyway_sim::{CutPoint, SimFlash};
use keyway_suit::{DeviceIdentity, PublicKey, TrustAnchors};
use keyway_vendor::encode::{EnvelopeBuilder, class_uuid, vendor_uuid};
use keyway_vendor::keys::{Algorithm, SigningKey};
use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::{Rng, SeedableRng};
use sha2::{Digest, Sha256};

/// A seeded generator for test data and sampled cut points.
pub struct Seeded(ChaCha8Rng);

impl Seeded {
    /// A generator for this seed.
    pub fn new(seed: u64) -> Self {
        Seeded(ChaCha8Rng::seed_from_u64(seed))
    }

    /// The next 64 random bits.
    pub fn next(&mut self) -> u64 {
        self.0.next_u64()
    }
}

/// `len` deterministic pseudo-random bytes.
pub fn bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut v = vec![0u8; len];
    Seeded::new(seed).0.fill_bytes(&mut v);
    v
}

/// SHA-256 of `data`.
pub fn sha256(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

/// A deterministic, pairwise-distinct state for script step `i`.
pub fn scripted(i: u32) -> PersistentState {
    let slot = (i % 2) as u8;
    PersistentState {
        floor: if i.is_multiple_of(7) {
            None
        } else {
            Some(u64::from(i) * 1_000_003)
        },
        keyset_version: i / 3,
        active_slot: slot,
        trial: match i % 4 {
            0 => TrialState::None,
            1 => TrialState::Pending { slot: 1 - slot },
            2 => TrialState::Trial {
                slot: 1 - slot,
                attempts_left: (i % 5) as u8,
            },
            _ => TrialState::Confirmed,
        },
        boot_attempts: (i % 250) as u8,
        download: if i.is_multiple_of(3) {
            None
        } else {
            let mut manifest_digest = [0u8; 32];
            for (k, b) in manifest_digest.iter_mut().enumerate() {
                *b = (i as u8).wrapping_mul(31).wrapping_add(k as u8);
            }
            Some(Download {
                slot: 1 - slot,
                manifest_digest,
                offset: i * 4096 + 17,
            })
        },
        swap: match i % 5 {
            0 => None,
            1 => Some(SwapPhase::Staged),
            2 => Some(SwapPhase::Swapping {
                step: i / 5,
                saved: i.is_multiple_of(2),
            }),
            3 => Some(SwapPhase::Swapped),
            _ => Some(SwapPhase::Reverting { step: i / 5 }),
        }
        .map(|phase| SwapProgress {
            image_sectors: i % 300,
            phase,
        }),
    }
}

/// The slot size that gives about `per_page` slots in a page of
/// `page` bytes with this write unit (never below the dense record length).
pub fn slot_size_for(page: usize, unit: usize, per_page: usize, record_len: usize) -> u32 {
    let slot = (page / per_page) / unit * unit;
    slot.max(record_len) as u32
}

pub fn full_sweep() -> bool {
    std::env::var("KEYWAY_FULL_SWEEP").is_ok_and(|v| v == "1")
}

/// The three ways a cut can meet op `n` (see `CutPoint::three_ways`).
pub fn cuts(n: u64) -> [CutPoint; 3] {
    CutPoint::three_ways(n)
}

/// The vendor of the signed-release tests (verified.rs, delta.rs).
pub const VENDOR: &str = "locks.example";
pub const CLASS: &str = "deadbolt-2";
pub const PASS: SelfTest = SelfTest::PASS;
/// The anti-rollback floor before the update (the running image's sequence).
pub const OLD_FLOOR: u64 = 41;
/// The key-set version before the update.
pub const OLD_KEYSET: u32 = 3;
/// What confirming the new image (sequence 42, key set 4) records.
pub const NEW: Confirmation = Confirmation {
    sequence: 42,
    keyset_version: 4,
};

pub fn verified_layout() -> SlotLayout {
    SlotLayout::direct(
        [0x1_0000..0x3_0000, 0x3_0000..0x5_0000],
        Config::new(0xF_0000, 2),
    )
    .with_manifest_sectors(1)
}

/// Boots `flash` (laid out as [`verified_layout`]) checking the slots
/// against `v`'s signed manifests.
pub fn boot_verified<const W: usize, const E: usize>(
    flash: &mut SimFlash<W, E>,
    j: &mut Journal<SimFlash<W, E>>,
    v: &Vendor,
) -> Decision {
    let l = verified_layout();
    let mut buf = [0u8; HEAD_BUF_LEN];
    let state = *j.state();
    let mut c = VerifiedSlot::<256>::new(&l, &v.anchors, &v.identity, &state, None, &mut buf);
    keyway_device::boot::boot(j, flash, &mut c).unwrap()
}

pub struct Vendor {
    pub key: SigningKey,
    pub anchors: TrustAnchors,
    pub identity: DeviceIdentity,
}

pub fn vendor() -> Vendor {
    let key = SigningKey::generate(Algorithm::Ed25519).unwrap();
    let anchors = TrustAnchors::new(
        &[PublicKey::from_raw(&key.raw_public_key_bytes()).unwrap()],
        1,
    )
    .unwrap();
    let v = vendor_uuid(VENDOR);
    Vendor {
        key,
        anchors,
        identity: DeviceIdentity::new(v, class_uuid(&v, CLASS)),
    }
}

/// How the application behaves when it runs the image on trial.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum App {
    /// Self-test passes: confirm.
    Pass,
    /// Self-test fails (motor): the trial is marked for revert.
    Fail,
    /// Crashes before its self-test, every boot.
    Crash,
}

impl App {
    /// The self-test it reports; `None` when it crashes first.
    pub fn self_test(self) -> Option<SelfTest> {
        match self {
            App::Pass => Some(PASS),
            App::Fail => Some(SelfTest {
                motor: false,
                ..PASS
            }),
            App::Crash => None,
        }
    }
}

/// Counts one more trial boot and asserts the image has not run on trial
/// more than [`MAX_TRIAL_BOOTS`] times without a confirm.
pub fn trial_boot(trial_boots: &mut u32, what: &str) {
    *trial_boots += 1;
    assert!(
        *trial_boots <= u32::from(MAX_TRIAL_BOOTS),
        "{what}: trial boot {} without confirm",
        trial_boots
    );
}

/// Asserts that a boot changed nothing: `slot` runs as the active image
/// and no state is committed.
pub fn assert_settled(d: &Decision, slot: u8) {
    assert_eq!(
        (d.boot, d.reason, d.commit),
        (Boot::Slot(slot), Reason::Active, None)
    );
}

/// Asserts that a boot dropped the pending or trial image in `slot` for
/// `cause` and starts `boot`.
pub fn assert_reverted(d: &Decision, boot: Boot, slot: u8, cause: RevertCause) {
    assert_eq!((d.boot, d.reason), (boot, Reason::Reverted { slot, cause }));
}

/// A release of the test vendor's class signed by `key`: `version` (also
/// the notes' title), `sequence`, `payload` integrated.
pub fn release(
    key: &SigningKey,
    version: &str,
    sequence: u64,
    payload: Vec<u8>,
) -> EnvelopeBuilder {
    EnvelopeBuilder {
        sequence,
        version: version.parse().unwrap(),
        vendor_domain: VENDOR.into(),
        class_name: CLASS.into(),
        notes: Some(format!("# {version}\n\nFixes.\n")),
        payload,
        keys: vec![key.clone()],
        ..Default::default()
    }
}
