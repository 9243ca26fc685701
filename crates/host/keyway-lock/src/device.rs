//! The lock's device side: the real installer, journal, bootloader and
//! `VerifiedSlot` of `keyway-device` over a simulated nRF52840 flash in
//! direct A/B mode. No sockets, no files, no clock: the server drives it.

use keyway_audit::{AuditLog, Ed25519Signer, Event, RejectReason, RevertReason, Time};
use keyway_device::boot::{self, Boot, Confirmation, Decision, Reason, RevertCause, SelfTest};
use keyway_device::delta::{DeltaError, DeltaInstaller};
use keyway_device::install::{self, Installer, Mode, SlotLayout};
use keyway_device::journal::{self, Config, Journal, PersistentState, TrialState};
use keyway_device::manifest_area;
use keyway_device::verified::{HEAD_BUF_LEN, SlotError, SlotInfo, VerifiedSlot};
use keyway_sim::{Cut, CutPoint, EraseTear, Geometry, PowerCut, SimFlash, WriteTear};
use keyway_suit::{DeviceIdentity, DeviceState, KeySet, TrustAnchors};
use sha2::{Digest, Sha256};

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
    let g = Geometry::nrf52840();
    if bytes.len() != g.capacity() as usize {
        return Err(format!(
            "the flash image is {} bytes, the nRF52840 model has {}",
            bytes.len(),
            g.capacity()
        ));
    }
    Flash::from_bytes(g, bytes).map_err(|e| format!("the flash image does not load: {e}"))
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

/// A slot as the image group lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SlotView {
    /// Physical slot, 0 or 1.
    pub slot: u8,
    /// `suit-set-version`, e.g. `2.1.0` (`0.0.0` if the manifest sets none).
    pub version: String,
    /// SHA-256 of the whole envelope as uploaded (head and image): what
    /// `sha256sum UPDATE.suit` prints and what the upload's `sha` carried.
    pub hash: [u8; 32],
    /// The manifest's sequence number.
    pub sequence: u64,
    /// The slot re-verifies as the bootloader would check it now.
    pub bootable: bool,
    /// The running image.
    pub active: bool,
    /// The journal's confirmed image.
    pub confirmed: bool,
    /// Marked for a trial at the next boot.
    pub pending: bool,
}

/// An image-group failure: the group's rc (`IMG_MGMT_ERR`), the legacy
/// SMPv1 rc, and the reason in words.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImgError {
    /// `IMG_MGMT_ERR` code.
    pub rc: u16,
    /// The SMPv1 code for clients without group errors.
    pub v1: crate::smp::MgmtErr,
    /// What failed.
    pub reason: String,
    /// Keyway's typed refusal (`kw-rc`), for clients that decide on it.
    pub refusal: Option<keyway_smp::Refusal>,
}

/// `IMG_MGMT_ERR` codes (keyway-smp).
pub use keyway_smp::err::img_rc;

impl ImgError {
    /// An error with this group code and reason.
    pub fn new(rc: u16, v1: crate::smp::MgmtErr, reason: impl Into<String>) -> Self {
        ImgError {
            rc,
            v1,
            reason: reason.into(),
            refusal: None,
        }
    }

    /// The same error with Keyway's typed refusal.
    pub fn with_refusal(mut self, r: keyway_smp::Refusal) -> Self {
        self.refusal = Some(r);
        self
    }
}

use crate::smp::MgmtErr;

/// What a power-on did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BootReport {
    /// The bootloader's decision.
    pub decision: Decision,
    /// What the application did after booting (self-test, confirm).
    pub app: String,
}

/// The audit log on the lock's flash, its signer, and the events waiting
/// for a time stamp.
struct Audit {
    log: AuditLog<Flash>,
    signer: Ed25519Signer,
    boot: u32,
    pending: Vec<Event>,
}

/// A download in progress: a full image through the [`Installer`], or a
/// delta patch through the [`DeltaInstaller`] (the active slot as its base).
pub enum Download {
    /// The payload is the image (boxed like the delta, so that neither
    /// variant makes the other large).
    Full(Box<Installer<Flash, BUF>>),
    /// The payload is a patch from the running image (boxed: 8.7 KB).
    Delta(Box<DeltaInstaller<Flash, BUF>>),
}

