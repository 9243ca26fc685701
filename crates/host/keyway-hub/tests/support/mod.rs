//! Test support for the hub's engine and API: an in-memory [`Store`] (a
//! real implementation of the trait), a fake clock, scripted locks behind
//! a test [`Connector`], and signed test releases.

#![allow(dead_code)]

#[path = "../common/mod.rs"]
mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

use keyway_hub::engine::{Clock, Hub, HubConfig, Incoming, IngestReport};
use keyway_hub::link::{
    Connector, FetchedLog, InstallOutcome, LinkError, LockLink, Paired, Pushed,
};
use keyway_hub::model::*;
use keyway_hub::store::{Store, StoreError};
use keyway_vendor::encode::{Cve, EnvelopeBuilder};
use keyway_vendor::keys::{Algorithm, SigningKey};
use sha2::{Digest as _, Sha256};

// ----- the in-memory store ---------------------------------------------------

#[derive(Default)]
struct Inner {
    models: Vec<ModelAnchors>,
    releases: Vec<Release>,
    locks: Vec<LockRecord>,
    next_lock: LockId,
    consents: Vec<Consent>,
    logs: Vec<LogExport>,
    rollouts: Vec<Rollout>,
    events: Vec<Event>,
    freshness: Freshness,
    leases: HashMap<String, (String, UnixSecs)>,
}

/// The store in memory, behind one mutex.
#[derive(Default)]
pub struct MemStore(Mutex<Inner>);

impl MemStore {
    fn g(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.0.lock().unwrap()
    }
}

/// The items of `v` about lock `lock`, in order.
fn of_lock<T: Clone>(v: &[T], lock: LockId, lock_of: impl Fn(&T) -> LockId) -> Vec<T> {
    v.iter().filter(|x| lock_of(x) == lock).cloned().collect()
}

/// Replaces the item of `v` that `same` picks with `new`; `missing` if none.
fn replace<T: Clone>(
    v: &mut [T],
    new: &T,
    same: impl Fn(&T) -> bool,
    missing: impl FnOnce() -> StoreError,
) -> Result<(), StoreError> {
    *v.iter_mut().find(|x| same(x)).ok_or_else(missing)? = new.clone();
    Ok(())
}

