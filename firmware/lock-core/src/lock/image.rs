//! The image group for stock MCUmgr tools: the state answer (each slot
//! re-verified from its stored manifest, named by its envelope's SHA-256)
//! and the state write (a test arms the pending update; a confirm is the
//! lock's own self-test's).

use super::*;

impl<F: NorFlash> Shell<'_, F> {
    /// The image group's state answer: each slot re-verified from its
    /// stored manifest (bootable), its sequence number as the version,
    /// its manifest digest as the hash; active, pending (armed) and
    /// confirmed from the journal.
    #[cfg(feature = "image-state")]
    pub(super) fn image_state(&mut self, w: &mut Writer<'_>) -> Result<(), ServeError> {
        let state = *self.journal.state();
        let running = running_slot(&state);
        let mut infos: [Option<SlotInfo>; 2] = [None, None];
        {
            let mut check = VerifiedSlot::<256>::new(
                &self.layout,
                &self.anchors,
                &self.identity,
                &state,
                None,
                &mut self.upload.head,
            );
            for (slot, info) in infos.iter_mut().enumerate() {
                *info = check.check(&mut self.flash, slot as u8).ok();
            }
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
        let mut texts = [[0u8; 20]; 2];
        let mut lens = [0usize; 2];
        for (i, info) in infos.iter().enumerate() {
            if let Some(info) = info {
                lens[i] = decimal(info.sequence, &mut texts[i]);
            }
        }
        let [t0, t1] = &texts;
        let text = [
            core::str::from_utf8(&t0[..lens[0]]).unwrap_or(""),
            core::str::from_utf8(&t1[..lens[1]]).unwrap_or(""),
        ];
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
                confirmed: usize::from(state.active_slot) == i
                    && matches!(state.trial, TrialState::None | TrialState::Confirmed),
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
    /// digest) arms it.
    #[cfg(feature = "image-state")]
    pub(super) fn state_write(&mut self, sw: &img::StateWrite<'_>) -> Result<(), ServeError> {
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
        match &self.pending {
            Some(p) if h == p.digest || h == p.manifest => {
                self.arm();
                Ok(())
            }
            _ => Err(bad(img_rc::HASH_NOT_FOUND)),
        }
    }

    /// The SHA-256 of the envelope a verified slot holds: its stored
    /// head (the manifest area, the slot's last page) then its image, as
    /// the owner's client and MCUmgr's tools name an image (the file's
    /// hash). `None` if the area does not read.
    pub(super) fn envelope_digest(&mut self, slot: u8, info: &SlotInfo) -> Option<[u8; 32]> {
        let range = self.layout.slots.get(usize::from(slot))?.clone();
        let area = range.end - SECTOR as u32;
        let mut header = [0u8; 16];
        self.flash.read(area, &mut header).ok()?;
        if header[..4] != *b"KWMF" {
            return None;
        }
        let n = u32::from_le_bytes(header[8..12].try_into().ok()?);
        if n as usize > SECTOR - 16 {
            return None;
        }
        let mut h = Sha256::new();
        let mut buf = [0u8; 256];
        for (from, len) in [(area + 16, u64::from(n)), (range.start, info.image_size)] {
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
