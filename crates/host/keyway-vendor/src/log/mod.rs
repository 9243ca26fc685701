//! `keyway log`: verify and show a lock's exported audit log.
//!
//! The file is what `keyway_audit::Export` streams: the records oldest to
//! newest, then an export head signed by the device key (FORMAT.md, "Audit
//! log"). Records are decoded with the device crate's own
//! [`Record::decode`]; this module adds the verifier's judgement:
//!
//! * the chain is walked **backwards from the signed head** by hash, so
//!   the authenticated records are exactly those the device key vouches
//!   for, whatever their position in the file;
//! * where the walk breaks, the finding says why: a record with the
//!   missing sequence number but another hash was **modified**; no such
//!   record means **deleted** records (or a **truncated** tail, when the
//!   break is at the head); the walk resumes at the next older record so
//!   every break is reported;
//! * authenticated records out of sequence order in the file were
//!   **reordered**; records the walk never reached were **inserted**;
//! * a log that does not start at record 0 must start no later than the
//!   newest authenticated checkpoint's retained sequence (records rotated
//!   out by design), and exactly where the signed head says the export
//!   starts;
//! * every checkpoint and the head must be signed by the given device key.
//!
//! The verifier is here; [`show`] renders an export as text or JSON, and
//! [`demo`] builds a demo log on the simulated flash.

use std::collections::HashMap;

use keyway_audit::record::{Hash, record_hash, record_len};
use keyway_audit::{Body, DecodeError, Kind, Record, Signed};

use crate::keys::{PublicKey, hex};
pub mod demo;
pub mod show;

pub use demo::{demo_event, demo_export};
pub use show::{
    audit_version, audit_version_of, event_json, rtc_text, show_json, show_text, utc_date_time,
};

/// One item of an export file, in file order.
#[derive(Debug, Clone)]
pub struct Item {
    /// Its byte offset in the file.
    pub offset: usize,
    /// Its length in bytes.
    pub len: usize,
    /// What it is.
    pub what: ItemKind,
}

/// A decoded record, or bytes that are not one.
#[derive(Debug, Clone)]
pub enum ItemKind {
    /// A valid record and its hash.
    Record {
        /// The record.
        record: Record,
        /// SHA-256 of its bytes.
        hash: Hash,
    },
    /// Bytes that fail to decode. When the header was readable, its
    /// sequence number and prev-hash (unverified) are kept.
    Unreadable {
        /// Why.
        error: DecodeError,
        /// The header's sequence number and prev-hash, if it had one.
        header: Option<(u32, Hash)>,
    },
}

/// Splits an export file into records. A record that fails to decode but
/// has a plausible header is skipped by its length; otherwise the parser
/// resynchronises at the next `KWA1` magic. Never panics.
pub fn parse(bytes: &[u8]) -> Vec<Item> {
    let mut items = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let rest = &bytes[at..];
        match Record::decode(rest) {
            Ok((record, len)) => {
                items.push(Item {
                    offset: at,
                    len,
                    what: ItemKind::Record {
                        record,
                        hash: record_hash(&rest[..len]),
                    },
                });
                at += len;
            }
            Err(error) => {
                let len = match record_len(rest) {
                    Ok(n) if n <= rest.len() => n,
                    _ => rest
                        .windows(4)
                        .skip(1)
                        .position(|w| w == keyway_audit::record::MAGIC)
                        .map_or(rest.len(), |p| p + 1),
                };
                let header = (len >= 56 && rest.len() >= 56).then(|| {
                    let mut prev = [0u8; 32];
                    prev.copy_from_slice(&rest[24..56]);
                    (
                        u32::from_le_bytes([rest[8], rest[9], rest[10], rest[11]]),
                        prev,
                    )
                });
                items.push(Item {
                    offset: at,
                    len,
                    what: ItemKind::Unreadable { error, header },
                });
                at += len;
            }
        }
    }
    items
}

/// One break in the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// What kind of break.
    pub kind: FindingKind,
    /// The sentence `keyway log verify` prints.
    pub message: String,
}

