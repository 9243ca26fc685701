//! The engine's own cost per lock in a rollout: N locks behind instant
//! in-process links (no radio, no lock work), every one with an accepted
//! consent, updated in waves at a given concurrency, on a real store. What
//! it measures is the hub's side only: decisions, store writes (consents,
//! lock records, events, the rollout after each wave) and the thread pool.
//! The full 1,000-lock figure with simulated locks is `keyway hub`'s.
//!
//!   cargo run --release -p keyway-hub --example engine_rollout -- [LOCKS] [CONCURRENCY] [sqlite|postgres]
//!
//! (`postgres` needs `KEYWAY_TEST_POSTGRES`, e.g. from `eval "$(scripts/postgres.sh)"`.)

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use keyway_hub::engine::{Hub, HubConfig, Incoming, SystemClock};
use keyway_hub::link::{
    Connector, FetchedLog, InstallOutcome, LinkError, LockLink, Paired, Pushed,
};
use keyway_hub::model::*;
use keyway_hub::store::{PgStore, SqliteStore, Store};
use keyway_vendor::encode::EnvelopeBuilder;
use keyway_vendor::keys::{Algorithm, SigningKey};
use sha2::{Digest as _, Sha256};

fn image(seq: u64) -> Vec<u8> {
    (0..64 * 1024u32)
        .map(|i| (i.wrapping_mul(31) ^ (seq as u32 * 7)) as u8)
        .collect()
}

fn sha(b: &[u8]) -> Digest {
    Digest(Sha256::digest(b).into())
}

#[derive(Clone, Default)]
struct Fleet(Arc<Mutex<HashMap<String, u64>>>);

struct Link {
    locks: Fleet,
    address: String,
    images: Arc<HashMap<u64, Digest>>,
    pending: Option<u64>,
}

