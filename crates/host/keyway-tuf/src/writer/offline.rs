//! The offline bundle writer (after Uptane PURE-2): the repository's
//! metadata and target files copied into a directory a USB stick carries.

use std::path::Path;

use serde_json::Value;

use super::{PublishError, RepoWriter, consistent_target_path, io, write_atomic};

impl RepoWriter {
    /// Writes an offline bundle (after Uptane PURE-2) into `out`: every root
    /// version, the current timestamp, snapshot and targets, and every
    /// target file, in the repository's own layout (so the bundle is also a
    /// repository a client can refresh from).
    pub fn write_bundle(&self, out: &Path) -> Result<BundleWritten, PublishError> {
        let meta = self.repo.join("metadata");
        let omete = out.join("metadata");
        let mut files = 0u64;
        let mut bytes = 0u64;
        let mut copy = |from: &Path, to: &Path| -> Result<(), PublishError> {
            let b = std::fs::read(from).map_err(io("read", from))?;
            write_atomic(to, &b)?;
            files += 1;
            bytes += b.len() as u64;
            Ok(())
        };
        for v in 1..=self.versions.root {
            let name = format!("{v}.root.json");
            copy(&meta.join(&name), &omete.join(&name))?;
        }
        copy(&meta.join("root.json"), &omete.join("root.json"))?;
        for name in [
            format!("{}.targets.json", self.versions.targets),
            format!("{}.snapshot.json", self.versions.snapshot),
            "timestamp.json".to_string(),
        ] {
            copy(&meta.join(&name), &omete.join(&name))?;
        }
        for (target, entry) in &self.targets {
            let Some(hash) = entry.pointer("/hashes/sha256").and_then(Value::as_str) else {
                continue;
            };
            let rel = consistent_target_path(target, hash);
            copy(
                &self.repo.join("targets").join(&rel),
                &out.join("targets").join(&rel),
            )?;
        }
        write_atomic(
            &out.join(BUNDLE_MARKER),
            format!(
                "{{\"keyway-bundle\":1,\"root\":{},\"targets\":{},\"snapshot\":{},\"timestamp\":{}}}\n",
                self.versions.root,
                self.versions.targets,
                self.versions.snapshot,
                self.versions.timestamp
            )
            .as_bytes(),
        )?;
        Ok(BundleWritten {
            files,
            bytes,
            targets: self.targets.len(),
        })
    }
}

/// The file that marks a directory as a Keyway offline bundle (informative:
/// the reader trusts only the signed metadata).
pub const BUNDLE_MARKER: &str = "keyway-bundle.json";

/// What [`RepoWriter::write_bundle`] wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BundleWritten {
    /// Files copied.
    pub files: u64,
    /// Bytes copied.
    pub bytes: u64,
    /// Targets in the bundle.
    pub targets: usize,
}
