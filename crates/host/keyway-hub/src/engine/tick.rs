//! The tick: each owned lock's accepted updates (re)started with a
//! backoff rebuilt from the stored events, and auto-install.

use std::collections::HashMap;

use crate::model::{
    ConsentSource, Decision, EventLevel, LockId, LockRecord, LogHealth, UnixSecs, UpdateState,
};

use super::decide::{self};
use super::{Backoff, Hub, HubError, TickReport, busy_or};

impl Hub {
    // ----- the schedule --------------------------------------------------

    /// The shell calls this on a schedule: checks freshness (a change to
    /// stale or expired is a warning event), then for each paired lock, on
    /// `config.concurrency` threads (the rollouts' pool): re-reads the
    /// status of a lock with a pending install (a postponed one shows its
    /// reason until it goes through) or whose audit log is due, fetches the
    /// due logs (every `log_interval_secs`), consents to high and critical
    /// fixes where the owner opted in, and (re)starts the install of the
    /// newest accepted update the lock does not run yet, once its backoff
    /// allows and no rollout runs in this hub.
    ///
    /// One lock's failure never stops the others: it is counted, written
    /// as an event `tick_failed` (with the error's code), and the tick goes
    /// on. Only a store that cannot list the locks fails the tick.
    pub fn tick(&self) -> Result<TickReport, HubError> {
        let mut report = TickReport::default();
        if let Err(e) = self.check_freshness() {
            report.failed += 1;
            self.tick_failed(None, &e);
        }
        self.seed_retry();
        let now = self.now();
        let locks: Vec<LockRecord> = self
            .store
            .locks()?
            .into_iter()
            .filter(|l| l.device_key.is_some())
            .collect();
        for (lock, r) in locks
            .iter()
            .zip(self.pool(&locks, |l| self.tick_one(l, now)))
        {
            match r {
                Ok(one) => report.add(&one),
                Err(e) => {
                    report.failed += 1;
                    self.tick_failed(Some(lock.id), &e);
                }
            }
        }
        Ok(report)
    }

    /// Writes a tick's per-lock failure as an event (best effort: a store
    /// that cannot write it cannot be told either).
    pub(super) fn tick_failed(&self, lock: Option<LockId>, e: &HubError) {
        let _ = self.event(
            lock,
            EventLevel::Warning,
            "tick_failed",
            &format!("{} ({})", e, e.code()),
        );
    }

