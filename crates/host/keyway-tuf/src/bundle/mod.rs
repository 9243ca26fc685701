//! The offline bundle reader (`keyway hub import PATH`).
//!
//! A bundle (`keyway publish --bundle DIR`) follows Uptane's PURE-2 "offline
//! updates" for the image repository: every root version from 1 to the
//! newest, the newest timestamp, snapshot and targets metadata, and every
//! target file, in the repository's own layout (so it can also be served or
//! refreshed from as a directory). Keyway has no director repository: the
//! lock itself decides what it installs, so the bundle carries no
//! offline-update role.
//!
//! [`Mirror::import_bundle`] verifies it with no network, from the hub's
//! trusted root (the pin, fast-forwarded through the roots its cache
//! already verified):
//!
//! 1. the root chain: each next version read from the bundle must be signed
//!    by the previous root's and its own root keys (TUF 5.3); a gap (a later
//!    root without the one before it) or a root that fails is refused, and
//!    nothing signed after it is trusted; the final root must be unexpired;
//! 2. timestamp, snapshot, targets: signature thresholds against the final
//!    root, the snapshot's and targets' lengths, hashes and versions against
//!    what the role above pins (mix-and-match), and no version lower than
//!    the hub already holds (rollback) — all strict;
//! 3. each target: read at most its signed length, then its length and
//!    SHA-256 checked; a bad target is refused on its own and the others
//!    still import.
//!
//! **The one relaxation: the timestamp's and the snapshot's expiry.** A
//! bundle is carried on a stick and may be read weeks after it was written,
//! when its timestamp (7 days) and snapshot (30 days) have run out. PURE-2
//! skips the snapshot expiry for offline updates for this reason (its step
//! 7.4) and carries no timestamp at all. The reader reports them as stale
//! ([`Staleness`]) and still accepts the targets; the targets metadata's
//! expiry (365 days) and the root's stay enforced (PURE-2 8.4), as do every
//! signature and version check. An old release this admits is harmless:
//! the lock refuses anything below its anti-rollback floor, and the hub
//! offers only what verifies against the model's anchors.
//!
//! What the reader verified becomes the hub's floor: newer roots, timestamp,
//! snapshot and targets are written to the mirror's cache, so a later online
//! refresh (or another stick) cannot go below them.

use std::collections::BTreeMap;
use std::path::Path;

use sha2::Digest as _;
use sigstore_tuf::{Metadata, MetadataStore, Role, Root, Snapshot, Targets, Timestamp};

use crate::error::{MirrorError, TransportError};
use crate::mirror::{MAX_TARGET_BYTES, Mirror, TrustedVersions, read_bounded};
use crate::summary::ReleaseSummary;
use crate::writer::consistent_target_path;

mod report;

pub use report::{AcceptedTarget, BundleReport, Refusal, Staleness};

/// Most bytes of one root file read from a bundle.
const ROOT_MAX: u64 = 512_000;
/// Timestamp.
const TIMESTAMP_MAX: u64 = 16_384;
/// Snapshot.
const SNAPSHOT_MAX: u64 = 2_000_000;
/// Targets.
const TARGETS_MAX: u64 = 5_000_000;
/// Most root versions walked in one import.
const MAX_ROOTS: u64 = 1024;

/// The file `role`'s metadata at `version` is in: version-prefixed
/// under consistent snapshots (TUF 5.5), else the bare name.
fn role_file(root: &Root, role: &str, version: u64) -> String {
    if root.consistent_snapshot {
        format!("{version}.{role}.json")
    } else {
        format!("{role}.json")
    }
}

