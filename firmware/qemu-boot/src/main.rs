//! On-target test of the bootloader's decision logic (Cortex-M4, QEMU
//! mps2-an386): `keyway-device`'s journal, installer, `boot::boot` (direct
//! A/B) and `swap::boot` (swap mode) with the real `VerifiedSlot` (Ed25519
//! signature, boot-rule anti-rollback, image digest) and `boot::confirm`,
//! over RAM-backed NOR flashes with real NOR rules.
//!
//! The scenarios (fixtures from scripts/qemu-boot.sh: two releases signed by
//! the host CLI, v1 with sequence 1 and v2 with sequence 2):
//!
//! * Direct A/B (40 KiB flash): factory v1 in slot 0 -> boot slot 0 ->
//!   install v2 -> trial of slot 1 -> failed self-test -> revert to slot 0
//!   -> install v2 again -> trial -> confirm (floor 2) -> boot slot 1 ->
//!   tampered slot 1 -> recovery (v1 is below the floor).
//! * Swap mode (a second, 44 KiB flash: the secondary slot is one sector
//!   larger than the primary): factory v1 in the primary -> boot -> v2
//!   staged one sector into the secondary -> swap (every moved sector
//!   erased once per slot, counted per sector) and trial of the primary ->
//!   failed self-test -> swap back to v1 -> v2 staged again -> power cut
//!   halfway through its swap (the RAM flash fails every operation after
//!   N) -> reset: the swap resumes from the journal, v2 on trial ->
//!   confirm (floor 2) -> plain boot.
//!
//! Every "boot" reopens the journal from the flash, as a reset would. One
//! line per check; the first mismatch exits with failure.

#![no_std]
#![no_main]

use keyway_board::exit;
use keyway_board::fixture;
use keyway_board::ram_flash;
mod swap_mode;
use swap_mode::swap_scenario;

use core::fmt;

use cortex_m_rt::entry;
use cortex_m_semihosting::hprintln;
use keyway_device::boot::{
    self, Boot, ConfirmError, Confirmation, Decision, Reason, RevertCause, SelfTest,
};
use keyway_device::install::{Arm, Installer, Mode, SlotLayout, Target};
use keyway_device::journal::{
    self, Config, Journal, PersistentState, SwapPhase, SwapProgress, TrialState,
};
use keyway_device::swap;
use keyway_device::verified::{HEAD_BUF_LEN, SlotError, SlotInfo, VerifiedSlot};
use keyway_suit::{DeviceIdentity, DeviceState, PublicKey, TrustAnchors};
use ram_flash::{FlashError, RamFlash, SECTOR};

/// Release 1 (sequence 1): the factory image.
static V1: &[u8] = fixture!("v1.suit");
/// Release 2 (sequence 2): the update.
static V2: &[u8] = fixture!("v2.suit");
/// The vendor's Ed25519 root key: the device's trust anchor.
static ROOT_KEY: &[u8] = fixture!("ed25519.pub");
const VENDOR_ID: [u8; 16] = *fixture!("vendor-id.bin");
const CLASS_ID: [u8; 16] = *fixture!("class-id.bin");

/// Image sectors per slot (12 KiB; the fixtures' payloads are 8 KiB).
const IMAGE_SECTORS: u32 = 3;
/// Journal (2 sectors), then two slots of image sectors + 1 manifest sector.
const JOURNAL_SECTORS: u32 = 2;
const SLOT_LEN: u32 = (IMAGE_SECTORS + 1) * SECTOR as u32;
const SLOT0: u32 = JOURNAL_SECTORS * SECTOR as u32;
const SLOT1: u32 = SLOT0 + SLOT_LEN;
const FLASH_LEN: usize = (SLOT1 + SLOT_LEN) as usize;

type Flash = RamFlash<FLASH_LEN>;

/// Swap mode, on a second RAM flash: the journal (2 sectors), the primary
/// slot as in direct mode (3 image sectors + 1 manifest sector), then the
/// secondary with one sector more: `[spare | manifest | 3 image sectors]`.
const SWAP_PRIMARY: u32 = JOURNAL_SECTORS * SECTOR as u32;
const SWAP_SECONDARY: u32 = SWAP_PRIMARY + SLOT_LEN;
const SWAP_SECONDARY_LEN: u32 = SLOT_LEN + SECTOR as u32;
const SWAP_FLASH_LEN: usize = (SWAP_SECONDARY + SWAP_SECONDARY_LEN) as usize;

type SwapFlash = RamFlash<SWAP_FLASH_LEN>;

