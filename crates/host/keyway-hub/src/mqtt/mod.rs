//! Home Assistant over MQTT discovery: every lock appears in Home
//! Assistant as a device with an `update` entity (firmware: versions,
//! notes led by the CVE ids, live progress, an install button) and a
//! `lock` entity (the bolt's state).
//!
//! Design:
//! * One task ([`spawn`]) owns a [`rumqttc`] client. A second task polls
//!   the client's event loop (which reconnects by itself; the bridge waits
//!   with a doubling backoff, 0.5 s to 30 s, between failed attempts) and
//!   hands connection acks and received messages to the bridge over a
//!   channel, so a publish never waits on the loop it needs.
//! * The bridge polls the [`Hub`] every [`MqttOptions::poll`] (locks,
//!   offers, live progress: all reads) and publishes only what changed
//!   since it last published on this connection. On every (re)connect and
//!   whenever Home Assistant announces `online` on `<prefix>/status`, it
//!   forgets what it published and republishes everything: discovery
//!   (retained), availability and state. The hub's availability topic has
//!   a last will (`offline`, retained), so Home Assistant greys the
//!   entities out when the hub vanishes. No engine hook was needed.
//! * Layout and payloads are pure functions in [`ha`] (the table there is
//!   the protocol's documentation).
//!
//! Authority: pressing install in Home Assistant is the owner's consent
//! for that release, recorded as [`ConsentSource::HomeAssistant`] by the
//! same [`Hub::consent`] the API uses, then pushed by [`Hub::install`],
//! as the API does. This is the owner's authority only insofar as the
//! broker is the owner's: anyone who can publish on the broker's command
//! topics can press install. Pressing install can only consent to a
//! release the hub already offers for that lock (vendor-signed, verified
//! against the model's anchors, above what the lock runs): the worst a
//! broker intruder can do is install a genuine update early. Protect the
//! broker (credentials, ACLs on `keyway/#`) as you protect the hub.
//!
//! The bolt is read-only over MQTT: the hub has no command that moves a
//! bolt (its link to a lock carries updates, status and logs only), and
//! a broker is a weaker authority than the owner's sealed session with
//! the lock, so a broker must never be able to open a door. Home
//! Assistant's MQTT lock requires a `command_topic`; the bridge gives it
//! one and refuses every command on it (LOCK too) with a log line.
//!
//! Bad input: every received message is classified by [`ha::classify`]
//! (bounded size, UTF-8, exact topic, exact payload `install:<64 hex>`,
//! never a retained command) and a refusal is a `tracing` warning; then
//! the bridge re-checks that the named release is still the lock's
//! current offer. Repeated or redelivered installs (QoS 1 duplicates) are
//! no-ops once the consent is recorded and its push is running or done.

pub mod ha;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rumqttc::{AsyncClient, Event, LastWill, Packet, QoS};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::engine::decide::{self, Offer};
use crate::engine::{Hub, HubError, Phase};
use crate::model::{ConsentSource, Decision, Digest, LockId, LockRecord};

use ha::{Command, MessageRefusal};

/// How the bridge reaches the broker and what it tells Home Assistant.
#[derive(Debug, Clone)]
pub struct MqttOptions {
    /// Broker host.
    pub host: String,
    /// Broker port (1883 unless the URL says).
    pub port: u16,
    /// User name and password, if the broker wants them.
    pub credentials: Option<(String, String)>,
    /// Home Assistant's discovery prefix (`homeassistant`).
    pub prefix: String,
    /// The MQTT client id (`keyway-hub`).
    pub client_id: String,
    /// The first level of the bridge's own topics and its discovery node
    /// id (`keyway`); two hubs on one broker need two.
    pub base: String,
    /// The hub's web address for `release_url` (`http://HOST:PORT`);
    /// `None` leaves `release_url` out.
    pub release_base: Option<String>,
    /// How often the bridge reads the hub for changes.
    pub poll: Duration,
}

