//! The lock on the host: a RAM flash, releases signed by
//! `fixtures/make.sh`, uploads through the shell as the agent passes
//! them, and power cuts as a new power-on on the same flash.

extern crate std;

use std::vec::Vec;

use core::cell::RefCell;

use chacha20::rand_core::SeedableRng;
use keyway_agent::store;
use keyway_smp::keyway_group::{Postponement, Signed, UpdateState};

use super::*;
use crate::map::LOCK_MAP;
use crate::mem_flash::MemFlash;

const ROOT: &[u8; 32] = include_bytes!("../../fixtures/root.pub");
const VENDOR: &[u8; 16] = include_bytes!("../../fixtures/vendor-id.bin");
const CLASS: &[u8; 16] = include_bytes!("../../fixtures/class-id.bin");
const V2: &[u8] = include_bytes!("../../fixtures/v2.suit");
const V3: &[u8] = include_bytes!("../../fixtures/v3.suit");
const STRANGER_9: &[u8] = include_bytes!("../../fixtures/stranger-9.suit");
const SEED: [u8; 32] = [7; 32];

/// Powers the lock on over `flash` (a new power-on each call: the RAM
/// state is new, the flash is what it was) and starts the application.
fn power_on<'a>(flash: &'a RefCell<MemFlash>) -> Lock<'a, MemFlash> {
    let mut slot = None;
    let identity = DeviceIdentity::new(*VENDOR, *CLASS);
    let rng = ChaCha20Rng::from_seed([1; 32]);
    if let Err(e) = Lock::open_into(
        &mut slot,
        &LOCK_MAP,
        Shared(flash),
        ROOT,
        identity,
        SEED,
        rng,
        0,
    ) {
        panic!("power on: {e:?}");
    }
    let mut lock = slot.expect("the lock");
    lock.started(0).expect("start");
    lock
}

fn erased() -> RefCell<MemFlash> {
    RefCell::new(MemFlash::erased())
}

/// Uploads `envelope` in 128-byte chunks as a stock tool does with the
/// window open; the last answer (or the refusal's image-group code).
fn upload(lock: &mut Lock<'_, MemFlash>, envelope: &[u8]) -> Result<(u64, Option<bool>), u16> {
    let mut last = Ok((0, None));
    for (i, data) in envelope.chunks(128).enumerate() {
        let off = (i * 128) as u64;
        let u = img::Upload {
            off,
            data,
            len: (off == 0).then_some(envelope.len() as u64),
            sha: None,
            image: None,
            upgrade: None,
            auth: None,
            kw: false,
        };
        last = lock.shell.upload(&u, Authority::Window);
        last?;
    }
    last
}

/// A lock powered on over `flash` that took `envelope` whole: it and the
/// pending update's digest.
fn uploaded<'a>(flash: &'a RefCell<MemFlash>, envelope: &[u8]) -> (Lock<'a, MemFlash>, [u8; 32]) {
    let mut lock = power_on(flash);
    upload(&mut lock, envelope).expect("the upload");
    let digest = lock.shell.pending.as_ref().map(|p| p.digest);
    (lock, digest.expect("pending"))
}

/// The release notes as the shell serves them (the CBOR answer).
fn served_notes(lock: &mut Lock<'_, MemFlash>) -> Result<Vec<u8>, ServeError> {
    let mut buf = [0u8; 512];
    let mut w = Writer::new(&mut buf);
    let request = Request::Notes(Signed { auth: None });
    let call = Authorized {
        request: &request,
        by: Authority::Window,
    };
    lock.shell.serve_request(call, &mut w)?;
    let n = w.len();
    Ok(buf[..n].to_vec())
}

fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

