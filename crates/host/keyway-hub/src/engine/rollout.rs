//! Rollouts: waves of installs over many locks with a stop rule, saved
//! after each wave and resumed after a restart, run on a thread pool.

use std::collections::HashSet;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::model::{Digest, EventLevel, LockId, Rollout, RolloutOutcome, RolloutState};

use super::decide::{self};
use super::{Hub, HubError, InstallReport, NO_OUTCOME, rollout_lease};

impl Hub {
    // ----- rollouts ------------------------------------------------------

    /// Creates a rollout of a release across locks (every paired lock of
    /// its model, or the given ones), in waves of `wave_size`, stopping
    /// when a wave's failures exceed `error_threshold_pct`.
    pub fn create_rollout(
        &self,
        release: Digest,
        wave_size: u32,
        error_threshold_pct: u8,
        only: Option<&[LockId]>,
    ) -> Result<Rollout, HubError> {
        if wave_size == 0 {
            return Err(HubError::Invalid("a wave needs at least one lock".into()));
        }
        if error_threshold_pct > 100 {
            return Err(HubError::Invalid(
                "the error threshold is a percentage (0 to 100)".into(),
            ));
        }
        let rel = self
            .store
            .release(&release)?
            .ok_or(HubError::NoRelease(release))?;
        if rel.delta_base.is_some() {
            return Err(HubError::Invalid(
                "a rollout names the full release; the hub picks a delta per lock when one fits"
                    .into(),
            ));
        }
        let locks = self.store.locks()?;
        let ids = decide::rollout_locks(&locks, &rel.class, only).map_err(|id| {
            HubError::Invalid(format!("lock {id} is not a lock of model {}", rel.class))
        })?;
        let mut r = Rollout {
            id: 0,
            release,
            wave_size,
            error_threshold_pct,
            state: RolloutState::Running { wave: 0 },
            locks: ids
                .into_iter()
                .map(|l| (l, RolloutOutcome::Waiting))
                .collect(),
            started_at: self.now(),
        };
        r.id = self.store.create_rollout(&r)?;
        self.event(
            None,
            EventLevel::Info,
            "rollout_started",
            &format!(
                "rollout {} of version {} to {} locks in waves of {wave_size}",
                r.id,
                rel.version,
                r.locks.len()
            ),
        )?;
        Ok(r)
    }

    /// One rollout.
    pub fn rollout(&self, id: i64) -> Result<Rollout, HubError> {
        self.store.rollout(id)?.ok_or(HubError::NoRollout(id))
    }

    /// One lock's part in a rollout: installs only with an accepted consent.
    pub(super) fn rollout_one(&self, lock: LockId, release: Digest) -> RolloutOutcome {
        match self.install(lock, release) {
            Ok(InstallReport::Running) | Ok(InstallReport::AlreadyRunning) => {
                RolloutOutcome::Updated
            }
            Ok(InstallReport::Postponed { reason }) => RolloutOutcome::Postponed { reason },
            Ok(InstallReport::Refused { reason, code }) => RolloutOutcome::Failed {
                reason,
                code: code.into(),
            },
            Ok(InstallReport::Pending) => RolloutOutcome::Failed {
                reason: "no outcome within the wait".into(),
                code: NO_OUTCOME.into(),
            },
            Err(HubError::NoConsent { .. }) => RolloutOutcome::NeedsConsent,
            Err(e) => RolloutOutcome::Failed {
                reason: e.to_string(),
                code: e.code().into(),
            },
        }
    }

