//! Shared helpers for the audit-log tests: a device key, a script of
//! events, export and a strict chain check (independent of the host CLI).
#![allow(dead_code)]

use embedded_storage::nor_flash::NorFlash;
use keyway_audit::record::{Hash, record_hash};
use keyway_audit::{
    AuditLog, Body, Config, Ed25519Signer, Event, Kind, LockMethod, Record, RejectReason,
    RevertReason, Signer, Time, Version,
};

/// The test device's key (deterministic).
pub fn device_key() -> Ed25519Signer {
    Ed25519Signer::from_seed([7; 32]).unwrap()
}

/// One of every event, with distinct fields.
pub fn all_events() -> Vec<Event> {
    let mut v = vec![
        Event::Boot {
            slot: 1,
            version: Version::new(2, 1, 300),
        },
        Event::UpdateOffered {
            sequence: 42,
            version: Version::new(2, 2, 0),
        },
        Event::DownloadStarted { sequence: 42 },
        Event::UpdateVerified { sequence: 42 },
        Event::UpdateInstalled {
            sequence: 42,
            slot: 0,
        },
        Event::OnTrial {
            slot: 0,
            attempts_left: 3,
        },
        Event::Confirmed {
            slot: 0,
            sequence: 42,
        },
        Event::ConsentGiven { sequence: 43 },
        Event::ConsentRefused { sequence: 44 },
        Event::PresenceWindowOpened { seconds: 120 },
        Event::OwnerPaired {
            owner: [1, 2, 3, 4, 5, 6, 7, 8],
        },
        Event::OwnerRemoved {
            owner: [8, 7, 6, 5, 4, 3, 2, 1],
        },
        Event::FactoryReset,
        Event::PinFailed { consecutive: 3 },
        Event::TamperDetected { sensor: 2 },
        Event::TamperCleared { sensor: 2 },
        Event::BatteryLow { millivolts: 3100 },
        Event::KeySetRotated {
            from: 1,
            to: u64::MAX,
        },
    ];
    for &reason in RejectReason::ALL {
        v.push(Event::UpdateRejected {
            sequence: u64::MAX - 1,
            reason,
        });
    }
    for &reason in RevertReason::ALL {
        v.push(Event::Reverted { to_slot: 1, reason });
    }
    for &method in LockMethod::ALL {
        v.push(Event::Locked { method });
        v.push(Event::Unlocked { method });
    }
    v
}

/// Script step `i`: an event cycling through every kind, and a time
/// unique to `i`.
pub fn step(i: u32) -> (Time, Event) {
    let events = all_events();
    let e = events[i as usize % events.len()];
    (
        Time {
            rtc: 1_760_000_000 + u64::from(i) * 7,
            boot: i / 10,
        },
        e,
    )
}

/// The whole export, read through a `chunk`-byte buffer.
pub fn export<F: NorFlash>(log: &AuditLog<F>, flash: &mut F, chunk: usize, at: Time) -> Vec<u8> {
    let key = device_key();
    let mut export = log.export(at);
    let mut out = Vec::new();
    let mut buf = vec![0u8; chunk];
    loop {
        let n = export.fill(log, flash, &key, &mut buf).unwrap();
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
    }
    out
}

/// An export's records and each one's bytes.
pub fn parse(bytes: &[u8]) -> Vec<(Record, Vec<u8>)> {
    let mut at = 0;
    let mut v = Vec::new();
    while at < bytes.len() {
        let (r, n) =
            Record::decode(&bytes[at..]).unwrap_or_else(|e| panic!("record at byte {at}: {e}"));
        v.push((r, bytes[at..at + n].to_vec()));
        at += n;
    }
    v
}

fn verify_sig(r: &Record, pk: &[u8; 32]) -> bool {
    let (msg, s) = r.signed_message().unwrap();
    ed25519_compact::PublicKey::new(*pk)
        .verify(msg, &ed25519_compact::Signature::new(s.signature))
        .is_ok()
}

/// Checks an export strictly: consecutive sequence numbers, every `prev`
/// the hash of the record before, signed checkpoints and head by the test
/// device key, a head over the last record, and a first record at or
/// before the newest checkpoint's retained sequence (or record 0).
/// Returns the records before the head.
pub fn check_export(bytes: &[u8]) -> Result<Vec<Record>, String> {
    let pk = device_key().public_key();
    let mut records = parse(bytes);
    let (head, _) = records.pop().ok_or("empty export")?;
    let Body::ExportHead(h) = head.body else {
        return Err(format!(
            "last record is a {}, not a head",
            head.kind().name()
        ));
    };
    if !verify_sig(&head, &pk) {
        return Err("head signature".into());
    }
    let mut prev: Option<(u32, Hash)> = None;
    let mut retained = 0u32;
    for (r, b) in &records {
        if r.kind() == Kind::ExportHead {
            return Err(format!("export head inside the log at seq {}", r.seq));
        }
        if let Some((seq, hash)) = prev {
            if r.seq != seq + 1 {
                return Err(format!("record {} follows {seq}", r.seq));
            }
            if r.prev != hash {
                return Err(format!(
                    "record {}'s prev is not record {seq}'s hash",
                    r.seq
                ));
            }
        } else if r.seq == 0 && r.prev != [0; 32] {
            return Err("record 0 has a prev hash".into());
        }
        if let Body::Checkpoint(c) = r.body {
            if !verify_sig(r, &pk) || c.count != r.seq {
                return Err(format!("checkpoint {} does not verify", r.seq));
            }
            retained = retained.max(c.retained);
        }
        prev = Some((r.seq, record_hash(b)));
    }
    let first = records.first().map_or(head.seq, |(r, _)| r.seq);
    if first > retained && first != 0 {
        return Err(format!(
            "log starts at {first}, newest checkpoint retains from {retained}"
        ));
    }
    match prev {
        Some((seq, hash)) if head.seq != seq + 1 || head.prev != hash => {
            return Err(format!("head {} does not follow record {seq}", head.seq));
        }
        None if head.prev != [0; 32] && head.seq != 0 && first > retained => {
            return Err("empty log with a head".into());
        }
        _ => {}
    }
    if h.count != head.seq || h.retained != first {
        return Err(format!(
            "head says count {} from {}, log has {} from {first}",
            h.count, h.retained, head.seq
        ));
    }
    Ok(records.into_iter().map(|(r, _)| r).collect())
}

/// The `(time, event)` of every event record.
pub fn events(records: &[Record]) -> Vec<(Time, Event)> {
    records
        .iter()
        .filter_map(|r| match r.body {
            Body::Event(e) => Some((r.time, e)),
            _ => None,
        })
        .collect()
}

pub fn full_sweep() -> bool {
    std::env::var("KEYWAY_FULL_SWEEP").is_ok_and(|v| v == "1")
}

/// Opens a log in `config` on `flash` and appends `entries` to it with the
/// device key, checking each event is the last record written.
pub fn log_with<F: NorFlash>(
    flash: &mut F,
    config: Config,
    entries: impl IntoIterator<Item = (Time, Event)>,
) -> AuditLog<F> {
    let mut log = AuditLog::open(flash, config).unwrap();
    let key = device_key();
    for (t, e) in entries {
        let seq = log.append(flash, &key, t, &e).unwrap();
        assert_eq!(seq + 1, log.next_seq(), "{e:?}");
    }
    log
}
