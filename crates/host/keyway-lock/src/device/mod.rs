//! The lock's device side: the real installer, journal, bootloader and
//! `VerifiedSlot` of `keyway-device` over a simulated nRF52840 flash in
//! direct A/B mode. No sockets, no files, no clock: the server drives it.
//!
//! * this module: the flash layout, the [`DeviceCore`] and its power-on
//!   (bootloader, self-test, confirm);
//! * `slots`: the slots as the image group sees and changes them;
//! * `download`: a download into the inactive slot, full or delta;
//! * `audit`: the audit log on the flash;
//! * `errors`: the image group's errors and the mapping onto them.

use keyway_audit::{AuditLog, Event, RevertReason};
use keyway_device::boot::{self, Boot, Confirmation, Decision, Reason, RevertCause, SelfTest};
use keyway_device::install::{Mode, SlotLayout};
use keyway_device::journal::{Config, Journal, PersistentState, TrialState};
use keyway_device::verified::{HEAD_BUF_LEN, VerifiedSlot};
use keyway_sim::{Cut, CutPoint, EraseTear, Geometry, PowerCut, SimFlash, WriteTear};
use keyway_suit::{DeviceIdentity, DeviceState, KeySet, TrustAnchors};

mod audit;
mod download;
mod errors;
mod slots;

use audit::Audit;
pub use download::DownloadInstaller;
use errors::carried_keyset;
pub use errors::{ImgError, envelope_refusal, img_rc, install_err, reject_reason};
pub use slots::SlotView;

/// The nRF52840: 1 MiB of 4 KiB pages, 4-byte writes.
pub type Flash = SimFlash<4, 4096>;
/// The installer's write buffer.
pub const BUF: usize = 256;
const PAGE: u32 = 4096;
/// Pages per slot: (256 pages - 2 journal pages - 4 audit-log pages) / 2.
const SLOT_PAGES: u32 = 125;
/// Pages of the audit-log ring, at the end of the flash.
pub const AUDIT_PAGES: u32 = 4;

/// The lock's flash layout: the journal in pages 0-1, slot 0 in pages
/// 2-126, slot 1 in pages 127-251, the audit log in pages 252-255; each
/// slot's last page is its manifest area, so an image may take 124 pages
/// (496 KiB).
pub fn layout() -> SlotLayout {
    let s0 = 2 * PAGE;
    let s1 = s0 + SLOT_PAGES * PAGE;
    SlotLayout {
        slots: [s0..s1, s1..s1 + SLOT_PAGES * PAGE],
        journal: Config::new(0, 2).with_erased_value(0xFF),
        manifest_sectors: 1,
        sector_size: Some(PAGE),
        mode: Mode::Direct,
    }
}

/// The largest image a slot holds.
pub fn image_capacity() -> u32 {
    (SLOT_PAGES - 1) * PAGE
}

/// The audit log's region: pages 252-255 (a ring of 4 pages of 29
/// records each; signed checkpoints before a page is erased).
pub fn audit_config() -> keyway_audit::Config {
    keyway_audit::Config::new(2 * PAGE + 2 * SLOT_PAGES * PAGE, AUDIT_PAGES)
}

/// A fresh, erased flash of the lock's part.
pub fn blank_flash() -> Flash {
    // The preset's geometry always fits its const parameters.
    Flash::nrf52840()
}

/// A flash image read back from a file.
pub fn flash_from_bytes(bytes: Vec<u8>) -> Result<Flash, String> {
    sized_flash(
        Geometry::nrf52840(),
        bytes,
        "the flash image",
        "the nRF52840 model",
    )
}

/// A flash of geometry `g` read back from a file's `bytes`, which must be
/// exactly its capacity; the errors name the file as `what` and the
/// flash as `model`.
pub(crate) fn sized_flash(
    g: Geometry,
    bytes: Vec<u8>,
    what: &str,
    model: &str,
) -> Result<Flash, String> {
    if bytes.len() != g.capacity() as usize {
        return Err(format!(
            "{what} is {} bytes, {model} has {}",
            bytes.len(),
            g.capacity()
        ));
    }
    Flash::from_bytes(g, bytes).map_err(|e| format!("{what} does not load: {e}"))
}

/// What the lock trusts and is: fixed at provisioning.
#[derive(Clone, Debug)]
pub struct Trust {
    /// The vendor's root keys and threshold.
    pub anchors: TrustAnchors,
    /// Vendor and class ids.
    pub identity: DeviceIdentity,
}