impl LockLink for Link {
    fn pair(&mut self, _code: &str) -> Result<Paired, LinkError> {
        Ok(Paired {
            device_key: [7; 32],
        })
    }
    fn status(&mut self) -> Result<LockSnapshot, LinkError> {
        let seq = self.locks.0.lock().unwrap()[&self.address];
        Ok(LockSnapshot {
            model: "nrf52840".into(),
            version: format!("1.{seq}.0"),
            image: Some(self.images[&seq]),
            update: UpdateState::Confirmed,
            battery_mwh: 2000,
            door: Door::Closed,
            bolt: Bolt::Unlocked,
            tamper: false,
        })
    }
    fn push(
        &mut self,
        c: &[&[u8]],
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<Pushed, LinkError> {
        let i = keyway_suit::inspect_envelope(c[0])
            .map_err(|e| LinkError::Malformed(format!("{e:?}")))?;
        self.pending = Some(i.manifest.sequence);
        progress(c[0].len() as u64, c[0].len() as u64);
        Ok(Pushed {
            release: sha(c[0]),
            bytes: c[0].len() as u64,
            resumed_from: 0,
            delta: false,
        })
    }
    fn consent(&mut self, _accept: bool, _wait: u64) -> Result<InstallOutcome, LinkError> {
        let seq = self
            .pending
            .take()
            .ok_or(LinkError::Malformed("nothing pushed".into()))?;
        self.locks
            .0
            .lock()
            .unwrap()
            .insert(self.address.clone(), seq);
        Ok(InstallOutcome::Running)
    }
    fn fetch_log(&mut self, _since: Option<u64>) -> Result<FetchedLog, LinkError> {
        Ok(FetchedLog {
            bytes: Vec::new(),
            first_seq: 1,
            last_seq: 0,
        })
    }
}

struct Conn(Fleet, Arc<HashMap<u64, Digest>>);

impl Connector for Conn {
    fn connect(&self, lock: &LockRecord) -> Result<Box<dyn LockLink>, LinkError> {
        Ok(Box::new(Link {
            locks: self.0.clone(),
            address: lock.address.clone(),
            images: self.1.clone(),
            pending: None,
        }))
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let n: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(1000);
    let concurrency: usize = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(8);
    let backend = args.get(3).map_or("sqlite", String::as_str);
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = match backend {
        "postgres" => {
            let url = std::env::var("KEYWAY_TEST_POSTGRES").expect("set KEYWAY_TEST_POSTGRES");
            let mut c = postgres::Client::connect(&url, postgres::NoTls).unwrap();
            let schema = format!("kwbench_{}", std::process::id());
            c.batch_execute(&format!("CREATE SCHEMA {schema}")).unwrap();
            let sep = if url.contains('?') { '&' } else { '?' };
            Arc::new(
                PgStore::connect(&format!("{url}{sep}options=-c%20search_path%3D{schema}"))
                    .unwrap(),
            )
        }
        _ => Arc::new(SqliteStore::open(dir.path().join("hub.sqlite")).unwrap()),
    };
    let key = SigningKey::generate(Algorithm::Ed25519).unwrap();
    let model = ModelAnchors {
        class: "deadbolt-2".into(),
        vendor_domain: "locks.example".into(),
        trust_pems: vec![key.public_key().to_spki_pem().unwrap()],
        threshold: 1,
    };
    let images: Arc<HashMap<u64, Digest>> =
        Arc::new((1..=2).map(|s| (s, sha(&image(s)))).collect());
    let locks = Fleet::default();
    let hub = Hub::new(
        store.clone(),
        Arc::new(Conn(locks.clone(), images)),
        Arc::new(SystemClock),
        HubConfig {
            concurrency,
            ..HubConfig::default()
        },
    );
    hub.put_model(&model).unwrap();
    let envs: Vec<Incoming> = (1..=2)
        .map(|s| Incoming {
            target: format!("deadbolt-2/r{s}.suit"),
            bytes: EnvelopeBuilder {
                sequence: s,
                version: format!("1.{s}.0").parse().unwrap(),
                vendor_domain: "locks.example".into(),
                class_name: "deadbolt-2".into(),
                notes: Some("notes".into()),
                payload: image(s),
                keys: vec![key.clone()],
                ..Default::default()
            }
            .build()
            .unwrap()
            .envelope,
            origin: ReleaseOrigin::Bundle {
                path: "/bench".into(),
            },
        })
        .collect();
    let t = Instant::now();
    let report = hub.ingest(envs).unwrap();
    let ingest = t.elapsed();
    let release = report.imported[1].digest;
    let t = Instant::now();
    for i in 0..n {
        let address = format!("mem:{i}");
        locks.0.lock().unwrap().insert(address.clone(), 1);
        let l = hub
            .add_lock(&NewLock {
                name: format!("lock {i}"),
                address,
                class: "deadbolt-2".into(),
            })
            .unwrap();
        hub.pair(l.id, "00000").unwrap();
        hub.consent(l.id, release, Decision::Accept, ConsentSource::Owner)
            .unwrap();
    }
    let setup = t.elapsed();
    let t = Instant::now();
    let r = hub.create_rollout(release, 100, 10, None).unwrap();
    let r = hub.run_rollout(r.id).unwrap();
    let wall = t.elapsed();
    let updated = r
        .locks
        .iter()
        .filter(|(_, o)| *o == RolloutOutcome::Updated)
        .count();
    assert_eq!(updated, n, "{:?}", r.state);
    println!(
        "engine_rollout: {n} locks, concurrency {concurrency}, {backend}: ingest 2 envelopes (64 KiB) {:.1} ms; add+pair+consent {:.2} s ({:.2} ms/lock); rollout {:.2} s ({:.2} ms/lock of hub work), {updated} updated, {} events",
        ingest.as_secs_f64() * 1e3,
        setup.as_secs_f64(),
        setup.as_secs_f64() * 1e3 / n as f64,
        wall.as_secs_f64(),
        wall.as_secs_f64() * 1e3 / n as f64,
        store.events(0, u32::MAX).unwrap().len()
    );
}
