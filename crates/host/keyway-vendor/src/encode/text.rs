//! The severed text map (release notes): the notes, the fixed CVEs with
//! their severities, and the component text (vendor, model, version).

use std::str::FromStr;

use super::{EncodeError, ReleaseVersion, component_id, int};
use crate::cbor::{Value, ValueExt};
use crate::labels as l;

/// vendor side and the lock can never disagree on the words.
pub use keyway_suit::Severity;

/// Parses a severity in any letter case (`low`, `medium`, `high`,
/// `critical`).
pub fn parse_severity(s: &str) -> Result<Severity, EncodeError> {
    Severity::parse(&s.to_ascii_lowercase()).map_err(|_| EncodeError::InvalidSeverity(s.to_owned()))
}

/// A vulnerability fixed by the release.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cve {
    /// `CVE-YYYY-NNNN+` (upper case).
    pub id: String,
    /// Its severity.
    pub severity: Severity,
}

impl Cve {
    /// Validates `id` (`CVE-YYYY-NNNN+`, the `CVE` prefix in any case,
    /// normalised to upper case).
    pub fn new(id: &str, severity: Severity) -> Result<Cve, EncodeError> {
        let upper = id.to_ascii_uppercase();
        // The lock's own rule, so nothing signed here is refused there.
        if !keyway_suit::is_cve_id(&upper) {
            return Err(EncodeError::InvalidCveId(id.to_owned()));
        }
        Ok(Cve {
            id: upper,
            severity,
        })
    }
}

impl FromStr for Cve {
    type Err = EncodeError;

    /// Parses the CLI form `CVE-YYYY-NNNN:SEVERITY`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (id, sev) = s
            .split_once(':')
            .ok_or_else(|| EncodeError::InvalidCveSyntax(s.to_owned()))?;
        Cve::new(id, parse_severity(sev)?)
    }
}

/// `update-priority`: -2 if a fixed CVE is critical, -1 if one is high,
/// 0 otherwise.
pub fn update_priority(cves: &[Cve]) -> i64 {
    match cves.iter().map(|c| c.severity).max() {
        Some(Severity::Critical) => -2,
        Some(Severity::High) => -1,
        _ => 0,
    }
}

/// Everything that goes into the severed text map.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextParams {
    /// Release notes, Markdown.
    pub notes: String,
    /// Fixed vulnerabilities, in the given order.
    pub cves: Vec<Cve>,
    /// Human-readable vendor name, if any.
    pub vendor_name: Option<String>,
    /// Vendor domain.
    pub vendor_domain: String,
    /// Class (model) name.
    pub class_name: String,
    /// Release version.
    pub version: ReleaseVersion,
}

/// The text map as a [`Value`] (see [`encode_text`]).
pub fn text_value(p: &TextParams) -> Value {
    let cves = p
        .cves
        .iter()
        .map(|c| {
            Value::Array(vec![
                Value::from(c.id.clone()),
                Value::from(c.severity.as_str()),
            ])
        })
        .collect();
    let mut component = Vec::new();
    if let Some(name) = &p.vendor_name {
        component.push((int(l::TEXT_VENDOR_NAME), Value::from(name.clone())));
    }
    component.push((
        int(l::TEXT_VENDOR_DOMAIN),
        Value::from(p.vendor_domain.clone()),
    ));
    component.push((int(l::TEXT_MODEL_NAME), Value::from(p.class_name.clone())));
    component.push((
        int(l::TEXT_CURRENT_VERSION),
        Value::from(p.version.to_string()),
    ));
    Value::Map(vec![(
        Value::from("en"),
        Value::Map(vec![
            (
                int(l::TEXT_MANIFEST_DESCRIPTION),
                Value::from(p.notes.clone()),
            ),
            (Value::from(l::TEXT_KEYWAY_FIXED_CVES), Value::Array(cves)),
            (component_id(), Value::Map(component)),
        ]),
    )])
}

/// Encodes the text map (the bytes inside the envelope's `23:` byte string,
/// whose SHA-256 the manifest's `23:` member binds).
pub fn encode_text(p: &TextParams) -> Vec<u8> {
    text_value(p).to_bytes()
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::*;

    #[test]
    fn update_priority_follows_worst_cve() {
        let c = |s| Cve::new("CVE-2024-1111", s).unwrap();
        assert_eq!(update_priority(&[]), 0);
        assert_eq!(update_priority(&[c(Severity::Low), c(Severity::Medium)]), 0);
        assert_eq!(update_priority(&[c(Severity::Low), c(Severity::High)]), -1);
        assert_eq!(
            update_priority(&[c(Severity::Critical), c(Severity::High)]),
            -2
        );
    }

    #[test]
    fn text_map_matches_format() {
        let b = builder(vec![key(Algorithm::Ed25519)]);
        let text = decode(b.build().unwrap().text.as_deref().unwrap());
        assert_eq!(keys_of(&text), vec![Value::from("en")]);
        let en = text.get_text("en").unwrap();
        assert_eq!(
            keys_of(en),
            vec![
                Value::from(1),
                Value::from(l::TEXT_KEYWAY_FIXED_CVES),
                Value::Array(vec![Value::from(vec![0])])
            ]
        );
        assert_eq!(en.get_int(1), Some(&Value::from("# 1.2.3\n\nFixes.")));
        assert_eq!(
            en.get_int(l::TEXT_KEYWAY_FIXED_CVES),
            Some(&Value::Array(vec![
                Value::Array(vec![Value::from("CVE-2024-12345"), Value::from("high")]),
                Value::Array(vec![Value::from("CVE-2023-0001"), Value::from("low")]),
            ]))
        );
        let comp = en.get(&component_id()).unwrap();
        assert_eq!(
            comp,
            &Value::Map(vec![
                (Value::from(1), Value::from("Keyway Locks")),
                (Value::from(2), Value::from("deadbolt-v2")),
                (Value::from(3), Value::from("keyway.example")),
                (Value::from(8), Value::from("1.2.3")),
            ])
        );
    }

    #[test]
    fn cve_parsing() {
        let c: Cve = "CVE-2024-12345:critical".parse().unwrap();
        assert_eq!(c, Cve::new("CVE-2024-12345", Severity::Critical).unwrap());
        let c: Cve = "cve-2021-0001:HIGH".parse().unwrap();
        assert_eq!(c.id, "CVE-2021-0001");
        assert_eq!(c.severity, Severity::High);
        for bad in [
            "CVE-2024-123",
            "CVE-24-12345",
            "CVE-2024-12a45",
            "2024-12345",
            "CVE-2024-",
            "CVE-2024-12345-1",
        ] {
            assert_eq!(
                Cve::new(bad, Severity::Low),
                Err(EncodeError::InvalidCveId(bad.into())),
                "{bad:?}"
            );
        }
        assert_eq!(
            "CVE-2024-12345".parse::<Cve>(),
            Err(EncodeError::InvalidCveSyntax("CVE-2024-12345".into()))
        );
        assert_eq!(
            "CVE-2024-12345:urgent".parse::<Cve>(),
            Err(EncodeError::InvalidSeverity("urgent".into()))
        );
    }
}
