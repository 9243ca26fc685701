//! The house's locks: adding, pairing, refreshing what each runs, the
//! owner's consent and auto-install setting, and the audit-log fetch.

use crate::link::{LinkError, LockLink};
use crate::model::{
    Consent, ConsentSource, Decision, Digest, EventLevel, LockId, LockRecord, LockSnapshot,
    LogExport, LogHealth, NewLock, UpdateState,
};

use super::decide::{self, Continuity, Lie, Offer};
use super::{Hub, HubError, Phase, lock_err};

impl Hub {
    // ----- locks ---------------------------------------------------------

    /// Adds a lock by address (not paired yet).
    pub fn add_lock(&self, new: &NewLock) -> Result<LockRecord, HubError> {
        if new.name.trim().is_empty() || new.address.trim().is_empty() || new.class.is_empty() {
            return Err(HubError::Invalid(
                "a lock needs a name, an address and a model (class)".into(),
            ));
        }
        let id = self.store.add_lock(new)?;
        self.event(
            Some(id),
            EventLevel::Info,
            "lock_added",
            &format!("{} at {}", new.name, new.address),
        )?;
        self.lock(id)
    }

    /// One lock.
    pub fn lock(&self, id: LockId) -> Result<LockRecord, HubError> {
        self.store.lock(id)?.ok_or(HubError::NoLock(id))
    }

    /// Every lock.
    pub fn locks(&self) -> Result<Vec<LockRecord>, HubError> {
        Ok(self.store.locks()?)
    }

    /// Removes a lock.
    pub fn remove_lock(&self, id: LockId) -> Result<(), HubError> {
        let lock = self.lock(id)?;
        self.store.remove_lock(id)?;
        if let Ok(mut p) = self.progress.lock() {
            p.remove(&id);
        }
        // Not tied to the lock's id: the lock is gone from the store.
        self.event(
            None,
            EventLevel::Info,
            "lock_removed",
            &format!("lock {id} ({}, {}) removed", lock.name, lock.address),
        )
    }

    /// Pairs a lock with its setup code; the owner must have opened its
    /// presence window (the button press is theirs).
    pub fn pair(&self, id: LockId, setup_code: &str) -> Result<LockRecord, HubError> {
        let mut lock = self.lock(id)?;
        if lock.device_key.is_some() {
            return Err(HubError::AlreadyPaired(id));
        }
        let result = self
            .connector
            .connect(&lock)
            .and_then(|mut link| link.pair(setup_code));
        let paired = match result {
            Ok(p) => p,
            Err(e) => {
                self.event(Some(id), EventLevel::Warning, "pair_failed", &e.to_string())?;
                return Err(lock_err(id)(e));
            }
        };
        lock.device_key = Some(paired.device_key);
        self.store.save_lock(&lock)?;
        // This hub paired it: it acts on it (others sharing the store view it).
        self.owns(id)?;
        self.event(Some(id), EventLevel::Info, "lock_paired", "paired")?;
        // Its first status, best effort: pairing stands without it.
        match self.refresh(id) {
            Ok(l) => Ok(l),
            Err(_) => self.lock(id),
        }
    }

    /// Checks a status against what the hub knows; on a lie, alerts and
    /// returns it (the record is left as it was).
    pub(super) fn accept_status(
        &self,
        lock: &mut LockRecord,
        snap: LockSnapshot,
        expect: Option<(&Digest, &Digest)>,
    ) -> Result<(), HubError> {
        let known = self.known(&lock.class)?;
        let lies = decide::status_lies(&known, lock.snapshot.as_ref(), &snap, expect);
        let now = self.now();
        if let Some(lie) = lies.into_iter().next() {
            lock.last_contact = Some(now);
            self.store.save_lock(lock)?;
            self.event(
                Some(lock.id),
                EventLevel::Alert,
                "lock_lied",
                &lie.sentence(),
            )?;
            return Err(HubError::LockLied { lock: lock.id, lie });
        }
        lock.snapshot = Some(snap);
        lock.last_contact = Some(now);
        self.store.save_lock(lock)?;
        Ok(())
    }

