//! `keyway log show`: an export's items as text or JSON, and the dates
//! and versions they name.

use keyway_audit::{Body, Event, Signed};
use serde_json::{Value, json};

use super::{Item, ItemKind};
use crate::keys::hex;

/// An event's fields as JSON.
pub fn event_json(e: &Event) -> Value {
    let fields = match *e {
        Event::Boot { slot, version } => json!({"slot": slot, "version": version.to_string()}),
        Event::UpdateOffered { sequence, version } => {
            json!({"sequence": sequence, "version": version.to_string()})
        }
        Event::DownloadStarted { sequence }
        | Event::UpdateVerified { sequence }
        | Event::ConsentGiven { sequence }
        | Event::ConsentRefused { sequence } => json!({"sequence": sequence}),
        Event::UpdateRejected { sequence, reason } => {
            json!({"sequence": sequence, "reason": reason.name()})
        }
        Event::UpdateInstalled { sequence, slot } => json!({"sequence": sequence, "slot": slot}),
        Event::OnTrial {
            slot,
            attempts_left,
        } => json!({"slot": slot, "attempts_left": attempts_left}),
        Event::Confirmed { slot, sequence } => json!({"slot": slot, "sequence": sequence}),
        Event::Reverted { to_slot, reason } => json!({"to_slot": to_slot, "reason": reason.name()}),
        Event::PresenceWindowOpened { seconds } => json!({"seconds": seconds}),
        Event::OwnerPaired { owner } | Event::OwnerRemoved { owner } => {
            json!({"owner": hex(&owner)})
        }
        Event::FactoryReset => json!({}),
        Event::Locked { method } | Event::Unlocked { method } => json!({"method": method.name()}),
        Event::PinFailed { consecutive } => json!({"consecutive": consecutive}),
        Event::TamperDetected { sensor } | Event::TamperCleared { sensor } => {
            json!({"sensor": sensor})
        }
        Event::BatteryLow { millivolts } => json!({"millivolts": millivolts}),
        Event::KeySetRotated { from, to } => json!({"from": from, "to": to}),
    };
    json!({"type": e.name(), "fields": fields})
}

fn signed_json(s: &Signed) -> Value {
    json!({"count": s.count, "retained": s.retained, "key_id": hex(&s.key_id), "signature": hex(&s.signature)})
}

/// The items of an export file with sequence number `since` or later, as
/// JSON (unreadable items are always included).
pub fn show_json(items: &[Item], since: Option<u32>) -> Value {
    let v: Vec<Value> = items
        .iter()
        .filter_map(|it| match &it.what {
            ItemKind::Record { record, hash } => {
                if since.is_some_and(|s| record.seq < s) {
                    return None;
                }
                let mut o = json!({
                    "seq": record.seq,
                    "offset": it.offset,
                    "kind": record.kind().name(),
                    "rtc": record.time.rtc,
                    "time": rtc_text(record.time.rtc),
                    "boot": record.time.boot,
                    "prev": hex(&record.prev),
                    "hash": hex(hash),
                });
                match &record.body {
                    Body::Event(e) => o["event"] = event_json(e),
                    Body::Checkpoint(s) | Body::ExportHead(s) => o["signed"] = signed_json(s),
                }
                Some(o)
            }
            ItemKind::Unreadable { error, .. } => Some(json!({
                "offset": it.offset,
                "kind": "unreadable",
                "length": it.len,
                "error": error.to_string(),
            })),
        })
        .collect();
    Value::Array(v)
}

/// `major.minor.patch` text as the audit log packs it (u8, u8, u16; 0 for
/// a part that does not parse, the largest value for one that overflows):
/// for versions that arrive as text (a release list). A version the
/// verifier decoded goes through [`audit_version_of`] instead.
pub fn audit_version(text: &str) -> keyway_audit::Version {
    let mut it = text.split('.').map(|p| p.parse::<u64>().unwrap_or(0));
    pack_version(|| it.next().unwrap_or(0))
}

/// A manifest's `suit-set-version` as the audit log packs it: its first
/// three parts, each clamped to its field (a negative, pre-release part
/// reads 0); no version is 0.0.0. What a lock writes in its `update
/// offered` and `boot` records, and what an auditor compares them with.
pub fn audit_version_of(version: Option<keyway_suit::Version>) -> keyway_audit::Version {
    let parts = version
        .as_ref()
        .map_or(&[][..], keyway_suit::Version::parts);
    let mut it = parts.iter().map(|&p| u64::try_from(p).unwrap_or(0));
    pack_version(|| it.next().unwrap_or(0))
}