    /// One lock's part of a tick.
    pub(super) fn tick_one(
        &self,
        lock: &LockRecord,
        now: UnixSecs,
    ) -> Result<TickReport, HubError> {
        let mut report = TickReport::default();
        if !self.owns(lock.id)? {
            report.other_hub += 1;
            let first = self
                .foreign
                .lock()
                .map(|mut f| f.insert(lock.id))
                .unwrap_or(false);
            if first {
                self.event(
                    Some(lock.id),
                    EventLevel::Info,
                    "lock_of_another_hub",
                    &format!(
                        "another hub paired this lock; hub {} shows it and leaves it to that hub",
                        self.config.hub_id
                    ),
                )?;
            }
            return Ok(report);
        }
        let pending = lock.snapshot.as_ref().is_some_and(|s| {
            matches!(
                s.update,
                UpdateState::Postponed { .. }
                    | UpdateState::Installing { .. }
                    | UpdateState::AwaitingConsent { .. }
                    | UpdateState::Trial { .. }
            )
        });
        let last_log = match lock.log {
            LogHealth::Unknown => None,
            LogHealth::Intact { at, .. }
            | LogHealth::Gap { at, .. }
            | LogHealth::Broken { at, .. } => Some(at),
        };
        let due = last_log.is_none_or(|at| now.saturating_sub(at) >= self.config.log_interval_secs);
        if pending || due || lock.snapshot.is_none() {
            report.rechecked += 1;
            match self.refresh(lock.id) {
                Err(HubError::Link { .. }) => {
                    report.unreachable += 1;
                    return Ok(report);
                }
                Err(HubError::LockLied { .. }) => return Ok(report),
                r => {
                    r?;
                }
            }
        }
        if due {
            match self.fetch_log(lock.id) {
                Ok(_) => report.logs_fetched += 1,
                Err(HubError::Link { .. }) => report.unreachable += 1,
                Err(HubError::LockLied { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        if lock.auto_install_critical {
            report.auto_installs += self.auto_install(lock.id)?;
        }
        match self.retry_install(lock.id) {
            Ok(true) => report.installs_retried += 1,
            Ok(false) => {}
            Err(HubError::Link { .. }) => {
                report.installs_retried += 1;
                report.unreachable += 1;
            }
            Err(HubError::LockLied { .. }) | Err(HubError::Busy(_)) => {
                report.installs_retried += 1;
            }
            Err(e) => return Err(e),
        }
        Ok(report)
    }

    /// Records an install's outcome for the retry backoff.
    pub(super) fn note_retry(&self, lock: LockId, ok: bool) {
        let now = self.now();
        if let Ok(mut g) = self.retry.lock() {
            let map = g.get_or_insert_with(HashMap::new);
            if ok {
                map.remove(&lock);
            } else {
                let b = map.entry(lock).or_insert(Backoff {
                    failures: 0,
                    last_at: now,
                });
                b.failures = b.failures.saturating_add(1);
                b.last_at = now;
            }
        }
    }

    /// Rebuilds the backoff from the stored events, once per hub: per lock,
    /// the `install_failed` / `install_refused` events since its last
    /// success or consent (`install_running`, `install_postponed`,
    /// `install_pending`, `update_confirmed`, `consent_accepted`,
    /// `auto_consent`), and the time of the last one. A push cut by a
    /// crash left no failure event: it is retried at once.
    pub(super) fn seed_retry(&self) {
        let Ok(mut g) = self.retry.lock() else {
            return;
        };
        if g.is_some() {
            return;
        }
        let mut map: HashMap<LockId, Backoff> = HashMap::new();
        let mut after = 0;
        while let Ok(page) = self.store.events(after, 1000) {
            let Some(last) = page.last() else {
                break;
            };
            after = last.id;
            for e in &page {
                let Some(lock) = e.lock else {
                    continue;
                };
                match e.kind.as_str() {
                    "install_failed" | "install_refused" => {
                        let b = map.entry(lock).or_insert(Backoff {
                            failures: 0,
                            last_at: e.at,
                        });
                        b.failures = b.failures.saturating_add(1);
                        b.last_at = e.at;
                    }
                    "install_running" | "install_postponed" | "install_pending"
                    | "update_confirmed" | "consent_accepted" | "auto_consent" => {
                        map.remove(&lock);
                    }
                    _ => {}
                }
            }
        }
        *g = Some(map);
    }

    /// Whether a lock's backoff lets the tick retry now.
    pub(super) fn retry_due(&self, lock: LockId) -> bool {
        let now = self.now();
        let Ok(g) = self.retry.lock() else {
            return false;
        };
        let Some(b) = g.as_ref().and_then(|m| m.get(&lock)).copied() else {
            return true;
        };
        let base = self.config.retry_base_secs.max(1);
        let wait = base
            .saturating_mul(1i64 << (b.failures.saturating_sub(1)).min(30))
            .min(self.config.retry_max_secs.max(base));
        now.saturating_sub(b.last_at) >= wait
    }

    /// (Re)starts the install of the newest update this lock's owner
    /// accepted (the latest decision on it is Accept, it is still one of
    /// the lock's updates, the lock does not hold it pending already, no
    /// push to it is running) once its backoff allows. `Ok(true)` when an
    /// install was started (whatever its outcome).
    pub(super) fn retry_install(&self, id: LockId) -> Result<bool, HubError> {
        // A rollout running in this hub pushes its locks itself: a retry
        // racing it would make its push `lock_busy` (a counted failure).
        if busy_or(&self.busy, id) || self.rolling.lock().map_or(true, |r| !r.is_empty()) {
            return Ok(false);
        }
        let lock = self.lock(id)?;
        let consents = self.store.consents(id)?;
        let offers = decide::offers(&self.known(&lock.class)?, &lock);
        let Some(offer) = offers
            .into_iter()
            .find(|o| decide::decision(&consents, &o.release) == Some(Decision::Accept))
        else {
            return Ok(false);
        };
        let held = lock.snapshot.as_ref().and_then(|s| match &s.update {
            UpdateState::Postponed { release, .. } | UpdateState::Installing { release } => {
                Some(*release)
            }
            _ => None,
        });
        if held.is_some_and(|h| h == offer.release || offer.envelopes.contains(&h))
            || lock
                .snapshot
                .as_ref()
                .is_some_and(|s| matches!(s.update, UpdateState::Trial { .. }))
        {
            return Ok(false);
        }
        if !self.retry_due(id) {
            return Ok(false);
        }
        self.event(
            Some(id),
            EventLevel::Info,
            "install_retry",
            &format!(
                "installing version {} the owner accepted (not installed yet)",
                offer.version
            ),
        )?;
        match self.install(id, offer.release) {
            Ok(_) => Ok(true),
            Err(HubError::Busy(_)) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Consents (as the owner's opt-in) to each high or critical fix the
    /// lock has no decision on yet; `retry_install` installs it (and
    /// retries it, like any accepted update).
    pub(super) fn auto_install(&self, id: LockId) -> Result<u32, HubError> {
        let lock = self.lock(id)?;
        if busy_or(&self.busy, id) {
            return Ok(0);
        }
        let consents = self.store.consents(id)?;
        let mut n = 0;
        for offer in decide::offers(&self.known(&lock.class)?, &lock) {
            if !decide::auto_consent(&lock, &offer)
                || decide::decision(&consents, &offer.release).is_some()
            {
                continue;
            }
            self.consent(
                id,
                offer.release,
                Decision::Accept,
                ConsentSource::AutoCritical,
            )?;
            n += 1;
            // The newest applicable fix is enough: it supersedes the rest.
            break;
        }
        Ok(n)
    }
}