/// The kinds of break the verifier tells apart.
///
/// In JSON a snake-case code: `modified`, `deleted`, `truncated`,
/// `out_of_order`, `inserted`, `forged`, `other_device`, `unreadable`,
/// `no_head` (the hub keeps it as a lock's `log.kind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FindingKind {
    /// A record's bytes changed.
    Modified,
    /// Records missing from the middle, or from the start beyond what
    /// checkpoints and the head allow.
    Deleted,
    /// Records missing from the end.
    Truncated,
    /// An authenticated record in the wrong place.
    OutOfOrder,
    /// A record that is not in the signed chain.
    Inserted,
    /// A checkpoint or head whose signature does not verify.
    Forged,
    /// A checkpoint or head signed by another key.
    OtherDevice,
    /// Bytes that are not a record.
    Unreadable,
    /// No signed head at the end.
    NoHead,
}

/// What `keyway log verify` found.
#[derive(Debug, Clone)]
pub struct Report {
    /// Every break, in the order found.
    pub findings: Vec<Finding>,
    /// Records in the file, the head included.
    pub records: usize,
    /// Authenticated records (reached from the signed head).
    pub authenticated: usize,
    /// Event records.
    pub events: usize,
    /// Checkpoint records.
    pub checkpoints: usize,
    /// The first and last sequence numbers of the authenticated chain.
    pub range: Option<(u32, u32)>,
    /// The signed head's record count, if there is a head.
    pub head_count: Option<u32>,
}

impl Report {
    /// True when nothing is broken.
    pub fn intact(&self) -> bool {
        self.findings.is_empty()
    }

    /// The one-line summary `keyway log verify` prints last.
    pub fn summary(&self, key: &PublicKey) -> String {
        if self.intact() {
            let (first, last) = self.range.unwrap_or((0, 0));
            let rotated = if first > 0 {
                format!("; records 0..{} rotated out by design", first - 1)
            } else {
                String::new()
            };
            format!(
                "intact: {} records, {first}..{last} ({} events, {} checkpoints), signed head over {} records by device key {}{rotated}",
                self.records.saturating_sub(1),
                self.events,
                self.checkpoints,
                self.head_count.unwrap_or(0),
                hex(&key.key_id())
            )
        } else {
            format!(
                "BROKEN: {} finding(s) in {} records ({} authenticated by the signed head)",
                self.findings.len(),
                self.records,
                self.authenticated
            )
        }
    }
}

/// Unreadable bytes, and whether the chain walk explained them.
struct Bad {
    offset: usize,
    len: usize,
    error: DecodeError,
    header: Option<(u32, Hash)>,
    used: bool,
}

struct Rec {
    offset: usize,
    record: Record,
    hash: Hash,
}

fn range_text(a: u32, b: u32) -> String {
    if a == b {
        format!("record {a}")
    } else {
        format!("records {a}..{b}")
    }
}

