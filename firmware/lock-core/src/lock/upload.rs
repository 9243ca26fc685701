//! The image upload: the envelope's head buffered until it decodes, then
//! verified (`keyway-suit`: signature, identity, the update rule above the
//! floor) before a byte of the slot is written; the `Installer` then
//! streams the payload into the inactive slot, unarmed; a refusal is
//! logged with its reason and answered with the image group's code.

use super::*;

impl<F: NorFlash> Shell<'_, F> {
    /// An upload chunk: the head buffered until it holds the envelope up
    /// to its payload, verified, the installer begun; payload bytes pushed;
    /// the last chunk finishes the slot unarmed and makes it the pending
    /// update. A wrong offset gets the offset wanted (as MCUmgr does). Any
    /// failure drops the upload (and the installer's download record with
    /// it) and is logged. Returns the next offset and, at the end, whether
    /// the client's SHA-256 matched.
    ///
    /// `by` is the request's authority: an upload without an owner's
    /// session (the presence window, a stock MCUmgr tool) never replaces a
    /// pending newer release with an older one ([`Shell::begin`]); the
    /// pending release stays until a new head has verified.
    pub(super) fn upload(
        &mut self,
        u: &img::Upload<'_>,
        by: Authority,
    ) -> Result<(u64, Option<bool>), u16> {
        if u.off == 0 {
            let Some(len) = u.len else {
                return Err(img_rc::INVALID_LENGTH);
            };
            let capacity = u64::from(self.map.slot_len());
            // The client's SHA-256 of the file (optional in MCUmgr).
            let sha: Option<[u8; 32]> = match u.sha {
                Some(s) => Some(s.try_into().map_err(|_| img_rc::INVALID_HASH)?),
                None => None,
            };
            if len > capacity {
                return Err(img_rc::INVALID_LENGTH);
            }
            self.upload.installer = None;
            self.upload.total = len;
            self.upload.next = 0;
            self.upload.sha = sha;
            self.upload.hasher = Sha256::new();
            self.upload.head_len = 0;
            self.upload.version = VersionText::EMPTY;
            // Until a head names one (a refusal before that logs 0).
            self.upload.sequence = 0;
            self.upload.by_owner = matches!(by, Authority::Owner(_));
        }
        if u.off != self.upload.next || self.upload.total == 0 {
            return Ok((self.upload.next, None));
        }
        if u.off + u.data.len() as u64 > self.upload.total {
            self.upload.total = 0;
            return Err(img_rc::INVALID_LENGTH);
        }
        self.reject = None;
        let r = self.take(u.data);
        if r.is_err() {
            self.upload.installer = None;
            self.upload.total = 0;
            let reason = self.reject.take().unwrap_or(RejectReason::Payload);
            let _ = self.audit(&Audit::UpdateRejected {
                sequence: self.upload.sequence,
                reason,
            });
        }
        r
    }

    pub(super) fn take(&mut self, data: &[u8]) -> Result<(u64, Option<bool>), u16> {
        self.upload.hasher.update(data);
        self.upload.next += data.len() as u64;
        let installer_err = |_| img_rc::INVALID_HASH;
        // The installer is kept in the shell between chunks; its flash
        // handle type is the shell's (see `Upload::installer`).
        if let Some(installer) = self.upload.installer.as_mut() {
            installer
                .push(&mut self.flash, &mut self.journal, data)
                .map_err(installer_err)?;
        } else {
            // The head is buffered up to HEAD_MAX (a chunk may be larger:
            // its rest goes to the installer once the head verified).
            let from = self.upload.head_len;
            let k = data.len().min(HEAD_MAX - from);
            self.upload.head[from..from + k].copy_from_slice(&data[..k]);
            self.upload.head_len = from + k;
            self.begin()?;
            let rest = &data[k..];
            if !rest.is_empty() {
                // No installer yet: no envelope head fits HEAD_MAX (not
                // a SUIT envelope, e.g. an unsigned binary).
                let Some(installer) = self.upload.installer.as_mut() else {
                    self.reject = Some(RejectReason::Decoding);
                    return Err(img_rc::INVALID_IMAGE_HEADER);
                };
                installer
                    .push(&mut self.flash, &mut self.journal, rest)
                    .map_err(installer_err)?;
            }
        }
        if self.upload.next < self.upload.total {
            return Ok((self.upload.next, None));
        }
        let installer = self
            .upload
            .installer
            .take()
            .ok_or(img_rc::INVALID_IMAGE_HEADER)?;
        let slot = installer
            .finish(&mut self.flash, &mut self.journal, Arm::Later)
            .map_err(installer_err)?;
        let digest: [u8; 32] = core::mem::take(&mut self.upload.hasher).finalize().into();
        let matched = self.upload.sha.is_none_or(|s| s == digest);
        let sequence = self.upload.sequence;
        let manifest = self.upload.manifest;
        self.pending = Some(Ready {
            slot,
            sequence,
            digest,
            manifest,
            matched,
            notes_offered: false,
            armed: false,
            consented: false,
            version: self.upload.version,
        });
        self.audit(&Audit::UpdateVerified { sequence })
            .map_err(|_| img_rc::FLASH_WRITE_FAILED)?;
        Ok((self.upload.next, Some(matched)))
    }

    /// The identity an upload is verified for: the inactive slot.
    pub(super) fn identity_for_upload(&self) -> DeviceIdentity {
        let mut identity = self.identity;
        identity.slot = Some(u64::from(1 - self.journal.state().active_slot.min(1)));
        identity
    }

    /// Once the buffered head reaches into the payload: verify it (update
    /// rule: above the floor, for the inactive slot), begin the installer
    /// with the head, push the payload bytes already received.
    #[inline(never)]
    pub(super) fn begin(&mut self) -> Result<(), u16> {
        let head = &self.upload.head[..self.upload.head_len];
        let Ok(envelope) = keyway_suit::Envelope::decode(head) else {
            return Ok(()); // not yet: the head is still arriving
        };
        let Some(p) = envelope.payload else {
            return Err(img_rc::INVALID_IMAGE_HEADER);
        };
        let identity = self.identity_for_upload();
        let state = DeviceState {
            sequence_floor: self.journal.state().floor,
            keyset: None,
        };
        let mut verified = Verified::empty();
        if let Err(e) =
            keyway_suit::verify_envelope_into(&mut verified, head, &self.anchors, &identity, &state)
        {
            // The reason, to the client (the image group's code) and to
            // the audit log.
            let (rc, reason) = match e {
                keyway_suit::Error::Rollback { .. } => {
                    (img_rc::CURRENT_VERSION_IS_NEWER, RejectReason::AntiRollback)
                }
                keyway_suit::Error::BadSignature { .. }
                | keyway_suit::Error::BelowThreshold { .. }
                | keyway_suit::Error::ManifestDigestMismatch
                | keyway_suit::Error::UnsupportedAuthentication(_) => {
                    (img_rc::INVALID_HASH, RejectReason::Signatures)
                }
                keyway_suit::Error::WrongVendor { .. } | keyway_suit::Error::WrongClass { .. } => {
                    (img_rc::INVALID_IMAGE_HEADER, RejectReason::Compatibility)
                }
                _ => (img_rc::INVALID_IMAGE_HEADER, RejectReason::Decoding),
            };
            // The log names the sequence number the refused manifest
            // claims (as the simulated lock does), unverified.
            self.upload.sequence = match e {
                keyway_suit::Error::Rollback { got, .. } => got,
                _ => claimed_sequence(head),
            };
            self.reject = Some(reason);
            return Err(rc);
        }
        // The simulated lock's rule (keyway-lock `downgrade_refusal`): only
        // an owner's upload may replace a pending newer release with an
        // older one. The pending release is in the slot this upload would
        // write, so the check comes before the installer begins.
        if !self.upload.by_owner
            && self
                .pending
                .as_ref()
                .is_some_and(|p| verified.sequence < p.sequence)
        {
            self.upload.sequence = verified.sequence;
            self.reject = Some(RejectReason::AntiRollback);
            return Err(img_rc::CURRENT_VERSION_IS_NEWER);
        }
        let expectation = verified
            .payload
            .as_ref()
            .ok_or(img_rc::INVALID_IMAGE_HEADER)?;
        // The slot is about to be rewritten: what it held is no longer
        // a pending update.
        self.pending = None;
        let mut installer = Installer::begin_with_manifest(
            &mut self.flash,
            &mut self.journal,
            Target::new(&self.layout, expectation, verified.manifest_digest),
            &head[..p.offset],
        )
        .map_err(|_| img_rc::FLASH_WRITE_FAILED)?;
        installer
            .push(&mut self.flash, &mut self.journal, &head[p.offset..])
            .map_err(|_| img_rc::INVALID_HASH)?;
        let sequence = verified.sequence;
        self.upload.manifest = verified.manifest_digest;
        let version = verified
            .notes
            .and_then(|n| n.version)
            .map_or(VersionText::EMPTY, VersionText::new);
        drop(verified);
        self.upload.sequence = sequence;
        self.upload.version = version;
        self.upload.installer = Some(installer);
        self.upload.head_len = p.offset;
        let _ = self.audit(&Audit::DownloadStarted { sequence });
        Ok(())
    }

    pub(super) fn text(&self, r: &Range<usize>) -> &str {
        self.upload
            .head
            .get(r.clone())
            .and_then(|b| core::str::from_utf8(b).ok())
            .unwrap_or("")
    }
}

/// The sequence number an envelope head's manifest claims, read without
/// checking anything (for the log of a refused upload only; 0 if it does
/// not decode).
#[inline(never)]
fn claimed_sequence(head: &[u8]) -> u64 {
    keyway_suit::inspect_envelope(head).map_or(0, |i| i.manifest.sequence)
}