/// Why the options could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OptionsError {
    /// Not `mqtt://HOST[:PORT]`.
    #[error("MQTT broker URL {0:?} is not mqtt://HOST[:PORT] (TLS is not supported yet)")]
    BadUrl(String),
    /// The prefix is empty or holds MQTT wildcards.
    #[error("discovery prefix {0:?} must be non-empty, without '+', '#' or a trailing '/'")]
    BadPrefix(String),
}

impl MqttOptions {
    /// Options for `mqtt://HOST[:PORT]` with the defaults.
    pub fn from_url(url: &str) -> Result<MqttOptions, OptionsError> {
        let bad = || OptionsError::BadUrl(url.chars().take(200).collect());
        let rest = url.strip_prefix("mqtt://").ok_or_else(bad)?;
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.is_empty() || rest.contains(['/', '@', '?', '#']) {
            return Err(bad());
        }
        let (host, port) = match rest.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), p.parse::<u16>().map_err(|_| bad())?),
            None => (rest.to_string(), 1883),
        };
        if host.contains(':') {
            return Err(bad());
        }
        if host.is_empty() || port == 0 {
            return Err(bad());
        }
        Ok(MqttOptions {
            host,
            port,
            credentials: None,
            prefix: "homeassistant".into(),
            client_id: "keyway-hub".into(),
            base: ha::BASE.into(),
            release_base: None,
            poll: Duration::from_millis(250),
        })
    }

    /// Sets the discovery prefix.
    pub fn with_prefix(mut self, prefix: &str) -> Result<MqttOptions, OptionsError> {
        if prefix.is_empty() || prefix.contains(['+', '#']) || prefix.ends_with('/') {
            return Err(OptionsError::BadPrefix(prefix.chars().take(200).collect()));
        }
        self.prefix = prefix.to_string();
        Ok(self)
    }
}

/// What one install command came to (returned for tests and logs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Handled {
    /// Consent recorded (source Home Assistant) and the push started.
    Started,
    /// Already consented and its push is running or done: nothing done.
    Duplicate,
    /// Refused (logged): the named release is not the lock's offer, or
    /// the lock is unknown, or the hub failed.
    Refused(String),
}

/// The bridge's memory of installs it started (so a duplicate that
/// arrives before the push reports progress is still a duplicate).
#[derive(Default)]
struct Inflight(Mutex<HashSet<(LockId, Digest)>>);

/// Handles one install command: re-checks the named release is the
/// lock's current offer, then consents and starts the push exactly once.
/// Blocking (store reads): call it from `spawn_blocking`.
fn install_command(
    hub: &Arc<Hub>,
    inflight: &Arc<Inflight>,
    lock: LockId,
    release: Digest,
) -> Handled {
    let refuse = |why: String| {
        tracing::warn!(lock, release = %release.to_hex(), "MQTT install refused: {why}");
        Handled::Refused(why)
    };
    let current = match hub.updates(lock) {
        Ok(o) => o.into_iter().next(),
        Err(HubError::NoLock(_)) => return refuse(format!("no lock with id {lock}")),
        Err(e) => return refuse(format!("the hub could not read lock {lock}'s updates: {e}")),
    };
    let Some(current) = current else {
        return refuse("the lock has no update on offer now".into());
    };
    if current.release != release {
        return refuse(format!(
            "the button named a release that is no longer the lock's offer (now version {} = {}…)",
            current.version,
            &current.release.to_hex()[..16]
        ));
    }
    let consents = match hub.store().consents(lock) {
        Ok(c) => c,
        Err(e) => return refuse(format!("the hub could not read consents: {e}")),
    };
    let already = decide::decision(&consents, &release) == Some(Decision::Accept);
    let running = inflight
        .0
        .lock()
        .map(|s| s.contains(&(lock, release)))
        .unwrap_or(true)
        || hub
            .progress_of(lock)
            .is_some_and(|p| p.release == release && !matches!(p.phase, Phase::Failed));
    if already && running {
        tracing::info!(lock, release = %release.to_hex(), "MQTT install repeated: consent already recorded and its push is running or done; nothing to do");
        return Handled::Duplicate;
    }
    if !already
        && let Err(e) = hub.consent(
            lock,
            release,
            Decision::Accept,
            ConsentSource::HomeAssistant,
        )
    {
        return refuse(format!("the hub refused the consent: {e}"));
    }
    if let Ok(mut s) = inflight.0.lock() {
        s.insert((lock, release));
    }
    let (hub, inflight) = (hub.clone(), inflight.clone());
    std::thread::spawn(move || {
        let r = hub.install(lock, release);
        match &r {
            Ok(report) => tracing::info!(lock, ?report, "install from Home Assistant finished"),
            Err(e) => tracing::warn!(lock, "install from Home Assistant failed: {e}"),
        }
        if let Ok(mut s) = inflight.0.lock() {
            s.remove(&(lock, release));
        }
    });
    tracing::info!(lock, release = %release.to_hex(), "owner consented in Home Assistant; push started");
    Handled::Started
}