/// The `T` role's metadata that `pin` (from the role `above`) names, read
/// from the bundle's `meta` directory (at most `max` bytes) and checked
/// against the pin's length and hashes, the final `root`'s keys and the
/// pinned version; with its file name and bytes.
fn read_pinned<T: Role>(
    meta: &Path,
    root: &Root,
    pin: &sigstore_tuf::MetaFile,
    max: u64,
    above: &str,
) -> Result<(String, Vec<u8>, Metadata<T>), Refusal> {
    let role = T::TYPE;
    let name = role_file(root, role, pin.version);
    let refusal = |error: MirrorError| Refusal::Metadata {
        file: format!("metadata/{name}"),
        error,
    };
    let bytes = read_meta(meta, &name, max).map_err(refusal)?;
    check_pin(&bytes, pin, &name).map_err(refusal)?;
    let m = Metadata::<T>::from_slice(&bytes).map_err(|e| refusal(tuf_err(e)))?;
    verify_role(&m, root, role).map_err(refusal)?;
    if m.signed().version() != pin.version {
        return Err(refusal(MirrorError::Inconsistent {
            detail: format!(
                "{role} version {} is not the version {} the {above} pins",
                m.signed().version(),
                pin.version
            ),
        }));
    }
    Ok((name, bytes, m))
}

fn tuf_err(e: sigstore_tuf::Error) -> MirrorError {
    MirrorError::from_tuf(e, None)
}

fn check_pin(bytes: &[u8], pin: &sigstore_tuf::MetaFile, what: &str) -> Result<(), MirrorError> {
    if let Some(len) = pin.length
        && bytes.len() as u64 != len
    {
        return Err(MirrorError::Inconsistent {
            detail: format!("{what} is {} bytes, pinned {len}", bytes.len()),
        });
    }
    if let Some(hashes) = &pin.hashes {
        let mut checked = false;
        for (alg, want) in hashes {
            let got = match alg.as_str() {
                "sha256" => hex::encode(sha2::Sha256::digest(bytes)),
                "sha512" => hex::encode(sha2::Sha512::digest(bytes)),
                _ => continue,
            };
            if !got.eq_ignore_ascii_case(want) {
                return Err(MirrorError::Inconsistent {
                    detail: format!("{what}: {alg} differs from the pinned one"),
                });
            }
            checked = true;
        }
        if !checked {
            return Err(MirrorError::Inconsistent {
                detail: format!("{what}: no supported hash pinned"),
            });
        }
    }
    Ok(())
}

fn verify_role<T: Role>(m: &Metadata<T>, root: &Root, role: &str) -> Result<(), MirrorError> {
    let keys = root.role(role).ok_or_else(|| MirrorError::Malformed {
        detail: format!("the root defines no {role} role"),
    })?;
    m.verify_threshold(&root.keys, keys, role).map_err(tuf_err)
}

fn cached<T: Role>(store: &dyn MetadataStore, name: &str) -> Option<Metadata<T>> {
    store
        .load(name)
        .ok()
        .flatten()
        .and_then(|b| Metadata::<T>::from_slice(&b).ok())
}

struct Chain {
    versions: TrustedVersions,
    targets: Targets,
    files: Vec<(String, Vec<u8>)>,
}

impl Mirror {
    /// Imports an offline bundle from `bundle` (a directory or a mounted
    /// stick), verified from the hub's trusted root with no network. Never
    /// fails as a whole: what it could not verify is in
    /// [`BundleReport::refused`] with a typed reason per item.
    pub fn import_bundle(&self, bundle: &Path, now: jiff::Timestamp) -> BundleReport {
        let mut report = BundleReport {
            bundle: bundle.to_owned(),
            versions: None,
            staleness: Staleness::default(),
            accepted: Vec::new(),
            refused: Vec::new(),
        };
        let chain = match self.verify_chain(bundle, now, &mut report) {
            Ok(c) => c,
            Err(refusal) => {
                report.refused.push(refusal);
                // Name the targets the stick claims, so the owner sees what
                // was not imported.
                if let Some(t) = read_unverified_targets(bundle) {
                    report
                        .refused
                        .extend(t.into_iter().map(|target| Refusal::Unverified { target }));
                }
                return report;
            }
        };
        report.versions = Some(chain.versions);
        let targets_dir = bundle.join("targets");
        for (name, t) in &chain.targets.targets {
            match read_target(&targets_dir, name, t) {
                Ok(envelope) => report.accepted.push(AcceptedTarget {
                    name: name.clone(),
                    sha256: t.hashes.get("sha256").cloned().unwrap_or_default(),
                    envelope,
                    summary: ReleaseSummary::from_custom(t.custom.as_ref()),
                }),
                Err(r) => report.refused.push(r),
            }
        }
        // The verified metadata becomes the hub's floor.
        let store = self.store();
        for (name, bytes) in &chain.files {
            if let Err(e) = store.store(name, bytes) {
                report.refused.push(Refusal::Metadata {
                    file: name.clone(),
                    error: MirrorError::Io {
                        action: "write",
                        path: self.cache_dir().join(name),
                        source: std::io::Error::other(e.to_string()),
                    },
                });
            }
        }
        if report.staleness.timestamp_expired_at.is_none() {
            let _ = self.mark_fresh(now);
        }
        report
    }