const fn swap_layout() -> SlotLayout {
    SlotLayout {
        slots: [
            SWAP_PRIMARY..SWAP_SECONDARY,
            SWAP_SECONDARY..SWAP_SECONDARY + SWAP_SECONDARY_LEN,
        ],
        journal: Config::new(0, JOURNAL_SECTORS),
        manifest_sectors: 1,
        sector_size: None,
        mode: Mode::Swap,
    }
}

const fn layout() -> SlotLayout {
    SlotLayout {
        slots: [SLOT0..SLOT1, SLOT1..SLOT1 + SLOT_LEN],
        journal: Config::new(0, JOURNAL_SECTORS),
        manifest_sectors: 1,
        sector_size: None,
        mode: Mode::Direct,
    }
}

/// Payload bytes per `push`, as a radio would deliver them.
const PUSH_CHUNK: usize = 1000;

const PASS: SelfTest = SelfTest::PASS;
const MOTOR_FAILS: SelfTest = SelfTest {
    motor: false,
    sensors: true,
    comms: true,
};

/// The device: its immutable trust anchors and identity.
struct Device {
    anchors: TrustAnchors,
    identity: DeviceIdentity,
    layout: SlotLayout,
}

/// Counts the checks; the first failing one ends the run.
struct Checks(u32);

impl Checks {
    /// Records check `name`: prints `ok    name: detail`, or `FAIL  ...` and
    /// exits with failure.
    fn check(&mut self, name: &str, ok: bool, detail: fmt::Arguments<'_>) {
        if ok {
            self.0 += 1;
            hprintln!("ok    {}: {}", name, detail);
        } else {
            hprintln!("FAIL  {}: {}", name, detail);
            exit(false);
        }
    }
}

/// Ends the run with `what` when `r` is an error (a step that must work).
fn must<T, E: fmt::Display>(what: &str, r: Result<T, E>) -> T {
    match r {
        Ok(v) => v,
        Err(e) => {
            hprintln!("FAIL  {}: {}", what, e);
            exit(false)
        }
    }
}

/// A reset: the journal is read back from the flash.
fn reopen<const N: usize>(flash: &mut RamFlash<N>, d: &Device) -> Journal<RamFlash<N>> {
    must("journal open", Journal::open(flash, d.layout.journal))
}

/// The bootloader: reopen the journal, decide with the real VerifiedSlot,
/// commit. Returns the decision and the state it left.
fn bootloader(flash: &mut Flash, d: &Device) -> (Decision, PersistentState) {
    let mut journal = reopen(flash, d);
    let state = *journal.state();
    let mut head = [0u8; HEAD_BUF_LEN];
    let mut check =
        VerifiedSlot::<256>::new(&d.layout, &d.anchors, &d.identity, &state, None, &mut head);
    let decision = must("boot", boot::boot(&mut journal, flash, &mut check));
    (decision, *journal.state())
}

/// Re-verifies one slot as the bootloader would, for the log.
fn verify_slot<const N: usize>(
    flash: &mut RamFlash<N>,
    d: &Device,
    slot: u8,
) -> Result<SlotInfo, SlotError> {
    let journal = reopen(flash, d);
    let state = *journal.state();
    let mut head = [0u8; HEAD_BUF_LEN];
    VerifiedSlot::<256>::new(&d.layout, &d.anchors, &d.identity, &state, None, &mut head)
        .check(flash, slot)
}

/// A boot that starts the trial of `slot` (every attempt left).
fn trial_start(slot: u8) -> Reason {
    Reason::StartTrial {
        slot,
        attempts_left: boot::MAX_TRIAL_BOOTS,
    }
}

/// Whether a boot started the trial of `slot` (the decision and the
/// journal's state) with the release of sequence `seq` verified in it.
fn trial_of(
    dec: &Decision,
    s: &PersistentState,
    info: &Result<SlotInfo, SlotError>,
    slot: u8,
    seq: u64,
) -> bool {
    dec.boot == Boot::Slot(slot)
        && dec.reason == trial_start(slot)
        && matches!(info, Ok(i) if i.sequence == seq)
        && matches!(s.trial, TrialState::Trial { slot: t, .. } if t == slot)
}

/// Checks (as `name`) that a boot is the plain boot of the confirmed
/// `slot`.
fn check_plain_boot(c: &mut Checks, name: &str, dec: &Decision, slot: u8) {
    c.check(
        name,
        plain_boot(dec, slot),
        format_args!("{:?} ({:?}), nothing committed", dec.boot, dec.reason),
    );
}

/// Whether the factory put v1 (`seq`) into slot 0 (`slot`) and left it
/// active and confirmed, the floor at 1.
fn provisioned(slot: u8, seq: u64, s: &PersistentState) -> bool {
    slot == 0
        && seq == 1
        && s.active_slot == 0
        && s.trial == TrialState::Confirmed
        && s.floor == Some(1)
}