impl Store for MemStore {
    fn put_model(&self, model: &ModelAnchors) -> Result<(), StoreError> {
        let mut g = self.g();
        g.models.retain(|m| m.class != model.class);
        g.models.push(model.clone());
        g.models.sort_by(|a, b| a.class.cmp(&b.class));
        Ok(())
    }
    fn models(&self) -> Result<Vec<ModelAnchors>, StoreError> {
        Ok(self.g().models.clone())
    }
    fn put_release(&self, release: &Release) -> Result<bool, StoreError> {
        let mut g = self.g();
        if g.releases.iter().any(|r| r.digest == release.digest) {
            return Ok(false);
        }
        g.releases.push(release.clone());
        Ok(true)
    }
    fn release(&self, digest: &Digest) -> Result<Option<Release>, StoreError> {
        Ok(self
            .g()
            .releases
            .iter()
            .find(|r| &r.digest == digest)
            .cloned())
    }
    fn releases(&self, class: Option<&str>) -> Result<Vec<Release>, StoreError> {
        Ok(common::listing(&self.g().releases, class))
    }
    fn add_lock(&self, lock: &NewLock) -> Result<LockId, StoreError> {
        // The trait's contract, as both real backends keep it: no NUL in
        // stored text (PostgreSQL's `text` cannot hold one).
        for (what, text) in [
            ("a lock's name", &lock.name),
            ("a lock's address", &lock.address),
            ("a lock's class", &lock.class),
        ] {
            if text.contains('\0') {
                return Err(StoreError::NulInText {
                    what: what.to_string(),
                });
            }
        }
        let mut g = self.g();
        g.next_lock += 1;
        let id = g.next_lock;
        g.locks.push(LockRecord {
            id,
            name: lock.name.clone(),
            address: lock.address.clone(),
            class: lock.class.clone(),
            device_key: None,
            auto_install_critical: false,
            snapshot: None,
            last_contact: None,
            log: LogHealth::Unknown,
        });
        Ok(id)
    }
    fn lock(&self, id: LockId) -> Result<Option<LockRecord>, StoreError> {
        Ok(self.g().locks.iter().find(|l| l.id == id).cloned())
    }
    fn locks(&self) -> Result<Vec<LockRecord>, StoreError> {
        Ok(self.g().locks.clone())
    }
    fn save_lock(&self, lock: &LockRecord) -> Result<(), StoreError> {
        replace(
            &mut self.g().locks,
            lock,
            |l| l.id == lock.id,
            || StoreError::NoLock(lock.id),
        )
    }
    fn remove_lock(&self, id: LockId) -> Result<(), StoreError> {
        let mut g = self.g();
        let before = g.locks.len();
        g.locks.retain(|l| l.id != id);
        if g.locks.len() == before {
            return Err(StoreError::NoLock(id));
        }
        g.consents.retain(|c| c.lock != id);
        g.logs.retain(|l| l.lock != id);
        Ok(())
    }
    fn put_consent(&self, consent: &Consent) -> Result<(), StoreError> {
        let mut g = self.g();
        if !g.locks.iter().any(|l| l.id == consent.lock) {
            return Err(StoreError::NoLock(consent.lock));
        }
        g.consents
            .retain(|c| !(c.lock == consent.lock && c.release == consent.release));
        g.consents.push(consent.clone());
        Ok(())
    }
    fn consents(&self, lock: LockId) -> Result<Vec<Consent>, StoreError> {
        Ok(of_lock(&self.g().consents, lock, |c| c.lock))
    }
    fn put_log(&self, export: &LogExport) -> Result<(), StoreError> {
        self.g().logs.push(export.clone());
        Ok(())
    }
    fn logs(&self, lock: LockId) -> Result<Vec<LogExport>, StoreError> {
        Ok(of_lock(&self.g().logs, lock, |l| l.lock))
    }
    fn create_rollout(&self, rollout: &Rollout) -> Result<i64, StoreError> {
        let mut g = self.g();
        let id = g.rollouts.iter().map(|r| r.id).max().unwrap_or(0) + 1;
        g.rollouts.push(Rollout {
            id,
            ..rollout.clone()
        });
        Ok(id)
    }
    fn save_rollout(&self, rollout: &Rollout) -> Result<(), StoreError> {
        replace(
            &mut self.g().rollouts,
            rollout,
            |r| r.id == rollout.id,
            || StoreError::Backend(format!("no rollout {}", rollout.id)),
        )
    }
    fn rollout(&self, id: i64) -> Result<Option<Rollout>, StoreError> {
        Ok(self.g().rollouts.iter().find(|r| r.id == id).cloned())
    }
    fn rollouts(&self) -> Result<Vec<Rollout>, StoreError> {
        let mut v = self.g().rollouts.clone();
        v.reverse();
        Ok(v)
    }
    fn add_event(&self, e: &NewEvent<'_>) -> Result<i64, StoreError> {
        let mut g = self.g();
        let id = g.events.len() as i64 + 1;
        g.events.push(e.with_id(id));
        Ok(id)
    }
    fn events(&self, after: i64, limit: u32) -> Result<Vec<Event>, StoreError> {
        Ok(self
            .g()
            .events
            .iter()
            .filter(|e| e.id > after)
            .take(limit as usize)
            .cloned()
            .collect())
    }
    fn freshness(&self) -> Result<Freshness, StoreError> {
        Ok(self.g().freshness.clone())
    }
    fn set_freshness(&self, f: &Freshness) -> Result<(), StoreError> {
        self.g().freshness = f.clone();
        Ok(())
    }
    fn try_lease(&self, c: &LeaseClaim<'_>) -> Result<bool, StoreError> {
        let mut g = self.g();
        match g.leases.get(c.name) {
            Some((h, u)) if h != c.holder && *u > c.now => Ok(false),
            _ => {
                g.leases.insert(c.name.into(), (c.holder.into(), c.until));
                Ok(true)
            }
        }
    }
    fn release_lease(&self, name: &str, holder: &str) -> Result<(), StoreError> {
        let mut g = self.g();
        if g.leases.get(name).is_some_and(|(h, _)| h == holder) {
            g.leases.remove(name);
        }
        Ok(())
    }
}

