//! The image group for stock MCUmgr tools: the state answer (each slot
//! re-verified from its stored manifest, named by its envelope's SHA-256)
//! and the state write (a test arms the pending update; a confirm is the
//! lock's own self-test's).

use super::*;

impl<F: NorFlash> Shell<'_, F> {
    /// The image group's state answer: each slot re-verified from its
    /// stored manifest (bootable), its signed version text as the version,
    /// its manifest digest as the hash; active, pending (armed) and
    /// confirmed from the journal.
    #[cfg(feature = "image-state")]
    pub(super) fn image_state(&mut self, w: &mut Writer<'_>) -> Result<(), ServeError> {
        let state = *self.journal.state();
        let running = running_slot(&state);
        let mut infos: [Option<SlotInfo>; 2] = [None, None];
        for (slot, info) in infos.iter_mut().enumerate() {
            *info = self.check_slot(slot as u8);
        }
        // An upload in progress keeps its head in the buffer just used.
        self.upload.head_len = 0;
        if self.upload.installer.is_none() {
            self.upload.total = 0;
        }
        let mut hashes = [[0u8; 32]; 2];
        for (i, info) in infos.iter_mut().enumerate() {
            let digest = info.as_ref().and_then(|x| self.envelope_digest(i as u8, x));
            match digest {
                Some(d) => hashes[i] = d,
                None => *info = None,
            }
        }
        // The signed release's version text: the running one's and the
        // pending one's are known; another verified slot's is read.
        let mut versions = [VersionText::EMPTY; 2];
        for (i, info) in infos.iter().enumerate() {
            if info.is_none() {
                continue;
            }
            versions[i] = match &self.pending {
                _ if i == usize::from(running) => self.running_version,
                Some(p) if usize::from(p.slot) == i => p.version,
                _ => self.stored_version(i as u8),
            };
        }
        let text = [versions[0].as_str(), versions[1].as_str()];
        let slot = |i: usize| {
            let info = infos[i].as_ref();
            img::ImageSlot {
                image: Some(0),
                slot: i as u64,
                version: text[i],
                hash: if info.is_some() {
                    &hashes[i][..]
                } else {
                    &[][..]
                },
                bootable: info.is_some(),
                pending: matches!(state.trial, TrialState::Pending { slot } if usize::from(slot) == i),
                // The image the bootloader falls back to is confirmed; a
                // trial runs from the other slot until its confirm.
                confirmed: usize::from(state.active_slot) == i,
                active: usize::from(running) == i,
                permanent: false,
            }
        };
        let both = [slot(0), slot(1)];
        img::StateRsp {
            images: keyway_smp::seq::Seq::Items(&both),
        }
        .encode(w)
        .map_err(|_| NO_MEM)
    }

    /// An image state write: `confirm` with the running image (or no hash)
    /// is accepted (the lock confirms by its own self-test); a test of
    /// the pending update's hash (its envelope digest or its manifest
    /// digest) is consent: a person's at the lock (the window) arms it for
    /// the reset their tool sends next; an owner's installs at once as the
    /// policy allows (refused `BadState` while it postpones, as the
    /// simulated lock does).
    #[cfg(feature = "image-state")]
    pub(super) fn state_write(
        &mut self,
        sw: &img::StateWrite<'_>,
        by: Authority,
    ) -> Result<(), ServeError> {
        let bad = |code| refused(MgmtErr::Inval, None, Some(code));
        if sw.confirm == Some(true) {
            return match (sw.hash, self.running_digest) {
                (None, _) => Ok(()),
                (Some(h), Some(r)) if h == r => Ok(()),
                _ => Err(bad(img_rc::HASH_NOT_FOUND)),
            };
        }
        let Some(h) = sw.hash else {
            return Err(bad(img_rc::HASH_NOT_FOUND));
        };
        match self.pending.as_mut() {
            Some(p) if h == p.digest || h == p.manifest => {
                if !matches!(by, Authority::Owner(_)) {
                    self.arm();
                    return Ok(());
                }
                p.consented = true;
                self.install_if_allowed();
                if self.reset_armed {
                    Ok(())
                } else {
                    Err(refused(MgmtErr::BadState, None, None))
                }
            }
            _ => Err(bad(img_rc::HASH_NOT_FOUND)),
        }
    }

    /// The SHA-256 of the envelope a verified slot holds: its stored
    /// head (the manifest area, the slot's last page) then its image, as
    /// the owner's client and MCUmgr's tools name an image (the file's
    /// hash). `None` if the area does not read.
    pub(super) fn envelope_digest(&mut self, slot: u8, info: &SlotInfo) -> Option<[u8; 32]> {
        let start = self.layout.slots.get(usize::from(slot))?.start;
        let (area, n) = self.stored_len(slot)?;
        let mut h = Sha256::new();
        let mut buf = [0u8; 256];
        for (from, len) in [(area + HEADER as u32, n as u64), (start, info.image_size)] {
            let mut done = 0u64;
            while done < len {
                let k = (len - done).min(buf.len() as u64) as usize;
                self.flash.read(from + done as u32, &mut buf[..k]).ok()?;
                h.update(&buf[..k]);
                done += k as u64;
            }
        }
        Some(h.finalize().into())
    }
}

