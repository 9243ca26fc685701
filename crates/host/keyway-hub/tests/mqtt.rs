//! The Home Assistant bridge against a real Mosquitto broker: discovery
//! (retained, exact schema), state moving during an update, install from
//! an MQTT command exactly once, hostile commands refused, and a broker
//! that dies and comes back.
//!
//! Needs `KEYWAY_TEST_MQTT=mqtt://127.0.0.1:PORT` (`eval "$(scripts/mosquitto.sh)"`);
//! without it each test prints a SKIPPED line and passes. The restart test
//! runs its own broker (the `mosquitto` binary) on a free port.

mod support;

use std::collections::BTreeSet;
use std::process::{Child, Command};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use keyway_hub::engine::{Hub, HubConfig};
use keyway_hub::link::{
    Connector, FetchedLog, InstallOutcome, LinkError, LockLink, Paired, Pushed,
};
use keyway_hub::model::*;
use keyway_hub::mqtt::{self, MqttOptions};
use rumqttc::{AsyncClient, Event, Packet, QoS};
use serde_json::Value;
use support::*;

fn broker(test: &str) -> Option<MqttOptions> {
    match std::env::var("KEYWAY_TEST_MQTT") {
        Ok(url) => Some(MqttOptions::from_url(&url).expect("KEYWAY_TEST_MQTT is mqtt://HOST:PORT")),
        Err(_) => {
            println!(
                "SKIPPED {test}: KEYWAY_TEST_MQTT is not set (eval \"$(scripts/mosquitto.sh)\" starts a broker)"
            );
            None
        }
    }
}

static N: AtomicU32 = AtomicU32::new(0);

/// Everything the bridges in this test binary logged (one global
/// subscriber; each test finds its own lines by its unique topic base).
static LOG: Mutex<Vec<u8>> = Mutex::new(Vec::new());