impl Trust {
    /// The trust of a lock for `vendor_domain` and `class` (the vendor and
    /// class UUIDv5s, as `keyway sign` computes them) under `anchors`.
    pub fn new(anchors: TrustAnchors, vendor_domain: &str, class: &str) -> Self {
        let v = keyway_vendor::encode::vendor_uuid(vendor_domain);
        Trust {
            anchors,
            identity: DeviceIdentity::new(v, keyway_vendor::encode::class_uuid(&v, class)),
        }
    }
}

/// What a power-on did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BootReport {
    /// The bootloader's decision.
    pub decision: Decision,
    /// What the application did after booting (self-test, confirm).
    pub app: String,
}

/// The lock's persistent hardware and its running state.
pub struct DeviceCore {
    audit: Option<Audit>,
    flash: Flash,
    journal: Journal<Flash>,
    layout: SlotLayout,
    trust: Trust,
    /// The stored key-set document and its decoded form.
    keyset: Option<(Vec<u8>, KeySet)>,
    running: Option<u8>,
    /// The slot a delta upload produced and the SHA-256 of the file that
    /// was uploaded (the slot holds the produced image, not the patch, so
    /// the uploaded file's hash cannot be recomputed from it; kept in RAM).
    delta_upload: Option<(u8, [u8; 32])>,
    /// The simulated application's self-test result.
    pub self_test: SelfTest,
    /// The lock's behaviour: the real one, or a deliberate flaw
    /// (`keyway-lock --profile`).
    pub profile: crate::profile::Profile,
}

impl core::fmt::Debug for DeviceCore {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("DeviceCore")
            .field("state", self.journal.state())
            .field("running", &self.running)
            .finish_non_exhaustive()
    }
}

const PASS: SelfTest = SelfTest::PASS;

impl DeviceCore {
    /// A lock over `flash` (not booted yet: call [`DeviceCore::power_on`]).
    /// `keyset` is the stored key-set document, if any.
    pub fn new(flash: Flash, trust: Trust, keyset: Option<Vec<u8>>) -> Result<Self, String> {
        let mut flash = flash;
        let layout = layout();
        layout
            .validate::<Flash>(flash.as_bytes().len())
            .map_err(|e| format!("the lock's slot layout is refused: {e:?}"))?;
        let journal = Journal::open(&mut flash, layout.journal)
            .map_err(|e| format!("the journal does not open: {e}"))?;
        let keyset = match keyset {
            Some(doc) => {
                let k = KeySet::from_document(&doc, &trust.anchors).map_err(|e| {
                    format!(
                        "the stored key set does not verify: {}",
                        keyway_vendor::describe::describe(&e)
                    )
                })?;
                Some((doc, k))
            }
            None => None,
        };
        Ok(DeviceCore {
            audit: None,
            flash,
            journal,
            layout,
            trust,
            keyset,
            running: None,
            delta_upload: None,
            self_test: PASS,
            profile: crate::profile::Profile::Default,
        })
    }

    /// The flash (to persist it).
    pub fn flash(&self) -> &Flash {
        &self.flash
    }

    /// The stored key-set document.
    pub fn keyset_doc(&self) -> Option<&[u8]> {
        self.keyset.as_ref().map(|(d, _)| d.as_slice())
    }

    /// The journal's state.
    pub fn state(&self) -> PersistentState {
        *self.journal.state()
    }

    /// Commits `next` to the journal; a failed write is the image group's
    /// flash-write error.
    fn commit_state(&mut self, next: &PersistentState) -> Result<(), ImgError> {
        self.journal
            .commit(&mut self.flash, next)
            .map_err(|e| errors::flash_err(img_rc::FLASH_WRITE_FAILED, "journal commit", &e))
    }

    /// Forgets the delta upload's hash recorded for `slot`: the slot is
    /// about to be rewritten or its download dropped, so it no longer
    /// names what the slot holds.
    fn forget_delta_upload(&mut self, slot: u8) {
        if self.delta_upload.is_some_and(|(s, _)| s == slot) {
            self.delta_upload = None;
        }
    }

    /// The running slot (`None`: recovery, no verified image).
    pub fn running(&self) -> Option<u8> {
        self.running
    }

    /// Flash write and erase work so far (changes when the flash changed).
    pub fn flash_work(&self) -> (u64, u64) {
        let s = self.flash.stats();
        (s.bytes_written, s.erase_ops)
    }

