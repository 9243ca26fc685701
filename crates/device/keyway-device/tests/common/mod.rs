//! Shared helpers for the journal, install and boot tests.
#![allow(dead_code)]

use keyway_device::boot::{
    self, Boot, ConfirmError, Confirmation, Decision, MAX_TRIAL_BOOTS, Reason, RevertCause,
    SelfTest,
};
use keyway_device::install::{InstallError, SlotLayout};
use keyway_device::journal::{Config, Journal, JournalError};
use keyway_device::journal::{Download, PersistentState, SwapPhase, SwapProgress, TrialState};
use keyway_device::swap::SwapError;
use keyway_device::verified::{HEAD_BUF_LEN, VerifiedSlot};
use keyway_sim::{CutPoint, PowerCut, SimFlash};
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
/// The journal before the update: the old image in slot 0, confirmed at
/// [`OLD_FLOOR`] with key set [`OLD_KEYSET`].
pub fn initial() -> PersistentState {
    PersistentState {
        floor: Some(OLD_FLOOR),
        keyset_version: OLD_KEYSET,
        active_slot: 0,
        trial: TrialState::Confirmed,
        boot_attempts: 0,
        download: None,
        swap: None,
    }
}

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
    keyway_device::boot::boot(j, flash, &mut slot_check(v, &l, &state, &mut buf)).unwrap()
}

/// The bootloader's check of `layout`'s slots against `v`'s manifests:
/// `state`'s floor, no stored key set, `head` for the stored envelope heads.
pub fn slot_check<'a>(
    v: &'a Vendor,
    layout: &'a SlotLayout,
    state: &PersistentState,
    head: &'a mut [u8],
) -> VerifiedSlot<'a, 256> {
    VerifiedSlot::new(layout, &v.anchors, &v.identity, state, None, head)
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

/// What the application did on a trial boot of the image in `slot`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnTrial {
    /// It crashed before its self-test.
    Crashed,
    /// Its self-test passed and the confirm was committed.
    Confirmed,
    /// Its self-test failed (the trial is marked for revert).
    Failed,
    /// The power failed during the confirm.
    Cut,
}

/// One trial boot of the image in `slot`: counts it ([`trial_boot`]), then
/// `app` runs its self-test and confirms (recording `new`). Any other
/// outcome of the confirm panics.
pub fn on_trial<const W: usize, const E: usize>(
    app: App,
    j: &mut Journal<SimFlash<W, E>>,
    flash: &mut SimFlash<W, E>,
    slot: u8,
    new: Confirmation,
    trial_boots: &mut u32,
    what: &str,
) -> OnTrial {
    trial_boot(trial_boots, what);
    let Some(test) = app.self_test() else {
        return OnTrial::Crashed;
    };
    match boot::confirm(j, flash, test, new) {
        Ok(s) if s == slot => OnTrial::Confirmed,
        Err(ConfirmError::SelfTestFailed { slot: s, .. }) if s == slot && app == App::Fail => {
            OnTrial::Failed
        }
        Err(e) if e.is_cut() => OnTrial::Cut,
        other => panic!("{what}: confirm: {other:?}"),
    }
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

/// What a lock observed across the power cycles of one run, checked as it
/// goes (each sweep uses the fields it needs).
#[derive(Clone, Default)]
pub struct Watch {
    /// The floor at the last power-on.
    pub floor: Option<u64>,
    /// The key-set version at the last power-on.
    pub keyset: u32,
    /// A confirm of the new image returned `Ok`.
    pub confirmed: bool,
    /// The new image was installed (recorded installable, or active).
    pub installed: bool,
    /// The new image has booted on trial.
    pub tried: bool,
    /// Boots of the image on trial.
    pub trial_boots: u32,
}

impl Watch {
    /// A power-on found `s`: neither the floor nor the key set went down
    /// since the last one.
    pub fn power_on(&mut self, s: &PersistentState, what: &str) {
        assert!(s.floor >= self.floor, "{what}: floor went down: {s:?}");
        assert!(
            s.keyset_version >= self.keyset,
            "{what}: key set went down: {s:?}"
        );
        self.floor = s.floor;
        self.keyset = s.keyset_version;
    }
}

/// An error (or a result) that may be the simulator's power cut: a flash
/// operation, the journal's included, that failed with
/// [`keyway_sim::Error::PowerCut`].
pub trait CutError {
    /// Whether the power was cut.
    fn is_cut(&self) -> bool;
}

impl CutError for JournalError<keyway_sim::Error> {
    fn is_cut(&self) -> bool {
        matches!(
            self,
            JournalError::Flash {
                error: keyway_sim::Error::PowerCut,
                ..
            }
        )
    }
}

/// The installer's and the swap's errors: a cut in their own flash
/// operations or in the journal's.
macro_rules! cut_in_flash_or_journal {
    ($($error:ident),*) => {$(
        impl CutError for $error<keyway_sim::Error> {
            fn is_cut(&self) -> bool {
                match self {
                    $error::Flash { error, .. } => matches!(error, keyway_sim::Error::PowerCut),
                    $error::Journal(e) => e.is_cut(),
                    _ => false,
                }
            }
        }
    )*};
}
cut_in_flash_or_journal!(InstallError, SwapError);

impl CutError for ConfirmError<keyway_sim::Error> {
    fn is_cut(&self) -> bool {
        matches!(self, ConfirmError::Journal(e) if e.is_cut())
    }
}

impl<T, E: CutError> CutError for Result<T, E> {
    fn is_cut(&self) -> bool {
        self.as_ref().is_err_and(E::is_cut)
    }
}

/// Which second cuts a sweep makes in the recovery from each first cut.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Nested {
    /// At every operation of the recovery, the three ways.
    All,
    /// At every other operation, the three cut kinds in turn.
    EveryOther,
    /// At one operation drawn from the scenario's seed, one way.
    Sample,
}