    fn verify_chain(
        &self,
        bundle: &Path,
        now: jiff::Timestamp,
        report: &mut BundleReport,
    ) -> Result<Chain, Refusal> {
        let meta = bundle.join("metadata");
        let store = self.store();
        let metadata_refusal = |file: &str, error: MirrorError| Refusal::Metadata {
            file: format!("metadata/{file}"),
            error,
        };
        let pinned = self
            .pinned_root()
            .map_err(|e| metadata_refusal("trusted-root.json", e))?;
        let mut trusted = sigstore_tuf::TrustedMetadataSet::from_root(&pinned)
            .map_err(|e| metadata_refusal("trusted-root.json", tuf_err(e)))?;
        // The roots the hub already verified.
        loop {
            let next = trusted.root().version + 1;
            match store.load(&format!("root_history/{next}.root.json")) {
                Ok(Some(b)) if trusted.update_root(&b).is_ok() => {}
                _ => break,
            }
        }
        let mut files: Vec<(String, Vec<u8>)> = Vec::new();
        // The bundle's roots.
        let newest_on_stick = newest_root(&meta);
        let start = trusted.root().version;
        for next in (start + 1)..=newest_on_stick.min(start + MAX_ROOTS) {
            let name = format!("{next}.root.json");
            let bytes = match read_bounded(&meta.join(&name), &name, ROOT_MAX) {
                Ok(Some(b)) => b,
                Ok(None) => {
                    return Err(Refusal::RootMissing {
                        version: next,
                        later: newest_on_stick,
                    });
                }
                Err(e) => {
                    return Err(Refusal::RootRejected {
                        version: next,
                        error: MirrorError::Transport(e),
                    });
                }
            };
            trusted
                .update_root(&bytes)
                .map_err(|e| Refusal::RootRejected {
                    version: next,
                    error: tuf_err(e),
                })?;
            files.push((format!("root_history/{next}.root.json"), bytes.clone()));
            files.push(("root.json".into(), bytes));
        }
        let root = trusted.root().clone();
        if root.is_expired(now) {
            return Err(metadata_refusal(
                &format!("{}.root.json", root.version),
                MirrorError::Expired {
                    role: "root".into(),
                    expired_at: root.expires,
                },
            ));
        }

        // Timestamp: signatures and rollback strict; expiry reported.
        let ts_bytes = read_meta(&meta, "timestamp.json", TIMESTAMP_MAX)
            .map_err(|e| metadata_refusal("timestamp.json", e))?;
        let ts = Metadata::<Timestamp>::from_slice(&ts_bytes)
            .map_err(|e| metadata_refusal("timestamp.json", tuf_err(e)))?;
        verify_role(&ts, &root, "timestamp").map_err(|e| metadata_refusal("timestamp.json", e))?;
        let old_ts = cached::<Timestamp>(&store, "timestamp.json");
        if let Some(old) = &old_ts {
            let (o, n) = (old.signed(), ts.signed());
            if n.version < o.version {
                return Err(metadata_refusal(
                    "timestamp.json",
                    MirrorError::Rollback {
                        role: "timestamp".into(),
                        trusted: o.version,
                        offered: n.version,
                    },
                ));
            }
            if let (Some(op), Some(np)) = (o.snapshot_meta(), n.snapshot_meta())
                && np.version < op.version
            {
                return Err(metadata_refusal(
                    "timestamp.json",
                    MirrorError::Rollback {
                        role: "snapshot (via timestamp)".into(),
                        trusted: op.version,
                        offered: np.version,
                    },
                ));
            }
        }
        if ts.signed().is_expired(now) {
            report.staleness.timestamp_expired_at = Some(ts.signed().expires);
        }
        let pin = ts.signed().snapshot_meta().cloned().ok_or_else(|| {
            metadata_refusal(
                "timestamp.json",
                MirrorError::Malformed {
                    detail: "the timestamp pins no snapshot".into(),
                },
            )
        })?;

        // Snapshot: pinned by the timestamp; expiry reported (PURE-2 7.4).
        let (snap_name, snap_bytes, snap) =
            read_pinned::<Snapshot>(&meta, &root, &pin, SNAPSHOT_MAX, "timestamp")?;
        if let Some(old) = cached::<Snapshot>(&store, "snapshot.json") {
            for (name, o) in &old.signed().meta {
                match snap.signed().meta.get(name) {
                    Some(n) if n.version < o.version => {
                        return Err(metadata_refusal(
                            &snap_name,
                            MirrorError::Rollback {
                                role: format!("{name} (via snapshot)"),
                                trusted: o.version,
                                offered: n.version,
                            },
                        ));
                    }
                    Some(_) => {}
                    None => {
                        return Err(metadata_refusal(
                            &snap_name,
                            MirrorError::Inconsistent {
                                detail: format!("the snapshot drops {name}, which the hub holds"),
                            },
                        ));
                    }
                }
            }
        }
        if snap.signed().is_expired(now) {
            report.staleness.snapshot_expired_at = Some(snap.signed().expires);
        }

        // Targets: pinned by the snapshot; expiry strict (PURE-2 8.4).
        let tpin = snap
            .signed()
            .meta
            .get("targets.json")
            .cloned()
            .ok_or_else(|| {
                metadata_refusal(
                    &snap_name,
                    MirrorError::Malformed {
                        detail: "the snapshot pins no targets.json".into(),
                    },
                )
            })?;
        let (tname, tbytes, targets) =
            read_pinned::<Targets>(&meta, &root, &tpin, TARGETS_MAX, "snapshot")?;
        if let Some(old) = cached::<Targets>(&store, "targets.json")
            && targets.signed().version < old.signed().version
        {
            return Err(metadata_refusal(
                &tname,
                MirrorError::Rollback {
                    role: "targets".into(),
                    trusted: old.signed().version,
                    offered: targets.signed().version,
                },
            ));
        }
        if targets.signed().is_expired(now) {
            return Err(metadata_refusal(
                &tname,
                MirrorError::Expired {
                    role: "targets".into(),
                    expired_at: targets.signed().expires,
                },
            ));
        }

        // Newer than the hub's: the floor moves up.
        let newer = |old: Option<u64>, new: u64| old.is_none_or(|o| new > o);
        if newer(
            old_ts.as_ref().map(|m| m.signed().version),
            ts.signed().version,
        ) {
            files.push(("timestamp.json".into(), ts_bytes));
        }
        if newer(
            cached::<Snapshot>(&store, "snapshot.json").map(|m| m.signed().version),
            snap.signed().version,
        ) {
            files.push(("snapshot.json".into(), snap_bytes));
        }
        if newer(
            cached::<Targets>(&store, "targets.json").map(|m| m.signed().version),
            targets.signed().version,
        ) {
            files.push(("targets.json".into(), tbytes));
        }
        Ok(Chain {
            versions: TrustedVersions {
                root: root.version,
                timestamp: ts.signed().version,
                snapshot: snap.signed().version,
                targets: targets.signed().version,
            },
            targets: targets.into_signed(),
            files,
        })
    }
}