/// Audit checks 2 and 12 over serial: an upload the lock verified must
/// still wait for consent after a reset or a power cut (its bytes are in
/// the flash), with its notes, as on the simulated lock.
#[test]
fn a_verified_upload_is_still_pending_after_a_power_cut() {
    let flash = erased();
    let mut lock = power_on(&flash);
    assert_eq!(upload(&mut lock, V2), Ok((V2.len() as u64, Some(true))));
    let digest = lock.shell.pending.as_ref().map(|p| p.digest);
    drop(lock);
    let mut lock = power_on(&flash);
    let p = lock
        .shell
        .pending
        .clone()
        .expect("the upload is pending again");
    assert_eq!((p.sequence, p.version.as_str()), (2, "2.0.0"));
    assert_eq!(Some(p.digest), digest);
    assert!(!p.armed && !p.consented && !p.notes_offered);
    let notes = served_notes(&mut lock).expect("its notes are served");
    assert!(contains(&notes, "lock-app 2.0.0 for the emulated lock"));
}

/// Every slot check reuses the upload's head buffer: the notes served
/// after an image state read must still be the signed release's.
#[test]
fn the_notes_served_after_an_image_state_read_are_the_signed_ones() {
    let flash = erased();
    let mut lock = power_on(&flash);
    upload(&mut lock, V3).expect("the upload");
    let mut buf = [0u8; 512];
    lock.shell
        .image_state(&mut Writer::new(&mut buf))
        .expect("image state");
    let notes = served_notes(&mut lock).expect("notes");
    assert!(contains(&notes, "lock-app 3.0.0 for the emulated lock"));
    // Audit check 12: the CVEs the release fixes are listed too.
    assert!(contains(&notes, "CVE-2099-0042"));
    assert!(contains(&notes, "high"));
    // The image state names the pending slot by its signed version.
    assert!(contains(&buf, "3.0.0"));
}

/// Audit check 19: consent with the bolt thrown waits (postponed), is
/// kept across a power cut, and the update installs at the next unlock
/// without asking again.
#[test]
fn consent_waits_for_the_bolt_and_survives_a_power_cut() {
    let flash = erased();
    let (mut lock, _) = uploaded(&flash, V2);
    assert_eq!(lock.shell.latch.bolt, Bolt::Locked);
    let p = consent(&mut lock);
    assert_eq!(
        p.state(),
        (UpdateState::Postponed, Some(Postponement::BoltLocked))
    );
    assert!(!lock.shell.reset_armed);
    drop(lock);
    let mut lock = power_on(&flash);
    let p = lock.shell.pending.clone().expect("pending after the cut");
    assert_eq!(p.state().0, UpdateState::Postponed);
    lock.shell.drive_bolt(Bolt::Unlocked);
    let p = lock.shell.pending.clone().expect("pending");
    assert_eq!(p.state().0, UpdateState::Installing);
    assert_armed(&lock, p.slot);
}

/// A refused update is erased: no reset offers it again.
#[test]
fn a_refused_update_is_not_pending_after_a_reset() {
    let flash = erased();
    let mut lock = power_on(&flash);
    upload(&mut lock, V2).expect("the upload");
    lock.shell.consent_stored(None);
    assert!(lock.shell.pending.is_none());
    drop(lock);
    assert!(power_on(&flash).shell.pending.is_none());
}

/// Audit check 10: a refused upload is logged with the sequence number
/// its manifest claims, not 0.
#[test]
fn a_refused_upload_names_the_sequence_it_claims() {
    let flash = erased();
    let mut lock = power_on(&flash);
    assert_eq!(upload(&mut lock, STRANGER_9), Err(img_rc::INVALID_HASH));
    assert_eq!(lock.shell.upload.sequence, 9);
    // A rollback names the refused sequence too.
    upload(&mut lock, V3).expect("3");
    lock.shell
        .journal
        .commit(
            &mut lock.shell.flash,
            &PersistentState {
                floor: Some(3),
                ..*lock.shell.journal.state()
            },
        )
        .expect("floor");
    assert_eq!(upload(&mut lock, V2), Err(img_rc::CURRENT_VERSION_IS_NEWER));
    assert_eq!(lock.shell.upload.sequence, 2);
    // Not an envelope (a raw image): no sequence, not the last one's.
    let raw = [0x5au8; 2048];
    assert_eq!(upload(&mut lock, &raw), Err(img_rc::INVALID_IMAGE_HEADER));
    assert_eq!(lock.shell.upload.sequence, 0);
}