    pub(super) fn connect(&self, lock: &LockRecord) -> Result<Box<dyn LockLink>, HubError> {
        if lock.device_key.is_none() {
            return Err(HubError::NotPaired(lock.id));
        }
        self.connector.connect(lock).map_err(lock_err(lock.id))
    }

    /// Reads a lock's status and keeps it (unless it lies).
    pub fn refresh(&self, id: LockId) -> Result<LockRecord, HubError> {
        let mut lock = self.lock(id)?;
        let snap = self
            .connect(&lock)
            .and_then(|mut l| l.status().map_err(lock_err(id)));
        let snap = match snap {
            Ok(s) => s,
            Err(e) => {
                if let HubError::Link { source, .. } = &e {
                    self.event(
                        Some(id),
                        EventLevel::Warning,
                        "lock_unreachable",
                        &source.to_string(),
                    )?;
                }
                return Err(e);
            }
        };
        let prev = lock.snapshot.clone();
        self.accept_status(&mut lock, snap, None)?;
        self.note_transition(&lock, prev.as_ref())?;
        Ok(lock)
    }

    /// Events for what changed between two statuses (a postponed install
    /// that went through, a trial that reverted).
    pub(super) fn note_transition(
        &self,
        lock: &LockRecord,
        prev: Option<&LockSnapshot>,
    ) -> Result<(), HubError> {
        let (Some(prev), Some(now)) = (prev, lock.snapshot.as_ref()) else {
            return Ok(());
        };
        let pending = match &prev.update {
            UpdateState::Postponed { release, .. }
            | UpdateState::Installing { release }
            | UpdateState::AwaitingConsent { release } => Some(*release),
            _ => None,
        };
        if let Some(release) = pending
            && now.update == UpdateState::Confirmed
        {
            let image = self.image(&release)?;
            if image.is_some() && image == now.image {
                self.set_progress(lock.id, release, |p| p.phase = Phase::Done);
                self.event(
                    Some(lock.id),
                    EventLevel::Info,
                    "update_confirmed",
                    &format!("now runs version {}", now.version),
                )?;
            } else {
                self.event(
                    Some(lock.id),
                    EventLevel::Warning,
                    "update_not_installed",
                    &format!("the lock still runs version {}", now.version),
                )?;
            }
        }
        Ok(())
    }

    /// Sets the owner's standing opt-in for high and critical CVE fixes.
    pub fn set_auto_install(&self, id: LockId, enabled: bool) -> Result<LockRecord, HubError> {
        let mut lock = self.lock(id)?;
        lock.auto_install_critical = enabled;
        self.store.save_lock(&lock)?;
        self.event(
            Some(id),
            EventLevel::Info,
            "auto_install_set",
            if enabled {
                "high and critical CVE fixes install automatically"
            } else {
                "every update asks first"
            },
        )?;
        Ok(lock)
    }

    // ----- updates and consent -------------------------------------------

    /// The updates available to a lock, newest first.
    pub fn updates(&self, id: LockId) -> Result<Vec<Offer>, HubError> {
        let lock = self.lock(id)?;
        Ok(decide::offers(&self.known(&lock.class)?, &lock))
    }

    /// Records the owner's decision on an update for a lock (durable before
    /// anything is sent). The release must be one of the lock's updates:
    /// a consent for anything else is refused and nothing changes.
    pub fn consent(
        &self,
        id: LockId,
        release: Digest,
        decision: Decision,
        source: ConsentSource,
    ) -> Result<Consent, HubError> {
        let lock = self.lock(id)?;
        if self.store.release(&release)?.is_none() {
            return Err(HubError::NoRelease(release));
        }
        let offers = decide::offers(&self.known(&lock.class)?, &lock);
        if !offers.iter().any(|o| o.release == release) {
            return Err(HubError::NotApplicable { lock: id, release });
        }
        let c = Consent {
            lock: id,
            release,
            decision,
            source: source.clone(),
            at: self.now(),
        };
        self.store.put_consent(&c)?;
        let (kind, words) = match (decision, &source) {
            (Decision::Accept, ConsentSource::AutoCritical) => (
                "auto_consent",
                "accepted by the owner's opt-in for high and critical fixes",
            ),
            (Decision::Accept, _) => ("consent_accepted", "the owner accepted"),
            (Decision::Decline, _) => ("consent_declined", "the owner declined"),
        };
        self.event(
            Some(id),
            EventLevel::Info,
            kind,
            &format!("{words} release {}…", &release.to_hex()[..16]),
        )?;
        Ok(c)
    }

