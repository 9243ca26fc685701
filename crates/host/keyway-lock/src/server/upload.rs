//! The image group's upload: the upload in progress ([`UploadSession`]),
//! its chunks (the head buffered until it verifies, then streamed into
//! the installer), the downgrade rule for uploads without an owner's
//! `auth`, and the planned power cut the control socket asks for.

use ciborium::Value;
use sha2::{Digest, Sha256};

use crate::device::{self, DeviceCore, ImgError, img_rc};
use crate::peers::Peer;
use crate::smp::{MgmtErr, get_bytes, get_u64, text};
use keyway_device::install::Arm;

use super::{Body, Fail, ForcedInstall, HEAD_WINDOW, MAX_UPLOAD, Server, inval};

/// An upload in progress.
pub struct UploadSession {
    len: u64,
    sha: Option<[u8; 32]>,
    off: u64,
    hasher: Sha256,
    head: Vec<u8>,
    installer: Option<device::DownloadInstaller>,
    /// Begun with an owner's `auth` (not the presence window): the
    /// chunks that follow belong to it.
    by_owner: bool,
    /// The peer that began it: only its chunks are taken.
    peer: Peer,
    /// The owner who signed its first chunk, if one did.
    owner: Option<[u8; 8]>,
    /// When it last took a chunk (another peer may begin a new upload
    /// once it idled [`UPLOAD_IDLE_MS`]).
    last_ms: u64,
    /// The manifest's sequence number, once the head verified (for the
    /// audit log's record of a refused image).
    sequence: Option<u64>,
}

impl core::fmt::Debug for UploadSession {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("UploadSession")
            .field("len", &self.len)
            .field("off", &self.off)
            .field("streaming", &self.installer.is_some())
            .finish_non_exhaustive()
    }
}

/// Where a planned power cut falls in the upload
/// ([`Server::cut_power_mid_upload`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UploadCut {
    /// Halfway through the upload.
    Halfway,
    /// Once the upload passes this byte.
    AtByte(u64),
}

impl Server {
    /// Cuts the power during the next flash operation once the upload
    /// passes `at`.
    pub fn cut_power_mid_upload(&mut self, at: UploadCut) {
        self.cut_mid_upload = Some(at);
    }

    /// The upload in progress.
    pub fn upload(&self) -> Option<&UploadSession> {
        self.upload.as_ref()
    }

    /// The manifest sequence number of the head `slot` stores (0: none).
    pub(super) fn slot_sequence(&self, slot: u8) -> u64 {
        self.core
            .head(slot)
            .and_then(|h| crate::suit::inspect(&h).ok().map(|i| i.manifest.sequence))
            .unwrap_or(0)
    }

    /// Logs an upload the installer refused for its image (`offered`: the
    /// sequence number its verified head carried).
    pub(super) fn note_payload_rejection(&mut self, e: &ImgError, offered: Option<u64>) {
        if matches!(
            e.rc,
            img_rc::INVALID_HASH | img_rc::INVALID_IMAGE_DATA_OVERRUN | img_rc::INVALID_LENGTH
        ) {
            let sequence = offered.unwrap_or_else(|| {
                self.core
                    .state()
                    .download
                    .map_or(0, |d| self.slot_sequence(d.slot))
            });
            self.core.note(keyway_audit::Event::UpdateRejected {
                sequence,
                reason: keyway_audit::RejectReason::Payload,
            });
        }
    }

    /// A digest or size failure clears the journal's download record, so
    /// the same release never resumes on top of the bad bytes (after a
    /// restart too): it uploads again from its first byte.
    pub(super) fn abandon_failed_download(&mut self, e: &ImgError) {
        if matches!(
            e.rc,
            img_rc::INVALID_HASH | img_rc::INVALID_IMAGE_DATA_OVERRUN | img_rc::INVALID_LENGTH
        ) && self.core.powered()
            && let Err(why) = self.core.abandon_download()
        {
            self.log
                .push(format!("clearing the failed download: {}", why.reason));
        }
    }