/// Every (topic, payload) the bridge would publish now, and the lock ids.
type Snapshot = (Vec<(String, String)>, HashSet<LockId>);

/// What the bridge read from the hub last time, so a poll stays cheap:
/// offers (which read every release of a class from the store) are
/// recomputed only for a lock whose record changed, for all locks when
/// the hub logged an event (a release came in, a consent, a push), and
/// every [`OFFERS_EVERY`] anyway; locks and live progress are read on
/// every poll (one small query, one in-memory table).
#[derive(Default)]
struct View {
    locks: HashMap<LockId, LockRecord>,
    offers: HashMap<LockId, Option<Offer>>,
    last_event: i64,
    offers_at: Option<std::time::Instant>,
}

/// Recompute every lock's offer at least this often.
const OFFERS_EVERY: Duration = Duration::from_secs(60);

/// Every lock's topics and payloads as the bridge would publish them now.
fn lock_messages(hub: &Hub, opts: &MqttOptions, view: &mut View) -> Result<Snapshot, HubError> {
    let events = hub.store().events(view.last_event, 1000)?;
    let all = !events.is_empty() || view.offers_at.is_none_or(|t| t.elapsed() >= OFFERS_EVERY);
    if let Some(e) = events.last() {
        view.last_event = e.id;
    }
    if all {
        view.offers_at = Some(std::time::Instant::now());
    }
    let mut out = Vec::new();
    let mut ids = HashSet::new();
    let mut locks = HashMap::new();
    for lock in hub.locks()? {
        ids.insert(lock.id);
        if all || view.locks.get(&lock.id) != Some(&lock) || !view.offers.contains_key(&lock.id) {
            let offer = hub.updates(lock.id).unwrap_or_default().into_iter().next();
            view.offers.insert(lock.id, offer);
        }
        let offer = view.offers.get(&lock.id).cloned().flatten();
        let offer = offer.as_ref();
        let progress = hub.progress_of(lock.id);
        out.push((
            ha::discovery(&opts.prefix, &opts.base, "update", lock.id),
            ha::update_config(&opts.base, &lock, offer).to_string(),
        ));
        out.push((
            ha::discovery(&opts.prefix, &opts.base, "lock", lock.id),
            ha::lock_config(&opts.base, &lock).to_string(),
        ));
        out.push((
            ha::availability(&opts.base, lock.id),
            ha::lock_available(&lock).into(),
        ));
        out.push((
            ha::update_state(&opts.base, lock.id),
            ha::update_state_json(
                &lock,
                offer,
                progress.as_ref(),
                opts.release_base.as_deref(),
            )
            .to_string(),
        ));
        out.push((
            ha::lock_state(&opts.base, lock.id),
            ha::bolt_state(&lock).into(),
        ));
        locks.insert(lock.id, lock);
    }
    view.offers.retain(|id, _| ids.contains(id));
    view.locks = locks;
    Ok((out, ids))
}

enum FromLoop {
    Connected,
    Disconnected(String),
    Message {
        topic: String,
        payload: Vec<u8>,
        retained: bool,
    },
}

/// Starts the bridge inside a tokio runtime; it runs until aborted.
pub fn spawn(hub: Arc<Hub>, opts: MqttOptions) -> JoinHandle<()> {
    tokio::spawn(run(hub, opts))
}