    // ----- audit logs ----------------------------------------------------

    /// The last sequence number the hub holds of a lock's log.
    pub(super) fn held_to(&self, lock: &LockRecord) -> Result<Option<u64>, HubError> {
        Ok(match &lock.log {
            LogHealth::Intact { last_seq, .. } => Some(*last_seq),
            LogHealth::Unknown => None,
            _ => self.store.logs(lock.id)?.iter().map(|e| e.last_seq).max(),
        })
    }

    /// Fetches a lock's audit log from where the hub's copy ends, keeps it,
    /// and sets its health; alerts on a break, a gap or a log that went
    /// backwards (which is not kept).
    pub fn fetch_log(&self, id: LockId) -> Result<LogHealth, HubError> {
        let mut lock = self.lock(id)?;
        let held = self.held_to(&lock)?;
        let mut link = self.connect(&lock)?;
        let now = self.now();
        let fetched = match link.fetch_log(held.map(|h| h.saturating_add(1))) {
            Ok(f) => f,
            Err(e @ (LinkError::LogBroken { .. } | LinkError::Malformed(_))) => {
                let (reason, kind) = match e {
                    LinkError::LogBroken { kind, reason } => {
                        (format!("{kind:?}: {reason}"), Some(kind))
                    }
                    other => (other.to_string(), None),
                };
                lock.log = LogHealth::Broken {
                    reason: reason.clone(),
                    kind,
                    at: now,
                };
                self.store.save_lock(&lock)?;
                self.event(
                    Some(id),
                    EventLevel::Alert,
                    "log_broken",
                    &format!("the audit log did not verify: {reason}"),
                )?;
                return Ok(lock.log);
            }
            Err(e) => return Err(lock_err(id)(e)),
        };
        let health = match decide::log_continuity(held, fetched.first_seq, fetched.last_seq) {
            Continuity::Backwards {
                held_to,
                first,
                last,
            } => {
                let lie = Lie::LogBackwards {
                    held_to,
                    first,
                    last,
                };
                self.event(Some(id), EventLevel::Alert, "lock_lied", &lie.sentence())?;
                return Err(HubError::LockLied { lock: id, lie });
            }
            Continuity::Gap {
                held_to,
                resumed_at,
            } => {
                self.event(
                    Some(id),
                    EventLevel::Alert,
                    "log_gap",
                    &format!(
                        "audit-log records {}..{} are missing (lost, or the ring wrapped between fetches)",
                        held_to + 1,
                        resumed_at
                    ),
                )?;
                LogHealth::Gap {
                    held_to,
                    resumed_at,
                    at: now,
                }
            }
            Continuity::Intact => LogHealth::Intact {
                last_seq: fetched.last_seq.max(held.unwrap_or(0)),
                at: now,
            },
        };
        // New records only (a link may send the whole ring each time).
        let records = fetched.last_seq + 1 - fetched.first_seq;
        if records > 0 && held.is_none_or(|h| fetched.last_seq > h) {
            self.store.put_log(&LogExport {
                lock: id,
                fetched_at: now,
                first_seq: fetched.first_seq,
                last_seq: fetched.last_seq,
                bytes: fetched.bytes,
            })?;
        }
        lock.log = health;
        lock.last_contact = Some(now);
        self.store.save_lock(&lock)?;
        self.event(
            Some(id),
            EventLevel::Info,
            "log_fetched",
            &if records > 0 {
                format!(
                    "audit-log records {}..={}",
                    fetched.first_seq, fetched.last_seq
                )
            } else {
                "no new audit-log records".to_string()
            },
        )?;
        Ok(lock.log)
    }

    /// A lock's kept audit-log exports (with their bytes).
    pub fn logs(&self, id: LockId) -> Result<Vec<LogExport>, HubError> {
        self.lock(id)?;
        Ok(self.store.logs(id)?)
    }
}