    /// One upload request: `off`, `data`, and with `off` 0 `len` and
    /// optionally `sha`, `image`, `upgrade`.
    pub(super) fn upload_chunk(
        &mut self,
        body: &[(Value, Value)],
        by_owner: bool,
        now_ms: u64,
    ) -> Result<Body, Fail> {
        let off = get_u64(body, "off")
            .map_err(inval)?
            .ok_or_else(|| inval("\"off\" is missing".into()))?;
        let data = get_bytes(body, "data")
            .map_err(inval)?
            .ok_or_else(|| inval("\"data\" is missing".into()))?;
        if let Some(i) = get_u64(body, "image").map_err(inval)?
            && i > 1
        {
            return Err(ImgError::new(
                img_rc::INVALID_SLOT,
                MgmtErr::Inval,
                format!("image {i}: the lock has one image (0)"),
            )
            .into());
        }
        if off == 0 {
            let len = get_u64(body, "len")
                .map_err(inval)?
                .ok_or_else(|| inval("\"len\" is required with \"off\" 0".into()))?;
            if len == 0 || len > MAX_UPLOAD {
                return Err(ImgError::new(
                    img_rc::INVALID_IMAGE_TOO_LARGE,
                    MgmtErr::Inval,
                    format!("an upload of {len} bytes: the lock takes 1 to {MAX_UPLOAD}"),
                )
                .into());
            }
            let sha = match get_bytes(body, "sha").map_err(inval)? {
                None => None,
                Some(s) => Some(<[u8; 32]>::try_from(s).map_err(|_| {
                    ImgError::new(
                        img_rc::INVALID_HASH,
                        MgmtErr::Inval,
                        format!("\"sha\" has {} bytes, SHA-256 has 32", s.len()),
                    )
                })?),
            };
            // The same upload again: tell the client where to continue.
            if let Some(u) = self.upload.as_mut()
                && u.peer == self.peer
                && sha.is_some()
                && u.sha == sha
                && u.len == len
                && u.off > 0
            {
                u.by_owner |= by_owner;
                if by_owner && u.owner.is_none() {
                    u.owner = self.auth_key;
                }
                u.last_ms = now_ms;
                return Ok(vec![(text("off"), Value::from(u.off))]);
            }
            // Another peer's idle upload is replaced.
            if self.upload.as_ref().is_some_and(|u| u.peer != self.peer) {
                self.upload = None;
            }
            // A download the journal records (the upload in RAM was lost
            // to a power cut or a restart): continue it.
            if self.upload.is_none()
                && let Some((inst, head, image)) = self.core.resume_download(data, len)
            {
                let mut hasher = Sha256::new();
                hasher.update(&head);
                hasher.update(&image);
                let off = (head.len() + image.len()) as u64;
                self.log.push(format!(
                    "upload resumed from the journal at byte {off} of {len}"
                ));
                self.upload = Some(UploadSession {
                    len,
                    sha,
                    off,
                    hasher,
                    head: Vec::new(),
                    installer: Some(device::DownloadInstaller::Full(Box::new(inst))),
                    by_owner,
                    peer: self.peer,
                    owner: self.auth_key.filter(|_| by_owner),
                    last_ms: now_ms,
                    sequence: crate::suit::inspect(&head)
                        .ok()
                        .map(|i| i.manifest.sequence),
                });
                return Ok(vec![(text("off"), Value::from(off))]);
            }
            self.upload = Some(UploadSession {
                len,
                sha,
                off: 0,
                hasher: Sha256::new(),
                head: Vec::new(),
                installer: None,
                by_owner,
                peer: self.peer,
                owner: self.auth_key.filter(|_| by_owner),
                last_ms: now_ms,
                sequence: None,
            });
        }
        let Some(u) = self.upload.as_mut() else {
            // No session (a reset or a restart lost it): start over.
            return Ok(vec![(text("off"), Value::from(0u8))]);
        };
        if off != u.off {
            // Out of order or repeated: the client continues from here.
            return Ok(vec![(text("off"), Value::from(u.off))]);
        }
        u.last_ms = now_ms;
        let end = off.saturating_add(data.len() as u64);
        if end > u.len {
            let e = ImgError::new(
                img_rc::INVALID_IMAGE_DATA_OVERRUN,
                MgmtErr::Inval,
                format!(
                    "data up to byte {end} overruns the declared length {}",
                    u.len
                ),
            );
            return Err(e.into());
        }
        if let Some(at) = self.cut_mid_upload {
            let at = match at {
                UploadCut::Halfway => u.len / 2,
                UploadCut::AtByte(b) => b,
            };
            if end > at {
                self.cut_mid_upload = None;
                self.core.plan_power_cut(0, end);
                self.log.push(format!(
                    "power cut planned: the upload passes byte {at} (chunk {off}..{end})"
                ));
            }
        }
        let streaming = u.installer.is_some();
        let pending = self
            .pending
            .as_ref()
            .map(|p| (p.sequence, p.version.clone()));
        let result = feed(&mut self.core, u, data, pending.as_ref());
        if !streaming && self.upload.as_ref().is_some_and(|u| u.installer.is_some()) {
            // The download began in the inactive slot: whatever waited
            // there for consent is gone.
            self.pending = None;
            self.clear_update();
        }
        if let Err(e) = result {
            let offered = self.upload.take().and_then(|u| u.sequence);
            self.note_payload_rejection(&e, offered);
            self.abandon_failed_download(&e);
            return Err(e.into());
        }
        let Some(u) = self.upload.as_mut() else {
            return Ok(Vec::new());
        };
        if u.off < u.len {
            return Ok(vec![(text("off"), Value::from(u.off))]);
        }
        // Complete.
        let Some(u) = self.upload.take() else {
            return Ok(Vec::new());
        };
        let len = u.len;
        // A lock in recovery runs nothing to protect: the upload is armed
        // at once. Otherwise it waits, unarmed, for consent.
        let arm = if self.core.running().is_none() {
            Arm::Now
        } else {
            Arm::Later
        };
        let offered = u.sequence;
        let slot = finish(&mut self.core, u, arm).inspect_err(|e| {
            self.note_payload_rejection(e, offered);
            self.abandon_failed_download(e);
        })?;
        // The head's sequence number, parsed when the upload began.
        let sequence = offered.unwrap_or_else(|| self.slot_sequence(slot));
        if arm == Arm::Now {
            self.core
                .note(keyway_audit::Event::UpdateInstalled { sequence, slot });
            self.log.push(format!(
                "upload of {len} bytes complete: slot {slot} armed (recovery); a reset boots it on trial"
            ));
        } else {
            self.clear_update();
            self.refresh_pending();
            self.log.push(format!(
                "upload of {len} bytes complete: slot {slot} holds sequence {sequence}, verified, awaiting consent"
            ));
            self.auto_consent();
            // PROFILE HOOK (forced): schedules the install on its own
            // timer (`tick`), no consent, no policy.
            if self.core.profile == crate::profile::Profile::Forced {
                self.forced_due = Some(ForcedInstall::Scheduled);
            }
        }
        Ok(vec![
            (text("off"), Value::from(len)),
            (text("match"), Value::Bool(true)),
        ])
    }
}