async fn run(hub: Arc<Hub>, opts: MqttOptions) {
    let mut mo = rumqttc::MqttOptions::new(opts.client_id.clone(), opts.host.clone(), opts.port);
    mo.set_keep_alive(Duration::from_secs(15));
    mo.set_clean_session(true);
    // Generous for the client (a flood must not drop the connection);
    // commands themselves are bounded at ha::MAX_COMMAND.
    mo.set_max_packet_size(1 << 20, 1 << 20);
    mo.set_last_will(LastWill::new(
        ha::hub_status(&opts.base),
        "offline",
        QoS::AtLeastOnce,
        true,
    ));
    if let Some((u, p)) = &opts.credentials {
        mo.set_credentials(u.clone(), p.clone());
    }
    let (client, mut eventloop) = AsyncClient::new(mo, 256);
    let (tx, mut rx) = mpsc::channel::<FromLoop>(256);
    let poller = tokio::spawn(async move {
        let mut backoff = Duration::from_millis(500);
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    backoff = Duration::from_millis(500);
                    if tx.send(FromLoop::Connected).await.is_err() {
                        return;
                    }
                }
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    let m = FromLoop::Message {
                        topic: p.topic.clone(),
                        payload: p.payload.to_vec(),
                        retained: p.retain,
                    };
                    if tx.send(m).await.is_err() {
                        return;
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    if tx
                        .send(FromLoop::Disconnected(e.to_string()))
                        .await
                        .is_err()
                    {
                        return;
                    }
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(30));
                }
            }
        }
    });
    let inflight = Arc::new(Inflight::default());
    let mut published: HashMap<String, String> = HashMap::new();
    let mut known: HashSet<LockId> = HashSet::new();
    let mut view = Arc::new(Mutex::new(View::default()));
    let mut connected = false;
    let mut tick = tokio::time::interval(opts.poll);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            m = rx.recv() => {
                let Some(m) = m else { break };
                match m {
                    FromLoop::Connected => {
                        tracing::info!(host = %opts.host, port = opts.port, "MQTT connected; publishing discovery and state");
                        connected = true;
                        published.clear();
                        for t in ha::subscriptions(&opts.prefix, &opts.base) {
                            let _ = client.subscribe(t, QoS::AtLeastOnce).await;
                        }
                        let _ = client.publish(ha::hub_status(&opts.base), QoS::AtLeastOnce, true, "online").await;
                        sync(&hub, &opts, &client, &mut published, &mut known, &mut view).await;
                    }
                    FromLoop::Disconnected(e) => {
                        if connected {
                            tracing::warn!("MQTT connection lost ({e}); reconnecting with backoff");
                        }
                        connected = false;
                    }
                    FromLoop::Message { topic, payload, retained } => {
                        match ha::classify(&opts.prefix, &opts.base, &topic, &payload, retained) {
                            Err(r) => log_refusal(&topic, &r),
                            Ok(Command::HaOnline) => {
                                tracing::info!("Home Assistant came online; republishing discovery and state");
                                published.clear();
                                if connected {
                                    sync(&hub, &opts, &client, &mut published, &mut known, &mut view).await;
                                }
                            }
                            Ok(Command::HaOffline) => {}
                            Ok(Command::Bolt { lock, asked }) => {
                                tracing::warn!(lock, asked = %asked, "MQTT bolt command refused: the hub never moves a bolt over MQTT (state is read-only)");
                            }
                            Ok(Command::Install { lock, release }) => {
                                let (h, i) = (hub.clone(), inflight.clone());
                                let _ = tokio::task::spawn_blocking(move || install_command(&h, &i, lock, release)).await;
                                published.remove(&ha::update_state(&opts.base, lock));
                                if let Ok(mut v) = view.lock() {
                                    v.offers_at = None;
                                }
                                if connected {
                                    sync(&hub, &opts, &client, &mut published, &mut known, &mut view).await;
                                }
                            }
                        }
                    }
                }
            }
            _ = tick.tick() => {
                if connected {
                    sync(&hub, &opts, &client, &mut published, &mut known, &mut view).await;
                }
            }
        }
    }
    poller.abort();
}

