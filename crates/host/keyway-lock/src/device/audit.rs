//! The audit log on the lock's flash: events queue until a time stamp is
//! known, are committed signed by the device key, and exported.

use keyway_audit::{AuditLog, Ed25519Signer, Event, Time};

use super::{DeviceCore, Flash, audit_config};

/// The audit log on the lock's flash, its signer, and the events waiting
/// for a time stamp.
pub(super) struct Audit {
    pub(super) log: AuditLog<Flash>,
    pub(super) signer: Ed25519Signer,
    pub(super) boot: u32,
    pub(super) pending: Vec<Event>,
}

impl DeviceCore {
    /// Opens the audit log on the flash with the device key `signer`;
    /// `boot` is the stored boot counter: every [`DeviceCore::power_on`] raises
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
    /// written by [`DeviceCore::commit_audit`], which supplies the time.
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
}
