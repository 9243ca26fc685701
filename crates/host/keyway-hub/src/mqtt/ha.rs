//! The topic and payload layout Home Assistant sees (pure: no I/O).
//!
//! Checked against Home Assistant's documentation pages "MQTT" (discovery:
//! `<prefix>/<component>/<node_id>/<object_id>/config`, the `device` and
//! `origin` blocks, availability, the birth message `<prefix>/status`),
//! "MQTT Update" (`update.mqtt`: `state_topic` with a JSON state carrying
//! `installed_version`, `latest_version`, `title`, `release_summary`,
//! `release_url`, `in_progress`, `update_percentage`; `command_topic` +
//! `payload_install`; `device_class: firmware`) and "MQTT Lock"
//! (`lock.mqtt`: `state_topic` with `LOCKED`/`UNLOCKED`, `command_topic`
//! required, `optimistic`), and against the 2025.4 integration's schema
//! in the real Home Assistant test (`scripts/home-assistant.sh`).
//!
//! Layout (prefix `homeassistant` unless `--mqtt-prefix`; `B` = the
//! bridge's base `keyway`, `N` = the lock's id):
//!
//! | topic | retained | who publishes | payload |
//! | --- | --- | --- | --- |
//! | `<prefix>/update/keyway/lock_N/config` | yes | hub | update entity discovery |
//! | `<prefix>/lock/keyway/lock_N/config` | yes | hub | lock entity discovery |
//! | `B/hub/status` | yes | hub (+ its last will) | `online` / `offline` |
//! | `B/lock/N/availability` | yes | hub | `online` / `offline` |
//! | `B/lock/N/update/state` | yes | hub | the update JSON |
//! | `B/lock/N/update/install` | no | Home Assistant | `install:<64 hex>` |
//! | `B/lock/N/lock/state` | yes | hub | `LOCKED` / `UNLOCKED` / `None` |
//! | `B/lock/N/lock/set` | no | Home Assistant | refused, always |
//! | `<prefix>/status` | (HA's) | Home Assistant | `online` → republish |
//!
//! The install button's payload names the release: `payload_install` is
//! `install:<digest hex>` of the offer the entity shows, republished with
//! the discovery config whenever the offer changes. Home Assistant sends
//! exactly that string when the owner presses install, so the command
//! carries only what Home Assistant can send, yet it says which release
//! the owner saw; the bridge consents only if that release is still the
//! lock's current offer.

use serde_json::{Value, json};

use crate::engine::decide::Offer;
use crate::engine::{Phase, Progress};
use crate::model::{Bolt, Digest, LockId, LockRecord};

/// The bridge's own topics start with this by default (`--mqtt-base`
/// would change it; tests give each hub its own).
pub const BASE: &str = "keyway";
/// A command payload longer than this is refused unread.
pub const MAX_COMMAND: usize = 128;
/// Home Assistant shows at most this many characters of `release_summary`.
pub const SUMMARY_MAX: usize = 255;
/// The install payload's prefix (`install:<64 hex>`).
pub const INSTALL_PREFIX: &str = "install:";
/// The install payload while a lock has no update (always refused).
pub const INSTALL_NONE: &str = "install:none";

/// The hub's availability topic (its last will says `offline`).
pub fn hub_status(base: &str) -> String {
    format!("{base}/hub/status")
}
/// A lock's availability topic.
pub fn availability(base: &str, id: LockId) -> String {
    format!("{base}/lock/{id}/availability")
}
/// A lock's update state topic (JSON).
pub fn update_state(base: &str, id: LockId) -> String {
    format!("{base}/lock/{id}/update/state")
}
/// A lock's install command topic.
pub fn update_install(base: &str, id: LockId) -> String {
    format!("{base}/lock/{id}/update/install")
}
/// A lock's bolt state topic.
pub fn lock_state(base: &str, id: LockId) -> String {
    format!("{base}/lock/{id}/lock/state")
}
/// A lock's bolt command topic (every command is refused).
pub fn lock_set(base: &str, id: LockId) -> String {
    format!("{base}/lock/{id}/lock/set")
}
/// A discovery config topic (`component` is `update` or `lock`).
pub fn discovery(prefix: &str, base: &str, component: &str, id: LockId) -> String {
    format!("{prefix}/{component}/{base}/lock_{id}/config")
}
/// Home Assistant's birth/last-will topic.
pub fn ha_status(prefix: &str) -> String {
    format!("{prefix}/status")
}
/// What the bridge subscribes to: its two command topics and HA's status.
pub fn subscriptions(prefix: &str, base: &str) -> [String; 3] {
    [
        format!("{base}/lock/+/update/install"),
        format!("{base}/lock/+/lock/set"),
        ha_status(prefix),
    ]
}

