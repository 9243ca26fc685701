//! The image group's view of the two slots: what each holds (re-verified
//! as the bootloader would), and the state changes the group asks for
//! (test, confirm, erase, the `no-rollback` profile's in-place install).

use keyway_audit::Event;
use keyway_device::boot::{self, Confirmation};
use keyway_device::journal::{PersistentState, TrialState};
use keyway_device::manifest_area;
use keyway_device::verified::{SlotError, SlotInfo};
use sha2::{Digest, Sha256};

use crate::smp::MgmtErr;

use super::errors::{ImgError, flash_err, img_rc, slot_refusal};
use super::{DeviceCore, Flash, PAGE, read};

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

impl DeviceCore {
    /// Re-verifies `slot` as the bootloader would now.
    pub fn verify(&mut self, slot: u8) -> Result<SlotInfo, SlotError> {
        crate::suit::count();
        self.with_check(|check, _, flash| check.check(flash, slot))
    }

    /// The envelope head stored in `slot`'s manifest area, if its header
    /// is intact (the CRC and signatures are checked by [`DeviceCore::verify`]).
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

    /// [`DeviceCore::view`] of `slot` whose stored `head` the caller has already
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
        self.commit_state(&PersistentState {
            trial: TrialState::Pending { slot: v.slot },
            download: None,
            ..state
        })
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
            self.commit_state(&PersistentState {
                download: None,
                ..state
            })?;
        }
        self.forget_delta_upload(slot);
        let r = self.layout.slots[usize::from(slot)].clone();
        self.flash
            .erase(r.start, r.end)
            .map_err(|e| flash_err(img_rc::FLASH_ERASE_FAILED, "erase", &e))
    }

    pub(super) fn find(&mut self, hash: &[u8]) -> Result<SlotView, ImgError> {
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

    /// The SHA-256 of the image `slot` holds, as its stored manifest names
    /// it (a delta's output, or the payload).
    pub fn image_digest(&self, slot: u8) -> Option<[u8; 32]> {
        let head = self.head(slot)?;
        let i = crate::suit::inspect_slot(&head, slot).ok()?;
        i.delta.map(|d| d.out).or(i.payload).map(|p| *p.digest)
    }
}
