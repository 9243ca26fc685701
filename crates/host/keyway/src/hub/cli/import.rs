//! `keyway hub import`: an offline bundle, verified as a TUF sync is, one
//! line per item imported or refused.

use super::*;

pub(super) fn import(a: &ImportArgs, out: &mut dyn Write) -> Result<()> {
    data_dir(&a.data)?;
    let (store, at) = a.stores.open(&a.data)?;
    let hub = Hub::new(
        store,
        Arc::new(NoLocks),
        Arc::new(SystemClock),
        HubConfig::default(),
    );
    if let Some(m) = a.model.anchors()? {
        hub.put_model(&m).map_err(|e| hub_error(e, &at))?;
    }
    let Some(mirror) = a.stores.mirror(&a.data)? else {
        bail!(
            "{}: the hub trusts no TUF root yet: give the vendor's root.json with --tuf-root (or run `keyway hub serve --tuf-root` once)",
            a.data.display()
        );
    };
    drop(mirror);
    let read = match BundleReader::new(&a.data).verify(&a.path) {
        Ok(r) => r,
        Err(e) => bail!("{e}"),
    };
    if read.versions.is_none() && read.accepted.is_empty() {
        // Nothing verified: every refusal, one a line, then the error.
        if a.json {
            let v = serde_json::json!({
                "bundle": a.path.display().to_string(),
                "metadata_verified": false,
                "imported": [],
                "already_held": [],
                "refused": read.refused.iter().map(tuf_refusal_json).collect::<Vec<_>>(),
            });
            writeln!(out, "{v}")?;
        } else {
            for r in &read.refused {
                writeln!(out, "refused {}: {r}", refusal_target(r))?;
            }
            writeln!(out, "{}: 0 imported, 0 already held", a.path.display())?;
        }
        bail!(
            "{}: nothing could be read: its TUF metadata did not verify against the hub's root (the reasons are above)",
            a.path.display()
        );
    }
    let staleness = read.staleness;
    let tuf_refused = read.refused;
    let incoming = bundle_incoming(read.accepted, &a.path);
    let report = hub.ingest(incoming).map_err(|e| hub_error(e, &at))?;
    if a.json {
        let mut v = serde_json::json!({
            "bundle": a.path.display().to_string(),
            "metadata_verified": true,
            "imported": report.imported,
            "already_held": report.already_held,
            "refused": tuf_refused
                .iter()
                .map(tuf_refusal_json)
                .chain(report.refused.iter().map(|r| serde_json::json!({
                    "target": r.target, "stage": "envelope", "reason": r.reason, "message": r.message
                })))
                .collect::<Vec<_>>(),
        });
        if staleness.is_stale() {
            v["stale"] = serde_json::json!({
                "timestamp_expired_at": staleness.timestamp_expired_at.map(|t| t.to_string()),
                "snapshot_expired_at": staleness.snapshot_expired_at.map(|t| t.to_string()),
            });
        }
        writeln!(out, "{v}")?;
    } else {
        if let Some(t) = staleness.timestamp_expired_at {
            writeln!(out, "{}", stale_warning(t))?;
        }
        for i in &report.imported {
            writeln!(
                out,
                "imported {}: {} {} (sequence {}), {}",
                i.target, i.class, i.version, i.sequence, i.digest
            )?;
        }
        for t in &report.already_held {
            writeln!(out, "already held {t}")?;
        }
        for r in &tuf_refused {
            writeln!(out, "refused {}: {r}", refusal_target(r))?;
        }
        for r in &report.refused {
            writeln!(out, "refused {}: {}", r.target, r.message)?;
        }
        writeln!(
            out,
            "{}: {} imported, {} already held, {} refused",
            a.path.display(),
            report.imported.len(),
            report.already_held.len(),
            tuf_refused.len() + report.refused.len()
        )?;
    }
    Ok(())
}

/// Reads offline bundles for the hub (`keyway hub import` and the API's
/// `POST /api/imports`): the TUF metadata chain verified against the
/// hub's pinned root by `keyway-tuf`, then each target against its signed
/// length and hash; what passes goes to the engine's intake, which
/// verifies each envelope against its model's anchors.
#[derive(Debug, Clone)]
pub struct BundleReader {
    data: PathBuf,
}