    /// Plans a power cut during the flash operation `after_ops` operations
    /// from now (a torn write or a partial erase). The operation fails, the
    /// flash stays unpowered until [`DeviceCore::power_on`].
    pub fn plan_power_cut(&mut self, after_ops: u64, seed: u64) {
        let op = self.flash.ops().saturating_add(after_ops);
        self.flash.set_power_cut(PowerCut::new(seed).then(CutPoint {
            op,
            cut: Cut::During {
                write: WriteTear::Prefix,
                erase: EraseTear::Partial,
            },
        }));
    }

    /// Whether the flash has power (false after a planned cut fired).
    pub fn powered(&self) -> bool {
        self.flash.is_powered()
    }

    /// Runs `f` with the bootloader's check of the slots (this lock's
    /// anchors and identity, the journal's state, the stored key set), the
    /// journal and the flash.
    fn with_check<R>(
        &mut self,
        f: impl FnOnce(&mut VerifiedSlot<'_, 256>, &mut Journal<Flash>, &mut Flash) -> R,
    ) -> R {
        let state = *self.journal.state();
        let mut head = [0u8; HEAD_BUF_LEN];
        let mut check = VerifiedSlot::<256>::new(
            &self.layout,
            &self.trust.anchors,
            &self.trust.identity,
            &state,
            self.keyset.as_ref().map(|(_, k)| k.clone()),
            &mut head,
        );
        f(&mut check, &mut self.journal, &mut self.flash)
    }

    /// Power on: the bootloader (`boot::boot` with the real
    /// `VerifiedSlot`), then the application: an image on trial runs its
    /// self-test and confirms (raising the floor), storing a key set its
    /// envelope carried.
    pub fn power_on(&mut self) -> Result<BootReport, String> {
        self.flash.power_on();
        self.journal = Journal::open(&mut self.flash, self.layout.journal)
            .map_err(|e| format!("the journal does not open: {e}"))?;
        let decision = self
            .with_check(|check, journal, flash| boot::boot(journal, flash, check))
            .map_err(|e| format!("the bootloader's journal commit failed: {e}"))?;
        self.running = match decision.boot {
            Boot::Slot(s) => Some(s),
            Boot::Recovery => None,
        };
        if let Some(a) = self.audit.as_mut() {
            // Every power-on is a boot; the log's RAM state is lost with
            // the power: scan it again.
            a.boot = a.boot.saturating_add(1);
            if let Ok(log) = AuditLog::open(&mut self.flash, audit_config()) {
                a.log = log;
            }
        }
        if let Some(s) = self.running {
            let head = self.head(s);
            let inspected = head.as_deref().and_then(|h| crate::suit::inspect(h).ok());
            let version =
                keyway_vendor::log::audit_version_of(inspected.and_then(|i| i.manifest.version));
            self.note(Event::Boot { slot: s, version });
        }
        match decision.reason {
            Reason::StartTrial {
                slot,
                attempts_left,
            }
            | Reason::ContinueTrial {
                slot,
                attempts_left,
            } => self.note(Event::OnTrial {
                slot,
                attempts_left,
            }),
            Reason::Reverted { cause, .. } => {
                let reason = match cause {
                    RevertCause::Unverified => RevertReason::VerificationFailed,
                    _ => RevertReason::TrialExhausted,
                };
                self.note(Event::Reverted {
                    to_slot: self.running.unwrap_or(0),
                    reason,
                });
            }
            _ => {}
        }
        // PROFILE HOOK (no-rollback): a single-slot bootloader has nothing
        // to fall back to.
        if self.profile == crate::profile::Profile::NoRollback
            && matches!(
                decision.reason,
                Reason::FellBack { .. } | Reason::Reverted { .. }
            )
        {
            self.running = None;
            return Ok(BootReport {
                decision,
                app: "recovery (no-rollback profile): the image in place does not verify and there is no other"
                    .to_owned(),
            });
        }
        let app = match (self.running, self.journal.state().trial) {
            (Some(s), TrialState::Trial { slot, .. }) if s == slot => self.self_test_and_confirm(),
            (Some(s), _) => format!("slot {s} runs, confirmed"),
            (None, _) => "recovery: no verified image; waiting for an upload".to_owned(),
        };
        // A failed self-test leaves no trial boots: the application resets
        // itself (its watchdog) and the bootloader reverts.
        if matches!(
            self.journal.state().trial,
            TrialState::Trial {
                attempts_left: 0,
                ..
            }
        ) {
            let again = self.power_on()?;
            return Ok(BootReport {
                decision: again.decision,
                app: format!("{app}; the application reset itself: {}", again.app),
            });
        }
        Ok(BootReport { decision, app })
    }

    /// The simulated application's self-test of the image in `slot`: the
    /// configured result, with the comms check failing for an image that
    /// carries [`crate::profile::SELF_TEST_FAIL_MARKER`].
    fn self_test_of(&self, slot: u8) -> SelfTest {
        let marked = self
            .layout
            .place::<Flash>(slot)
            .and_then(|p| {
                self.flash
                    .as_bytes()
                    .get(p.image.start as usize..p.image.end as usize)
            })
            .is_some_and(crate::profile::fails_self_test);
        SelfTest {
            comms: self.self_test.comms && !marked,
            ..self.self_test
        }
    }

    /// The application on trial: self-test, then confirm.
    fn self_test_and_confirm(&mut self) -> String {
        let Some(slot) = self.running else {
            return "nothing runs".into();
        };
        let info = match self.verify(slot) {
            Ok(i) => i,
            Err(e) => return format!("slot {slot} on trial does not re-verify: {e}"),
        };
        let conf = Confirmation {
            sequence: info.sequence,
            keyset_version: info.keyset_version,
        };
        let self_test = self.self_test_of(slot);
        match boot::confirm(&mut self.journal, &mut self.flash, self_test, conf) {
            Ok(_) => {
                self.note(Event::Confirmed {
                    slot,
                    sequence: info.sequence,
                });
                let mut note = String::new();
                if let Some(doc) = self.head(slot).and_then(|h| carried_keyset(&h)) {
                    match KeySet::from_document(&doc, &self.trust.anchors) {
                        Ok(k) => {
                            note = format!(", key set v{} stored", k.version);
                            self.keyset = Some((doc, k));
                        }
                        Err(e) => note = format!(", its key set not stored: {e}"),
                    }
                }
                format!(
                    "slot {slot} on trial: self-test passed, confirmed (floor {}){note}",
                    info.sequence
                )
            }
            Err(e) => format!("slot {slot} on trial: {e}"),
        }
    }

    /// The device state the verifier checks an upload against: the
    /// journal's floor (an upload must exceed it) and the stored key set.
    pub fn device_state(&self) -> DeviceState {
        DeviceState {
            sequence_floor: self.journal.state().floor,
            keyset: self.keyset.as_ref().map(|(_, k)| k.clone()),
        }
    }

    /// The trust anchors and identity.
    pub fn trust(&self) -> &Trust {
        &self.trust
    }

    /// What an update is verified against: [`DeviceCore::trust`] with the slot
    /// the update would be written to (the inactive one), which chooses a
    /// try-each alternative by `suit-condition-component-slot`.
    pub fn update_trust(&self) -> Trust {
        let mut t = self.trust.clone();
        t.identity.slot = Some(u64::from(1 - self.journal.state().active_slot.min(1)));
        t
    }

    /// The device's Ed25519 public key (`None`: no audit log attached).
    pub fn device_key(&self) -> Option<[u8; 32]> {
        use keyway_audit::Signer as _;
        self.audit.as_ref().map(|a| a.signer.public_key())
    }

    /// Factory programming on a blank flash: the journal names slot 1
    /// active so the installer writes slot 0, then a boot starts its trial
    /// and the self-test confirms it.
    pub fn factory(&mut self, envelope: &[u8]) -> Result<BootReport, String> {
        let start = PersistentState {
            active_slot: 1,
            ..PersistentState::default()
        };
        self.journal
            .commit(&mut self.flash, &start)
            .map_err(|e| format!("factory journal: {e}"))?;
        let slot = self
            .install_envelope(envelope)
            .map_err(|e| format!("factory image: {}", e.reason))?;
        if slot != 0 {
            return Err(format!("factory programming wrote slot {slot}, not 0"));
        }
        let r = self.power_on()?;
        if self.running != Some(0) || !matches!(self.journal.state().trial, TrialState::Confirmed) {
            return Err(format!(
                "the factory image did not boot and confirm: {:?} / {}",
                r.decision, r.app
            ));
        }
        Ok(r)
    }
}

/// `major.minor.patch` as the audit log packs it (shared with the auditor).
pub use keyway_vendor::log::audit_version;

/// Reads flash bytes (tests and the server's checks).
pub fn read(flash: &Flash, at: usize, len: usize) -> Option<&[u8]> {
    flash.peek(at, len)
}
