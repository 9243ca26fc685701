//! Keyway's release summary: what each TUF target's `custom` field carries.
//!
//! TUF leaves `targets.signed.targets[PATH].custom` to the application (the
//! specification's extension point for target metadata). Keyway puts a
//! summary of the envelope there so a client can list the releases a
//! repository offers (model, version, sequence, delta base, CVEs) from the
//! targets metadata alone, without downloading every envelope.
//!
//! The summary is signed by the targets role, but the hub does not act on it:
//! what it installs is decided from the downloaded envelope, verified with
//! `keyway_suit::verify_envelope` against the lock model's anchors (the same
//! function the lock runs). A summary that disagrees with its envelope is
//! reported ([`SummaryMismatch`]), never trusted over the envelope.

use serde::{Deserialize, Serialize};

/// One fixed vulnerability, as the summary lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CveSummary {
    /// `CVE-YYYY-NNNN…`.
    pub id: String,
    /// `low`, `medium`, `high` or `critical`.
    pub severity: String,
}

/// The `custom` object of a Keyway target (FORMAT.md "TUF target custom
/// field"). Field names are stable; unknown fields are ignored on read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleaseSummary {
    /// The lock model (class) name: the notes' model name
    /// (`keyway sign --class`), else the class UUID in hex.
    pub class: String,
    /// The version the notes name (`suit-text-current-version`), else the
    /// manifest's `suit-set-version`, else empty.
    pub version: String,
    /// `suit-manifest-sequence-number`: what anti-rollback compares.
    pub sequence: u64,
    /// For a delta envelope: SHA-256 (hex) of the image the patch applies to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delta_base: Option<String>,
    /// The CVEs the release notes say it fixes.
    #[serde(default)]
    pub cves: Vec<CveSummary>,
}

/// Why an envelope could not be summarized (it is not a well-formed SUIT
/// envelope Keyway can read).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the envelope cannot be read ({0:?}); sign it again with `keyway sign`")]
pub struct SummaryError(pub keyway_suit::Error);

/// A target's signed summary disagrees with its envelope.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the repository's summary of {target} says {field} is {claimed:?} but the envelope says \
     {actual:?}; the envelope is what counts: ask the vendor to republish it"
)]
pub struct SummaryMismatch {
    /// The target path.
    pub target: String,
    /// Which field differs.
    pub field: &'static str,
    /// What the summary claims.
    pub claimed: String,
    /// What the envelope says.
    pub actual: String,
}

impl ReleaseSummary {
    /// Summarizes a signed envelope from what it says about itself
    /// (`keyway_suit::inspect_envelope`: structure and digests checked, no
    /// signature: the publisher signed it, the hub and the lock verify it).
    pub fn of_envelope(envelope: &[u8]) -> Result<ReleaseSummary, SummaryError> {
        let inspected = keyway_suit::inspect_envelope(envelope).map_err(SummaryError)?;
        let m = &inspected.manifest;
        let notes = inspected.notes.as_ref();
        let class = notes
            .and_then(|n| n.model_name)
            .map(str::to_owned)
            .or_else(|| {
                m.components
                    .first()
                    .and_then(|c| c.params.class_id)
                    .map(hex::encode)
            })
            .unwrap_or_default();
        let version = notes
            .and_then(|n| n.version)
            .map(str::to_owned)
            .or_else(|| m.version.map(|v| v.to_string()))
            .unwrap_or_default();
        let cves = notes
            .map(|n| {
                n.cves()
                    .map(|c| CveSummary {
                        id: c.id.to_owned(),
                        severity: c.severity.as_str().to_owned(),
                    })
                    .collect()
            })
            .unwrap_or_default();
        Ok(ReleaseSummary {
            class,
            version,
            sequence: m.sequence,
            delta_base: inspected.delta.map(|d| hex::encode(d.base_digest)),
            cves,
        })
    }

    /// Reads a target's `custom` field; `None` when it is absent or not a
    /// Keyway summary (a foreign target in a shared repository).
    pub fn from_custom(custom: Option<&serde_json::Value>) -> Option<ReleaseSummary> {
        serde_json::from_value(custom?.get("keyway")?.clone()).ok()
    }

    /// The `custom` object to write: `{"keyway": {…}}` (namespaced, so other
    /// tools may add their own keys beside it).
    pub fn to_custom(&self) -> serde_json::Value {
        serde_json::json!({ "keyway": self })
    }

    /// Checks the summary against the envelope it describes.
    pub fn check_against(&self, target: &str, envelope: &[u8]) -> Result<(), SummaryMismatch> {
        let actual = ReleaseSummary::of_envelope(envelope).map_err(|e| SummaryMismatch {
            target: target.to_owned(),
            field: "envelope",
            claimed: "a readable envelope".into(),
            actual: format!("{:?}", e.0),
        })?;
        let pairs: [(&'static str, String, String); 5] = [
            ("class", self.class.clone(), actual.class.clone()),
            ("version", self.version.clone(), actual.version.clone()),
            (
                "sequence",
                self.sequence.to_string(),
                actual.sequence.to_string(),
            ),
            (
                "delta_base",
                format!("{:?}", self.delta_base),
                format!("{:?}", actual.delta_base),
            ),
            (
                "cves",
                format!("{:?}", self.cves),
                format!("{:?}", actual.cves),
            ),
        ];
        for (field, claimed, actual) in pairs {
            if claimed != actual {
                return Err(SummaryMismatch {
                    target: target.to_owned(),
                    field,
                    claimed,
                    actual,
                });
            }
        }
        Ok(())
    }
}