impl BundleReader {
    /// The reader for the hub whose directory is `data` (its mirror in
    /// `data/tuf`).
    pub fn new(data: &Path) -> BundleReader {
        BundleReader {
            data: data.to_owned(),
        }
    }

    /// Verifies the bundle at `path` against the hub's pinned root:
    /// keyway-tuf's whole report (what verified, each refusal typed, the
    /// staleness of an old stick). `Err` when there is no bundle there or
    /// no pinned root.
    pub fn verify(&self, path: &Path) -> Result<keyway_tuf::BundleReport, SourceError> {
        if !path.is_dir() {
            return Err(SourceError::NotFound(path.display().to_string()));
        }
        let mirror = Mirror::open(&self.data.join(TUF_DIR)).map_err(|_| {
            SourceError::Refused(format!(
                "the hub at {} trusts no TUF root yet: give the vendor's root.json (--tuf-root)",
                self.data.display()
            ))
        })?;
        Ok(mirror.import_bundle(path, Timestamp::now()))
    }

    /// Reads `path` for the API; `Err` when nothing could be read at all
    /// (no bundle there, no pinned root, or metadata that does not
    /// verify: the error then names the first refusal and how many more).
    pub fn read(&self, path: &Path) -> Result<BundleRead, SourceError> {
        let report = self.verify(path)?;
        if report.versions.is_none() && report.accepted.is_empty() {
            // `SourceError::Refused` holds one sentence (keyway-hub's
            // type); `keyway hub import` prints every refusal.
            let first = report
                .refused
                .first()
                .map(|r| format!("{}: {r}", refusal_target(r)))
                .unwrap_or_else(|| "its metadata did not verify".into());
            let more = report.refused.len().saturating_sub(1);
            return Err(SourceError::Refused(if more == 0 {
                first
            } else {
                format!("{first} (and {more} more refusals: `keyway hub import` lists them)")
            }));
        }
        Ok(BundleRead {
            incoming: bundle_incoming(report.accepted, path),
            refused: report
                .refused
                .iter()
                .map(|r| (refusal_target(r), r.to_string()))
                .collect(),
        })
    }
}

/// The warning `keyway hub import` prints for a stick whose timestamp
/// expired.
pub fn stale_warning(expired_at: keyway_tuf::jiff::Timestamp) -> String {
    format!(
        "the bundle is old: its timestamp expired at {expired_at}; imported anyway, the locks' \
         anti-rollback makes old releases harmless"
    )
}

/// One TUF refusal in `keyway hub import --json`: its target, keyway-tuf's
/// stable code, and the sentence.
pub(super) fn tuf_refusal_json(r: &keyway_tuf::Refusal) -> serde_json::Value {
    serde_json::json!({
        "target": refusal_target(r),
        "stage": "tuf",
        "code": r.code(),
        "message": r.to_string(),
    })
}

impl ReleasesIn for BundleReader {
    fn read_bundle(&self, path: &Path) -> Result<BundleRead, SourceError> {
        self.read(path)
    }
}

/// The target (or file) a bundle refusal is about.
pub(super) fn refusal_target(r: &keyway_tuf::Refusal) -> String {
    use keyway_tuf::Refusal as R;
    match r {
        R::RootMissing { version, .. } | R::RootRejected { version, .. } => {
            format!("metadata/{version}.root.json")
        }
        R::Metadata { file, .. } => format!("metadata/{file}"),
        R::Unverified { target }
        | R::TargetMissing { target, .. }
        | R::TargetLength { target, .. }
        | R::TargetHash { target, .. }
        | R::TargetNoHash { target }
        | R::TargetTooLarge { target, .. }
        | R::TargetUnreadable { target, .. } => target.clone(),
    }
}

/// The targets a bundle's TUF metadata vouched for, as the engine ingests
/// them (their origin: the bundle at `path`).
fn bundle_incoming(accepted: Vec<keyway_tuf::AcceptedTarget>, path: &Path) -> Vec<Incoming> {
    let origin = ReleaseOrigin::Bundle {
        path: path.display().to_string(),
    };
    accepted
        .into_iter()
        .map(|t| Incoming {
            target: t.name,
            bytes: t.envelope,
            origin: origin.clone(),
        })
        .collect()
}