// ----- the clock ---------------------------------------------------------------

/// A clock the test sets.
#[derive(Default)]
pub struct FakeClock(pub AtomicI64);

impl FakeClock {
    pub fn at(t: UnixSecs) -> Arc<FakeClock> {
        Arc::new(FakeClock(AtomicI64::new(t)))
    }
    pub fn advance(&self, secs: i64) {
        self.0.fetch_add(secs, Ordering::SeqCst);
    }
}

impl Clock for FakeClock {
    fn now(&self) -> UnixSecs {
        self.0.load(Ordering::SeqCst)
    }
}

pub const T0: UnixSecs = 1_800_000_000;

// ----- releases ----------------------------------------------------------------

pub const DOMAIN: &str = "locks.example";
pub const CLASS: &str = "deadbolt-2";

/// A vendor: its signing key and the model anchors its locks hold.
pub struct Vendor {
    pub key: SigningKey,
    pub model: ModelAnchors,
}

impl Vendor {
    pub fn new() -> Vendor {
        Vendor::for_class(CLASS)
    }
    pub fn for_class(class: &str) -> Vendor {
        let key = SigningKey::generate(Algorithm::Ed25519).unwrap();
        let pem = key.public_key().to_spki_pem().unwrap();
        Vendor {
            key,
            model: ModelAnchors {
                class: class.into(),
                vendor_domain: DOMAIN.into(),
                trust_pems: vec![pem],
                threshold: 1,
            },
        }
    }
}

/// A firmware image for version `seq`.
pub fn image(seq: u64) -> Vec<u8> {
    (0..6_000u32)
        .map(|i| (i.wrapping_mul(31) ^ (seq as u32 * 7)) as u8)
        .collect()
}

pub fn sha(b: &[u8]) -> Digest {
    Digest(Sha256::digest(b).into())
}

/// A release envelope: version `1.<seq>.0`, signed by `key`, for `class`.
pub fn envelope(
    key: &SigningKey,
    class: &str,
    seq: u64,
    cves: &[(&str, &str)],
    delta_from: Option<u64>,
) -> Vec<u8> {
    EnvelopeBuilder {
        sequence: seq,
        version: format!("1.{seq}.0").parse().unwrap(),
        vendor_domain: DOMAIN.into(),
        class_name: class.into(),
        notes: Some(format!("Release 1.{seq}.0: fixes and improvements.")),
        cves: cves
            .iter()
            .map(|(id, sev)| format!("{id}:{sev}").parse::<Cve>().unwrap())
            .collect(),
        payload: image(seq),
        delta_from: delta_from.map(image),
        keys: vec![key.clone()],
        ..Default::default()
    }
    .build()
    .unwrap()
    .envelope
}

pub fn incoming(target: &str, bytes: Vec<u8>) -> Incoming {
    Incoming {
        target: target.into(),
        bytes,
        origin: ReleaseOrigin::Bundle {
            path: "/media/usb".into(),
        },
    }
}

// ----- scripted locks ------------------------------------------------------------

/// How a scripted lock misbehaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Script {
    /// Behaves.
    #[default]
    Honest,
    /// Does not answer.
    Unreachable,
    /// The upload fails.
    FailPush,
    /// Its policy postpones the install (the bolt is thrown).
    Postpone,
    /// The consent gets no outcome in time.
    TimeOut,
    /// Refuses the install.
    Refuse,
    /// Says it runs the pushed release but keeps its old image.
    LieRunning,
    /// Reports a version that contradicts its image.
    LieVersion,
    /// Its audit log goes backwards.
    LieLogBackwards,
    /// Its audit log does not verify.
    LogBroken,
}