impl<F: NorFlash> Shell<'_, F> {
    /// Where `slot`'s manifest area begins (the slot's last page).
    pub(super) fn manifest_area(&self, slot: u8) -> Option<u32> {
        Some(self.layout.slots.get(usize::from(slot))?.end - SECTOR as u32)
    }

    /// `slot`'s manifest area and the length of the head it stores (its
    /// header read by `keyway-device`'s rule).
    fn stored_len(&mut self, slot: u8) -> Option<(u32, usize)> {
        let area = self.manifest_area(slot)?;
        let mut header = [0u8; HEADER];
        self.flash.read(area, &mut header).ok()?;
        let (len, _crc) = manifest_area::parse_header(&header)?;
        Some((area, len))
    }

    /// The head `slot` stores, read into the upload's head buffer and
    /// verified again (the boot rule, as the slot was): where its release
    /// notes' version, description and CVE ids lie in that buffer. The
    /// buffer is the upload's: the notes are read again whenever they are
    /// served, since every slot check reuses it.
    #[inline(never)]
    pub(super) fn stored_notes(&mut self, slot: u8) -> Option<StoredNotes> {
        let (area, len) = self.stored_len(slot)?;
        let head = self.upload.head.get_mut(..len)?;
        self.flash.read(area + HEADER as u32, head).ok()?;
        let head = &self.upload.head[..len];
        let mut identity = self.identity;
        identity.slot = Some(u64::from(slot));
        let state = DeviceState {
            sequence_floor: boot_floor(self.journal.state().floor),
            keyset: None,
        };
        let mut verified = Verified::empty();
        keyway_suit::verify_envelope_into(&mut verified, head, &self.anchors, &identity, &state)
            .ok()?;
        let base = head.as_ptr() as usize;
        let span = |s: Option<&str>| {
            s.map_or(0..0, |s| {
                let from = (s.as_ptr() as usize).wrapping_sub(base);
                from..from + s.len()
            })
        };
        let n = verified.notes?;
        let mut cves = [const { None }; CVES_MAX];
        for (c, to) in n.cves().zip(cves.iter_mut()) {
            // The SMP group's severity is the same word.
            *to = Severity::parse(c.severity.as_str()).map(|s| (span(Some(c.id)), s));
        }
        Some(StoredNotes {
            version: span(n.version),
            notes: span(n.description),
            cves,
        })
    }

    /// The version text of the release `slot` stores (none if it does
    /// not verify or names none).
    pub(super) fn stored_version(&mut self, slot: u8) -> VersionText {
        match self.stored_notes(slot) {
            Some(n) => VersionText::new(self.text(&n.version)),
            None => VersionText::EMPTY,
        }
    }
}

use keyway_smp::keyway_group::Severity;

/// The most CVEs of a release the notes answer lists.
pub const CVES_MAX: usize = 8;

/// Where a stored head's release notes lie in the upload's head buffer.
pub(super) struct StoredNotes {
    /// The version text.
    pub version: Range<usize>,
    /// The notes (Markdown).
    pub notes: Range<usize>,
    /// The CVEs it fixes: each id's place and its severity.
    pub cves: [Option<(Range<usize>, Severity)>; CVES_MAX],
}