/// Whether a boot reverts the trial of `from` (its attempts exhausted),
/// booting slot 0, and leaves no trial.
fn revert_of(dec: &Decision, s: &PersistentState, from: u8) -> bool {
    dec.boot == Boot::Slot(0)
        && dec.reason
            == (Reason::Reverted {
                slot: from,
                cause: RevertCause::AttemptsExhausted,
            })
        && s.trial == TrialState::None
}

/// Whether a boot is the plain boot of the confirmed `slot` (nothing to
/// commit).
fn plain_boot(dec: &Decision, slot: u8) -> bool {
    dec.boot == Boot::Slot(slot) && dec.reason == Reason::Active && dec.commit.is_none()
}

/// The factory: v1 installed into slot 0 through `installer`'s view of
/// the layout (slot 1 marked active first, so slot 0 is the target), then
/// provisioned: slot 0 active and confirmed, the floor at v1's sequence
/// number (`what` names a failure). The slot and sequence installed.
fn factory<const N: usize>(
    flash: &mut RamFlash<N>,
    d: &Device,
    installer: &Device,
    what: &str,
) -> (u8, u64) {
    let mut journal = reopen(flash, d);
    let fresh = *journal.state();
    must(
        what,
        journal.commit(
            flash,
            &PersistentState {
                active_slot: 1,
                ..fresh
            },
        ),
    );
    let (slot, seq) = install(flash, installer, V1);
    let mut journal = reopen(flash, d);
    let provisioned = PersistentState {
        active_slot: 0,
        trial: TrialState::Confirmed,
        floor: Some(seq),
        ..*journal.state()
    };
    must(what, journal.commit(flash, &provisioned));
    (slot, seq)
}

/// The self-test passes on v2's trial in `slot` (`what` in the report):
/// `boot::confirm` must confirm it and raise the floor to 2.
fn confirm_v2<const N: usize>(
    c: &mut Checks,
    flash: &mut RamFlash<N>,
    d: &Device,
    name: &str,
    slot: u8,
    what: &str,
) {
    let mut journal = reopen(flash, d);
    let r = boot::confirm(&mut journal, flash, PASS, confirmation(2));
    let s = *journal.state();
    c.check(
        name,
        r == Ok(slot)
            && s.active_slot == slot
            && s.trial == TrialState::Confirmed
            && s.floor == Some(2),
        format_args!(
            "{} ({} confirmed); journal: active {}, {:?}, floor {:?}",
            Shown(&r),
            what,
            s.active_slot,
            s.trial,
            s.floor
        ),
    );
}

/// What the application does with an update received over the air: verify
/// the envelope (update rule: sequence above the floor), store its head in
/// the inactive slot's manifest area with `begin_with_manifest`, stream the
/// payload in `PUSH_CHUNK` pieces, finish. Returns the slot now `Pending`
/// and the release's sequence number.
fn install<const N: usize>(flash: &mut RamFlash<N>, d: &Device, envelope: &[u8]) -> (u8, u64) {
    let mut journal = reopen(flash, d);
    let state = DeviceState {
        sequence_floor: journal.state().floor,
        keyset: None,
    };
    let verified = must(
        "install: envelope",
        keyway_suit::verify_envelope(envelope, &d.anchors, &d.identity, &state),
    );
    let Some(expectation) = verified.payload.as_ref() else {
        hprintln!("FAIL  install: the manifest names no image");
        exit(false)
    };
    let (Some(integrated), Some(payload)) = (verified.integrated, verified.integrated_payload())
    else {
        hprintln!("FAIL  install: the envelope carries no complete integrated payload");
        exit(false)
    };
    let head = &envelope[..integrated.offset];
    let mut installer = must(
        "install: begin",
        Installer::<_>::begin_with_manifest(
            flash,
            &mut journal,
            Target::new(&d.layout, expectation, verified.manifest_digest),
            head,
        ),
    );
    for chunk in payload.chunks(PUSH_CHUNK) {
        must("install: push", installer.push(flash, &mut journal, chunk));
    }
    let slot = must("install: finish", installer.finish(flash, &mut journal, Arm::Now));
    (slot, verified.sequence)
}