/// The highest `N` of the `N.root.json` files in `meta` (0 when none).
fn newest_root(meta: &Path) -> u64 {
    std::fs::read_dir(meta)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            e.file_name()
                .to_str()?
                .strip_suffix(".root.json")?
                .parse::<u64>()
                .ok()
        })
        .max()
        .unwrap_or(0)
}

fn read_meta(meta: &Path, name: &str, limit: u64) -> Result<Vec<u8>, MirrorError> {
    match read_bounded(&meta.join(name), name, limit) {
        Ok(Some(b)) => Ok(b),
        Ok(None) => Err(MirrorError::Transport(TransportError::Missing {
            what: name.to_owned(),
            location: meta.display().to_string(),
        })),
        Err(e) => Err(MirrorError::Transport(e)),
    }
}

/// The target names the stick's newest targets file claims (unverified:
/// only to name what was not imported).
fn read_unverified_targets(bundle: &Path) -> Option<Vec<String>> {
    let meta = bundle.join("metadata");
    let newest = std::fs::read_dir(&meta)
        .ok()?
        .flatten()
        .filter_map(|e| {
            let n = e.file_name().to_str()?.to_owned();
            let v = n.strip_suffix(".targets.json")?.parse::<u64>().ok()?;
            Some((v, n))
        })
        .max()?;
    let bytes = read_bounded(&meta.join(&newest.1), &newest.1, TARGETS_MAX).ok()??;
    let v: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    let map: &serde_json::Map<String, serde_json::Value> =
        v.pointer("/signed/targets")?.as_object()?;
    Some(map.keys().cloned().collect())
}

