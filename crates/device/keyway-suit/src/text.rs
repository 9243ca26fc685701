//! Release notes: the severable SUIT text element, with Keyway's
//! machine-readable list of fixed vulnerabilities.

use crate::cbor::{Key, Reader};
use crate::error::{Error, Limit, Part};
use crate::labels::*;

/// Most CVEs listed in one release.
pub const MAX_CVES: usize = 32;

/// A CVE severity (the CVSS qualitative ratings Keyway shows owners).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// Low.
    Low,
    /// Medium.
    Medium,
    /// High.
    High,
    /// Critical.
    Critical,
}

impl Severity {
    /// Parses `low`, `medium`, `high` or `critical`.
    pub fn parse(s: &str) -> Result<Self, Error> {
        match s {
            "low" => Ok(Severity::Low),
            "medium" => Ok(Severity::Medium),
            "high" => Ok(Severity::High),
            "critical" => Ok(Severity::Critical),
            _ => Err(Error::BadSeverity),
        }
    }

    /// The lower-case name.
    pub fn as_str(&self) -> &'static str {
        match self {
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }
}

/// One fixed vulnerability.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cve<'a> {
    /// The CVE ID, `CVE-YYYY-NNNN…`.
    pub id: &'a str,
    /// Its severity.
    pub severity: Severity,
}

/// Whether `id` has the form `CVE-YYYY-NNNN` with four or more digits.
pub fn is_cve_id(id: &str) -> bool {
    let b = id.as_bytes();
    b.len() >= 13
        && b.len() <= 20
        && b.starts_with(b"CVE-")
        && b[4..8].iter().all(u8::is_ascii_digit)
        && b[8] == b'-'
        && b[9..].iter().all(u8::is_ascii_digit)
}

/// Release notes in one language, checked and ready to show.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReleaseNotes<'a> {
    /// The language tag (e.g. `en`).
    pub language: &'a str,
    /// `suit-text-manifest-description`: the notes (Markdown).
    pub description: Option<&'a str>,
    /// `suit-text-update-description`.
    pub update_description: Option<&'a str>,
    /// The first component's `suit-text-current-version`.
    pub version: Option<&'a str>,
    /// The first component's vendor domain.
    pub vendor_domain: Option<&'a str>,
    /// The first component's model name.
    pub model_name: Option<&'a str>,
    cves: Option<&'a [u8]>,
    cve_count: usize,
}

impl<'a> ReleaseNotes<'a> {
    /// Decodes a `SUIT_Text_Map` (the inside of its bstr), choosing an
    /// English entry when there is one, else the first.
    pub fn decode(bytes: &'a [u8]) -> Result<Self, Error> {
        let mut r = Reader::new(bytes, Part::Text);
        let n = r.map()?;
        if n == 0 {
            return Err(Error::Missing {
                part: Part::Text,
                what: "a language",
            });
        }
        let mut chosen: Option<(&str, &[u8])> = None;
        for _ in 0..n {
            let lang = r.str()?;
            let lmap = r.raw_item()?;
            if chosen.is_none()
                || (lang.starts_with("en") && !chosen.is_some_and(|(l, _)| l.starts_with("en")))
            {
                chosen = Some((lang, lmap));
            }
        }
        r.finish()?;
        // n > 0, so one was chosen.
        let (language, lmap) = chosen.ok_or(Error::Missing {
            part: Part::Text,
            what: "a language",
        })?;
        let mut notes = ReleaseNotes {
            language,
            description: None,
            update_description: None,
            version: None,
            vendor_domain: None,
            model_name: None,
            cves: None,
            cve_count: 0,
        };
        let mut r = Reader::new(lmap, Part::Text);
        let n = r.map()?;
        for _ in 0..n {
            match r.key()? {
                Key::Int(TEXT_MANIFEST_DESCRIPTION) => notes.description = Some(r.str()?),
                Key::Int(TEXT_UPDATE_DESCRIPTION) => notes.update_description = Some(r.str()?),
                Key::Int(TEXT_KEYWAY_FIXED_CVES) => {
                    let raw = r.raw_item()?;
                    notes.cve_count = check_cves(raw)?;
                    notes.cves = Some(raw);
                }
                Key::Other(_) if r.datatype()? == crate::cbor::Type::Map => {
                    // A component's text; the first one describes the image.
                    let m = r.map()?;
                    let first = notes.version.is_none()
                        && notes.vendor_domain.is_none()
                        && notes.model_name.is_none();
                    for _ in 0..m {
                        match (r.key()?, first) {
                            (Key::Int(TEXT_CURRENT_VERSION), true) => {
                                notes.version = Some(r.str()?)
                            }
                            (Key::Int(TEXT_VENDOR_DOMAIN), true) => {
                                notes.vendor_domain = Some(r.str()?)
                            }
                            (Key::Int(TEXT_MODEL_NAME), true) => notes.model_name = Some(r.str()?),
                            _ => r.skip()?,
                        }
                    }
                }
                _ => r.skip()?,
            }
        }
        r.finish()?;
        Ok(notes)
    }

    /// The fixed vulnerabilities (already validated by [`ReleaseNotes::decode`]).
    pub fn cves(&self) -> impl Iterator<Item = Cve<'a>> + 'a {
        let mut r = self.cves.map(|raw| Reader::new(raw, Part::Text));
        let count = r.as_mut().and_then(|r| r.array().ok()).unwrap_or(0);
        (0..count).map_while(move |_| r.as_mut().and_then(|r| read_cve(r).ok()))
    }

    /// How many CVEs the release fixes.
    pub fn cve_count(&self) -> usize {
        self.cve_count
    }

    /// The highest severity among the fixed CVEs.
    pub fn max_severity(&self) -> Option<Severity> {
        self.cves().map(|c| c.severity).max()
    }
}

fn read_cve<'a>(r: &mut Reader<'a>) -> Result<Cve<'a>, Error> {
    if r.array()? != 2 {
        return Err(Error::BadCve);
    }
    let id = r.str()?;
    if !is_cve_id(id) {
        return Err(Error::BadCve);
    }
    let severity = Severity::parse(r.str()?)?;
    Ok(Cve { id, severity })
}

fn check_cves(raw: &[u8]) -> Result<usize, Error> {
    let mut r = Reader::new(raw, Part::Text);
    let n = r.array_at_most(MAX_CVES, Limit::Cves)?;
    for _ in 0..n {
        read_cve(&mut r)?;
    }
    r.finish()?;
    Ok(n)
}
