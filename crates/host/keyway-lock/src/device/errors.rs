//! The image group's errors ([`ImgError`]) and how the device core's
//! typed errors (verifier, installer, slot) map onto its codes and the
//! audit log's reasons.

use keyway_audit::RejectReason;
use keyway_device::install::{self};
use keyway_device::journal::{self};
use keyway_device::verified::SlotError;

use crate::smp::MgmtErr;

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

/// The audit log's reason for a refused envelope.
pub fn reject_reason(e: &keyway_suit::Error) -> RejectReason {
    keyway_vendor::check::Check::of(e).reject_reason()
}

/// A key-set document an envelope head carries.
pub(super) fn carried_keyset(head: &[u8]) -> Option<Vec<u8>> {
    keyway_suit::Envelope::decode(head)
        .ok()
        .and_then(|e| e.keyset.map(<[u8]>::to_vec))
}

pub(super) fn flash_err(rc: u16, what: &str, e: &dyn core::fmt::Display) -> ImgError {
    ImgError::new(rc, MgmtErr::Unknown, format!("flash {what} failed: {e}"))
}

/// A slot that does not re-verify.
pub(super) fn slot_refusal(slot: u8, e: &SlotError) -> ImgError {
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
pub fn install_err(e: install::InstallError<keyway_sim::Error>) -> ImgError {
    use install::InstallError as E;
    let (rc, v1) = match &e {
        E::ImageTooLarge { .. } => (img_rc::INVALID_IMAGE_TOO_LARGE, MgmtErr::Inval),
        E::Payload(keyway_suit::Error::PayloadTooLong { .. }) => {
            (img_rc::INVALID_IMAGE_DATA_OVERRUN, MgmtErr::Inval)
        }
        E::Payload(_) => (img_rc::INVALID_HASH, MgmtErr::Inval),
        E::Flash { .. } => (img_rc::FLASH_WRITE_FAILED, MgmtErr::Unknown),
        E::Journal(journal::JournalError::Flash { .. }) => {
            (img_rc::FLASH_WRITE_FAILED, MgmtErr::Unknown)
        }
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