/// A message the bridge received, classified (typed; nothing here acts).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Install `release` on `lock` (the owner pressed install).
    Install {
        /// The lock.
        lock: LockId,
        /// The release the button named.
        release: Digest,
    },
    /// A bolt command (always refused: see the module docs of `mqtt`).
    Bolt {
        /// The lock.
        lock: LockId,
        /// What was asked (`LOCK`, `UNLOCK`, …), cut to 32 characters.
        asked: String,
    },
    /// Home Assistant came online: republish everything.
    HaOnline,
    /// Home Assistant went offline (nothing to do).
    HaOffline,
}

/// Why a message was refused (each is logged; none acts).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MessageRefusal {
    /// Not a topic the bridge listens on.
    #[error("topic {0:?} is not one of the bridge's command topics")]
    WrongTopic(String),
    /// The lock id in the topic is not a number.
    #[error("topic {0:?} names no lock id")]
    BadLockId(String),
    /// The payload is longer than [`MAX_COMMAND`].
    #[error("payload of {0} bytes is over the {MAX_COMMAND}-byte limit for a command")]
    Oversized(usize),
    /// The payload is not UTF-8 text.
    #[error("payload is not UTF-8 text")]
    NotText,
    /// The payload is not `install:<64 hex>` (JSON, other words, a bad digest).
    #[error("install payload {0:?} is not install:<64 hex digits>")]
    BadInstall(String),
    /// `install:none`: the entity showed no update.
    #[error("install pressed while no update was offered")]
    NoOffer,
    /// A retained command (a stale message the broker kept).
    #[error("retained command on {0:?} ignored: a command must be sent, not kept")]
    Retained(String),
    /// An unexpected payload on Home Assistant's status topic.
    #[error("Home Assistant status payload {0:?} is neither online nor offline")]
    BadStatus(String),
}

fn lock_id(topic: &str, segment: &str) -> Result<LockId, MessageRefusal> {
    let ok = !segment.is_empty()
        && segment.len() <= 18
        && segment.bytes().all(|b| b.is_ascii_digit())
        && !(segment.len() > 1 && segment.starts_with('0'));
    if !ok {
        return Err(MessageRefusal::BadLockId(cut(topic, 200)));
    }
    segment
        .parse()
        .map_err(|_| MessageRefusal::BadLockId(cut(topic, 200)))
}

