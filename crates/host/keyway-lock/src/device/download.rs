//! A download into the inactive slot: begun from a verified head (a full
//! image or a delta patch against the running slot), fed chunk by chunk,
//! resumed after a restart, finished (armed or not), or abandoned.

use keyway_device::delta::{DeltaError, DeltaInstaller};
use keyway_device::install::{Arm, Installer, Target};
use keyway_device::journal::PersistentState;

use crate::smp::MgmtErr;

use super::errors::{ImgError, envelope_refusal, img_rc, install_err};
use super::{BUF, DeviceCore, Flash, read};

/// A download in progress: a full image through the [`Installer`], or a
/// delta patch through the [`DeltaInstaller`] (the active slot as its base).
pub enum DownloadInstaller {
    /// The payload is the image (boxed like the delta, so that neither
    /// variant makes the other large).
    Full(Box<Installer<Flash, BUF>>),
    /// The payload is a patch from the running image (boxed: 8.7 KB).
    Delta(Box<DeltaInstaller<Flash, BUF>>),
}

impl DeviceCore {
    /// Forgets the download the journal records (an upload that failed
    /// its digest or size check): the next upload of the same release
    /// begins afresh instead of resuming on top of the bad bytes. The
    /// slot's contents stay until that upload rewrites them.
    pub fn abandon_download(&mut self) -> Result<(), ImgError> {
        let state = *self.journal.state();
        let Some(d) = state.download else {
            return Ok(());
        };
        self.forget_delta_upload(d.slot);
        self.commit_state(&PersistentState {
            download: None,
            ..state
        })
    }

    /// Begins a download of a verified envelope into the inactive slot,
    /// storing `head` in its manifest area: the payload `expectation`
    /// describes, or, with `delta`, a patch applied to the running image
    /// (refused before anything is written unless the active slot holds
    /// the patch's base; see [`DeviceCore::delta_refusal`]).
    pub fn begin_download(
        &mut self,
        expectation: &keyway_suit::ImageExpectation<'_>,
        delta: Option<&keyway_suit::DeltaBinding<'_>>,
        manifest_digest: [u8; 32],
        head: &[u8],
    ) -> Result<DownloadInstaller, ImgError> {
        // The inactive slot is about to be rewritten: a delta upload's hash
        // recorded for it no longer names what it holds.
        self.forget_delta_upload(1 - self.journal.state().active_slot.min(1));
        if let Some(d) = delta {
            // `DeltaInstaller::begin` hashes the active slot's first
            // `base_size` bytes and refuses another base before writing:
            // the one read of the base this upload needs for its check.
            return DeltaInstaller::<Flash, BUF>::begin(
                &mut self.flash,
                &mut self.journal,
                Target::new(&self.layout, expectation, manifest_digest),
                d,
                Some(head),
            )
            .map(|i| DownloadInstaller::Delta(Box::new(i)))
            .map_err(|e| self.delta_err(e));
        }
        Installer::<Flash, BUF>::begin_with_manifest(
            &mut self.flash,
            &mut self.journal,
            Target::new(&self.layout, expectation, manifest_digest),
            head,
        )
        .map(|i| DownloadInstaller::Full(Box::new(i)))
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

    pub(super) fn delta_err(&self, e: DeltaError<keyway_sim::Error>) -> ImgError {
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
        let v = crate::suit::verify(&head, &self.update_trust(), &state).ok()?;
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
            Target::new(&self.layout, &exp, v.manifest_digest),
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
    pub fn push(&mut self, inst: &mut DownloadInstaller, data: &[u8]) -> Result<(), ImgError> {
        match inst {
            DownloadInstaller::Full(i) => i
                .push(&mut self.flash, &mut self.journal, data)
                .map_err(install_err),
            DownloadInstaller::Delta(i) => i
                .push(&mut self.flash, &mut self.journal, data)
                .map_err(|e| self.delta_err(e)),
        }
    }

    /// Finishes the download: with [`Arm::Now`] the slot becomes pending;
    /// with [`Arm::Later`] the complete, verified image waits in its slot
    /// until [`DeviceCore::test`] arms it, which the update policy does on
    /// consent.
    pub fn finish(&mut self, inst: DownloadInstaller, arm: Arm) -> Result<u8, ImgError> {
        let (flash, journal) = (&mut self.flash, &mut self.journal);
        match inst {
            DownloadInstaller::Full(i) => i.finish(flash, journal, arm).map_err(install_err),
            DownloadInstaller::Delta(i) => {
                i.finish(flash, journal, arm).map_err(|e| self.delta_err(e))
            }
        }
    }

    /// Records that `slot` was produced by a delta upload of a file with
    /// SHA-256 `hash`: its image state reports that hash (what the client
    /// uploaded and tests by), not the hash of head and produced image.
    pub fn note_delta_upload(&mut self, slot: u8, hash: [u8; 32]) {
        self.delta_upload = Some((slot, hash));
    }

    /// Installs a whole envelope (factory programming and tests): begin,
    /// push, finish.
    pub fn install_envelope(&mut self, envelope: &[u8]) -> Result<u8, ImgError> {
        let v = crate::suit::verify(envelope, &self.update_trust(), &self.device_state())
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
        self.finish(inst, Arm::Now)
    }
}