/// One simulated lock's state.
#[derive(Debug, Clone)]
pub struct FakeLock {
    pub setup_code: String,
    pub presence_open: bool,
    pub device_key: [u8; 32],
    pub paired: bool,
    pub seq: u64,
    pub update: UpdateState,
    pub bolt: Bolt,
    pub script: Script,
    pub log_first: u64,
    pub log_last: u64,
    /// Sends its whole ring on every fetch, ignoring `since`.
    pub whole_ring: bool,
    /// How long an upload takes (ms).
    pub upload_ms: u64,
    /// Digests of envelopes uploaded to it, in order.
    pub uploads: Vec<Digest>,
    /// How many consents it was given.
    pub consents: u32,
    /// How long each of its answers takes (ms; a slow or timing-out radio).
    pub delay_ms: u64,
    pending: Option<(Digest, u64)>,
}

impl FakeLock {
    pub fn new(seq: u64) -> FakeLock {
        FakeLock {
            setup_code: "86420".into(),
            presence_open: true,
            device_key: [7; 32],
            paired: false,
            seq,
            update: UpdateState::Confirmed,
            bolt: Bolt::Unlocked,
            script: Script::Honest,
            log_first: 1,
            log_last: 10,
            whole_ring: false,
            upload_ms: 0,
            uploads: Vec::new(),
            consents: 0,
            delay_ms: 0,
            pending: None,
        }
    }

    fn snapshot(&self) -> LockSnapshot {
        let version = if self.script == Script::LieVersion {
            "9.9.9".to_string()
        } else {
            format!("1.{}.0", self.seq)
        };
        LockSnapshot {
            model: "nrf52840".into(),
            version,
            image: Some(sha(&image(self.seq))),
            update: self.update.clone(),
            battery_mwh: 2000,
            door: Door::Closed,
            bolt: self.bolt,
            tamper: false,
        }
    }
}

/// How many slow answers are in flight at once, and the most seen.
#[derive(Default)]
pub struct Gauge {
    pub now: std::sync::atomic::AtomicUsize,
    pub max: std::sync::atomic::AtomicUsize,
}

/// Scripted locks by address.
#[derive(Default, Clone)]
pub struct Fleet(pub Arc<Mutex<HashMap<String, FakeLock>>>, pub Arc<Gauge>);

impl Fleet {
    pub fn add(&self, address: &str, lock: FakeLock) {
        self.0.lock().unwrap().insert(address.into(), lock);
    }
    pub fn with<R>(&self, address: &str, f: impl FnOnce(&mut FakeLock) -> R) -> R {
        f(self.0.lock().unwrap().get_mut(address).unwrap())
    }
    pub fn get(&self, address: &str) -> FakeLock {
        self.0.lock().unwrap()[address].clone()
    }
}

struct FakeLink {
    fleet: Fleet,
    address: String,
    paired_key: Option<[u8; 32]>,
}

impl FakeLink {
    fn lock<R>(
        &self,
        f: impl FnOnce(&mut FakeLock) -> Result<R, LinkError>,
    ) -> Result<R, LinkError> {
        let delay = self
            .fleet
            .0
            .lock()
            .unwrap()
            .get(&self.address)
            .map_or(0, |l| l.delay_ms);
        if delay > 0 {
            let g = &self.fleet.1;
            let n = g.now.fetch_add(1, Ordering::SeqCst) + 1;
            g.max.fetch_max(n, Ordering::SeqCst);
            std::thread::sleep(std::time::Duration::from_millis(delay));
            g.now.fetch_sub(1, Ordering::SeqCst);
        }
        let mut g = self.fleet.0.lock().unwrap();
        let l = g.get_mut(&self.address).ok_or(LinkError::Unreachable {
            address: self.address.clone(),
        })?;
        if l.script == Script::Unreachable {
            return Err(LinkError::Unreachable {
                address: self.address.clone(),
            });
        }
        f(l)
    }

    fn sealed<R>(
        &self,
        f: impl FnOnce(&mut FakeLock) -> Result<R, LinkError>,
    ) -> Result<R, LinkError> {
        let key = self.paired_key;
        let address = self.address.clone();
        self.lock(|l| {
            if !l.paired || key != Some(l.device_key) {
                return Err(LinkError::NotAuthenticated { address });
            }
            f(l)
        })
    }
}