impl Nested {
    /// The second cuts in a recovery of `rec_ops` operations from op
    /// `base`; `rng` draws the sample.
    fn cuts(self, base: u64, rec_ops: u64, rng: &mut Seeded) -> Vec<CutPoint> {
        match self {
            Nested::All => (0..rec_ops).flat_map(|r| cuts(base + r)).collect(),
            Nested::EveryOther => (0..rec_ops)
                .step_by(2)
                .map(|r| cuts(base + r)[(r / 2 % 3) as usize])
                .collect(),
            Nested::Sample if rec_ops == 0 => Vec::new(),
            Nested::Sample => {
                let r = rng.next() % rec_ops;
                vec![cuts(base + r)[(rng.next() % 3) as usize]]
            }
        }
    }
}

/// What one [`cut_sweep`] ran.
#[derive(Clone, Copy, Debug, Default)]
pub struct Swept {
    /// Scenarios, each settled and checked.
    pub scenarios: u64,
    /// Of them, scenarios with a second cut in the recovery.
    pub nested: u64,
    /// Journal page erases of the dry run.
    pub dry_erases: u64,
}

/// The exhaustive power-cut sweep of one scenario from `base`: a dry run,
/// then a cut at every operation of it, the three ways, each followed by
/// the recovery and a second cut in that recovery (as `nested` picks).
/// `run` power cycles the lock until it settles (`true`) or the planned
/// cut fires (`false`), checking its watch `T` as it goes; `check` asserts
/// the settled end. Seeds are `seed | n << 4 | k` for the `k`-th way at
/// op `n`; `salt` varies the nested sample.
pub fn cut_sweep<const W: usize, const E: usize, T: Clone + Default>(
    base: &SimFlash<W, E>,
    label: &str,
    seed: u64,
    salt: u64,
    nested: Nested,
    mut run: impl FnMut(&mut SimFlash<W, E>, &mut T, &str) -> bool,
    mut check: impl FnMut(&mut SimFlash<W, E>, &str),
) -> Swept {
    let mut swept = Swept::default();
    let mut dry = base.clone();
    let start = dry.ops();
    let erase_before = dry.stats().erase_ops;
    assert!(run(&mut dry, &mut T::default(), "dry run"));
    check(&mut dry, "dry run");
    swept.dry_erases = dry.stats().erase_ops - erase_before;
    let ops = dry.ops() - start;
    assert!(ops > 0, "{label}: the dry run did nothing");
    for n in 0..ops {
        for (k, first) in cuts(start + n).into_iter().enumerate() {
            let seed = seed | n << 4 | k as u64;
            let what = format!("{label}, cut {first:?}");
            let mut flash = base.clone();
            flash.set_power_cut(PowerCut::new(seed).then(first));
            let mut w = T::default();
            assert!(!run(&mut flash, &mut w, &what), "{what}: no cut");
            flash.power_on();
            let after = flash.clone();
            let w_after = w.clone();
            let mut done = flash;
            assert!(run(&mut done, &mut w, &what));
            check(&mut done, &what);
            swept.scenarios += 1;

            let base2 = after.ops();
            let mut rng = Seeded::new(seed ^ salt);
            for second in nested.cuts(base2, done.ops() - base2, &mut rng) {
                let what = format!("{what}, then {second:?}");
                let mut flash = after.clone();
                flash.set_power_cut(PowerCut::new(seed.wrapping_mul(31)).then(second));
                let mut w = w_after.clone();
                assert!(!run(&mut flash, &mut w, &what), "{what}: no cut");
                flash.power_on();
                assert!(run(&mut flash, &mut w, &what));
                check(&mut flash, &what);
                swept.scenarios += 1;
                swept.nested += 1;
            }
        }
    }
    swept
}