fn cut(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

/// Classifies one received message. Bounds first (size, then UTF-8), then
/// the topic, then the payload's exact form: anything else is a typed
/// [`MessageRefusal`].
pub fn classify(
    prefix: &str,
    base: &str,
    topic: &str,
    payload: &[u8],
    retained: bool,
) -> Result<Command, MessageRefusal> {
    if payload.len() > MAX_COMMAND {
        return Err(MessageRefusal::Oversized(payload.len()));
    }
    let text = std::str::from_utf8(payload).map_err(|_| MessageRefusal::NotText)?;
    if topic == ha_status(prefix) {
        return match text {
            "online" => Ok(Command::HaOnline),
            "offline" => Ok(Command::HaOffline),
            other => Err(MessageRefusal::BadStatus(cut(other, 32))),
        };
    }
    let parts: Vec<&str> = topic.split('/').collect();
    let (id, kind) = match parts.as_slice() {
        [b, "lock", id, "update", "install"] if *b == base => (*id, "install"),
        [b, "lock", id, "lock", "set"] if *b == base => (*id, "set"),
        _ => return Err(MessageRefusal::WrongTopic(cut(topic, 200))),
    };
    let lock = lock_id(topic, id)?;
    if retained {
        return Err(MessageRefusal::Retained(cut(topic, 200)));
    }
    if kind == "set" {
        return Ok(Command::Bolt {
            lock,
            asked: cut(text, 32),
        });
    }
    if text == INSTALL_NONE {
        return Err(MessageRefusal::NoOffer);
    }
    let hex = text
        .strip_prefix(INSTALL_PREFIX)
        .filter(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
        .ok_or_else(|| MessageRefusal::BadInstall(cut(text, 80)))?;
    let release = Digest::from_hex(hex).map_err(|_| MessageRefusal::BadInstall(cut(text, 80)))?;
    Ok(Command::Install { lock, release })
}

/// The `install` payload for an offer (what the button sends).
pub fn install_payload(offer: Option<&Offer>) -> String {
    match offer {
        Some(o) => format!("{INSTALL_PREFIX}{}", o.release.to_hex()),
        None => INSTALL_NONE.to_string(),
    }
}

fn device(base: &str, lock: &LockRecord) -> Value {
    let mut d = json!({
        "identifiers": [format!("{base}_lock_{}", lock.id)],
        "name": lock.name,
        "manufacturer": "Keyway",
        "model": lock.class,
    });
    if let Some(s) = &lock.snapshot {
        d["sw_version"] = json!(s.version);
    }
    d
}

fn origin() -> Value {
    json!({"name": "keyway-hub", "sw_version": env!("CARGO_PKG_VERSION")})
}

fn availability_list(base: &str, id: LockId) -> Value {
    json!([
        {"topic": hub_status(base), "payload_available": "online", "payload_not_available": "offline"},
        {"topic": availability(base, id), "payload_available": "online", "payload_not_available": "offline"},
    ])
}

/// The update entity's discovery config.
pub fn update_config(base: &str, lock: &LockRecord, offer: Option<&Offer>) -> Value {
    let id = lock.id;
    json!({
        "name": "Firmware",
        "unique_id": format!("{base}_lock_{id}_firmware"),
        "device_class": "firmware",
        "state_topic": update_state(base, id),
        "command_topic": update_install(base, id),
        "payload_install": install_payload(offer),
        "availability": availability_list(base, id),
        "availability_mode": "all",
        "qos": 1,
        "device": device(base, lock),
        "origin": origin(),
    })
}

/// The lock entity's discovery config (state read-only: every command on
/// its `command_topic` is refused).
pub fn lock_config(base: &str, lock: &LockRecord) -> Value {
    let id = lock.id;
    json!({
        "name": "Bolt",
        "unique_id": format!("{base}_lock_{id}_bolt"),
        "state_topic": lock_state(base, id),
        "command_topic": lock_set(base, id),
        "payload_lock": "LOCK",
        "payload_unlock": "UNLOCK",
        "state_locked": "LOCKED",
        "state_unlocked": "UNLOCKED",
        "optimistic": false,
        "availability": availability_list(base, id),
        "availability_mode": "all",
        "qos": 1,
        "device": device(base, lock),
        "origin": origin(),
    })
}

/// `release_summary`: the CVE ids first, then the notes, at most
/// [`SUMMARY_MAX`] characters (cut on a character boundary, `…` marks a cut).
pub fn summary(offer: &Offer) -> String {
    let mut s = String::new();
    if !offer.cves.is_empty() {
        let ids: Vec<&str> = offer.cves.iter().map(|c| c.id.as_str()).collect();
        s.push_str("Fixes ");
        s.push_str(&ids.join(", "));
        s.push_str(". ");
    }
    s.push_str(offer.notes.trim());
    let s = s.trim().to_string();
    if s.chars().count() <= SUMMARY_MAX {
        return s;
    }
    let mut out: String = s.chars().take(SUMMARY_MAX - 1).collect();
    out.push('…');
    out
}

/// The update entity's state JSON: exactly the keys Home Assistant reads.
/// `release_url` is the hub's own page for the release (`None` without a
/// public base URL: the key is left out).
pub fn update_state_json(
    lock: &LockRecord,
    offer: Option<&Offer>,
    progress: Option<&Progress>,
    release_base: Option<&str>,
) -> Value {
    // Home Assistant validates each key (a version must be a string, a
    // URL a URL: one bad key drops the whole message) and keeps a key it
    // is not sent, so: versions only once known, `release_summary` always
    // (empty without an offer), `release_url` only with an offer.
    let mut v = json!({
        "title": format!("{} firmware", lock.class),
        "release_summary": offer.map(summary).unwrap_or_default(),
        "in_progress": false,
        "update_percentage": null,
    });
    if let Some(installed) = lock.snapshot.as_ref().map(|s| s.version.clone()) {
        v["latest_version"] = json!(offer.map_or(installed.clone(), |o| o.version.clone()));
        v["installed_version"] = json!(installed);
    }
    if let Some(o) = offer
        && let Some(base) = release_base
    {
        v["release_url"] = json!(format!(
            "{}/releases/{}",
            base.trim_end_matches('/'),
            o.release.to_hex()
        ));
    }
    // Progress counts only for the release the entity offers.
    if let (Some(p), Some(o)) = (progress, offer)
        && p.release == o.release
    {
        match p.phase {
            Phase::Connecting | Phase::Uploading => {
                v["in_progress"] = json!(true);
                let pct = (p.done.min(p.total) * 100)
                    .checked_div(p.total)
                    .unwrap_or(0);
                v["update_percentage"] = json!(pct);
            }
            Phase::Installing => {
                v["in_progress"] = json!(true);
                v["update_percentage"] = json!(100);
            }
            Phase::Postponed | Phase::Done | Phase::Failed => {}
        }
    }
    v
}

/// The bolt's state for the lock entity (`None` resets it to unknown).
pub fn bolt_state(lock: &LockRecord) -> &'static str {
    match lock.snapshot.as_ref().map(|s| s.bolt) {
        Some(Bolt::Locked) => "LOCKED",
        Some(Bolt::Unlocked) => "UNLOCKED",
        None => "None",
    }
}

/// A lock's availability: online once paired and heard from.
pub fn lock_available(lock: &LockRecord) -> &'static str {
    if lock.device_key.is_some() && lock.snapshot.is_some() {
        "online"
    } else {
        "offline"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: &str = "homeassistant";
    const B: &str = "keyway";
    fn hex() -> String {
        "ab".repeat(32)
    }
    fn install(payload: &[u8]) -> Result<Command, MessageRefusal> {
        classify(P, B, "keyway/lock/7/update/install", payload, false)
    }
    /// The exact install payload, not retained, on `topic`.
    fn install_on(topic: &str) -> Result<Command, MessageRefusal> {
        classify(P, B, topic, format!("install:{}", hex()).as_bytes(), false)
    }

    #[test]
    fn exact_install_payload_is_accepted() {
        let d = Digest::from_hex(&hex()).unwrap();
        assert_eq!(
            install(format!("install:{}", hex()).as_bytes()),
            Ok(Command::Install {
                lock: 7,
                release: d
            })
        );
    }

    #[test]
    fn json_where_a_plain_string_is_expected_is_refused() {
        let p = format!("{{\"install\":\"{}\"}}", hex());
        assert!(matches!(
            install(p.as_bytes()),
            Err(MessageRefusal::BadInstall(_))
        ));
        assert!(matches!(
            install(b"\"install\""),
            Err(MessageRefusal::BadInstall(_))
        ));
    }

    #[test]
    fn malformed_install_payloads_are_refused() {
        for p in [
            "install".to_string(),
            "INSTALL".into(),
            String::new(),
            format!("install:{}", &hex()[..63]),
            format!("install:{}0", hex()),
            format!("install:{} ", hex()),
            format!(" install:{}", hex()),
            format!("install:{}", "zz".repeat(32)),
            format!("INSTALL:{}", hex()),
        ] {
            assert!(
                matches!(install(p.as_bytes()), Err(MessageRefusal::BadInstall(_))),
                "{p:?}"
            );
        }
        assert_eq!(install(b"install:none"), Err(MessageRefusal::NoOffer));
    }

    #[test]
    fn oversized_payload_is_refused_before_it_is_read() {
        let mut p = format!("install:{}", hex()).into_bytes();
        p.resize(MAX_COMMAND + 1, b' ');
        assert_eq!(install(&p), Err(MessageRefusal::Oversized(MAX_COMMAND + 1)));
        assert_eq!(
            install(&vec![0; 1 << 20]),
            Err(MessageRefusal::Oversized(1 << 20))
        );
    }

    #[test]
    fn non_utf8_payload_is_refused() {
        assert_eq!(install(&[0xff, 0xfe, 0]), Err(MessageRefusal::NotText));
    }

    #[test]
    fn wrong_topics_are_refused() {
        for t in [
            "keyway/lock/7/update/install/x",
            "keyway/lock/7/update",
            "other/lock/7/update/install",
            "keyway/locks/7/update/install",
            "keyway/lock/7/lock/state",
            "keyway/lock/7/update/state",
            "homeassistant/update/keyway/lock_7/config",
            "",
        ] {
            let got = install_on(t);
            assert!(matches!(got, Err(MessageRefusal::WrongTopic(_))), "{t:?}");
        }
    }

    #[test]
    fn bad_lock_ids_in_the_topic_are_refused() {
        for id in [
            "abc",
            "-1",
            "07",
            "",
            "1e3",
            "99999999999999999999",
            "+",
            "１",
        ] {
            let got = install_on(&format!("keyway/lock/{id}/update/install"));
            assert!(matches!(got, Err(MessageRefusal::BadLockId(_))), "{id:?}");
        }
    }

    #[test]
    fn retained_commands_are_refused() {
        let p = format!("install:{}", hex());
        assert!(matches!(
            classify(P, B, "keyway/lock/7/update/install", p.as_bytes(), true),
            Err(MessageRefusal::Retained(_))
        ));
        assert!(matches!(
            classify(P, B, "keyway/lock/7/lock/set", b"UNLOCK", true),
            Err(MessageRefusal::Retained(_))
        ));
    }

    #[test]
    fn bolt_commands_are_classified_for_refusal() {
        assert_eq!(
            classify(P, B, "keyway/lock/7/lock/set", b"UNLOCK", false),
            Ok(Command::Bolt {
                lock: 7,
                asked: "UNLOCK".into()
            })
        );
    }

    #[test]
    fn ha_status_is_exact() {
        assert_eq!(
            classify(P, B, "homeassistant/status", b"online", false),
            Ok(Command::HaOnline)
        );
        assert_eq!(
            classify(P, B, "homeassistant/status", b"offline", false),
            Ok(Command::HaOffline)
        );
        assert!(matches!(
            classify(P, B, "homeassistant/status", b"{\"online\":1}", false),
            Err(MessageRefusal::BadStatus(_))
        ));
    }

    #[test]
    fn summary_leads_with_cve_ids_and_stays_within_255_characters() {
        use crate::model::{CveFix, Severity};
        let o = Offer {
            release: Digest([1; 32]),
            sequence: 2,
            version: "1.2.0".into(),
            notes: "é".repeat(400),
            cves: vec![
                CveFix {
                    id: "CVE-2026-1".into(),
                    severity: Severity::Low,
                },
                CveFix {
                    id: "CVE-2026-2".into(),
                    severity: Severity::High,
                },
            ],
            max_severity: Some(Severity::High),
            image: Digest([2; 32]),
            envelopes: vec![],
            delta: false,
        };
        let s = summary(&o);
        assert!(s.starts_with("Fixes CVE-2026-1, CVE-2026-2. "), "{s}");
        assert_eq!(s.chars().count(), SUMMARY_MAX);
        assert!(s.ends_with('…'));
    }
}