impl LockLink for FakeLink {
    fn pair(&mut self, setup_code: &str) -> Result<Paired, LinkError> {
        self.lock(|l| {
            if !l.presence_open {
                return Err(LinkError::NoPresence);
            }
            if setup_code != l.setup_code {
                return Err(LinkError::WrongSetupCode);
            }
            l.paired = true;
            Ok(Paired {
                device_key: l.device_key,
            })
        })
    }

    fn status(&mut self) -> Result<LockSnapshot, LinkError> {
        self.sealed(|l| Ok(l.snapshot()))
    }

    fn push(
        &mut self,
        candidates: &[&[u8]],
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<Pushed, LinkError> {
        let chosen = self.sealed(|l| {
            if l.script == Script::FailPush {
                return Err(LinkError::Refused {
                    reason: "flash write failed".into(),
                    rc: 1,
                });
            }
            let running = sha(&image(l.seq));
            for c in candidates {
                let i = keyway_suit::inspect_envelope(c)
                    .map_err(|e| LinkError::Malformed(format!("{e:?}")))?;
                if let Some(d) = i.delta
                    && Digest(*d.base_digest) != running
                {
                    continue; // refused for its base: the next candidate
                }
                return Ok((
                    c.to_vec(),
                    i.delta.is_some(),
                    i.manifest.sequence,
                    l.upload_ms,
                ));
            }
            Err(LinkError::Refused {
                reason: "no candidate for the running image".into(),
                rc: 2,
            })
        })?;
        let (bytes, delta, seq, upload_ms) = chosen;
        std::thread::sleep(std::time::Duration::from_millis(upload_ms));
        let total = bytes.len() as u64;
        let mut done = 0;
        while done < total {
            done = (done + 1024).min(total);
            progress(done, total);
        }
        let digest = sha(&bytes);
        self.sealed(|l| {
            l.uploads.push(digest);
            l.pending = Some((digest, seq));
            l.update = UpdateState::AwaitingConsent { release: digest };
            Ok(())
        })?;
        Ok(Pushed {
            release: digest,
            bytes: total,
            resumed_from: 0,
            delta,
        })
    }

    fn consent(&mut self, accept: bool, _wait_ms: u64) -> Result<InstallOutcome, LinkError> {
        self.sealed(|l| {
            l.consents += 1;
            let Some((digest, seq)) = l.pending else {
                return Err(LinkError::Refused {
                    reason: "nothing uploaded".into(),
                    rc: 3,
                });
            };
            if !accept {
                l.update = UpdateState::Declined { release: digest };
                return Ok(InstallOutcome::Refused("declined".into()));
            }
            Ok(match l.script {
                Script::Postpone => {
                    l.bolt = Bolt::Locked;
                    l.update = UpdateState::Postponed {
                        release: digest,
                        reason: Postponement::BoltLocked,
                    };
                    InstallOutcome::Postponed(Postponement::BoltLocked)
                }
                Script::TimeOut => {
                    l.update = UpdateState::Installing { release: digest };
                    InstallOutcome::Pending
                }
                Script::Refuse => {
                    l.update = UpdateState::Confirmed;
                    l.pending = None;
                    InstallOutcome::Refused("the trial image failed its self-test; reverted".into())
                }
                Script::LieRunning => {
                    l.update = UpdateState::Confirmed;
                    l.pending = None;
                    InstallOutcome::Running
                }
                _ => {
                    l.seq = seq;
                    l.update = UpdateState::Confirmed;
                    l.pending = None;
                    InstallOutcome::Running
                }
            })
        })
    }

    fn fetch_log(&mut self, since: Option<u64>) -> Result<FetchedLog, LinkError> {
        self.sealed(|l| {
            if l.script == Script::LogBroken {
                return Err(LinkError::LogBroken {
                    kind: keyway_hub::link::LogBreak::Forged,
                    reason: "checkpoint 3's signature does not verify with the device key".into(),
                });
            }
            let (first, last) = if l.script == Script::LieLogBackwards {
                // A log that starts again from 1 (a lock that rewrote it).
                (1, 5)
            } else {
                let since = if l.whole_ring { None } else { since };
                (since.unwrap_or(l.log_first).max(l.log_first), l.log_last)
            };
            Ok(FetchedLog {
                bytes: format!("log {first}..={last}").into_bytes(),
                first_seq: first,
                last_seq: last,
            })
        })
    }
}

impl FakeLock {
    /// The lock's policy clears (the bolt is withdrawn): a postponed
    /// install goes through.
    pub fn unbolt(&mut self) {
        self.bolt = Bolt::Unlocked;
        self.settle();
    }