/// Takes `data` at the upload's offset: buffers the head until it can be
/// verified, then streams into the installer. `pending`: the sequence
/// number and version of the update waiting for consent, which an upload
/// without an owner's `auth` may not replace with an older one.
fn feed(
    lock: &mut DeviceCore,
    u: &mut UploadSession,
    data: &[u8],
    pending: Option<&(u64, String)>,
) -> Result<(), ImgError> {
    u.hasher.update(data);
    u.off += data.len() as u64;
    if let Some(inst) = u.installer.as_mut() {
        return lock.push(inst, data);
    }
    u.head.extend_from_slice(data);
    let need = usize::try_from(u.len)
        .unwrap_or(usize::MAX)
        .min(HEAD_WINDOW);
    if u.head.len() < need {
        return Ok(());
    }
    let trust = lock.update_trust();
    let mut state = lock.device_state();
    // PROFILE HOOK (downgrade): no anti-rollback floor.
    if lock.profile == crate::profile::Profile::Downgrade {
        state.sequence_floor = None;
    }
    let (inst, sequence) = begin(lock, u, &trust, &state, pending)?;
    u.sequence = sequence;
    u.installer = Some(inst);
    u.head = Vec::new();
    Ok(())
}

/// Verifies the buffered head and begins the download with it.
fn begin(
    lock: &mut DeviceCore,
    u: &UploadSession,
    trust: &device::Trust,
    state: &keyway_suit::DeviceState,
    pending: Option<&(u64, String)>,
) -> Result<(device::DownloadInstaller, Option<u64>), ImgError> {
    use keyway_audit::{Event, RejectReason};
    // The head is verified once; only a refused head is inspected again,
    // for the sequence number and version the audit log's "offered"
    // record names.
    let offer_of = |m: &keyway_suit::Manifest<'_>| {
        (m.sequence, keyway_vendor::log::audit_version_of(m.version))
    };
    let verified = crate::suit::verify(&u.head, trust, state).map(|v| {
        (
            offer_of(&v.manifest),
            (v.payload, v.integrated, v.manifest_digest, v.delta),
        )
    });
    // PROFILE HOOK (unsigned): signatures that do not verify are ignored.
    let (offered, verified) = match verified {
        Ok((offer, v)) => (Some(offer), Ok(v)),
        Err(e) => {
            let inspected = crate::suit::inspect(&u.head);
            let offer = inspected.as_ref().ok().map(|i| offer_of(&i.manifest));
            let unsigned = lock.profile == crate::profile::Profile::Unsigned
                && matches!(
                    keyway_vendor::check::Check::of(&e),
                    keyway_vendor::check::Check::Signatures | keyway_vendor::check::Check::KeySet
                );
            match inspected {
                Ok(i) if unsigned => (
                    offer,
                    Ok((i.payload, i.integrated, i.manifest_digest, i.delta)),
                ),
                _ => (offer, Err(e)),
            }
        }
    };
    // The upload keeps the sequence number.
    let offered_sequence = offered.as_ref().map(|(s, _)| *s);
    let sequence = offered_sequence.unwrap_or(0);
    if let Some((sequence, version)) = offered {
        lock.note(Event::UpdateOffered { sequence, version });
    }
    let (payload, integrated, manifest_digest, delta) = verified.map_err(|e| {
        lock.note(Event::UpdateRejected {
            sequence,
            reason: device::reject_reason(&e),
        });
        let mut r = device::envelope_refusal(&e);
        if matches!(e, keyway_suit::Error::Malformed { .. }) && u.head.len() < u.len as usize {
            r.reason.push_str(&format!(
                " (within the first {} bytes, where the envelope head must end)",
                u.head.len()
            ));
        }
        r
    })?;
    let exp = payload.ok_or_else(|| {
        ImgError::new(
            img_rc::NO_IMAGE,
            MgmtErr::Inval,
            "the envelope's manifest names no image",
        )
    })?;
    let ip = integrated.ok_or_else(|| {
        ImgError::new(
            img_rc::INVALID_IMAGE_HEADER,
            MgmtErr::Inval,
            "the envelope does not carry its image (a detached payload cannot be uploaded)",
        )
    })?;
    let total = (ip.offset as u64).saturating_add(ip.len);
    if total != u.len {
        lock.note(Event::UpdateRejected {
            sequence,
            reason: RejectReason::Payload,
        });
        return Err(ImgError::new(
            img_rc::INVALID_LENGTH,
            MgmtErr::Inval,
            format!(
                "the envelope is {total} bytes (head {} + image {}), the upload declared {}",
                ip.offset, ip.len, u.len
            ),
        ));
    }
    if let Some(e) = downgrade_refusal(u.by_owner, sequence, pending) {
        lock.note(Event::UpdateRejected {
            sequence,
            reason: RejectReason::AntiRollback,
        });
        return Err(e);
    }
    let head = u.head.get(..ip.offset).unwrap_or(&[]);
    // A delta for another image than the running one: refused at the head,
    // before anything is written; the client sends the full image instead.
    if let Some(e) = delta.as_ref().and_then(|d| lock.delta_refusal(d)) {
        lock.note(Event::UpdateRejected {
            sequence,
            reason: RejectReason::Compatibility,
        });
        return Err(e);
    }
    lock.note(Event::UpdateVerified { sequence });
    let mut inst = lock.begin_download(&exp, delta.as_ref(), manifest_digest, head)?;
    lock.note(Event::DownloadStarted { sequence });
    let rest = u.head.get(ip.offset..).unwrap_or(&[]);
    lock.push(&mut inst, rest)?;
    Ok((inst, offered_sequence))
}

