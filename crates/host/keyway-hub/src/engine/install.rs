//! One install on one lock: the live progress table and the push under
//! the lock's `push:` lease.

use crate::link::InstallOutcome;
use crate::model::{Decision, Digest, EventLevel, LockId, LockRecord, Postponement};

use super::decide::{self};
use super::{
    BusyGuard, Hub, HubError, INSTALL_REFUSED, InstallReport, Phase, Progress, lock_err, push_lease,
};

impl Hub {
    /// The live progress of pushes.
    pub fn progress(&self) -> Vec<Progress> {
        let mut v: Vec<Progress> = self
            .progress
            .lock()
            .map(|p| p.values().cloned().collect())
            .unwrap_or_default();
        v.sort_by_key(|p| p.lock);
        v
    }

    /// One lock's push progress.
    pub fn progress_of(&self, id: LockId) -> Option<Progress> {
        self.progress.lock().ok().and_then(|p| p.get(&id).cloned())
    }

    pub(super) fn set_progress(
        &self,
        lock: LockId,
        release: Digest,
        f: impl FnOnce(&mut Progress),
    ) {
        let now = self.now();
        let fresh = || Progress {
            lock,
            release,
            phase: Phase::Connecting,
            done: 0,
            total: 0,
            delta: false,
            postponed: None,
            error: None,
            error_code: None,
            updated_at: now,
        };
        if let Ok(mut table) = self.progress.lock() {
            let p = table.entry(lock).or_insert_with(fresh);
            if p.release != release {
                *p = fresh();
            }
            f(p);
            p.updated_at = now;
        }
    }

    /// Pushes a release the owner accepted to a lock and gives the lock
    /// the consent: refused without an accepted consent in the store.
    pub fn install(&self, id: LockId, release: Digest) -> Result<InstallReport, HubError> {
        let lock = self.lock(id)?;
        if lock.device_key.is_none() {
            return Err(HubError::NotPaired(id));
        }
        if self.store.release(&release)?.is_none() {
            return Err(HubError::NoRelease(release));
        }
        if decide::decision(&self.store.consents(id)?, &release) != Some(Decision::Accept) {
            return Err(HubError::NoConsent { lock: id, release });
        }
        {
            let mut busy = self
                .busy
                .lock()
                .map_err(|_| HubError::Invalid("poisoned".into()))?;
            if !busy.insert(id) {
                return Err(HubError::Busy(id));
            }
        }
        let mut guard = BusyGuard {
            hub: self,
            lock: id,
            leased: false,
        };
        // Across hubs sharing the store: one push to a lock at a time.
        if !self.take_lease(&push_lease(id))? {
            return Err(HubError::Busy(id));
        }
        guard.leased = true;
        self.set_progress(id, release, |p| {
            p.phase = Phase::Connecting;
            p.error = None;
            p.error_code = None;
        });
        let r = self.install_locked(lock, release);
        match &r {
            Ok(InstallReport::Refused { .. }) | Err(_) => self.note_retry(id, false),
            Ok(_) => self.note_retry(id, true),
        }
        if let Err(e) = &r {
            let msg = e.to_string();
            let code = e.code();
            self.set_progress(id, release, |p| {
                p.phase = Phase::Failed;
                p.error = Some(msg.clone());
                p.error_code = Some(code);
            });
            if !matches!(e, HubError::LockLied { .. }) {
                self.event(Some(id), EventLevel::Warning, "install_failed", &msg)?;
            }
        }
        r
    }