fn main_scenario(flash: &mut Flash, d: &Device, c: &mut Checks) {
    // 1. The RAM flash keeps NOR rules (the journal and installer rely on
    //    nothing weaker).
    nor_rules(c);

    // 2. Factory: v1 into slot 0 through the installer (slot 1 is marked
    //    active first, so slot 0 is the installer's target), then the
    //    provisioned state: slot 0 active and confirmed, floor 1.
    let (slot, seq) = factory(flash, d, d, "factory: journal");
    let s = *reopen(flash, d).state();
    c.check(
        "factory",
        provisioned(slot, seq, &s),
        format_args!(
            "v1 (seq {}) installed in slot {}; journal: active {}, {:?}, floor {:?}",
            seq, slot, s.active_slot, s.trial, s.floor
        ),
    );

    // 3. Boot: the confirmed v1 in slot 0.
    let (dec, _) = bootloader(flash, d);
    check_plain_boot(c, "boot", &dec, 0);

    // 4. Install v2 into the inactive slot 1.
    let (slot, seq) = install(flash, d, V2);
    let s = *reopen(flash, d).state();
    c.check(
        "install v2",
        slot == 1 && seq == 2 && s.trial == TrialState::Pending { slot: 1 },
        format_args!(
            "seq {} in slot {} ({} bytes pushed in {}-byte chunks); journal {:?}",
            seq,
            slot,
            payload_len(V2),
            PUSH_CHUNK,
            s.trial
        ),
    );

    // 5. Boot: the trial of slot 1 starts (VerifiedSlot re-verified v2).
    let info = verify_slot(flash, d, 1);
    let (dec, s) = bootloader(flash, d);
    c.check(
        "trial",
        trial_of(&dec, &s, &info, 1, 2),
        format_args!(
            "{:?} ({:?}); slot 1 verified: seq {:?}",
            dec.boot,
            dec.reason,
            info.map(|i| i.sequence)
        ),
    );

    // 6. The image on trial fails its self-test.
    let mut journal = reopen(flash, d);
    let r = boot::confirm(&mut journal, flash, MOTOR_FAILS, confirmation(2));
    c.check(
        "self-test fails",
        matches!(r, Err(ConfirmError::SelfTestFailed { slot: 1, .. }))
            && journal.state().trial
                == (TrialState::Trial {
                    slot: 1,
                    attempts_left: 0,
                }),
        format_args!("{}", Shown(&r)),
    );

    // 7. Reboot: revert to v1 in slot 0; the floor stays at 1.
    let (dec, s) = bootloader(flash, d);
    c.check(
        "revert",
        revert_of(&dec, &s, 1) && s.active_slot == 0 && s.floor == Some(1),
        format_args!(
            "{:?} ({:?}); journal: active {}, floor {:?}",
            dec.boot, dec.reason, s.active_slot, s.floor
        ),
    );

    // 8. Second round: install v2 again, trial, pass, confirm.
    let (slot, _) = install(flash, d, V2);
    let (dec, _) = bootloader(flash, d);
    c.check(
        "trial again",
        slot == 1 && dec.boot == Boot::Slot(1) && dec.reason == trial_start(1),
        format_args!(
            "v2 reinstalled in slot {}; {:?} ({:?})",
            slot, dec.boot, dec.reason
        ),
    );
    confirm_v2(c, flash, d, "confirm", 1, "slot 1");
    let (dec, _) = bootloader(flash, d);
    check_plain_boot(c, "boot v2", &dec, 1);

    // 9. Tamper: one image byte of slot 1 flipped. Slot 1 fails its digest,
    //    slot 0 (v1, seq 1) fails the boot rule (floor 2): recovery.
    let at = SLOT1 + 4321;
    if !flash.corrupt(at) {
        hprintln!("FAIL  tamper: offset {:#x} outside the flash", at);
        exit(false);
    }
    let bad1 = verify_slot(flash, d, 1);
    let bad0 = verify_slot(flash, d, 0);
    let (dec, s) = bootloader(flash, d);
    c.check(
        "tamper",
        dec.boot == Boot::Recovery
            && dec.reason == Reason::NoVerifiedSlot
            && matches!(bad1, Err(SlotError::Image(_)))
            && matches!(
                bad0,
                Err(SlotError::BelowFloor {
                    sequence: 1,
                    floor: 2
                })
            )
            && s.active_slot == 1
            && s.floor == Some(2),
        format_args!(
            "byte {:#x} of slot 1 flipped: {:?} ({:?}); slot 1: {}; slot 0: {}",
            at - SLOT1,
            dec.boot,
            dec.reason,
            Shown(&bad1),
            Shown(&bad0),
        ),
    );
}