/// Audit check 4's trial-boot sweep: an owner's test boot of the pending
/// update is consent and installs at once (the lock resets after the
/// answer) once the bolt is withdrawn; while it is thrown the request is
/// refused and the consent kept (postponed). A test boot in the window
/// only arms, for the reset the stock tool sends next.
#[test]
fn an_owners_test_boot_installs_at_once_when_the_bolt_allows() {
    let flash = erased();
    let (mut lock, digest) = uploaded(&flash, V2);
    let test = img::StateWrite {
        hash: Some(&digest),
        confirm: Some(false),
        kw: false,
        auth: None,
    };
    let owner = Authority::Owner([3; 8]);
    let refused = lock.shell.state_write(&test, owner);
    assert_eq!(refused.map_err(|e| e.rc), Err(MgmtErr::BadState));
    assert_eq!(
        lock.shell.pending.as_ref().map(|p| p.state().0),
        Some(UpdateState::Postponed)
    );
    lock.shell.latch.bolt = Bolt::Unlocked;
    assert_eq!(lock.shell.state_write(&test, owner), Ok(()));
    assert_armed(&lock, 1);

    // In the window: armed, no reset of its own.
    let flash = erased();
    let mut lock = power_on(&flash);
    upload(&mut lock, V2).expect("the upload");
    lock.shell.latch.bolt = Bolt::Unlocked;
    assert_eq!(lock.shell.state_write(&test, Authority::Window), Ok(()));
    assert!(!lock.shell.reset_armed);
    assert_eq!(lock.journal_state().trial, TrialState::Pending { slot: 1 });
}

/// The boot record names the release's signed version (the audit log's
/// packing, as `keyway log show` and the audit read it back), not the
/// sequence number squeezed into a minor version.
#[test]
fn the_boot_record_names_the_signed_version() {
    let v = |s: &str| VersionText::new(s).audit();
    assert_eq!(v("7.0.49913"), keyway_audit::Version::new(7, 0, 49913));
    assert_eq!(v("2.0.0"), keyway_audit::Version::new(2, 0, 0));
    assert_eq!(v("300.1.99999"), keyway_audit::Version::new(255, 1, 65535));
    assert_eq!(v("1.x"), keyway_audit::Version::new(1, 0, 0));
    // The running version at start is the stored release's.
    let flash = erased();
    let (mut lock, _) = uploaded(&flash, V2);
    lock.shell.latch.bolt = Bolt::Unlocked;
    lock.shell
        .consent_stored(lock.shell.pending.as_ref().map(|p| p.digest));
    let booted = lock.boot(0).expect("the boot");
    assert_eq!(booted.running.map(|r| r.sequence), Some(2));
    lock.started(0).expect("start");
    assert_eq!(lock.shell.running_version.as_str(), "2.0.0");
}

/// A reset in place, then lock-boot's decision and the application's
/// start, as after `SCB::sys_reset`.
fn reboot(lock: &mut Lock<'_, MemFlash>) -> Booted {
    lock.reset(SEED, ChaCha20Rng::from_seed([1; 32]), 0)
        .expect("reset");
    let booted = lock.boot(0).expect("the boot");
    lock.started(0).expect("start");
    booted
}

/// Consent to the pending update: the agent stores it, then tells the
/// shell; the update as it stands then.
fn consent(lock: &mut Lock<'_, MemFlash>) -> Ready {
    let p = lock.shell.pending.clone().expect("pending");
    let consent = store::Consent {
        digest: p.digest,
        sequence: p.sequence,
        granted_by: store::GrantedBy::Presence,
        time: lock.shell.time(0),
    };
    lock.agent_mut()
        .expect("agent")
        .grant_consent(&consent)
        .expect("stored");
    lock.shell.consent_stored(Some(p.digest));
    lock.spend_consent().expect("spent");
    lock.shell.pending.clone().expect("pending")
}

/// Consent with the bolt withdrawn: the update is armed at once.
fn consent_and_arm(lock: &mut Lock<'_, MemFlash>) {
    lock.shell.latch.bolt = Bolt::Unlocked;
    let p = consent(lock);
    assert_armed(lock, p.slot);
}