struct LogWriter;
impl std::io::Write for LogWriter {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        LOG.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn capture_logs() {
    let _ = tracing_subscriber::fmt()
        .with_writer(|| LogWriter)
        .with_ansi(false)
        .try_init();
}

fn log_lines(containing: &str) -> Vec<String> {
    String::from_utf8_lossy(&LOG.lock().unwrap())
        .lines()
        .filter(|l| l.contains(containing))
        .map(str::to_string)
        .collect()
}

/// The shared broker's options with a base and prefix of the test's own,
/// or `None` (and a line saying the test is skipped) without a broker.
fn setup(test: &str, tag: &str) -> Option<MqttOptions> {
    broker(test).map(|o| opts_for(o, tag))
}

/// Lock `id`'s topic `rest` under the bridge's base.
fn lock_topic(o: &MqttOptions, id: LockId, rest: &str) -> String {
    format!("{}/lock/{id}/{rest}", o.base)
}

/// The discovery config topic of lock `id`'s `component` entity.
fn config_topic(o: &MqttOptions, component: &str, id: LockId) -> String {
    format!("{}/{component}/{}/lock_{id}/config", o.prefix, o.base)
}

/// The install command's payload for release `r`.
fn press(r: Digest) -> Vec<u8> {
    format!("install:{}", r.to_hex()).into_bytes()
}

/// Options with a base and prefix of the test's own (tests share a broker).
fn opts_for(mut o: MqttOptions, test: &str) -> MqttOptions {
    let n = N.fetch_add(1, Ordering::SeqCst);
    let tag = format!("kwt{}x{n}", std::process::id());
    o.base = format!("{tag}{test}").replace('_', "");
    o.prefix = format!("ha{tag}{test}").replace('_', "");
    o.client_id = format!("{}-hub", o.base);
    o.release_base = Some("http://hub.local:8080".into());
    o.poll = Duration::from_millis(50);
    o
}

#[derive(Clone, Debug)]
struct Msg {
    topic: String,
    payload: Vec<u8>,
    retain: bool,
}

/// A second MQTT client that records everything under `filters`.
struct Watcher {
    msgs: Arc<Mutex<Vec<Msg>>>,
    client: AsyncClient,
    task: tokio::task::JoinHandle<()>,
}

impl Watcher {
    async fn start(o: &MqttOptions, name: &str, filters: &[String]) -> Watcher {
        let mut mo =
            rumqttc::MqttOptions::new(format!("{}-{name}", o.base), o.host.clone(), o.port);
        mo.set_max_packet_size(1 << 20, 1 << 20);
        let (client, mut el) = AsyncClient::new(mo, 64);
        for f in filters {
            client.subscribe(f.clone(), QoS::AtLeastOnce).await.unwrap();
        }
        let msgs = Arc::new(Mutex::new(Vec::new()));
        let m = msgs.clone();
        let task = tokio::spawn(async move {
            loop {
                match el.poll().await {
                    Ok(Event::Incoming(Packet::Publish(p))) => m.lock().unwrap().push(Msg {
                        topic: p.topic.clone(),
                        payload: p.payload.to_vec(),
                        retain: p.retain,
                    }),
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
        });
        Watcher { msgs, client, task }
    }

    fn all(&self) -> Vec<Msg> {
        self.msgs.lock().unwrap().clone()
    }

    fn last(&self, topic: &str) -> Option<Msg> {
        self.all().into_iter().rev().find(|m| m.topic == topic)
    }

    fn json(&self, topic: &str) -> Option<Value> {
        self.last(topic)
            .and_then(|m| serde_json::from_slice(&m.payload).ok())
    }

    async fn wait(&self, what: &str, secs: u64, f: impl Fn(&Watcher) -> bool) {
        let end = Instant::now() + Duration::from_secs(secs);
        while Instant::now() < end {
            if f(self) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!(
            "timed out waiting for {what}; got {} messages: {:#?}",
            self.all().len(),
            self.all()
                .iter()
                .map(|m| (
                    m.topic.clone(),
                    String::from_utf8_lossy(&m.payload).into_owned()
                ))
                .collect::<Vec<_>>()
        );
    }

    /// Waits up to `secs` for the state on `state_t` to have `key` equal
    /// to `version`.
    async fn wait_state(&self, what: &str, secs: u64, state_t: &str, key: &str, version: &str) {
        self.wait(what, secs, |w| {
            w.json(state_t).is_some_and(|s| s[key] == version)
        })
        .await
    }

    /// The last payload on `topic` (there is one).
    fn payload(&self, topic: &str) -> Vec<u8> {
        self.last(topic).unwrap().payload
    }

    async fn send(&self, topic: &str, payload: Vec<u8>, retain: bool) {
        self.client
            .publish(topic, QoS::AtLeastOnce, retain, payload)
            .await
            .unwrap();
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn filters(o: &MqttOptions) -> Vec<String> {
    vec![format!("{}/#", o.prefix), format!("{}/#", o.base)]
}

fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object().unwrap().keys().cloned().collect()
}

fn set(k: &[&str]) -> BTreeSet<String> {
    k.iter().map(|s| s.to_string()).collect()
}

// ----- a slow link: progress moves in visible steps -----------------------------

struct Slow(Fleet, u64);
struct SlowLink(Box<dyn LockLink>, u64);

impl Connector for Slow {
    fn connect(&self, lock: &LockRecord) -> Result<Box<dyn LockLink>, LinkError> {
        Ok(Box::new(SlowLink(self.0.connect(lock)?, self.1)))
    }
}

impl LockLink for SlowLink {
    fn pair(&mut self, code: &str) -> Result<Paired, LinkError> {
        self.0.pair(code)
    }
    fn status(&mut self) -> Result<LockSnapshot, LinkError> {
        self.0.status()
    }
    fn push(
        &mut self,
        c: &[&[u8]],
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<Pushed, LinkError> {
        let ms = self.1;
        self.0.push(c, &mut |d, t| {
            std::thread::sleep(Duration::from_millis(ms));
            progress(d, t)
        })
    }
    fn consent(&mut self, accept: bool, wait_ms: u64) -> Result<InstallOutcome, LinkError> {
        self.0.consent(accept, wait_ms)
    }
    fn fetch_log(&mut self, since: Option<u64>) -> Result<FetchedLog, LinkError> {
        self.0.fetch_log(since)
    }
}

/// A world whose pushes take `ms` per KiB, with releases 1.2.0 (two CVEs)
/// and a lock running 1.1.0.
fn world(ms: u64) -> (World, LockId, Digest) {
    let w0 = World::new();
    let hub = Arc::new(Hub::new(
        w0.store.clone(),
        Arc::new(Slow(w0.fleet.clone(), ms)),
        w0.clock.clone(),
        HubConfig {
            install_wait_ms: 10,
            concurrency: 4,
            ..HubConfig::default()
        },
    ));
    let w = World { hub, ..w0 };
    let d = w.releases(&[
        (1, &[]),
        (
            2,
            &[("CVE-2026-1111", "critical"), ("CVE-2026-2222", "low")],
        ),
    ]);
    let id = w.paired_lock("udp:lock-a", 1);
    (w, id, d[1])
}

/// The bridge's task, aborted when the test ends (or fails).
struct Bridge(tokio::task::JoinHandle<()>);

impl Drop for Bridge {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Starts the bridge of `w`'s hub with the options `o`.
fn spawn_bridge(w: &World, o: &MqttOptions) -> Bridge {
    Bridge(mqtt::spawn(w.hub.clone(), o.clone()))
}

/// What [`bridged`] starts: the options, the world, its lock and release
/// 1.2.0, the bridge's task, the watcher and the lock's update-state topic.
type Bridged = (MqttOptions, World, LockId, Digest, Bridge, Watcher, String);

/// Starts the bridge of test `test` (topics tagged `tag`) over a
/// [`world`]`(ms)`, and a client `watcher` subscribed to every topic;
/// `None` without a broker.
async fn bridged(test: &str, tag: &str, ms: u64, watcher: &str) -> Option<Bridged> {
    let o = setup(test, tag)?;
    let (w, id, r2) = world(ms);
    let bridge = spawn_bridge(&w, &o);
    let watch = Watcher::start(&o, watcher, &filters(&o)).await;
    let state_t = lock_topic(&o, id, "update/state");
    Some((o, w, id, r2, bridge, watch, state_t))
}

fn installs(w: &World) -> (usize, u32) {
    let l = w.fleet.get("udp:lock-a");
    (l.uploads.len(), l.consents)
}

// ----- tests ----------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn discovery_is_published_retained_with_the_exact_schema() {
    let test = "discovery_is_published_retained_with_the_exact_schema";
    let Some((o, _w, id, r2, _bridge, live, state_t)) = bridged(test, "disc", 0, "live").await
    else {
        return;
    };
    live.wait("the update state", 10, |w| w.last(&state_t).is_some())
        .await;
    // A client that subscribes afterwards gets everything retained.
    let late = Watcher::start(&o, "late", &filters(&o)).await;
    let upd_t = config_topic(&o, "update", id);
    let lock_t = config_topic(&o, "lock", id);
    late.wait("retained discovery", 10, |w| {
        w.last(&upd_t).is_some() && w.last(&lock_t).is_some() && w.last(&state_t).is_some()
    })
    .await;
    for t in [&upd_t, &lock_t, &state_t] {
        assert!(late.last(t).unwrap().retain, "{t} is retained");
    }
    let upd = late.json(&upd_t).unwrap();
    assert_eq!(
        keys(&upd),
        set(&[
            "name",
            "unique_id",
            "device_class",
            "state_topic",
            "command_topic",
            "payload_install",
            "availability",
            "availability_mode",
            "qos",
            "device",
            "origin"
        ])
    );
    assert_eq!(upd["device_class"], "firmware");
    assert_eq!(upd["state_topic"], state_t);
    assert_eq!(upd["command_topic"], lock_topic(&o, id, "update/install"));
    assert_eq!(upd["payload_install"], format!("install:{}", r2.to_hex()));
    assert_eq!(upd["availability_mode"], "all");
    assert_eq!(
        upd["availability"][0]["topic"],
        format!("{}/hub/status", o.base)
    );
    assert_eq!(
        upd["availability"][1]["topic"],
        lock_topic(&o, id, "availability")
    );
    assert_eq!(
        keys(&upd["device"]),
        set(&["identifiers", "name", "manufacturer", "model", "sw_version"])
    );
    assert_eq!(upd["device"]["name"], "door udp:lock-a");
    assert_eq!(upd["device"]["manufacturer"], "Keyway");
    assert_eq!(upd["device"]["model"], CLASS);
    assert_eq!(upd["device"]["sw_version"], "1.1.0");
    let lk = late.json(&lock_t).unwrap();
    assert_eq!(lk["state_topic"], lock_topic(&o, id, "lock/state"));
    assert_eq!(lk["state_locked"], "LOCKED");
    assert_eq!(lk["optimistic"], false);
    assert_eq!(lk["device"], upd["device"], "one device, two entities");
    assert_ne!(lk["unique_id"], upd["unique_id"]);
    let st = late.json(&state_t).unwrap();
    assert_eq!(
        keys(&st),
        set(&[
            "installed_version",
            "latest_version",
            "title",
            "release_summary",
            "release_url",
            "in_progress",
            "update_percentage"
        ])
    );
    assert_eq!(st["installed_version"], "1.1.0");
    assert_eq!(st["latest_version"], "1.2.0");
    assert_eq!(st["in_progress"], false);
    let summary = st["release_summary"].as_str().unwrap();
    assert!(
        summary.starts_with("Fixes CVE-2026-1111, CVE-2026-2222."),
        "{summary}"
    );
    assert!(summary.chars().count() <= 255);
    assert_eq!(
        st["release_url"],
        format!("http://hub.local:8080/releases/{}", r2.to_hex())
    );
    assert_eq!(late.payload(&format!("{}/hub/status", o.base)), b"online");
    assert_eq!(late.payload(&lock_topic(&o, id, "availability")), b"online");
    assert_eq!(late.payload(&lock_topic(&o, id, "lock/state")), b"UNLOCKED");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn install_from_mqtt_moves_state_and_installs_exactly_once_when_sent_twice() {
    let test = "install_from_mqtt_moves_state_and_installs_exactly_once_when_sent_twice";
    let Some((o, w, id, r2, _bridge, watch, state_t)) = bridged(test, "inst", 150, "w").await
    else {
        return;
    };
    watch
        .wait_state("the offer", 10, &state_t, "latest_version", "1.2.0")
        .await;
    let cmd = lock_topic(&o, id, "update/install");
    let press = press(r2);
    // Pressed twice (a QoS 1 duplicate, an impatient owner).
    watch.send(&cmd, press.clone(), false).await;
    watch.send(&cmd, press.clone(), false).await;
    watch
        .wait("installed 1.2.0", 20, |w| {
            w.json(&state_t)
                .is_some_and(|s| s["installed_version"] == "1.2.0" && s["in_progress"] == false)
        })
        .await;
    // And once more after it finished: no longer the offer, refused.
    watch.send(&cmd, press, false).await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(installs(&w), (1, 1), "one upload, one consent to the lock");
    let consents = w.store.consents(id).unwrap();
    assert_eq!(consents.len(), 1, "{consents:?}");
    assert_eq!(consents[0].source, ConsentSource::HomeAssistant);
    assert_eq!(consents[0].release, r2);
    // The state moved: in progress, percentages rising, then done.
    let states: Vec<Value> = watch
        .all()
        .into_iter()
        .filter(|m| m.topic == state_t)
        .filter_map(|m| serde_json::from_slice(&m.payload).ok())
        .collect();
    let pcts: Vec<u64> = states
        .iter()
        .filter_map(|s| s["update_percentage"].as_u64())
        .collect();
    assert!(
        states.iter().any(|s| s["in_progress"] == true),
        "{states:#?}"
    );
    assert!(pcts.windows(2).all(|p| p[0] <= p[1]), "rising: {pcts:?}");
    let distinct: BTreeSet<u64> = pcts.iter().copied().collect();
    assert!(distinct.len() >= 3, "several steps seen: {pcts:?}");
    assert_eq!(states.last().unwrap()["installed_version"], "1.2.0");
    assert_eq!(states.last().unwrap()["latest_version"], "1.2.0");
    println!(
        "state messages: {}, percentages seen: {pcts:?}",
        states.len()
    );
}

/// Every hostile or malformed command, sent over the broker, installs
/// nothing and records no consent.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hostile_commands_over_the_broker_install_nothing() {
    let Some(o) = setup("hostile_commands_over_the_broker_install_nothing", "host") else {
        return;
    };
    capture_logs();
    let (w, id, r2) = world(0);
    let r1 = w
        .store
        .releases(None)
        .unwrap()
        .into_iter()
        .find(|r| r.version == "1.1.0")
        .unwrap()
        .digest;
    let _bridge = spawn_bridge(&w, &o);
    let watch = Watcher::start(&o, "w", &filters(&o)).await;
    let state_t = lock_topic(&o, id, "update/state");
    watch
        .wait("the offer", 10, |w| w.last(&state_t).is_some())
        .await;
    let b = &o.base;
    let cmd = format!("{b}/lock/{id}/update/install");
    let good = format!("install:{}", r2.to_hex());
    let cases: Vec<(String, Vec<u8>, bool)> = vec![
        (
            cmd.clone(),
            format!("{{\"install\":\"{}\"}}", r2.to_hex()).into_bytes(),
            false,
        ), // JSON
        (cmd.clone(), b"install".to_vec(), false),
        (cmd.clone(), b"INSTALL".to_vec(), false),
        (cmd.clone(), b"install:none".to_vec(), false),
        (
            cmd.clone(),
            format!("install:{}", "0".repeat(64)).into_bytes(),
            false,
        ), // unknown release
        (cmd.clone(), press(r1), false), // not the offer
        (cmd.clone(), format!("{good} ").into_bytes(), false), // trailing space
        (
            cmd.clone(),
            [good.as_bytes(), &vec![b'A'; 64 * 1024]].concat(),
            false,
        ), // oversized
        (cmd.clone(), vec![0xff, 0xfe, 0x00], false), // not UTF-8
        (
            format!("{b}/lock/999/update/install"),
            good.clone().into_bytes(),
            false,
        ), // unknown lock
        (
            format!("{b}/lock/abc/update/install"),
            good.clone().into_bytes(),
            false,
        ),
        (
            format!("{b}/lock/0{id}/update/install"),
            good.clone().into_bytes(),
            false,
        ),
        (format!("{b}/lock/{id}/lock/set"), b"UNLOCK".to_vec(), false),
        (format!("{b}/lock/{id}/lock/set"), b"LOCK".to_vec(), false),
        (
            format!("{}/status", o.prefix),
            b"{\"state\":\"online\"}".to_vec(),
            false,
        ),
    ];
    let n = cases.len();
    for (t, p, retain) in cases {
        watch.send(&t, p, retain).await;
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(installs(&w), (0, 0), "nothing uploaded or consented");
    assert!(w.store.consents(id).unwrap().is_empty());
    println!("hostile commands sent: {n}; installs: 0");
    // Each was refused with a log line naming what failed.
    let refused = log_lines("MQTT message refused");
    let mine = |code: &str| {
        refused
            .iter()
            .filter(|l| l.contains(&o.base) && l.contains(&format!("code=\"{code}\"")))
            .count()
    };
    for (code, want) in [
        ("bad_install", 4),
        ("no_offer", 1),
        ("oversized", 1),
        ("not_text", 1),
        ("bad_lock_id", 2),
    ] {
        assert_eq!(mine(code), want, "log lines with code {code}: {refused:#?}");
    }
    let install_refusals = log_lines("MQTT install refused");
    assert!(
        install_refusals
            .iter()
            .any(|l| l.contains("no longer the lock's offer")),
        "{install_refusals:#?}"
    );
    assert!(
        install_refusals
            .iter()
            .any(|l| l.contains("no lock with id 999")),
        "{install_refusals:#?}"
    );
    assert!(
        log_lines("MQTT bolt command refused")
            .iter()
            .filter(|l| l.contains("UNLOCK"))
            .count()
            >= 1
    );
    // The bridge still works after all that.
    watch.send(&cmd, good.into_bytes(), false).await;
    watch
        .wait_state("installed", 20, &state_t, "installed_version", "1.2.0")
        .await;
    assert_eq!(installs(&w), (1, 1));
}

/// A retained install command (kept by the broker, delivered again on every
/// subscribe) is stale by nature: refused, never an install.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn retained_install_command_is_refused() {
    let Some(o) = setup("retained_install_command_is_refused", "ret") else {
        return;
    };
    let (w, id, r2) = world(0);
    let watch = Watcher::start(&o, "w", &filters(&o)).await;
    let cmd = lock_topic(&o, id, "update/install");
    watch.send(&cmd, press(r2), true).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let _bridge = spawn_bridge(&w, &o);
    let state_t = lock_topic(&o, id, "update/state");
    watch
        .wait("the offer", 10, |w| w.last(&state_t).is_some())
        .await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    // Clear it so it does not outlive the test.
    watch.send(&cmd, Vec::new(), true).await;
    assert_eq!(installs(&w), (0, 0), "a retained command installs nothing");
    assert!(w.store.consents(id).unwrap().is_empty());
}

/// The owner pressed install while the entity showed 1.2.0, but a newer
/// release came in before the command arrived: the bridge refuses.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn install_for_an_offer_that_changed_is_refused() {
    let test = "install_for_an_offer_that_changed_is_refused";
    let Some((o, w, id, r2, _bridge, watch, state_t)) = bridged(test, "chg", 0, "w").await else {
        return;
    };
    let upd_t = config_topic(&o, "update", id);
    watch
        .wait_state("1.2.0 offered", 10, &state_t, "latest_version", "1.2.0")
        .await;
    let r3 = w.releases(&[(3, &[])])[0];
    watch
        .wait("1.3.0 offered", 10, |w| {
            w.json(&upd_t)
                .is_some_and(|c| c["payload_install"] == format!("install:{}", r3.to_hex()))
        })
        .await;
    watch
        .send(&lock_topic(&o, id, "update/install"), press(r2), false)
        .await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(installs(&w), (0, 0));
    assert!(w.store.consents(id).unwrap().is_empty());
}

// ----- a broker that dies and comes back ------------------------------------------

fn mosquitto_bin() -> Option<String> {
    if let Ok(b) = std::env::var("KEYWAY_MOSQUITTO") {
        return Some(b);
    }
    ["/usr/sbin/mosquitto", "/usr/bin/mosquitto"]
        .iter()
        .find(|p| std::path::Path::new(p).exists())
        .map(|p| p.to_string())
}

struct Broker {
    child: Child,
}

impl Broker {
    fn start(bin: &str, dir: &std::path::Path, port: u16) -> Broker {
        let conf = dir.join("m.conf");
        std::fs::write(
            &conf,
            format!("listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"),
        )
        .unwrap();
        let child = Command::new(bin)
            .arg("-c")
            .arg(&conf)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let end = Instant::now() + Duration::from_secs(5);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < end, "mosquitto did not listen on {port}");
            std::thread::sleep(Duration::from_millis(50));
        }
        Broker { child }
    }
    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.kill();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn broker_killed_and_restarted_bridge_reconnects_republishes_and_installs_once() {
    let test = "broker_killed_and_restarted_bridge_reconnects_republishes_and_installs_once";
    if broker(test).is_none() {
        return;
    }
    let Some(bin) = mosquitto_bin() else {
        println!("SKIPPED {test}: no mosquitto binary (set KEYWAY_MOSQUITTO)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut b = Broker::start(&bin, dir.path(), port);
    let o = opts_for(
        MqttOptions::from_url(&format!("mqtt://127.0.0.1:{port}")).unwrap(),
        "rst",
    );
    let (w, id, r2) = world(0);
    let bridge = spawn_bridge(&w, &o);
    let state_t = lock_topic(&o, id, "update/state");
    let upd_t = config_topic(&o, "update", id);
    let watch = Watcher::start(&o, "w1", &filters(&o)).await;
    watch
        .wait("discovery", 10, |w| w.last(&upd_t).is_some())
        .await;
    let cmd = lock_topic(&o, id, "update/install");
    let press = press(r2);
    watch.send(&cmd, press.clone(), false).await;
    watch
        .wait_state("installed", 20, &state_t, "installed_version", "1.2.0")
        .await;
    drop(watch);

    // The broker dies (its retained messages die with it: no persistence).
    b.kill();
    // While it is down the house changes: a new release arrives.
    let r3 = w.releases(&[(3, &[("CVE-2026-3333", "high")])])[0];
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let mut b = Broker::start(&bin, dir.path(), port);
    let t0 = Instant::now();
    let late = Watcher::start(&o, "w2", &filters(&o)).await;
    late.wait("republished discovery and state", 40, |w| {
        w.last(&upd_t).is_some()
            && w.json(&state_t).is_some_and(|s| {
                s["installed_version"] == "1.2.0" && s["latest_version"] == "1.3.0"
            })
    })
    .await;
    println!("republished {:?} after the broker came back", t0.elapsed());
    // Retained again on the new broker: a client that comes later gets it.
    let later = Watcher::start(&o, "w3", &filters(&o)).await;
    later
        .wait("retained discovery on the new broker", 10, |w| {
            w.last(&upd_t).is_some_and(|m| m.retain)
        })
        .await;
    drop(later);
    assert_eq!(
        late.json(&upd_t).unwrap()["payload_install"],
        format!("install:{}", r3.to_hex()),
        "nothing lost: the offer that arrived while the broker was down"
    );
    assert_eq!(late.payload(&format!("{}/hub/status", o.base)), b"online");
    // The old command again (a client that queued it): not the offer now.
    late.send(&cmd, press, false).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(installs(&w), (1, 1), "nothing installed twice");
    // Home Assistant restarts: its birth message makes the bridge republish.
    let before = late.all().iter().filter(|m| m.topic == upd_t).count();
    late.send(&format!("{}/status", o.prefix), b"online".to_vec(), false)
        .await;
    late.wait("republish on HA birth", 10, |w| {
        w.all().iter().filter(|m| m.topic == upd_t).count() > before
    })
    .await;
    drop(bridge);
    b.kill();
}

// ----- a real Home Assistant (KEYWAY_HA=1) ------------------------------------------

struct Ha {
    url: String,
    token: String,
    http: reqwest::Client,
}

impl Ha {
    fn from_env(test: &str) -> Option<Ha> {
        if std::env::var("KEYWAY_HA").as_deref() != Ok("1") {
            println!(
                "SKIPPED {test}: set KEYWAY_HA=1 (and eval \"$(scripts/home-assistant.sh)\") to run it against a real Home Assistant"
            );
            return None;
        }
        Some(Ha {
            url: std::env::var("KEYWAY_HA_URL").expect("KEYWAY_HA_URL (scripts/home-assistant.sh)"),
            token: std::env::var("KEYWAY_HA_TOKEN")
                .expect("KEYWAY_HA_TOKEN (scripts/home-assistant.sh)"),
            http: reqwest::Client::new(),
        })
    }

    async fn get(&self, path: &str) -> Value {
        let r = self
            .http
            .get(format!("{}{path}", self.url))
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap();
        serde_json::from_str(&r.text().await.unwrap()).unwrap_or(Value::Null)
    }

    async fn post(&self, path: &str, body: Value) -> (u16, String) {
        let r = self
            .http
            .post(format!("{}{path}", self.url))
            .bearer_auth(&self.token)
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }

    /// The entity of `domain` whose friendly name starts with `name`.
    async fn find(&self, domain: &str, name: &str) -> Option<Value> {
        let states = self.get("/api/states").await;
        states
            .as_array()?
            .iter()
            .find(|s| {
                s["entity_id"]
                    .as_str()
                    .is_some_and(|e| e.starts_with(&format!("{domain}.")))
                    && s["attributes"]["friendly_name"]
                        .as_str()
                        .is_some_and(|f| f.starts_with(name))
            })
            .cloned()
    }

    async fn state(&self, entity: &str) -> Value {
        self.get(&format!("/api/states/{entity}")).await
    }

    async fn wait(&self, what: &str, secs: u64, entity: &str, f: impl Fn(&Value) -> bool) -> Value {
        let end = Instant::now() + Duration::from_secs(secs);
        loop {
            let s = self.state(entity).await;
            if f(&s) {
                return s;
            }
            assert!(Instant::now() < end, "timed out waiting for {what}: {s:#}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// Home Assistant itself (2025.4.4, MQTT integration, discovery on) sees
/// the lock's two entities, the update's versions and progress move, and
/// its own install service installs (once).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn home_assistant_sees_the_entities_progress_and_installs() {
    let test = "home_assistant_sees_the_entities_progress_and_installs";
    let Some(ha) = Ha::from_env(test) else { return };
    let Some(o) = broker(test) else { return };
    let mut o = opts_for(o, "ha");
    o.prefix = "homeassistant".into();
    o.poll = Duration::from_millis(
        std::env::var("KEYWAY_MQTT_POLL_MS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(250),
    );
    let (w, id, r2) = world(150);
    let name = format!("Door {}", o.base);
    w.store
        .save_lock(&LockRecord {
            name: name.clone(),
            ..w.hub.lock(id).unwrap()
        })
        .unwrap();
    let _bridge = spawn_bridge(&w, &o);

    // The entities appear.
    let end = Instant::now() + Duration::from_secs(30);
    let (upd, lk) = loop {
        if let (Some(u), Some(l)) = (ha.find("update", &name).await, ha.find("lock", &name).await) {
            break (u, l);
        }
        assert!(
            Instant::now() < end,
            "Home Assistant never showed the entities"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let upd_id = upd["entity_id"].as_str().unwrap().to_string();
    let lk_id = lk["entity_id"].as_str().unwrap().to_string();
    println!("Home Assistant entities: {upd_id}, {lk_id}");
    let s = ha
        .wait("the offer in HA", 10, &upd_id, |s| {
            s["attributes"]["latest_version"] == "1.2.0"
        })
        .await;
    assert_eq!(s["state"], "on", "an update is available: {s:#}");
    assert_eq!(s["attributes"]["installed_version"], "1.1.0");
    assert_eq!(s["attributes"]["device_class"], "firmware");
    assert!(
        s["attributes"]["release_summary"]
            .as_str()
            .unwrap()
            .starts_with("Fixes CVE-2026-1111")
    );
    assert_eq!(
        s["attributes"]["release_url"],
        format!("http://hub.local:8080/releases/{}", r2.to_hex())
    );
    ha.wait("the bolt in HA", 10, &lk_id, |s| s["state"] == "unlocked")
        .await;

    // A bolt change the hub learns reaches HA's lock entity, both ways
    // (the time it takes: examples/mqtt_ha_latency.rs).
    for (bolt, want) in [(Bolt::Locked, "locked"), (Bolt::Unlocked, "unlocked")] {
        w.fleet.with("udp:lock-a", |l| l.bolt = bolt);
        let h = w.hub.clone();
        tokio::task::spawn_blocking(move || h.refresh(id).unwrap())
            .await
            .unwrap();
        ha.wait("the bolt change in HA", 10, &lk_id, |s| s["state"] == want)
            .await;
    }
    w.fleet.with("udp:lock-a", |l| l.bolt = Bolt::Unlocked);
    let h = w.hub.clone();
    tokio::task::spawn_blocking(move || h.refresh(id).unwrap())
        .await
        .unwrap();

    // Install from Home Assistant's own service.
    let (code, body) = ha
        .post(
            "/api/services/update/install",
            serde_json::json!({"entity_id": upd_id}),
        )
        .await;
    assert_eq!(code, 200, "{body}");
    let mut seen_pct = BTreeSet::new();
    let mut seen_progress = false;
    let end = Instant::now() + Duration::from_secs(30);
    loop {
        let s = ha.state(&upd_id).await;
        if s["attributes"]["in_progress"] == true {
            seen_progress = true;
        }
        if let Some(p) = s["attributes"]["update_percentage"].as_u64() {
            seen_pct.insert(p);
        }
        if s["attributes"]["installed_version"] == "1.2.0"
            && s["attributes"]["in_progress"] == false
        {
            assert_eq!(s["state"], "off", "up to date: {s:#}");
            break;
        }
        assert!(Instant::now() < end, "never installed: {s:#}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    println!("Home Assistant showed in_progress: {seen_progress}, percentages {seen_pct:?}");
    assert!(seen_progress, "HA showed the install in progress");
    assert!(
        seen_pct.len() >= 2,
        "HA showed the percentage move: {seen_pct:?}"
    );
    assert_eq!(installs(&w), (1, 1));
    let c = w.store.consents(id).unwrap();
    assert_eq!(
        (c.len(), &c[0].source, c[0].release),
        (1, &ConsentSource::HomeAssistant, r2)
    );
}