/// Packs the next three parts into (u8, u8, u16), clamping each.
fn pack_version(mut next: impl FnMut() -> u64) -> keyway_audit::Version {
    let major = u8::try_from(next()).unwrap_or(u8::MAX);
    let minor = u8::try_from(next()).unwrap_or(u8::MAX);
    let patch = u16::try_from(next()).unwrap_or(u16::MAX);
    keyway_audit::Version::new(major, minor, patch)
}

/// An RTC value as a UTC date and time (`2026-11-25 08:00:00Z`) when it
/// reads like a set clock (2000 to 2200), else as the raw number.
pub fn rtc_text(rtc: u64) -> String {
    const Y2000: u64 = 946_684_800;
    const Y2200: u64 = 7_258_118_400;
    if !(Y2000..Y2200).contains(&rtc) {
        return format!("rtc {rtc}");
    }
    format!("{}Z", utc_date_time(rtc))
}

/// Unix seconds as `YYYY-MM-DD HH:MM:SS` in UTC (proleptic Gregorian),
/// for any `u64`.
pub fn utc_date_time(unix: u64) -> String {
    let days = (unix / 86_400) as i64;
    let secs = unix % 86_400;
    // Days since 1970-01-01 to a civil date, counted in 400-year eras
    // that start on 1 March (so the leap day is the era's last).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// The items as text, one line each (records from `since` on).
pub fn show_text(items: &[Item], since: Option<u32>) -> String {
    let mut s = String::new();
    for it in items {
        match &it.what {
            ItemKind::Record { record, .. } => {
                if since.is_some_and(|x| record.seq < x) {
                    continue;
                }
                let what = match &record.body {
                    Body::Event(e) => e.to_string(),
                    Body::Checkpoint(c) => format!(
                        "checkpoint: {} records, keeps from record {}, key {}",
                        c.count,
                        c.retained,
                        hex(&c.key_id)
                    ),
                    Body::ExportHead(h) => format!(
                        "export head: {} records, export starts at record {}, key {}",
                        h.count,
                        h.retained,
                        hex(&h.key_id)
                    ),
                };
                s.push_str(&format!(
                    "{:>7}  boot {:>5}  {:<20}  {what}\n",
                    record.seq,
                    record.time.boot,
                    rtc_text(record.time.rtc)
                ));
            }
            ItemKind::Unreadable { error, .. } => s.push_str(&format!(
                "{:>7}  bytes {}..{} unreadable: {error}\n",
                "?",
                it.offset,
                it.offset + it.len
            )),
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::{audit_version, audit_version_of, rtc_text};

    /// A decoded version packs as its text did (the lock's records and the
    /// auditor's expectations agree whichever path a version takes).
    #[test]
    fn typed_versions_pack_as_their_text() {
        use crate::encode::{EnvelopeBuilder, ReleaseVersion};
        use crate::keys::{Algorithm, SigningKey};
        let key = SigningKey::generate(Algorithm::Ed25519).expect("a key");
        for (major, minor, patch) in [(1, 2, 3), (7, 0, 59_999), (300, 1, 70_000)] {
            let envelope = EnvelopeBuilder {
                sequence: 1,
                version: ReleaseVersion::new(major, minor, patch),
                vendor_domain: "locks.example".into(),
                class_name: "deadbolt".into(),
                payload: vec![1; 16],
                keys: vec![key.clone()],
                ..Default::default()
            }
            .build()
            .expect("an envelope")
            .envelope;
            let decoded = keyway_suit::inspect_envelope(&envelope)
                .expect("it decodes")
                .manifest
                .version;
            let text = decoded.expect("a version").to_string();
            assert_eq!(text, format!("{major}.{minor}.{patch}"));
            assert_eq!(audit_version_of(decoded), audit_version(&text), "{text}");
        }
        assert_eq!(audit_version_of(None), keyway_audit::Version::new(0, 0, 0));
        assert_eq!(audit_version_of(None), audit_version(""));
    }

    #[test]
    fn rtc_values_read_as_utc_dates() {
        assert_eq!(rtc_text(946_684_800), "2000-01-01 00:00:00Z");
        assert_eq!(rtc_text(1_795_564_800), "2026-11-25 00:00:00Z");
        assert_eq!(rtc_text(951_782_400 + 3_723), "2000-02-29 01:02:03Z");
        assert_eq!(rtc_text(4_107_542_399), "2100-02-28 23:59:59Z");
        assert_eq!(rtc_text(4_107_542_400), "2100-03-01 00:00:00Z");
        assert_eq!(rtc_text(5), "rtc 5");
        assert_eq!(rtc_text(u64::MAX), format!("rtc {}", u64::MAX));
    }
}