/// The RAM flash's own rules, checked on target.
fn nor_rules(c: &mut Checks) {
    use embedded_storage::nor_flash::{NorFlash, ReadNorFlash};
    let mut f = RamFlash::<{ 2 * SECTOR }>::new();
    let mut b = [0u8; 4];
    let ok = f.write(0, &[0x0F, 0xF0, 0x00, 0xFF]).is_ok()
        && f.write(0, &[0x0F, 0x00, 0x00, 0xFF]).is_ok()
        && f.write(0, &[0xFF, 0x00, 0x00, 0xFF]) == Err(FlashError::SetsBit { offset: 0 })
        && f.read(0, &mut b).is_ok()
        && b == [0x0F, 0x00, 0x00, 0xFF]
        && f.write(2, &[0; 4]) == Err(FlashError::NotAligned { offset: 2 })
        && f.write(0, &[0; 3]) == Err(FlashError::NotAligned { offset: 0 })
        && f.write(2 * SECTOR as u32, &[0; 4])
            == Err(FlashError::OutOfBounds {
                offset: 2 * SECTOR as u32,
            })
        && f.erase(0, 100) == Err(FlashError::NotAligned { offset: 0 })
        && f.erase(0, 3 * SECTOR as u32).is_err()
        && f.erase(0, SECTOR as u32).is_ok()
        && f.read(0, &mut b).is_ok()
        && b == [0xFF; 4]
        && {
            f.cut_after(1);
            f.write(0, &[0; 4]).is_ok()
                && f.erase(0, SECTOR as u32) == Err(FlashError::PowerCut { offset: 0 })
                && f.write(4, &[0; 4]) == Err(FlashError::PowerCut { offset: 4 })
        }
        && {
            f.power_on();
            f.erase(0, SECTOR as u32).is_ok()
        }
        && f.take_sector_erases()[..2] == [2, 0];
    c.check(
        "nor rules",
        ok,
        format_args!(
            "{} and {} KiB RAM flashes: {} B sectors, {} B writes clear bits only, bounds checked, \
             power cut after N ops",
            FLASH_LEN / 1024,
            SWAP_FLASH_LEN / 1024,
            SECTOR,
            ram_flash::WORD
        ),
    );
}

fn confirmation(sequence: u64) -> Confirmation {
    Confirmation {
        sequence,
        keyset_version: 0,
    }
}

/// The integrated payload's length, for the log.
fn payload_len(envelope: &[u8]) -> usize {
    keyway_suit::inspect_envelope(envelope)
        .ok()
        .and_then(|i| i.integrated)
        .map_or(0, |p| p.available.len())
}

/// A result shown with its `Display` (ok value with `Debug`).
struct Shown<'a, T, E>(&'a Result<T, E>);

impl<T: fmt::Debug, E: fmt::Display> fmt::Display for Shown<'_, T, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Ok(v) => write!(f, "Ok({v:?})"),
            Err(e) => write!(f, "{e}"),
        }
    }
}

#[entry]
fn main() -> ! {
    hprintln!(
        "keyway qemu-boot: boot, trial, revert on a {} KiB RAM NOR flash (slots at {:#x}, {:#x})",
        FLASH_LEN / 1024,
        SLOT0,
        SLOT1
    );
    let anchors = must(
        "trust anchor",
        PublicKey::from_raw(ROOT_KEY).and_then(|k| TrustAnchors::new(&[k], 1)),
    );
    let d = Device {
        anchors,
        identity: DeviceIdentity::new(VENDOR_ID, CLASS_ID),
        layout: layout(),
    };
    if let Err(e) = d.layout.validate::<Flash>(FLASH_LEN) {
        hprintln!("FAIL  layout: {:?}", e);
        exit(false);
    }
    let sd = Device {
        anchors: d.anchors.clone(),
        identity: d.identity,
        layout: swap_layout(),
    };
    if let Err(e) = sd.layout.validate::<SwapFlash>(SWAP_FLASH_LEN) {
        hprintln!("FAIL  swap layout: {:?}", e);
        exit(false);
    }
    let mut c = Checks(0);
    let mut flash = Flash::new();
    main_scenario(&mut flash, &d, &mut c);
    let (erases, writes) = flash.ops();
    hprintln!("flash: {} sector erases, {} writes", erases, writes);
    hprintln!(
        "keyway qemu-boot: swap mode on a {} KiB RAM NOR flash (primary at {:#x}, secondary at {:#x})",
        SWAP_FLASH_LEN / 1024,
        SWAP_PRIMARY,
        SWAP_SECONDARY
    );
    let mut swap_flash = SwapFlash::new();
    swap_scenario(&mut swap_flash, &sd, &mut c);
    let (erases, writes) = swap_flash.ops();
    hprintln!("swap flash: {} sector erases, {} writes", erases, writes);
    hprintln!("qemu-boot: {} checks passed", c.0);
    exit(true)
}
