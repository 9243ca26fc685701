//! What the shell serves once the agent authorized it: the image group
//! (upload, state, state write), the release notes, the log export in
//! chunks; anything else `NotSup`.

use super::*;
use keyway_smp::keyway_group::Severity;

impl<F: NorFlash> Shell<'_, F> {
    /// The export's next chunk at `off` (0 starts a new export; its length
    /// is counted first by a dry run of the same export).
    pub(super) fn log_chunk(
        &mut self,
        off: u64,
        out: &mut [u8],
    ) -> Result<(usize, u64), Fail<F::Error>> {
        if off == 0 {
            let export = self.log.export(self.time(self.now_ms));
            let mut probe = export.clone();
            let mut len = 0u64;
            loop {
                let n = probe.fill(&self.log, &mut self.flash, &self.signer, out)?;
                if n == 0 {
                    break;
                }
                len += n as u64;
            }
            self.exporting = Some(Exporting {
                export,
                pos: 0,
                len,
            });
        }
        let e = self
            .exporting
            .as_mut()
            .filter(|e| e.pos == off)
            .ok_or(Fail::State("export offset"))?;
        let n = e
            .export
            .fill(&self.log, &mut self.flash, &self.signer, out)?;
        e.pos += n as u64;
        Ok((n, e.len))
    }

    /// [`Device::serve`]: the image group, the release notes and the log
    /// export, for `call.by`.
    pub(super) fn serve_request(
        &mut self,
        call: Authorized<'_>,
        w: &mut Writer<'_>,
    ) -> Result<(), ServeError> {
        match call.request {
            #[cfg(feature = "image-state")]
            Request::ImageState => self.image_state(w),
            #[cfg(feature = "image-state")]
            Request::ImageStateWrite(sw) => {
                self.state_write(sw, call.by)?;
                self.image_state(w)
            }
            Request::Upload(u) => match self.upload(u, call.by) {
                Ok((off, matched)) => img::UploadRsp { off, matched }
                    .encode(w)
                    .map_err(|_| NO_MEM),
                Err(code) => Err(refused(MgmtErr::Inval, None, Some(code))),
            },
            Request::Notes(_) => {
                let Some(slot) = self.pending.as_ref().map(|p| p.slot) else {
                    return Err(refused(MgmtErr::NoEnt, Some(Refusal::NothingPending), None));
                };
                // Read from the slot each time (the head buffer is reused).
                let stored = self.stored_notes(slot);
                let Some(p) = self.pending.as_ref() else {
                    return Err(refused(MgmtErr::NoEnt, Some(Refusal::NothingPending), None));
                };
                let none = keyway_group::Cve {
                    id: "",
                    severity: Severity::Low,
                };
                let mut cves = [none; CVES_MAX];
                let mut n = 0;
                let text = stored.as_ref().map_or(0..0, |s| s.notes.clone());
                for (id, severity) in stored.iter().flat_map(|s| s.cves.iter().flatten()) {
                    cves[n] = keyway_group::Cve {
                        id: self.text(id),
                        severity: *severity,
                    };
                    n += 1;
                }
                let (state, why) = p.state();
                let notes = keyway_group::Notes {
                    sequence: p.sequence,
                    version: p.version.as_str(),
                    notes: self.text(&text),
                    cves: keyway_smp::seq::Seq::Items(&cves[..n]),
                    min_battery_mwh: None,
                    state,
                    reason: why.map(|_| POSTPONED_LOCKED),
                };
                notes.encode(w).map_err(|_| NO_MEM)?;
                if let Some(p) = self.pending.as_mut() {
                    p.notes_offered = true;
                }
                Ok(())
            }
            Request::Log(l) => {
                let mut chunk = [0u8; LOG_CHUNK];
                let (n, len) = self
                    .log_chunk(l.off, &mut chunk)
                    .map_err(|_| refused(MgmtErr::Inval, None, None))?;
                keyway_group::LogRsp {
                    off: l.off,
                    len,
                    data: &chunk[..n],
                }
                .encode(w)
                .map_err(|_| NO_MEM)
            }
            _ => Err(refused(MgmtErr::NotSup, None, None)),
        }
    }
}