    pub(super) fn install_locked(
        &self,
        mut lock: LockRecord,
        release: Digest,
    ) -> Result<InstallReport, HubError> {
        let id = lock.id;
        let mut link = self.connect(&lock)?;
        let snap = link.status().map_err(lock_err(id))?;
        self.accept_status(&mut lock, snap, None)?;
        let known = self.known(&lock.class)?;
        let Some(offer) = decide::offers(&known, &lock)
            .into_iter()
            .find(|o| o.release == release)
        else {
            let target = known.iter().find(|k| k.release.digest == release);
            let running = lock
                .snapshot
                .as_ref()
                .and_then(|s| decide::running_sequence(&known, s));
            if let (Some(t), Some(r)) = (target, running)
                && r >= t.release.sequence
            {
                self.set_progress(id, release, |p| p.phase = Phase::Done);
                return Ok(InstallReport::AlreadyRunning);
            }
            return Err(HubError::NotApplicable { lock: id, release });
        };
        let mut envelopes = Vec::new();
        for d in &offer.envelopes {
            envelopes.push(
                self.store
                    .release(d)?
                    .ok_or(HubError::NoRelease(*d))?
                    .envelope,
            );
        }
        let refs: Vec<&[u8]> = envelopes.iter().map(Vec::as_slice).collect();
        self.event(
            Some(id),
            EventLevel::Info,
            "push_started",
            &format!(
                "pushing version {} ({})",
                offer.version,
                if offer.delta {
                    "delta, then the full image if refused"
                } else {
                    "full image"
                }
            ),
        )?;
        self.set_progress(id, release, |p| {
            p.phase = Phase::Uploading;
            p.delta = offer.delta;
            p.total = refs.first().map_or(0, |e| e.len() as u64);
        });
        let pushed = link
            .push(&refs, &mut |done, total| {
                self.set_progress(id, release, |p| {
                    p.done = done;
                    p.total = total;
                })
            })
            .map_err(lock_err(id))?;
        self.event(
            Some(id),
            EventLevel::Info,
            "push_done",
            &format!(
                "uploaded {} bytes ({}{})",
                pushed.bytes,
                if pushed.delta { "delta" } else { "full image" },
                if pushed.resumed_from > 0 {
                    format!(", resumed at byte {}", pushed.resumed_from)
                } else {
                    String::new()
                }
            ),
        )?;
        self.set_progress(id, release, |p| {
            p.phase = Phase::Installing;
            p.delta = pushed.delta;
        });
        let outcome = link
            .consent(true, self.config.install_wait_ms)
            .map_err(lock_err(id))?;
        match outcome {
            InstallOutcome::Running => {
                let snap = link.status().map_err(lock_err(id))?;
                self.accept_status(&mut lock, snap, Some((&release, &offer.image)))?;
                self.set_progress(id, release, |p| p.phase = Phase::Done);
                self.event(
                    Some(id),
                    EventLevel::Info,
                    "install_running",
                    &format!("runs version {}", offer.version),
                )?;
                Ok(InstallReport::Running)
            }
            InstallOutcome::Postponed(reason) => {
                if let Ok(snap) = link.status() {
                    // Best effort: the postponement stands without it.
                    let _ = self.accept_status(&mut lock, snap, None);
                }
                let words = match &reason {
                    Postponement::BoltLocked => {
                        "the bolt is thrown; it installs once it is withdrawn".to_string()
                    }
                    Postponement::BatteryLow { have_mwh, need_mwh } => format!(
                        "battery low ({have_mwh} of {need_mwh} mWh); it installs once charged"
                    ),
                };
                self.set_progress(id, release, |p| {
                    p.phase = Phase::Postponed;
                    p.postponed = Some(reason.clone());
                });
                self.event(Some(id), EventLevel::Warning, "install_postponed", &words)?;
                Ok(InstallReport::Postponed { reason })
            }
            InstallOutcome::Refused(why) => {
                self.set_progress(id, release, |p| {
                    p.phase = Phase::Failed;
                    p.error = Some(why.clone());
                    p.error_code = Some(INSTALL_REFUSED);
                });
                self.event(Some(id), EventLevel::Warning, "install_refused", &why)?;
                Ok(InstallReport::Refused {
                    reason: why,
                    code: INSTALL_REFUSED,
                })
            }
            InstallOutcome::Pending => {
                self.event(
                    Some(id),
                    EventLevel::Info,
                    "install_pending",
                    "no outcome yet; the hub checks again on its next tick",
                )?;
                Ok(InstallReport::Pending)
            }
        }
    }
}
