//! Check 10: the audit-log exports taken along the run, verified and
//! chained.

use super::*;

impl Session<'_> {
    /// Exports the audit log now (over SMP, else the control socket) and
    /// keeps it; failures are kept as evidence for check 10.
    pub(super) fn export(&mut self, label: &str) {
        // An export asked for just after a power cut may find the lock
        // still booting: wait for it once, then ask again.
        let r = self.export_bytes().or_else(|e| match self.wait_back() {
            Ok(()) => self.export_bytes(),
            Err(_) => Err(e),
        });
        let n = self.exports.len();
        let name = format!("log-{n:02}-{}.bin", label.replace(' ', "-"));
        match r {
            Ok(bytes) => {
                let path = self.o.out_dir.join(&name);
                if std::fs::write(&path, &bytes).is_ok() {
                    self.files.push(path.display().to_string());
                }
                self.exports.push((label.to_owned(), bytes));
            }
            Err(e) => self
                .exports
                .push((format!("{label}: export failed: {e:#}"), Vec::new())),
        }
    }

    /// Takes an export and returns the events recorded since the previous
    /// one.
    pub(super) fn events_since_last_export(&mut self, label: &str) -> Vec<Event> {
        let last_seq = |bytes: &[u8]| {
            keyway_vendor::log::parse(bytes)
                .into_iter()
                .filter_map(|i| match i.what {
                    keyway_vendor::log::ItemKind::Record { record, .. } => Some(record.seq),
                    keyway_vendor::log::ItemKind::Unreadable { .. } => None,
                })
                .max()
        };
        let before = self.exports.last().and_then(|(_, b)| last_seq(b));
        self.export(label);
        let Some((_, bytes)) = self.exports.last() else {
            return Vec::new();
        };
        keyway_vendor::log::parse(bytes)
            .into_iter()
            .filter_map(|i| match i.what {
                keyway_vendor::log::ItemKind::Record { record, .. }
                    if before.is_none_or(|b| record.seq > b) =>
                {
                    match record.body {
                        RecBody::Event(e) => Some(e),
                        _ => None,
                    }
                }
                _ => None,
            })
            .collect()
    }

    pub(super) fn export_bytes(&mut self) -> Result<Vec<u8>> {
        if self.keyway_group {
            return self.smp.log_export();
        }
        // The lock writes it into its own state directory (exports/) and
        // answers where.
        let a = self.ctl(json!({"cmd": "log-export", "path": "keyway-audit-export.bin"}))?;
        let tmp: PathBuf = a
            .get("path")
            .and_then(serde_json::Value::as_str)
            .map(PathBuf::from)
            .ok_or_else(|| anyhow!("the control socket's log-export answer names no path: {a}"))?;
        let b = std::fs::read(&tmp).context("reading the control socket's export")?;
        let _ = std::fs::remove_file(&tmp);
        Ok(b)
    }

    pub(super) fn audit_log(&mut self) -> Check {
        let mut ev = Vec::new();
        let Some(key) = self.device_key.clone() else {
            return skip(
                10,
                "the lock's device key is unknown (no status device_key)",
                ev,
            );
        };
        if self.device_key_from_lock {
            ev.push(format!(
                "the device key {} is the one the lock announced: give --device-key DEVICE.pub from its provisioning to check the log against a key the lock cannot choose",
                hex(&key.key_id())
            ));
        }
        let Chain {
            broken,
            gaps,
            events,
        } = read_exports(&self.exports, &key, &mut ev);
        if let Some(f) = self.files.iter().rev().find(|f| f.contains("log-")) {
            ev.push(format!(
                "check by hand: keyway log verify {f} --device-key DEVICE.pub (key id {})",
                hex(&key.key_id())
            ));
        }
        let missing: Vec<String> = self
            .expect
            .iter()
            .filter(|x| !events.iter().any(|e| x.matches(e)))
            .map(|x| x.describe())
            .collect();
        ev.push(format!(
            "{} update steps expected in the log, {} missing",
            self.expect.len(),
            missing.len()
        ));
        for m in missing.iter().take(6) {
            ev.push(format!("missing: {m}"));
        }
        if !broken.is_empty() {
            fail(
                10,
                format!("the log does not verify: {}", broken.join(", ")),
                ev,
            )
        } else if !gaps.is_empty() {
            ev.extend(gaps.clone());
            fail(
                10,
                format!("the exports do not chain over the run: {}", gaps[0]),
                ev,
            )
        } else if !missing.is_empty() {
            fail(
                10,
                format!(
                    "{} update steps of the run are not in the log (first: {})",
                    missing.len(),
                    missing[0]
                ),
                ev,
            )
        } else {
            pass(
                10,
                format!(
                    "{} exports verify, chain unbroken, every update step logged",
                    self.exports.len()
                ),
                ev,
            )
        }
    }
}