/// Why an upload of `sequence` may not begin: one made without an
/// owner's `auth` (the presence window, a stock MCUmgr tool) never
/// replaces a pending newer release with an older one. An owner may.
pub(crate) fn downgrade_refusal(
    by_owner: bool,
    sequence: u64,
    pending: Option<&(u64, String)>,
) -> Option<ImgError> {
    let (p, version) = pending?;
    (!by_owner && sequence < *p).then(|| {
        ImgError::new(
            img_rc::CURRENT_VERSION_IS_NEWER,
            MgmtErr::Inval,
            format!(
                "sequence {sequence} would replace the pending {version} (sequence {p}), which is newer; only an owner's signed upload may"
            ),
        )
    })
}

/// All bytes arrived: the file's SHA-256 must match `sha`, then the
/// installer checks the image digest and marks the slot pending.
fn finish(lock: &mut DeviceCore, u: UploadSession, arm: Arm) -> Result<u8, ImgError> {
    let got: [u8; 32] = u.hasher.finalize().into();
    if let Some(want) = u.sha
        && want != got
    {
        return Err(ImgError::new(
            img_rc::INVALID_HASH,
            MgmtErr::Inval,
            format!(
                "the upload's SHA-256 is {}, \"sha\" announced {}",
                keyway_vendor::keys::hex(&got),
                keyway_vendor::keys::hex(&want)
            ),
        ));
    }
    let inst = u.installer.ok_or_else(|| {
        ImgError::new(
            img_rc::INVALID_IMAGE_HEADER,
            MgmtErr::Inval,
            "the upload ended before its envelope head",
        )
    })?;
    let delta = matches!(inst, device::DownloadInstaller::Delta(_));
    let slot = lock.finish(inst, arm)?;
    if delta {
        lock.note_delta_upload(slot, got);
    }
    Ok(slot)
}