    /// Runs a rollout's remaining waves (resuming where it was saved),
    /// `config.concurrency` locks at a time; saves it after each wave.
    ///
    /// A rollout already running in this hub is not run twice: the call
    /// returns its saved state.
    pub fn run_rollout(&self, id: i64) -> Result<Rollout, HubError> {
        let mut r = self.rollout(id)?;
        {
            let mut rolling = self
                .rolling
                .lock()
                .map_err(|_| HubError::Invalid("poisoned".into()))?;
            if !rolling.insert(id) {
                return Ok(r);
            }
        }
        struct Rolling<'a>(&'a Mutex<HashSet<i64>>, i64);
        impl Drop for Rolling<'_> {
            fn drop(&mut self) {
                if let Ok(mut s) = self.0.lock() {
                    s.remove(&self.1);
                }
            }
        }
        let _rolling = Rolling(&self.rolling, id);
        // Across hubs sharing the store: one runs it; the lease is renewed
        // before each wave, given up at the end.
        struct Leased<'a>(&'a Hub, String);
        impl Drop for Leased<'_> {
            fn drop(&mut self) {
                let _ = self.0.store.release_lease(&self.1, &self.0.config.hub_id);
            }
        }
        if !self.take_lease(&rollout_lease(id))? {
            return Ok(r);
        }
        let _leased = Leased(self, rollout_lease(id));
        // What another hub saved before this one took the lease.
        r = self.rollout(id)?;
        let waves = decide::wave_count(r.locks.len(), r.wave_size);
        loop {
            let RolloutState::Running { wave } = r.state else {
                return Ok(r);
            };
            if !self.take_lease(&rollout_lease(id))? {
                return Ok(r);
            }
            if wave >= waves {
                r.state = RolloutState::Done;
                self.store.save_rollout(&r)?;
                self.event(
                    None,
                    EventLevel::Info,
                    "rollout_done",
                    &format!("rollout {id}: every wave went"),
                )?;
                return Ok(r);
            }
            let range = decide::wave_range(r.locks.len(), r.wave_size, wave);
            let todo: Vec<(usize, LockId)> = range
                .clone()
                .filter(|i| r.locks[*i].1 == RolloutOutcome::Waiting)
                .map(|i| (i, r.locks[i].0))
                .collect();
            let results = self.run_parallel(&todo, r.release);
            for (i, outcome) in results {
                r.locks[i].1 = outcome;
            }
            let outcomes: Vec<RolloutOutcome> =
                r.locks[range].iter().map(|(_, o)| o.clone()).collect();
            r.state = match decide::wave_verdict(&outcomes, r.error_threshold_pct) {
                decide::WaveVerdict::Continue => RolloutState::Running { wave: wave + 1 },
                decide::WaveVerdict::Stop { failed, of } => {
                    RolloutState::Stopped { wave, failed, of }
                }
            };
            self.store.save_rollout(&r)?;
            match r.state {
                RolloutState::Stopped { failed, of, .. } => self.event(
                    None,
                    EventLevel::Alert,
                    "rollout_stopped",
                    &format!(
                        "rollout {id} stopped at wave {wave}: {failed} of {of} locks failed (threshold {}%)",
                        r.error_threshold_pct
                    ),
                )?,
                _ => self.event(
                    None,
                    EventLevel::Info,
                    "rollout_wave",
                    &format!("rollout {id}: wave {wave} went ({} locks)", outcomes.len()),
                )?,
            }
        }
    }

    /// Resumes a rollout its error threshold stopped: the owner has looked
    /// at the failures and chooses to go on. The stopped wave's outcomes
    /// stand (its failed locks keep their accepted consents, which
    /// [`Hub::tick`] retries); the rollout goes on at the next wave, runs
    /// its waves (blocking, like [`Hub::run_rollout`]) and may stop again.
    /// Only a stopped rollout resumes (`invalid_value` otherwise).
    pub fn resume_rollout(&self, id: i64) -> Result<Rollout, HubError> {
        let mut r = self.rollout(id)?;
        let RolloutState::Stopped { wave, .. } = r.state else {
            return Err(HubError::Invalid(format!(
                "rollout {id} is not stopped: only a rollout its error threshold stopped resumes"
            )));
        };
        r.state = RolloutState::Running { wave: wave + 1 };
        self.store.save_rollout(&r)?;
        self.event(
            None,
            EventLevel::Info,
            "rollout_resumed",
            &format!("rollout {id} resumed by the owner after wave {wave}"),
        )?;
        self.run_rollout(id)
    }

    /// Runs every rollout left running (a hub that stopped mid-rollout
    /// resumes it at the wave it saved); the shell calls it at start.
    pub fn resume_rollouts(&self) -> Result<Vec<Rollout>, HubError> {
        let mut out = Vec::new();
        for r in self.store.rollouts()? {
            if matches!(r.state, RolloutState::Running { .. }) {
                out.push(self.run_rollout(r.id)?);
            }
        }
        Ok(out)
    }

    /// Runs `rollout_one` over `todo` on `config.concurrency` threads.
    pub(super) fn run_parallel(
        &self,
        todo: &[(usize, LockId)],
        release: Digest,
    ) -> Vec<(usize, RolloutOutcome)> {
        self.pool(todo, |&(i, lock)| (i, self.rollout_one(lock, release)))
    }

    /// Runs `f` over `items` on `config.concurrency` threads (the pool
    /// rollouts and ticks share); the results in the items' order.
    pub(super) fn pool<T: Sync, R: Send>(&self, items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
        let next = AtomicUsize::new(0);
        let out = Mutex::new(Vec::with_capacity(items.len()));
        let workers = self.config.concurrency.max(1).min(items.len().max(1));
        std::thread::scope(|s| {
            for _ in 0..workers {
                s.spawn(|| {
                    loop {
                        let n = next.fetch_add(1, Ordering::Relaxed);
                        let Some(item) = items.get(n) else {
                            break;
                        };
                        let r = f(item);
                        if let Ok(mut v) = out.lock() {
                            v.push((n, r));
                        }
                    }
                });
            }
        });
        let mut v = out.into_inner().unwrap_or_default();
        v.sort_by_key(|(n, _)| *n);
        v.into_iter().map(|(_, r)| r).collect()
    }
}