fn log_refusal(topic: &str, r: &MessageRefusal) {
    let topic: String = topic.chars().take(200).collect();
    tracing::warn!(topic = %topic, code = refusal_code(r), "MQTT message refused: {r}");
}

/// A stable name for a refusal (logs).
pub fn refusal_code(r: &MessageRefusal) -> &'static str {
    match r {
        MessageRefusal::WrongTopic(_) => "wrong_topic",
        MessageRefusal::BadLockId(_) => "bad_lock_id",
        MessageRefusal::Oversized(_) => "oversized",
        MessageRefusal::NotText => "not_text",
        MessageRefusal::BadInstall(_) => "bad_install",
        MessageRefusal::NoOffer => "no_offer",
        MessageRefusal::Retained(_) => "retained_command",
        MessageRefusal::BadStatus(_) => "bad_status",
    }
}

/// Publishes what changed since the last publish on this connection;
/// a lock that was removed gets its retained topics cleared.
async fn sync(
    hub: &Arc<Hub>,
    opts: &MqttOptions,
    client: &AsyncClient,
    published: &mut HashMap<String, String>,
    known: &mut HashSet<LockId>,
    view: &mut Arc<Mutex<View>>,
) {
    let (h, o, v) = (hub.clone(), opts.clone(), view.clone());
    let now = match tokio::task::spawn_blocking(move || {
        let mut v = v.lock().map_err(|_| HubError::Invalid("poisoned".into()))?;
        lock_messages(&h, &o, &mut v)
    })
    .await
    {
        Ok(Ok(v)) => v,
        Ok(Err(e)) => {
            tracing::warn!("MQTT bridge could not read the hub: {e}");
            return;
        }
        Err(_) => return,
    };
    let (messages, ids) = now;
    for gone in known.difference(&ids) {
        for t in [
            ha::discovery(&opts.prefix, &opts.base, "update", *gone),
            ha::discovery(&opts.prefix, &opts.base, "lock", *gone),
            ha::availability(&opts.base, *gone),
            ha::update_state(&opts.base, *gone),
            ha::lock_state(&opts.base, *gone),
        ] {
            // An empty retained payload deletes the entity / clears the topic.
            let _ = client
                .publish(t.clone(), QoS::AtLeastOnce, true, Vec::<u8>::new())
                .await;
            published.remove(&t);
        }
    }
    *known = ids;
    for (topic, payload) in messages {
        if published.get(&topic) == Some(&payload) {
            continue;
        }
        if client
            .publish(
                topic.clone(),
                QoS::AtLeastOnce,
                true,
                payload.clone().into_bytes(),
            )
            .await
            .is_ok()
        {
            published.insert(topic, payload);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_urls_parse_or_are_refused() {
        let o = MqttOptions::from_url("mqtt://192.168.1.5:1884").unwrap();
        assert_eq!((o.host.as_str(), o.port), ("192.168.1.5", 1884));
        let o = MqttOptions::from_url("mqtt://broker.local").unwrap();
        assert_eq!(
            (o.host.as_str(), o.port, o.prefix.as_str()),
            ("broker.local", 1883, "homeassistant")
        );
        for bad in [
            "",
            "broker:1883",
            "mqtts://broker:8883",
            "mqtt://",
            "mqtt://:1883",
            "mqtt://broker:0",
            "mqtt://broker:99999",
            "mqtt://broker:x",
            "mqtt://user:pw@broker:1883",
            "mqtt://broker:1883/path",
            "mqtt://[::1]:1883",
        ] {
            assert!(
                matches!(MqttOptions::from_url(bad), Err(OptionsError::BadUrl(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn discovery_prefix_without_wildcards() {
        let o = MqttOptions::from_url("mqtt://b").unwrap();
        assert_eq!(o.clone().with_prefix("ha").unwrap().prefix, "ha");
        for bad in ["", "home/#", "+", "ha/"] {
            assert!(
                matches!(o.clone().with_prefix(bad), Err(OptionsError::BadPrefix(_))),
                "{bad:?}"
            );
        }
    }
}
