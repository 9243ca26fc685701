//! The hub's decisions, as pure functions (the functional core).
//!
//! Nothing here does I/O or reads a clock: each function takes what the
//! hub knows (releases, a lock's record and snapshot, the time) and returns
//! a decision. [`super::Hub`] gathers the inputs from the store and the
//! lock's link, calls these, and carries the decisions out; the tests in
//! `tests/decide.rs` pin each rule on its own.

use serde::Serialize;

use crate::model::{
    Consent, Decision, Digest, Freshness, LockId, LockRecord, LockSnapshot, Release,
    RolloutOutcome, Severity, UnixSecs, UpdateState,
};

/// A release as the decisions see it: its record (without the envelope)
/// and the image it installs (the payload's digest, or a delta's output
/// image), which is what a lock reports as its running image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Known {
    /// The release.
    pub release: Release,
    /// The SHA-256 of the image it installs.
    pub image: Digest,
}

/// An update available to one lock: one release (one sequence number of
/// its model), with the envelopes that carry it, best first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Offer {
    /// What a consent names: the full envelope's digest (a delta's when the
    /// hub holds only a delta for this lock's image).
    pub release: Digest,
    /// Its sequence number.
    pub sequence: u64,
    /// Its version.
    pub version: String,
    /// Its release notes.
    pub notes: String,
    /// The CVEs it fixes.
    pub cves: Vec<crate::model::CveFix>,
    /// The highest severity among them.
    #[serde(with = "crate::model::severity_serde::option")]
    pub max_severity: Option<Severity>,
    /// The image it installs.
    pub image: Digest,
    /// The envelopes to offer the lock, in order: a delta whose base is
    /// the lock's running image first, then the full image.
    pub envelopes: Vec<Digest>,
    /// Whether a delta for the lock's running image is among them.
    pub delta: bool,
}

/// Normalises a version for comparison: dotted decimal parts without
/// trailing zero parts (`1.2.0` = `1.2`); `None` when not numeric.
pub fn version_parts(v: &str) -> Option<Vec<u64>> {
    let v = v.trim().trim_start_matches('v');
    let mut parts: Vec<u64> = v
        .split('.')
        .map(|p| p.parse::<u64>().ok())
        .collect::<Option<Vec<_>>>()?;
    while parts.len() > 1 && parts.last() == Some(&0) {
        parts.pop();
    }
    Some(parts)
}

/// Whether two version strings name the same version.
pub fn same_version(a: &str, b: &str) -> bool {
    match (version_parts(a), version_parts(b)) {
        (Some(x), Some(y)) => x == y,
        _ => a.trim() == b.trim(),
    }
}

/// The sequence number of the image a lock runs: the highest sequence of
/// a release whose image it is (`None` when the hub holds no release of
/// that image, e.g. the factory image).
pub fn running_sequence(known: &[Known], snapshot: &LockSnapshot) -> Option<u64> {
    let image = snapshot.image?;
    known
        .iter()
        .filter(|k| k.image == image)
        .map(|k| k.release.sequence)
        .max()
}

/// Whether a release is an upgrade for a lock: its sequence is above the
/// running one; when the hub does not know the running image's sequence,
/// its version is above the running version (a version it cannot compare
/// is offered: the lock's own anti-rollback decides).
pub fn is_upgrade(release: &Release, running_seq: Option<u64>, running_version: &str) -> bool {
    match running_seq {
        Some(s) => release.sequence > s,
        None => match (
            version_parts(&release.version),
            version_parts(running_version),
        ) {
            (Some(r), Some(l)) => r > l,
            _ => true,
        },
    }
}

/// The updates available to `lock` (of its class, above what it runs),
/// newest first, each with the envelopes to offer: a delta whose base is
/// the lock's running image, then the full image. A delta for another
/// base is never offered. A lock the hub has never heard from gets none.
pub fn offers(known: &[Known], lock: &LockRecord) -> Vec<Offer> {
    let Some(snap) = lock.snapshot.as_ref() else {
        return Vec::new();
    };
    let running = running_sequence(known, snap);
    let mut seqs: Vec<u64> = known
        .iter()
        .filter(|k| k.release.class == lock.class)
        .map(|k| k.release.sequence)
        .collect();
    seqs.sort_unstable_by(|a, b| b.cmp(a));
    seqs.dedup();
    let mut out = Vec::new();
    for seq in seqs {
        let of_seq: Vec<&Known> = known
            .iter()
            .filter(|k| k.release.class == lock.class && k.release.sequence == seq)
            .collect();
        let full = of_seq.iter().find(|k| k.release.delta_base.is_none());
        let delta = of_seq
            .iter()
            .find(|k| k.release.delta_base.is_some() && k.release.delta_base == snap.image);
        let Some(head) = full.or(delta) else {
            continue;
        };
        if !is_upgrade(&head.release, running, &snap.version) {
            continue;
        }
        let mut envelopes = Vec::new();
        if let Some(d) = delta {
            envelopes.push(d.release.digest);
        }
        if let Some(f) = full {
            envelopes.push(f.release.digest);
        }
        out.push(Offer {
            release: head.release.digest,
            sequence: seq,
            version: head.release.version.clone(),
            notes: head.release.notes.clone(),
            cves: head.release.cves.clone(),
            max_severity: head.release.max_severity(),
            image: head.image,
            envelopes,
            delta: delta.is_some(),
        });
    }
    out
}