/// The lock's persistent hardware and its running state.
pub struct Lock {
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

impl core::fmt::Debug for Lock {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Lock")
            .field("state", self.journal.state())
            .field("running", &self.running)
            .finish_non_exhaustive()
    }
}

const PASS: SelfTest = SelfTest {
    motor: true,
    sensors: true,
    comms: true,
};

impl Lock {
    /// A lock over `flash` (not booted yet: call [`Lock::power_on`]).
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
        Ok(Lock {
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

    /// Opens the audit log on the flash with the device key `signer`;
    /// `boot` is the stored boot counter: every [`Lock::power_on`] raises
    /// it, and records are stamped with it. Events noted before stay
    /// queued.
    pub fn attach_audit(&mut self, signer: Ed25519Signer, boot: u32) -> Result<(), String> {
        let log = AuditLog::open(&mut self.flash, audit_config())
            .map_err(|e| format!("the audit log does not open: {e}"))?;
        let pending = self.audit.take().map(|a| a.pending).unwrap_or_default();
        self.audit = Some(Audit {
            log,
            signer,
            boot,
            pending,
        });
        Ok(())
    }

    /// The boot counter (`None`: no audit log attached). Persist it
    /// before committing records stamped with it.
    pub fn boot_count(&self) -> Option<u32> {
        self.audit.as_ref().map(|a| a.boot)
    }

    /// Queues an audit event (a lock without a log drops it). Events are
    /// written by [`Lock::commit_audit`], which supplies the time.
    pub fn note(&mut self, event: Event) {
        // PROFILE HOOK (log-gaps): update events are dropped.
        if self.profile.drops(&event) {
            return;
        }
        if let Some(a) = self.audit.as_mut() {
            a.pending.push(event);
        }
    }

    /// Appends the queued events at wall-clock `rtc` seconds; returns how
    /// many were written. An unpowered flash keeps them queued.
    pub fn commit_audit(&mut self, rtc: u64) -> Result<usize, String> {
        let Some(a) = self.audit.as_mut() else {
            return Ok(0);
        };
        if !self.flash.is_powered() {
            return Ok(0);
        }
        let time = Time { rtc, boot: a.boot };
        let mut n = 0;
        while let Some(e) = a.pending.first().copied() {
            a.log
                .append(&mut self.flash, &a.signer, time, &e)
                .map_err(|e| format!("audit append: {e}"))?;
            a.pending.remove(0);
            n += 1;
        }
        Ok(n)
    }

    /// The audit log's export file (records oldest to newest, then a head
    /// signed at `rtc`), after committing the queued events.
    pub fn export_audit(&mut self, rtc: u64) -> Result<Vec<u8>, String> {
        self.commit_audit(rtc)?;
        let Some(a) = self.audit.as_ref() else {
            return Err("this lock has no audit log (no device key)".into());
        };
        let mut export = a.log.export(Time { rtc, boot: a.boot });
        let mut out = Vec::new();
        let mut buf = [0u8; 256];
        loop {
            let n = export
                .fill(&a.log, &mut self.flash, &a.signer, &mut buf)
                .map_err(|e| format!("audit export: {e}"))?;
            if n == 0 {
                break;
            }
            out.extend_from_slice(buf.get(..n).unwrap_or(&[]));
        }
        Ok(out)
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
    /// flash stays unpowered until [`Lock::power_on`].
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

    /// Power on: the bootloader (`boot::boot` with the real
    /// `VerifiedSlot`), then the application: an image on trial runs its
    /// self-test and confirms (raising the floor), storing a key set its
    /// envelope carried.
    pub fn power_on(&mut self) -> Result<BootReport, String> {
        self.flash.power_on();
        self.journal = Journal::open(&mut self.flash, self.layout.journal)
            .map_err(|e| format!("the journal does not open: {e}"))?;
        let state = *self.journal.state();
        let keyset = self.keyset.as_ref().map(|(_, k)| k.clone());
        let decision = {
            let mut head = [0u8; HEAD_BUF_LEN];
            let mut check = VerifiedSlot::<256>::new(
                &self.layout,
                &self.trust.anchors,
                &self.trust.identity,
                &state,
                keyset,
                &mut head,
            );
            boot::boot(&mut self.journal, &mut self.flash, &mut check)
                .map_err(|e| format!("the bootloader's journal commit failed: {e}"))?
        };
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

    /// Re-verifies `slot` as the bootloader would now.
    pub fn verify(&mut self, slot: u8) -> Result<SlotInfo, SlotError> {
        crate::suit::count();
        let state = *self.journal.state();
        let mut head = [0u8; HEAD_BUF_LEN];
        VerifiedSlot::<256>::new(
            &self.layout,
            &self.trust.anchors,
            &self.trust.identity,
            &state,
            self.keyset.as_ref().map(|(_, k)| k.clone()),
            &mut head,
        )
        .check(&mut self.flash, slot)
    }

    /// The envelope head stored in `slot`'s manifest area, if its header
    /// is intact (the CRC and signatures are checked by [`Lock::verify`]).
    pub fn head(&self, slot: u8) -> Option<Vec<u8>> {
        let area = self.layout.manifest_area::<Flash>(slot)?;
        let bytes = self
            .flash
            .as_bytes()
            .get(area.start as usize..area.end as usize)?;
        let (len, _crc) = manifest_area::parse_header(bytes)?;
        bytes
            .get(manifest_area::HEADER_LEN..manifest_area::HEADER_LEN + len)
            .map(<[u8]>::to_vec)
    }

    /// The version of the image whose head `slot` stores.
    pub fn version(&self, slot: u8) -> Option<String> {
        let head = self.head(slot)?;
        let i = crate::suit::inspect(&head).ok()?;
        Some(
            i.manifest
                .version
                .map_or_else(|| "0.0.0".to_owned(), |v| v.to_string()),
        )
    }

    /// What `slot` holds, if its manifest area holds a decodable head.
    pub fn view(&mut self, slot: u8) -> Option<SlotView> {
        let head = self.head(slot)?;
        let i = crate::suit::inspect_slot(&head, slot).ok()?;
        self.view_of(slot, &head, &i)
    }

    /// [`Lock::view`] of `slot` whose stored `head` the caller has already
    /// inspected (`i`): one parse serves the view and the pending update.
    pub fn view_of(
        &mut self,
        slot: u8,
        head: &[u8],
        i: &keyway_suit::Inspected<'_>,
    ) -> Option<SlotView> {
        let (version, sequence, size) = {
            // A delta's slot holds the image the patch produced.
            let image = i.delta.map(|d| d.out).or(i.payload);
            let size = image.as_ref().and_then(|p| p.size)?;
            let version = i
                .manifest
                .version
                .map_or_else(|| "0.0.0".to_owned(), |v| v.to_string());
            (version, i.manifest.sequence, size)
        };
        let place = self.layout.place::<Flash>(slot)?;
        let cap = u64::from(place.image.end - place.image.start);
        let image = self
            .flash
            .as_bytes()
            .get(place.image.start as usize..)?
            .get(..usize::try_from(size.min(cap)).ok()?)?;
        let mut h = Sha256::new();
        h.update(head);
        h.update(image);
        let mut hash: [u8; 32] = h.finalize().into();
        if let Some((s, uploaded)) = self.delta_upload
            && s == slot
        {
            hash = uploaded;
        }
        let bootable = self.verify(slot).is_ok();
        let state = *self.journal.state();
        let on_trial = matches!(state.trial, TrialState::Trial { slot: t, .. } if t == slot);
        Some(SlotView {
            slot,
            version,
            hash,
            sequence,
            bootable,
            active: self.running == Some(slot),
            confirmed: state.active_slot == slot && !on_trial && bootable,
            pending: state.trial == TrialState::Pending { slot },
        })
    }

    /// Both slots' views, without a slot whose download is in progress
    /// (its image is incomplete).
    pub fn views(&mut self) -> Vec<SlotView> {
        let downloading = self.journal.state().download.map(|d| d.slot);
        (0..2)
            .filter(|s| Some(*s) != downloading)
            .filter_map(|s| self.view(s))
            .collect()
    }

    /// Marks the image with `hash` for a trial at the next boot (SMP
    /// "test"). The running image and an already pending one are no-ops.
    pub fn test(&mut self, hash: &[u8]) -> Result<(), ImgError> {
        let v = self.find(hash)?;
        if v.pending || v.active {
            return Ok(());
        }
        let state = *self.journal.state();
        if let TrialState::Trial { slot, .. } = state.trial {
            return Err(ImgError::new(
                img_rc::IMAGE_ALREADY_PENDING,
                MgmtErr::BadState,
                format!("slot {slot} runs on trial: confirm or revert it first"),
            ));
        }
        if state.active_slot == v.slot {
            return Err(ImgError::new(
                img_rc::IMAGE_SETTING_TEST_TO_ACTIVE_DENIED,
                MgmtErr::BadState,
                format!("slot {} holds the confirmed image", v.slot),
            ));
        }
        if let Err(e) = self.verify(v.slot) {
            return Err(slot_refusal(v.slot, &e));
        }
        let next = PersistentState {
            trial: TrialState::Pending { slot: v.slot },
            download: None,
            ..state
        };
        self.journal
            .commit(&mut self.flash, &next)
            .map_err(|e| flash_err(img_rc::FLASH_WRITE_FAILED, "journal commit", &e))
    }

    /// PROFILE HOOK (no-rollback): the flawed install. The verified image
    /// staged in `from` is copied over the running slot in place, page by
    /// page, confirmed at once (no trial), and the staging slot erased:
    /// the lock keeps one image, so a power cut during the copy leaves
    /// nothing that verifies (and its bootloader does not fall back).
    pub fn install_in_place(&mut self, from: u8) -> Result<(), String> {
        let to = self.running.ok_or("no image runs (recovery)")?;
        if from == to {
            return Err(format!("slot {from} runs already"));
        }
        self.verify(from)
            .map_err(|e| format!("slot {from} does not verify: {e}"))?;
        let (src, dst) = (
            self.layout.slots[usize::from(from)].clone(),
            self.layout.slots[usize::from(to)].clone(),
        );
        for page in 0..(src.end - src.start) / PAGE {
            let (at, into) = (src.start + page * PAGE, dst.start + page * PAGE);
            let data = read(&self.flash, at as usize, PAGE as usize)
                .ok_or("the staged slot is outside the flash")?
                .to_vec();
            self.flash
                .erase(into, into + PAGE)
                .map_err(|e| format!("in-place copy: erase at {into:#x}: {e}"))?;
            if data.iter().any(|b| *b != 0xFF) {
                self.flash
                    .write(into, &data)
                    .map_err(|e| format!("in-place copy: write at {into:#x}: {e}"))?;
            }
        }
        let info = self
            .verify(to)
            .map_err(|e| format!("the copy in slot {to} does not verify: {e}"))?;
        let state = *self.journal.state();
        let next = PersistentState {
            active_slot: to,
            trial: TrialState::Confirmed,
            floor: Some(info.sequence),
            download: None,
            ..state
        };
        self.journal
            .commit(&mut self.flash, &next)
            .map_err(|e| format!("journal commit: {e}"))?;
        self.note(Event::Confirmed {
            slot: to,
            sequence: info.sequence,
        });
        self.flash
            .erase(src.start, src.end)
            .map_err(|e| format!("erasing the staging slot: {e}"))
    }

    /// Confirms the running image (SMP "confirm"); `hash`, if given, must
    /// name it.
    pub fn confirm(&mut self, hash: Option<&[u8]>) -> Result<(), ImgError> {
        let Some(running) = self.running else {
            return Err(ImgError::new(
                img_rc::NO_IMAGE,
                MgmtErr::BadState,
                "no image runs (recovery)",
            ));
        };
        if let Some(h) = hash {
            let v = self.find(h)?;
            if v.slot != running {
                return Err(ImgError::new(
                    img_rc::IMAGE_CONFIRMATION_DENIED,
                    MgmtErr::NotSup,
                    format!(
                        "slot {} does not run: only the running image can be confirmed (it confirms itself after its self-test)",
                        v.slot
                    ),
                ));
            }
        }
        match self.journal.state().trial {
            TrialState::Trial { slot, .. } if slot == running => {
                let info = self
                    .verify(running)
                    .map_err(|e| slot_refusal(running, &e))?;
                let conf = Confirmation {
                    sequence: info.sequence,
                    keyset_version: info.keyset_version,
                };
                let self_test = self.self_test_of(running);
                boot::confirm(&mut self.journal, &mut self.flash, self_test, conf)
                    .map(|_| {
                        self.note(Event::Confirmed {
                            slot: running,
                            sequence: info.sequence,
                        });
                    })
                    .map_err(|e| {
                        ImgError::new(
                            img_rc::IMAGE_CONFIRMATION_DENIED,
                            MgmtErr::BadState,
                            e.to_string(),
                        )
                    })
            }
            _ => Ok(()),
        }
    }

    /// Erases `slot` (default: the inactive one). The running slot, the
    /// confirmed fallback and a pending slot are refused.
    pub fn erase(&mut self, slot: Option<u8>) -> Result<(), ImgError> {
        let state = *self.journal.state();
        let inactive = if state.active_slot == 0 { 1 } else { 0 };
        let slot = slot.unwrap_or(inactive);
        if slot > 1 {
            return Err(ImgError::new(
                img_rc::INVALID_SLOT,
                MgmtErr::Inval,
                format!("slot {slot}: the lock has slots 0 and 1"),
            ));
        }
        if self.running == Some(slot) || state.active_slot == slot && self.running.is_some() {
            return Err(ImgError::new(
                img_rc::INVALID_SLOT,
                MgmtErr::BadState,
                format!("slot {slot} holds the running or confirmed image"),
            ));
        }
        if state.trial == (TrialState::Pending { slot }) {
            return Err(ImgError::new(
                img_rc::IMAGE_ALREADY_PENDING,
                MgmtErr::BadState,
                format!("slot {slot} is pending for the next boot"),
            ));
        }
        if state.download.is_some_and(|d| d.slot == slot) {
            let next = PersistentState {
                download: None,
                ..state
            };
            self.journal
                .commit(&mut self.flash, &next)
                .map_err(|e| flash_err(img_rc::FLASH_WRITE_FAILED, "journal commit", &e))?;
        }
        if self.delta_upload.is_some_and(|(s, _)| s == slot) {
            self.delta_upload = None;
        }
        let r = self.layout.slots[usize::from(slot)].clone();
        self.flash
            .erase(r.start, r.end)
            .map_err(|e| flash_err(img_rc::FLASH_ERASE_FAILED, "erase", &e))
    }

    /// Forgets the download the journal records (an upload that failed
    /// its digest or size check): the next upload of the same release
    /// begins afresh instead of resuming on top of the bad bytes. The
    /// slot's contents stay until that upload rewrites them.
    pub fn abandon_download(&mut self) -> Result<(), ImgError> {
        let state = *self.journal.state();
        let Some(d) = state.download else {
            return Ok(());
        };
        if self.delta_upload.is_some_and(|(s, _)| s == d.slot) {
            self.delta_upload = None;
        }
        let next = PersistentState {
            download: None,
            ..state
        };
        self.journal
            .commit(&mut self.flash, &next)
            .map_err(|e| flash_err(img_rc::FLASH_WRITE_FAILED, "journal commit", &e))
    }

    fn find(&mut self, hash: &[u8]) -> Result<SlotView, ImgError> {
        self.views()
            .into_iter()
            .find(|v| v.hash.as_slice() == hash)
            .ok_or_else(|| {
                ImgError::new(
                    img_rc::NO_IMAGE,
                    MgmtErr::NoEnt,
                    format!(
                        "no slot holds an image with hash {}",
                        keyway_vendor::keys::hex(hash)
                    ),
                )
            })
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

    /// What an update is verified against: [`Lock::trust`] with the slot
    /// the update would be written to (the inactive one), which chooses a
    /// try-each alternative by `suit-condition-component-slot`.
    pub fn update_trust(&self) -> Trust {
        let mut t = self.trust.clone();
        t.identity.slot = Some(u64::from(1 - self.journal.state().active_slot.min(1)));
        t
    }

    /// Begins a download of a verified envelope into the inactive slot,
    /// storing `head` in its manifest area: the payload `expectation`
    /// describes, or, with `delta`, a patch applied to the running image
    /// (refused before anything is written unless the active slot holds
    /// the patch's base; see [`Lock::delta_refusal`]).
    pub fn begin_download(
        &mut self,
        expectation: &keyway_suit::ImageExpectation<'_>,
        delta: Option<&keyway_suit::DeltaBinding<'_>>,
        manifest_digest: [u8; 32],
        head: &[u8],
    ) -> Result<Download, ImgError> {
        // The inactive slot is about to be rewritten: a delta upload's hash
        // recorded for it no longer names what it holds.
        let inactive = 1 - self.journal.state().active_slot.min(1);
        if self.delta_upload.is_some_and(|(s, _)| s == inactive) {
            self.delta_upload = None;
        }
        if let Some(d) = delta {
            // `DeltaInstaller::begin` hashes the active slot's first
            // `base_size` bytes and refuses another base before writing:
            // the one read of the base this upload needs for its check.
            return DeltaInstaller::<Flash, BUF>::begin(
                &mut self.flash,
                &mut self.journal,
                &self.layout,
                d,
                expectation,
                manifest_digest,
                Some(head),
            )
            .map(|i| Download::Delta(Box::new(i)))
            .map_err(|e| self.delta_err(e));
        }
        Installer::<Flash, BUF>::begin_with_manifest(
            &mut self.flash,
            &mut self.journal,
            &self.layout,
            expectation,
            manifest_digest,
            head,
        )
        .map(|i| Download::Full(Box::new(i)))
        .map_err(install_err)
    }

    /// Why a delta with this binding cannot apply here, or `None` when the
    /// running image is its base, as the running slot's verified manifest
    /// names it (its digest; the boot verified the bytes against it, and
    /// `DeltaInstaller::begin` hashes them again before writing, so this
    /// head check reads no image). The reason names both images, so the
    /// owner's client knows to send the full image instead.
    pub fn delta_refusal(&self, d: &keyway_suit::DeltaBinding<'_>) -> Option<ImgError> {
        let active = self.journal.state().active_slot;
        let runs = self.image_digest(active);
        if runs.as_ref() == Some(d.base_digest) {
            return None;
        }
        let short = |h: &[u8]| keyway_vendor::keys::hex(h.get(..4).unwrap_or(h));
        let running_image_sha256 = runs;
        let runs = match (runs, self.version(active)) {
            (Some(h), Some(v)) => format!("{}… (v{v})", short(&h)),
            _ => "another image".to_owned(),
        };
        Some(
            ImgError::new(
                img_rc::INVALID_IMAGE_HEADER,
                MgmtErr::Inval,
                format!(
                    "this delta applies to image {}… ({} bytes); the lock runs {runs}: send the full image",
                    short(d.base_digest),
                    d.base_size
                ),
            )
            .with_refusal(keyway_smp::Refusal::DeltaWrongBase {
                base_image_sha256: *d.base_digest,
                running_image_sha256,
            }),
        )
    }

    /// The SHA-256 of the image `slot` holds, as its stored manifest names
    /// it (a delta's output, or the payload).
    pub fn image_digest(&self, slot: u8) -> Option<[u8; 32]> {
        let head = self.head(slot)?;
        let i = crate::suit::inspect_slot(&head, slot).ok()?;
        i.delta.map(|d| d.out).or(i.payload).map(|p| *p.digest)
    }

    fn delta_err(&self, e: DeltaError<keyway_sim::Error>) -> ImgError {
        match e {
            DeltaError::Install(e) => install_err(e),
            DeltaError::WrongBase { expected, .. } => ImgError::new(
                img_rc::INVALID_IMAGE_HEADER,
                MgmtErr::Inval,
                format!("{e}: send the full image"),
            )
            .with_refusal(keyway_smp::Refusal::DeltaWrongBase {
                base_image_sha256: expected,
                running_image_sha256: self.image_digest(self.journal.state().active_slot),
            }),
            DeltaError::Header { .. } | DeltaError::Patch(_) | DeltaError::PatchPayload(_) => {
                ImgError::new(img_rc::INVALID_HASH, MgmtErr::Inval, format!("delta: {e}"))
            }
            other => ImgError::new(img_rc::UNKNOWN, MgmtErr::Unknown, format!("delta: {other}")),
        }
    }

    /// Continues the download the journal records (after a power cut or a
    /// restart lost the upload in RAM), if the head stored in its slot
    /// still verifies and `first` (the start of the client's file) matches
    /// it: returns the installer, the head, and the file bytes received so
    /// far (head and image prefix) to re-hash. `None` when there is
    /// nothing to continue.
    pub fn resume_download(
        &mut self,
        first: &[u8],
        len: u64,
    ) -> Option<(Installer<Flash, BUF>, Vec<u8>, Vec<u8>)> {
        let d = self.journal.state().download?;
        let head = self.head(d.slot)?;
        let n = first.len().min(head.len());
        if first.get(..n)? != head.get(..n)? {
            return None;
        }
        let state = self.device_state();
        let trust = self.update_trust();
        let v = crate::suit::verify(&head, &trust.anchors, &trust.identity, &state).ok()?;
        let ip = v.integrated?;
        // A delta is never resumed in the middle (the decoder's state is
        // not saved): the upload starts again from its first byte.
        if v.delta.is_some() {
            return None;
        }
        if v.manifest_digest != d.manifest_digest
            || ip.offset != head.len()
            || (ip.offset as u64).checked_add(ip.len)? != len
        {
            return None;
        }
        let exp = v.payload?;
        let inst = Installer::<Flash, BUF>::resume(
            &mut self.flash,
            &mut self.journal,
            &self.layout,
            &exp,
            v.manifest_digest,
        )
        .ok()?;
        let place = self.layout.place::<Flash>(inst.slot())?;
        let done = read(
            &self.flash,
            place.image.start as usize,
            usize::try_from(inst.offset()).ok()?,
        )?
        .to_vec();
        drop(v);
        Some((inst, head, done))
    }

    /// Pushes payload bytes (image bytes, or patch bytes a delta decodes
    /// into the inactive slot).
    pub fn push(&mut self, inst: &mut Download, data: &[u8]) -> Result<(), ImgError> {
        match inst {
            Download::Full(i) => i
                .push(&mut self.flash, &mut self.journal, data)
                .map_err(install_err),
            Download::Delta(i) => i
                .push(&mut self.flash, &mut self.journal, data)
                .map_err(|e| self.delta_err(e)),
        }
    }

    /// Finishes the download: the slot becomes pending.
    pub fn finish(&mut self, inst: Download) -> Result<u8, ImgError> {
        match inst {
            Download::Full(i) => i
                .finish(&mut self.flash, &mut self.journal)
                .map_err(install_err),
            Download::Delta(i) => i
                .finish(&mut self.flash, &mut self.journal)
                .map_err(|e| self.delta_err(e)),
        }
    }

    /// Finishes the download without arming it: the complete, verified
    /// image waits in its slot (`Installer::finish_unarmed`) until
    /// [`Lock::test`] arms it, which the update policy does on consent.
    pub fn finish_unarmed(&mut self, inst: Download) -> Result<u8, ImgError> {
        match inst {
            Download::Full(i) => i
                .finish_unarmed(&mut self.flash, &mut self.journal)
                .map_err(install_err),
            Download::Delta(i) => i
                .finish_unarmed(&mut self.flash, &mut self.journal)
                .map_err(|e| self.delta_err(e)),
        }
    }

    /// Records that `slot` was produced by a delta upload of a file with
    /// SHA-256 `hash`: its image state reports that hash (what the client
    /// uploaded and tests by), not the hash of head and produced image.
    pub fn note_delta_upload(&mut self, slot: u8, hash: [u8; 32]) {
        self.delta_upload = Some((slot, hash));
    }

    /// The device's Ed25519 public key (`None`: no audit log attached).
    pub fn device_key(&self) -> Option<[u8; 32]> {
        use keyway_audit::Signer as _;
        self.audit.as_ref().map(|a| a.signer.public_key())
    }

    /// Installs a whole envelope (factory programming and tests): begin,
    /// push, finish.
    pub fn install_envelope(&mut self, envelope: &[u8]) -> Result<u8, ImgError> {
        let trust = self.update_trust();
        let v = crate::suit::verify(
            envelope,
            &trust.anchors,
            &trust.identity,
            &self.device_state(),
        )
        .map_err(|e| envelope_refusal(&e))?;
        let exp = v.payload.ok_or_else(|| {
            ImgError::new(
                img_rc::NO_IMAGE,
                MgmtErr::Inval,
                "the envelope names no image",
            )
        })?;
        let ip = v.integrated.ok_or_else(|| {
            ImgError::new(
                img_rc::NO_IMAGE,
                MgmtErr::Inval,
                "the envelope carries no image",
            )
        })?;
        let mut inst = self.begin_download(
            &exp,
            v.delta.as_ref(),
            v.manifest_digest,
            &envelope[..ip.offset],
        )?;
        self.push(&mut inst, ip.available)?;
        self.finish(inst)
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

/// The audit log's reason for a refused envelope.
pub fn reject_reason(e: &keyway_suit::Error) -> RejectReason {
    keyway_vendor::check::Check::of(e).reject_reason()
}

/// A key-set document an envelope head carries.
fn carried_keyset(head: &[u8]) -> Option<Vec<u8>> {
    keyway_suit::Envelope::decode(head)
        .ok()
        .and_then(|e| e.keyset.map(<[u8]>::to_vec))
}

fn flash_err(rc: u16, what: &str, e: &dyn core::fmt::Display) -> ImgError {
    ImgError::new(rc, MgmtErr::Unknown, format!("flash {what} failed: {e}"))
}

/// A slot that does not re-verify.
fn slot_refusal(slot: u8, e: &SlotError) -> ImgError {
    let rc = match e {
        SlotError::BelowFloor { .. } => img_rc::CURRENT_VERSION_IS_NEWER,
        SlotError::NoManifest | SlotError::Crc => img_rc::NO_IMAGE,
        SlotError::Image(_) => img_rc::INVALID_HASH,
        _ => img_rc::INVALID_IMAGE_HEADER,
    };
    ImgError::new(
        rc,
        MgmtErr::Inval,
        format!("slot {slot} does not verify: {e}"),
    )
}

/// An envelope the verifier refused: rollback is "current version is
/// newer"; everything else is an invalid image, with the check that failed.
pub fn envelope_refusal(e: &keyway_suit::Error) -> ImgError {
    let rc = match e {
        keyway_suit::Error::Rollback { .. } => img_rc::CURRENT_VERSION_IS_NEWER,
        _ => img_rc::INVALID_IMAGE_HEADER,
    };
    ImgError::new(
        rc,
        MgmtErr::Inval,
        format!(
            "{} check failed: {}",
            keyway_vendor::check::Check::of(e),
            keyway_vendor::describe::describe(e)
        ),
    )
}

/// An installer error.
pub fn install_err(e: install::Error<keyway_sim::Error>) -> ImgError {
    use install::Error as E;
    let (rc, v1) = match &e {
        E::ImageTooLarge { .. } => (img_rc::INVALID_IMAGE_TOO_LARGE, MgmtErr::Inval),
        E::Payload(keyway_suit::Error::PayloadTooLong { .. }) => {
            (img_rc::INVALID_IMAGE_DATA_OVERRUN, MgmtErr::Inval)
        }
        E::Payload(_) => (img_rc::INVALID_HASH, MgmtErr::Inval),
        E::Flash { .. } => (img_rc::FLASH_WRITE_FAILED, MgmtErr::Unknown),
        E::Journal(journal::Error::Flash { .. }) => (img_rc::FLASH_WRITE_FAILED, MgmtErr::Unknown),
        E::TrialInProgress { .. } => (img_rc::IMAGE_ALREADY_PENDING, MgmtErr::BadState),
        E::ManifestTooLarge { .. } => (img_rc::INVALID_IMAGE_HEADER, MgmtErr::Inval),
        _ => (img_rc::UNKNOWN, MgmtErr::Unknown),
    };
    let reason = match &e {
        E::Payload(p) => format!("image: {}", keyway_vendor::describe::describe(p)),
        E::TrialInProgress { slot } => {
            format!("slot {slot} runs on trial: it must confirm (or revert) before another upload")
        }
        other => format!("installer: {other:?}"),
    };
    ImgError::new(rc, v1, reason)
}

/// Reads flash bytes (tests and the server's checks).
pub fn read(flash: &Flash, at: usize, len: usize) -> Option<&[u8]> {
    flash.peek(at, len)
}