/// Verifies an export file against the device's Ed25519 public key.
pub fn verify(bytes: &[u8], key: &PublicKey) -> Report {
    let items = parse(bytes);
    let kid = key.key_id();
    let mut findings = Vec::new();
    let mut push = |kind, message: String| findings.push(Finding { kind, message });

    let mut rs: Vec<Rec> = Vec::new();
    let mut bad: Vec<Bad> = Vec::new();
    for it in &items {
        match &it.what {
            ItemKind::Record { record, hash } => rs.push(Rec {
                offset: it.offset,
                record: *record,
                hash: *hash,
            }),
            ItemKind::Unreadable { error, header } => bad.push(Bad {
                offset: it.offset,
                len: it.len,
                error: *error,
                header: *header,
                used: false,
            }),
        }
    }
    let records = rs.len();
    let head = match rs.last() {
        Some(r)
            if r.record.kind() == Kind::ExportHead
                && items.last().is_some_and(|i| i.offset == r.offset) =>
        {
            rs.pop()
        }
        _ => None,
    };

    // Signatures of the head and every checkpoint.
    let check_sig = |r: &Rec, what: &str, push: &mut dyn FnMut(FindingKind, String)| -> bool {
        let Some((message, s)) = r.record.signed_message() else {
            return false;
        };
        let s: &Signed = s;
        if s.key_id != kid {
            push(
                FindingKind::OtherDevice,
                format!("{what} signed by another device key {}…", hex(&s.key_id)),
            );
            false
        } else if !key.verify(&message, &s.signature) {
            push(
                FindingKind::Forged,
                format!(
                    "{what} forged: its signature does not verify under the device key {}",
                    hex(&kid)
                ),
            );
            false
        } else if s.count != r.record.seq {
            push(
                FindingKind::Forged,
                format!(
                    "{what} inconsistent: it counts {} records at sequence {}",
                    s.count, r.record.seq
                ),
            );
            false
        } else {
            true
        }
    };
    let head_ok = match &head {
        Some(h) => check_sig(h, &format!("head at byte {}", h.offset), &mut push),
        None => {
            push(
                FindingKind::NoHead,
                "no signed head at the end of the file: the log is truncated or not an export"
                    .into(),
            );
            false
        }
    };
    let mut valid_checkpoint = vec![false; rs.len()];
    for (i, r) in rs.iter().enumerate() {
        if r.record.kind() == Kind::Checkpoint {
            let what = format!("checkpoint {} at byte {}", r.record.seq, r.offset);
            valid_checkpoint[i] = check_sig(r, &what, &mut push);
        }
    }

    // Walk back from the head (or, without one, from the newest record).
    let mut by_hash: HashMap<Hash, usize> = HashMap::new();
    for (i, r) in rs.iter().enumerate() {
        by_hash.entry(r.hash).or_insert(i);
    }
    let mut on_chain = vec![false; rs.len()];
    let (mut succ_seq, mut want, mut succ_label, mut at_head) = match &head {
        Some(h) => (
            h.record.seq,
            h.record.prev,
            "the signed head".to_owned(),
            true,
        ),
        None => match rs.iter().enumerate().max_by_key(|(_, r)| r.record.seq) {
            Some((i, r)) => {
                on_chain[i] = true;
                (
                    r.record.seq,
                    r.record.prev,
                    format!("record {}'s prev-hash", r.record.seq),
                    false,
                )
            }
            None => (0, [0; 32], String::new(), false),
        },
    };
    let mut start_of_log: Option<u32> = None;
    let is_body = |r: &Rec| r.record.kind() != Kind::ExportHead;
    loop {
        if succ_seq == 0 {
            break;
        }
        if let Some(&i) = by_hash.get(&want)
            && !on_chain[i]
            && is_body(&rs[i])
        {
            on_chain[i] = true;
            let r = &rs[i].record;
            if r.seq != succ_seq - 1 {
                push(
                    FindingKind::Modified,
                    format!(
                        "record at byte {} has sequence {} where {} expects {}",
                        rs[i].offset,
                        r.seq,
                        succ_label,
                        succ_seq - 1
                    ),
                );
            }
            succ_seq = r.seq;
            want = r.prev;
            succ_label = format!("record {}'s prev-hash", r.seq);
            at_head = false;
            continue;
        }
        let p = succ_seq - 1;
        if let Some(i) =
            (0..rs.len()).find(|&i| !on_chain[i] && is_body(&rs[i]) && rs[i].record.seq == p)
        {
            push(
                FindingKind::Modified,
                format!(
                    "record {p} at byte {} modified: its hash does not match {succ_label}",
                    rs[i].offset
                ),
            );
            on_chain[i] = true;
            succ_seq = p;
            want = rs[i].record.prev;
            succ_label = format!("record {p}'s prev-hash");
            at_head = false;
            continue;
        }
        if let Some(b) = bad
            .iter_mut()
            .find(|b| !b.used && b.header.is_some_and(|(s, _)| s == p))
        {
            b.used = true;
            push(
                FindingKind::Modified,
                format!("record {p} at byte {} modified: {}", b.offset, b.error),
            );
            succ_seq = p;
            want = b.header.map_or([0; 32], |(_, h)| h);
            succ_label = format!("record {p}'s prev-hash");
            at_head = false;
            continue;
        }
        let older = (0..rs.len())
            .filter(|&i| !on_chain[i] && is_body(&rs[i]) && rs[i].record.seq < p)
            .max_by_key(|&i| rs[i].record.seq);
        match older {
            Some(i) => {
                let q = rs[i].record.seq;
                if at_head {
                    push(
                        FindingKind::Truncated,
                        format!(
                            "log truncated after record {q}: the signed head says {} records (the last is record {p})",
                            succ_seq
                        ),
                    );
                } else {
                    push(
                        FindingKind::Deleted,
                        format!("{} deleted", range_text(q + 1, p)),
                    );
                }
                on_chain[i] = true;
                succ_seq = q;
                want = rs[i].record.prev;
                succ_label = format!("record {q}'s prev-hash");
                at_head = false;
            }
            None => {
                if at_head {
                    push(
                        FindingKind::Truncated,
                        format!(
                            "log truncated: none of the {succ_seq} records the signed head covers is here"
                        ),
                    );
                } else {
                    start_of_log = Some(succ_seq);
                }
                break;
            }
        }
    }

    // Where the log starts: rotated out by design, or deleted.
    if let Some(start) = start_of_log {
        let retained = (0..rs.len())
            .filter(|&i| on_chain[i] && valid_checkpoint[i])
            .filter_map(|i| match rs[i].record.body {
                Body::Checkpoint(c) => Some((rs[i].record.seq, c.retained)),
                _ => None,
            })
            .max_by_key(|&(seq, _)| seq);
        let head_start = head
            .as_ref()
            .filter(|_| head_ok)
            .and_then(|h| match h.record.body {
                Body::ExportHead(s) => Some(s.retained),
                _ => None,
            });
        match retained {
            None => push(
                FindingKind::Deleted,
                format!(
                    "{} deleted: the log starts at record {start} and no signed checkpoint says they were rotated out",
                    range_text(0, start - 1)
                ),
            ),
            Some((cseq, r)) if start > r => push(
                FindingKind::Deleted,
                format!(
                    "{} deleted: the newest checkpoint (record {cseq}) retains from record {r}",
                    range_text(r, start - 1)
                ),
            ),
            _ => {
                if let Some(hs) = head_start
                    && hs < start
                {
                    push(
                        FindingKind::Deleted,
                        format!(
                            "{} deleted: the signed head says the export starts at record {hs}",
                            range_text(hs, start - 1)
                        ),
                    );
                }
            }
        }
    }

    // Authenticated records out of order in the file.
    let mut max_seen: Option<u32> = None;
    for (i, r) in rs.iter().enumerate() {
        if !on_chain[i] {
            continue;
        }
        if max_seen.is_some_and(|m| r.record.seq < m) {
            push(
                FindingKind::OutOfOrder,
                format!("record {} at byte {} out of order", r.record.seq, r.offset),
            );
        }
        max_seen = Some(max_seen.map_or(r.record.seq, |m| m.max(r.record.seq)));
    }
    // Records the chain never reached.
    for (i, r) in rs.iter().enumerate() {
        if !on_chain[i] {
            push(
                FindingKind::Inserted,
                format!(
                    "{} at byte {} inserted: not signed into the chain (it claims sequence {})",
                    if r.record.kind() == Kind::Event {
                        "record"
                    } else {
                        r.record.kind().name()
                    },
                    r.offset,
                    r.record.seq
                ),
            );
        }
    }
    for b in bad.iter().filter(|b| !b.used) {
        push(
            FindingKind::Unreadable,
            format!(
                "bytes {}..{} unreadable: {}",
                b.offset,
                b.offset + b.len,
                b.error
            ),
        );
    }

    let chain: Vec<&Rec> = rs
        .iter()
        .enumerate()
        .filter(|(i, _)| on_chain[*i])
        .map(|(_, r)| r)
        .collect();
    Report {
        records,
        authenticated: chain.len(),
        events: rs.iter().filter(|r| r.record.kind() == Kind::Event).count(),
        checkpoints: rs
            .iter()
            .filter(|r| r.record.kind() == Kind::Checkpoint)
            .count(),
        range: chain
            .iter()
            .map(|r| r.record.seq)
            .min()
            .zip(chain.iter().map(|r| r.record.seq).max()),
        head_count: head.as_ref().and_then(|h| match h.record.body {
            Body::ExportHead(s) => Some(s.count),
            _ => None,
        }),
        findings,
    }
}