fn read_target(
    targets_dir: &Path,
    name: &str,
    t: &sigstore_tuf::TargetFile,
) -> Result<Vec<u8>, Refusal> {
    let hashes: &BTreeMap<String, String> = &t.hashes;
    let Some(sha) = hashes.get("sha256") else {
        return Err(Refusal::TargetNoHash {
            target: name.to_owned(),
        });
    };
    if t.length > MAX_TARGET_BYTES {
        return Err(Refusal::TargetTooLarge {
            target: name.to_owned(),
            length: t.length,
            limit: MAX_TARGET_BYTES,
        });
    }
    let rel = consistent_target_path(name, sha);
    let safe = Path::new(&rel)
        .components()
        .all(|c| matches!(c, std::path::Component::Normal(_)));
    if !safe {
        return Err(Refusal::TargetMissing {
            target: name.to_owned(),
            file: rel,
        });
    }
    let path = targets_dir.join(&rel);
    // Never read past the signed length.
    let bytes = match read_bounded(&path, name, t.length) {
        Ok(Some(b)) => b,
        Ok(None) => {
            return Err(Refusal::TargetMissing {
                target: name.to_owned(),
                file: format!("targets/{rel}"),
            });
        }
        Err(TransportError::TooLong { .. }) => {
            return Err(Refusal::TargetLength {
                target: name.to_owned(),
                signed: t.length,
                found: t.length + 1,
            });
        }
        Err(error) => {
            return Err(Refusal::TargetUnreadable {
                target: name.to_owned(),
                error,
            });
        }
    };
    if bytes.len() as u64 != t.length {
        return Err(Refusal::TargetLength {
            target: name.to_owned(),
            signed: t.length,
            found: bytes.len() as u64,
        });
    }
    let found = hex::encode(sha2::Sha256::digest(&bytes));
    if !found.eq_ignore_ascii_case(sha) {
        return Err(Refusal::TargetHash {
            target: name.to_owned(),
            expected: sha.clone(),
            found,
        });
    }
    Ok(bytes)
}