/// The update in `slot` is armed: the journal holds it pending, the reset
/// that starts its trial is due.
fn assert_armed(lock: &Lock<'_, MemFlash>, slot: u8) {
    assert!(lock.shell.reset_armed);
    assert_eq!(lock.journal_state().trial, TrialState::Pending { slot });
}

/// v2 uploaded, armed, tried and confirmed (running, in slot 1), then v3
/// uploaded and armed for slot 0 (the owner's consent spent on it).
fn v3_armed_over_v2(flash: &RefCell<MemFlash>) -> Lock<'_, MemFlash> {
    let (mut lock, _) = uploaded(flash, V2);
    consent_and_arm(&mut lock);
    reboot(&mut lock);
    assert!(lock.on_trial());
    assert_eq!(lock.confirm(0, 2).expect("confirm"), 1);
    reboot(&mut lock);
    assert_eq!(lock.shell.running.map(|r| r.sequence), Some(2));
    upload(&mut lock, V3).expect("the upload of 3");
    consent_and_arm(&mut lock);
    lock
}

/// lock-proof step 4: a release that fails its self-test on trial is
/// reverted by lock-boot, and must not come back as the pending update
/// (above the floor, its bytes still in the other slot) with the owner's
/// spent consent: uploaded again, it is verified afresh and waits for a
/// new consent.
#[test]
fn a_release_that_failed_its_self_test_is_not_offered_again() {
    let flash = erased();
    let mut lock = v3_armed_over_v2(&flash);
    let trial = reboot(&mut lock);
    assert!(matches!(
        trial.decision.reason,
        boot::Reason::StartTrial { slot: 0, .. }
    ));
    lock.self_test_failed(0).expect("the failure recorded");
    let back = reboot(&mut lock);
    assert!(matches!(
        back.decision.reason,
        boot::Reason::Reverted { slot: 0, .. }
    ));
    assert_eq!(lock.shell.running.map(|r| r.sequence), Some(2));
    assert_eq!(lock.journal_state().floor, Some(2));
    assert_eq!(
        lock.shell.pending, None,
        "the failed release is offered again"
    );
    assert!(
        lock.agent().and_then(|a| a.consent()).is_none(),
        "consent spent"
    );
    // Uploaded again: verified afresh, and it waits for a new consent.
    assert_eq!(upload(&mut lock, V3), Ok((V3.len() as u64, Some(true))));
    reboot(&mut lock);
    let p = lock
        .shell
        .pending
        .clone()
        .expect("the new upload is pending");
    assert_eq!(p.sequence, 3);
    assert_eq!(p.state().0, UpdateState::AwaitingConsent);
}

/// A trial that never reaches its self-test (it crashes at every boot)
/// is reverted by lock-boot alone, with no lock-core code run in between:
/// arming the install spent the owner's consent, so the reverted release
/// is at most offered again awaiting a new consent, and unlocking the
/// bolt does not install it again.
#[test]
fn a_trial_reverted_without_a_self_test_needs_a_new_consent() {
    let flash = erased();
    let mut lock = v3_armed_over_v2(&flash);
    assert!(
        lock.agent().and_then(|a| a.consent()).is_none(),
        "arming the install spends the consent"
    );
    let mut boots = 0;
    loop {
        boots += 1;
        assert!(boots < 16, "lock-boot never reverted the crashing trial");
        let b = reboot(&mut lock);
        if matches!(b.decision.reason, boot::Reason::Reverted { .. }) {
            break;
        }
    }
    assert_eq!(lock.shell.running.map(|r| r.sequence), Some(2));
    if let Some(p) = lock.shell.pending.clone() {
        assert!(!p.consented, "the reverted release kept the old consent");
        assert_eq!(p.state().0, UpdateState::AwaitingConsent);
    }
    lock.shell.latch.bolt = Bolt::Unlocked;
    lock.install_if_allowed().expect("install policy");
    assert_eq!(
        lock.journal_state().trial,
        TrialState::None,
        "the reverted release was armed again without a new consent"
    );
}