/// Whether the owner's standing opt-in covers this offer: they opted in
/// and it fixes a high or critical CVE. Nothing else installs without an
/// explicit consent.
pub fn auto_consent(lock: &LockRecord, offer: &Offer) -> bool {
    lock.auto_install_critical && offer.max_severity.is_some_and(|s| s >= Severity::High)
}

/// The owner's standing decision on a release for a lock, if any.
pub fn decision(consents: &[Consent], release: &Digest) -> Option<Decision> {
    consents
        .iter()
        .filter(|c| &c.release == release)
        .max_by_key(|c| c.at)
        .map(|c| c.decision)
}

/// The index range of wave `wave` in a rollout of `n` locks.
pub fn wave_range(n: usize, wave_size: u32, wave: u32) -> std::ops::Range<usize> {
    let size = wave_size.max(1) as usize;
    let start = (wave as usize).saturating_mul(size).min(n);
    start..start.saturating_add(size).min(n)
}

/// How many waves a rollout of `n` locks has.
pub fn wave_count(n: usize, wave_size: u32) -> u32 {
    n.div_ceil(wave_size.max(1) as usize) as u32
}

/// What a finished wave decides (hawkBit's error threshold).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaveVerdict {
    /// Failures stayed within the threshold: the next wave may go.
    Continue,
    /// Failures exceeded the threshold: the rollout stops here.
    Stop {
        /// The wave's failures.
        failed: u32,
        /// Its locks.
        of: u32,
    },
}

/// The stop rule: a wave stops the rollout when its failures exceed
/// `threshold_pct` percent of its locks. A lock without consent is not a
/// failure (the hub never installs without it); a postponed one is not
/// either (its lock installs when its policy allows).
pub fn wave_verdict(outcomes: &[RolloutOutcome], threshold_pct: u8) -> WaveVerdict {
    let of = outcomes.len() as u32;
    let failed = outcomes
        .iter()
        .filter(|o| matches!(o, RolloutOutcome::Failed { .. }))
        .count() as u32;
    if u64::from(failed) * 100 > u64::from(threshold_pct) * u64::from(of) {
        WaveVerdict::Stop { failed, of }
    } else {
        WaveVerdict::Continue
    }
}

/// How fresh the hub's view of its TUF repository is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum FreshnessState {
    /// No repository configured, or never synced: releases come from
    /// bundles only.
    Never,
    /// The last fresh timestamp is recent and unexpired.
    Fresh {
        /// Seconds since it was seen.
        age_secs: i64,
    },
    /// The last fresh timestamp is older than the bound: an outage or a
    /// freeze attack. A warning only: installing what the hub holds stays
    /// safe (each lock's anti-rollback refuses an old release).
    Stale {
        /// Seconds since it was seen.
        age_secs: i64,
    },
    /// The timestamp the hub holds has expired.
    Expired {
        /// When it expired.
        expired_at: UnixSecs,
    },
}

impl FreshnessState {
    /// Whether the owner should be warned.
    pub fn is_warning(&self) -> bool {
        matches!(
            self,
            FreshnessState::Stale { .. } | FreshnessState::Expired { .. }
        )
    }

    /// A stable machine name.
    pub fn code(&self) -> &'static str {
        match self {
            FreshnessState::Never => "never",
            FreshnessState::Fresh { .. } => "fresh",
            FreshnessState::Stale { .. } => "stale",
            FreshnessState::Expired { .. } => "expired",
        }
    }
}

/// Freshness from the record, the time and the bound. Never a block.
pub fn freshness(f: &Freshness, now: UnixSecs, stale_after_secs: i64) -> FreshnessState {
    let Some(last) = f.last_fresh_at else {
        return FreshnessState::Never;
    };
    if let Some(exp) = f.timestamp_expires
        && exp <= now
    {
        return FreshnessState::Expired { expired_at: exp };
    }
    let age = now.saturating_sub(last);
    if age > stale_after_secs {
        FreshnessState::Stale { age_secs: age }
    } else {
        FreshnessState::Fresh { age_secs: age }
    }
}

/// How a newly fetched audit-log export continues what the hub kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Continuity {
    /// It continues (or overlaps) what the hub kept.
    Intact,
    /// Records are missing between what the hub kept and the export.
    Gap {
        /// The last sequence the hub held.
        held_to: u64,
        /// The export's first sequence.
        resumed_at: u64,
    },
    /// A lie: the export ends before what the hub already holds (a log's
    /// sequence never goes backwards), or its first record is after its
    /// last.
    Backwards {
        /// What the hub held.
        held_to: Option<u64>,
        /// The export's first sequence.
        first: u64,
        /// The export's last sequence.
        last: u64,
    },
}