/// What the exports taken along the run show, read together.
#[derive(Debug)]
struct Chain {
    /// Exports that failed or do not verify.
    broken: Vec<String>,
    /// Breaks between exports: records rotated out, the log going back,
    /// records rewritten.
    gaps: Vec<String>,
    /// Every event recorded, once.
    events: Vec<Event>,
}

/// Verifies each export with `key` and chains them: each must continue
/// the last (no records rotated out between them, none going back, none
/// exported before with other bytes). Evidence lines go to `ev`.
fn read_exports(exports: &[(String, Vec<u8>)], key: &PublicKey, ev: &mut Vec<String>) -> Chain {
    let mut broken = Vec::new();
    let mut events: Vec<Event> = Vec::new();
    let mut prev_last: Option<u32> = None;
    let mut gaps = Vec::new();
    // Each record's hash as first exported: a later export must show
    // the same bytes for it (no history rewritten between exports).
    let mut seen: std::collections::BTreeMap<u32, keyway_audit::Hash> =
        std::collections::BTreeMap::new();
    for (label, bytes) in exports {
        if bytes.is_empty() {
            broken.push(label.clone());
            continue;
        }
        let rep = keyway_vendor::log::verify(bytes, key);
        ev.push(format!("export after {label}: {}", rep.summary(key)));
        if !rep.intact() {
            for f in rep.findings.iter().take(3) {
                ev.push(format!("  {}", f.message));
            }
            broken.push(label.clone());
        }
        if let (Some(p), Some((first, _))) = (prev_last, rep.range)
            && first > p + 1
        {
            gaps.push(format!(
                "records {}..{} rotated out before the export after {label}",
                p + 1,
                first - 1
            ));
        }
        match (prev_last, rep.range) {
            (Some(p), Some((_, last))) if last < p => gaps.push(format!(
                "the log went back: it ended at record {p}, the export after {label} ends at {last}"
            )),
            (Some(p), None) => gaps.push(format!(
                "the log went back: it ended at record {p}, the export after {label} holds none"
            )),
            (_, Some((_, last))) => prev_last = Some(last),
            (None, None) => {}
        }
        let mut rewritten = 0usize;
        for item in keyway_vendor::log::parse(bytes) {
            if let keyway_vendor::log::ItemKind::Record { record, hash } = item.what {
                // The export head is made for each export, not kept.
                if !matches!(record.body, RecBody::ExportHead(_))
                    && *seen.entry(record.seq).or_insert(hash) != hash
                {
                    rewritten += 1;
                }
                if let RecBody::Event(e) = record.body
                    && !events.contains(&e)
                {
                    events.push(e);
                }
            }
        }
        if rewritten > 0 {
            gaps.push(format!(
                "{rewritten} record(s) exported before differ in the export after {label}: history was rewritten"
            ));
        }
    }
    Chain {
        broken,
        gaps,
        events,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exports(counts: &[u32]) -> (Vec<(String, Vec<u8>)>, PublicKey) {
        let k = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
        let signer = keyway_audit::Ed25519Signer::from_seed(k.to_bytes()).unwrap();
        let e = counts
            .iter()
            .map(|n| {
                (
                    format!("{n} events"),
                    keyway_vendor::log::demo_export(&signer, *n, 4).unwrap(),
                )
            })
            .collect();
        (e, PublicKey::Ed25519(k.verifying_key()))
    }

    #[test]
    fn exports_that_continue_each_other_chain() {
        let (e, key) = exports(&[20, 40]);
        let c = read_exports(&e, &key, &mut Vec::new());
        assert!(c.broken.is_empty() && c.gaps.is_empty(), "{c:?}");
        assert!(!c.events.is_empty());
    }

    /// A lock that serves a shorter log later (records it had exported
    /// are gone) breaks the chain, even though each export verifies.
    #[test]
    fn a_log_that_goes_back_between_exports_fails() {
        assert_gap(&[40, 20], "the log went back");
    }

    /// Records rotated out between two exports were never seen: a gap.
    #[test]
    fn records_rotated_out_between_exports_are_a_gap() {
        assert_gap(&[20, 600], "rotated out before");
    }

    /// Exports of these many events read as intact, with a gap that says
    /// `gap`.
    fn assert_gap(events: &[u32], gap: &str) {
        let (e, key) = exports(events);
        let c = read_exports(&e, &key, &mut Vec::new());
        assert!(c.broken.is_empty(), "{c:?}");
        assert!(c.gaps.iter().any(|g| g.contains(gap)), "{c:?}");
    }

    /// An export signed by another key, or one that failed, is broken.
    #[test]
    fn an_export_by_another_key_or_a_failed_one_is_broken() {
        let (mut e, _) = exports(&[20]);
        e.push(("failed".into(), Vec::new()));
        let other =
            PublicKey::Ed25519(ed25519_dalek::SigningKey::from_bytes(&[9; 32]).verifying_key());
        let c = read_exports(&e, &other, &mut Vec::new());
        assert_eq!(c.broken, ["20 events", "failed"], "{c:?}");
    }
}