    /// A postponed or slow install finishes.
    pub fn settle(&mut self) {
        if let (UpdateState::Postponed { .. } | UpdateState::Installing { .. }, Some((_, seq))) =
            (&self.update, self.pending)
        {
            self.seq = seq;
            self.update = UpdateState::Confirmed;
            self.pending = None;
        }
    }
}

impl Connector for Fleet {
    fn connect(&self, lock: &LockRecord) -> Result<Box<dyn LockLink>, LinkError> {
        Ok(Box::new(FakeLink {
            fleet: self.clone(),
            address: lock.address.clone(),
            paired_key: lock.device_key,
        }))
    }
}

// ----- a hub over all of it ------------------------------------------------------

pub struct World {
    pub hub: Arc<Hub>,
    pub store: Arc<dyn Store>,
    pub fleet: Fleet,
    pub clock: Arc<FakeClock>,
    pub vendor: Vendor,
    pub guard: Guard,
}

/// Keeps a test store's backing (a temporary directory, a PostgreSQL
/// schema) alive as long as the store.
pub type Guard = Option<Box<dyn std::any::Any + Send + Sync>>;

/// The store the suite runs on, by `KEYWAY_HUB_TEST_STORE`:
/// * unset or `sqlite`: `SqliteStore` in a fresh file (the hub's default);
/// * `memory`: the in-memory store above;
/// * `postgres`: `PgStore` in a fresh schema of `KEYWAY_TEST_POSTGRES`'s
///   database (`eval "$(scripts/postgres.sh)"`); the engine suite only
///   (the API tests call the store from async tasks, which the `postgres`
///   crate forbids).
pub fn new_store() -> (Arc<dyn Store>, Guard) {
    match std::env::var("KEYWAY_HUB_TEST_STORE").as_deref() {
        Ok("memory") => (Arc::new(MemStore::default()), None),
        Ok("postgres") => {
            let base = std::env::var("KEYWAY_TEST_POSTGRES")
                .expect("KEYWAY_HUB_TEST_STORE=postgres needs KEYWAY_TEST_POSTGRES");
            let schema = common::PgSchema::new(&base);
            (Arc::new(schema.store()), Some(Box::new(schema)))
        }
        Ok("sqlite") | Err(_) => {
            let (dir, store) = common::sqlite();
            (Arc::new(store), Some(Box::new(dir)))
        }
        Ok(other) => panic!("KEYWAY_HUB_TEST_STORE={other}: use sqlite, memory or postgres"),
    }
}

impl World {
    pub fn new() -> World {
        World::with_config(HubConfig {
            install_wait_ms: 10,
            concurrency: 4,
            ..HubConfig::default()
        })
    }

    /// A world with lock `a` paired, running 1.2.0.
    pub fn with_lock() -> (World, LockId) {
        let w = World::new();
        let id = w.paired_lock("a", 2);
        (w, id)
    }

    /// A world offering release 1.3.0 (as [`World::releases`] returns it)
    /// to lock `a`, paired running 1.2.0, without consent.
    pub fn offering() -> (World, Vec<Digest>, LockId) {
        let w = World::new();
        let d = w.releases(&[(3, &[])]);
        let id = w.paired_lock("a", 2);
        (w, d, id)
    }

    pub fn with_config(config: HubConfig) -> World {
        let (store, guard) = new_store();
        let fleet = Fleet::default();
        let clock = FakeClock::at(T0);
        let hub = Arc::new(Hub::new(
            store.clone(),
            Arc::new(fleet.clone()),
            clock.clone(),
            config,
        ));
        let vendor = Vendor::new();
        hub.put_model(&vendor.model).unwrap();
        World {
            hub,
            store,
            fleet,
            clock,
            vendor,
            guard,
        }
    }