/// Log continuity from the kept last sequence and the new export's range
/// (`first == last + 1` is an empty export: nothing new since `first`).
pub fn log_continuity(held_to: Option<u64>, first: u64, last: u64) -> Continuity {
    if first > last.saturating_add(1) {
        return Continuity::Backwards {
            held_to,
            first,
            last,
        };
    }
    match held_to {
        None => Continuity::Intact,
        Some(h) if last < h => Continuity::Backwards {
            held_to,
            first,
            last,
        },
        Some(h) if first > h.saturating_add(1) => Continuity::Gap {
            held_to: h,
            resumed_at: first,
        },
        Some(_) => Continuity::Intact,
    }
}

/// A contradiction in what a lock said: the hub alerts and does not act
/// on it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "lie", rename_all = "snake_case")]
pub enum Lie {
    /// It reports the image of a release the hub holds under another
    /// version than that release's.
    VersionContradictsImage {
        /// The image it reports.
        image: Digest,
        /// The version it reports.
        reported: String,
        /// The release's version for that image.
        release_version: String,
    },
    /// It went back from a confirmed image to an older release's image:
    /// anti-rollback makes that impossible (a reverted trial is not this:
    /// the previous image was not confirmed).
    Downgrade {
        /// The sequence it ran, confirmed.
        from: u64,
        /// The sequence it now claims.
        to: u64,
    },
    /// It said it runs the release the hub pushed, confirmed, but its
    /// status reports another image (or none).
    NotRunningPushed {
        /// The release pushed.
        release: Digest,
        /// The image it should report.
        expected: Digest,
        /// The image it reports.
        reported: Option<Digest>,
    },
    /// An audit log whose sequence went backwards.
    LogBackwards {
        /// What the hub held.
        held_to: Option<u64>,
        /// The export's first sequence.
        first: u64,
        /// The export's last sequence.
        last: u64,
    },
}

impl Lie {
    /// In words, for the owner.
    pub fn sentence(&self) -> String {
        match self {
            Lie::VersionContradictsImage {
                image,
                reported,
                release_version,
            } => format!(
                "the lock reports version {reported} but its image {} is release {release_version}",
                &image.to_hex()[..16]
            ),
            Lie::Downgrade { from, to } => format!(
                "the lock claims to run sequence {to} after running sequence {from} confirmed; anti-rollback makes that impossible"
            ),
            Lie::NotRunningPushed {
                release,
                expected,
                reported,
            } => format!(
                "the lock said it runs release {}… (image {}…) but reports image {}",
                &release.to_hex()[..16],
                &expected.to_hex()[..16],
                reported.map_or("none".to_string(), |d| format!("{}…", &d.to_hex()[..16]))
            ),
            Lie::LogBackwards {
                held_to,
                first,
                last,
            } => format!(
                "the lock's audit log went backwards: records {first}..={last} after the hub held up to {}",
                held_to.map_or("nothing".to_string(), |h| h.to_string())
            ),
        }
    }
}

/// The contradictions in a new status, given the previous one, the
/// releases the hub holds, and (after a push the lock said it runs) the
/// release it must now run.
pub fn status_lies(
    known: &[Known],
    prev: Option<&LockSnapshot>,
    new: &LockSnapshot,
    expect: Option<(&Digest, &Digest)>,
) -> Vec<Lie> {
    let mut lies = Vec::new();
    if let Some(image) = new.image
        && let Some(k) = known
            .iter()
            .filter(|k| k.image == image)
            .max_by_key(|k| k.release.sequence)
        && !same_version(&k.release.version, &new.version)
    {
        lies.push(Lie::VersionContradictsImage {
            image,
            reported: new.version.clone(),
            release_version: k.release.version.clone(),
        });
    }
    if let Some(p) = prev
        && p.update == UpdateState::Confirmed
        && let (Some(from), Some(to)) = (running_sequence(known, p), running_sequence(known, new))
        && to < from
    {
        lies.push(Lie::Downgrade { from, to });
    }
    if let Some((release, image)) = expect
        && new.image != Some(*image)
    {
        lies.push(Lie::NotRunningPushed {
            release: *release,
            expected: *image,
            reported: new.image,
        });
    }
    lies
}

/// Which locks of a class a rollout covers: the given ones (all of the
/// class) or every paired lock of the class, by id.
pub fn rollout_locks(
    locks: &[LockRecord],
    class: &str,
    only: Option<&[LockId]>,
) -> Result<Vec<LockId>, LockId> {
    match only {
        Some(ids) => {
            let mut out = Vec::new();
            for id in ids {
                match locks.iter().find(|l| l.id == *id) {
                    Some(l) if l.class == class => {
                        if !out.contains(id) {
                            out.push(*id)
                        }
                    }
                    _ => return Err(*id),
                }
            }
            Ok(out)
        }
        None => Ok(locks
            .iter()
            .filter(|l| l.class == class && l.device_key.is_some())
            .map(|l| l.id)
            .collect()),
    }
}