    /// Imports releases 1.<seq>.0 (full) for each of `seqs`.
    pub fn releases(&self, seqs: &[(u64, &[(&str, &str)])]) -> Vec<Digest> {
        let inc: Vec<Incoming> = seqs
            .iter()
            .map(|(s, cves)| {
                incoming(
                    &format!("r{s}.suit"),
                    envelope(&self.vendor.key, CLASS, *s, cves, None),
                )
            })
            .collect();
        let r = self.hub.ingest(inc).unwrap();
        assert!(r.refused.is_empty(), "{:?}", r.refused);
        r.imported.iter().map(|i| i.digest).collect()
    }

    /// Adds and pairs a scripted lock running `1.<seq>.0`.
    pub fn paired_lock(&self, address: &str, seq: u64) -> LockId {
        self.fleet.add(address, FakeLock::new(seq));
        let l = self.added_lock(&format!("door {address}"), address);
        self.hub.pair(l.id, "86420").unwrap();
        l.id
    }

    /// Adds lock `name` of the model at `address` (not paired).
    pub fn added_lock(&self, name: &str, address: &str) -> LockRecord {
        self.hub
            .add_lock(&NewLock {
                name: name.into(),
                address: address.into(),
                class: CLASS.into(),
            })
            .unwrap()
    }

    /// Release 1.3.0 taken in (as [`World::releases`] returns it) and the
    /// locks `names` paired running 1.2.0, each with the owner's consent to
    /// the release.
    pub fn consented(&self, names: &[&str]) -> (Vec<Digest>, Vec<LockId>) {
        let d = self.releases(&[(3, &[])]);
        let ids: Vec<LockId> = names.iter().map(|a| self.paired_lock(a, 2)).collect();
        for id in &ids {
            self.accept(*id, d[0]);
        }
        (d, ids)
    }

    /// [`World::consented`] for `n` locks `l0`, `l1`, ….
    pub fn consented_locks(&self, n: usize) -> (Vec<Digest>, Vec<LockId>) {
        let names: Vec<String> = (0..n).map(|i| format!("l{i}")).collect();
        self.consented(&names.iter().map(String::as_str).collect::<Vec<_>>())
    }

    /// [`World::consented`] for one lock.
    pub fn consented_lock(&self, address: &str) -> (Vec<Digest>, LockId) {
        let (d, ids) = self.consented(&[address]);
        (d, ids[0])
    }

    /// The owner accepts `release` for lock `id`.
    pub fn accept(&self, id: LockId, release: Digest) {
        self.hub
            .consent(id, release, Decision::Accept, ConsentSource::Owner)
            .unwrap();
    }

    /// Releases 1.2.0 and 1.3.0 taken in (as [`World::releases`] returns
    /// them) and lock `a` paired running 1.2.0, scripted `script`, with the
    /// owner's consent to 1.3.0.
    pub fn accepted_upgrade(&self, script: Script) -> (Vec<Digest>, LockId) {
        let d = self.releases(&[(2, &[]), (3, &[])]);
        let id = self.paired_lock("a", 2);
        self.fleet.with("a", |l| l.script = script);
        self.accept(id, d[1]);
        (d, id)
    }

    /// Takes in one envelope, named `target`.
    pub fn ingest_one(&self, target: &str, env: Vec<u8>) -> IngestReport {
        self.hub.ingest(vec![incoming(target, env)]).unwrap()
    }

    pub fn events(&self) -> Vec<Event> {
        self.store.events(0, 100_000).unwrap()
    }

    /// Whether an event of `kind` was recorded.
    pub fn saw(&self, kind: &str) -> bool {
        self.kinds().iter().any(|k| k == kind)
    }

    /// The version lock `id` last reported.
    pub fn version(&self, id: LockId) -> String {
        self.hub.lock(id).unwrap().snapshot.unwrap().version
    }

    pub fn kinds(&self) -> Vec<String> {
        self.events().into_iter().map(|e| e.kind).collect()
    }
}
