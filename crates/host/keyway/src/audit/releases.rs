//! The releases the audit uploads: genuine ones (signed with the vendor's
//! key by `keyway_vendor::encode::EnvelopeBuilder`, or vendor-signed files given
//! with `--update`) and the doctored ones of check 3 (a tampered payload,
//! an unknown signer, a rolled-back version, the wrong model). Images are
//! small (tens of KiB) so a whole audit takes seconds.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, anyhow, bail};
use keyway_vendor::encode::{Cve, EnvelopeBuilder, ReleaseVersion, Severity};
use keyway_vendor::keys::{Algorithm, SigningKey};

/// A release the audit can upload.
#[derive(Debug, Clone)]
pub struct Release {
    /// What it is, for the evidence (`genuine 7.1.0 (sequence 9)`).
    pub label: String,
    /// The manifest's sequence number.
    pub sequence: u64,
    /// The manifest's version (`suit-set-version`).
    pub version: String,
    /// The whole envelope.
    pub envelope: Vec<u8>,
    /// The release notes it carries.
    pub notes: Option<String>,
    /// The CVE ids its notes list.
    pub cves: Vec<String>,
}

impl Release {
    /// Reads what an envelope says about itself (structure and digests
    /// checked, signatures not).
    pub fn from_envelope(label: &str, envelope: Vec<u8>) -> Result<Release> {
        let i = keyway_suit::inspect_envelope(&envelope)
            .map_err(|e| anyhow!("{label}: {}", keyway_vendor::describe::describe(&e)))?;
        let sequence = i.manifest.sequence;
        let version = i
            .manifest
            .version
            .map_or_else(|| "0.0.0".to_owned(), |v| v.to_string());
        let (notes, cves) = match &i.notes {
            Some(t) => (
                t.description.map(str::to_owned),
                t.cves().map(|c| c.id.to_owned()).collect(),
            ),
            None => (None, Vec::new()),
        };
        if i.integrated.is_none() {
            bail!("{label}: the envelope does not carry its image (an upload needs it)");
        }
        drop(i);
        Ok(Release {
            label: format!("{label} {version} (sequence {sequence})"),
            sequence,
            version,
            envelope,
            notes,
            cves,
        })
    }

    /// The byte range of its image in the envelope.
    pub fn payload_range(&self) -> Option<std::ops::Range<usize>> {
        let i = keyway_suit::inspect_envelope(&self.envelope).ok()?;
        let p = i.integrated?;
        Some(p.offset..p.offset + usize::try_from(p.len).ok()?)
    }

    /// The SHA-256 of the envelope (the lock's image hash).
    pub fn hash(&self) -> [u8; 32] {
        keyway_vendor::encode::sha256(&self.envelope)
    }
}

/// The bad image of check 5: an image carrying these bytes at offset
/// [`SELF_TEST_FAIL_AT`] must fail the lock's self-test.
///
/// This is the audit's convention, not something it learns from the lock:
/// to prove a lock reverts a genuinely signed image that turns out broken,
/// the audit signs one with this marker, and a lock's integrator makes
/// the lock under test fail its self-test on it (keyway-lock's simulated
/// lock does, in every profile; its `profile` module holds the same
/// bytes, and `tests/layering.rs` fails if they differ).
pub const SELF_TEST_FAIL_MARKER: &[u8] = b"KEYWAY-SELF-TEST-FAIL";
/// Where [`SELF_TEST_FAIL_MARKER`] sits in the image (past a Cortex-M
/// vector table's first entries).
pub const SELF_TEST_FAIL_AT: usize = 256;

/// Where genuine releases come from.
#[derive(Debug)]
pub enum Source {
    /// The audit signs them with the vendor's keys.
    Vendor {
        /// The keys (and the key set to embed, for signers a root
        /// delegated to).
        key: Signer,
        /// Vendor domain.
        domain: String,
        /// Class (model).
        class: String,
        /// The next sequence number.
        next: u64,
        /// Image size.
        image_len: usize,
    },
    /// Vendor-signed files (`--update`), oldest sequence first.
    Files {
        /// The ones not used yet.
        queue: VecDeque<Release>,
        /// The ones used.
        used: Vec<Release>,
        /// Vendor domain and class if known (for the unknown-signer release).
        identity: Option<(String, String)>,
    },
}

/// The notes every audit release carries: a placeholder CVE id.
pub const NOTES: &str = "# Keyway audit release\n\nFixes CVE-2099-0042 (a placeholder id \
     for the audit, not a real vulnerability): the keypad ignores entries during lockout.\n";
/// The CVE the audit's releases list.
pub const CVE: &str = "CVE-2099-0042";

/// A deterministic image: `len` bytes seeded by `seed`, a vector-table-like
/// start, and `marker` at the self-test marker's offset if given.
pub fn image(seed: u64, len: usize, marker: Option<&[u8]>) -> Vec<u8> {
    let mut x = 0x9e37_79b9_7f4a_7c15_u64 ^ seed.wrapping_mul(0x2545_f491_4f6c_dd1d);
    let mut fw: Vec<u8> = (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 32) as u8
        })
        .collect();
    if let Some(h) = fw.get_mut(..4) {
        h.copy_from_slice(&[0x00, 0x00, 0x04, 0x20]);
    }
    let at = SELF_TEST_FAIL_AT;
    if let Some(m) = marker
        && let Some(at) = fw.get_mut(at..at + m.len())
    {
        at.copy_from_slice(m);
    }
    fw
}

/// The vendor's signing keys: one root key, or the release signers a
/// key set delegates to, with that key set (embedded in each release).
#[derive(Debug, Clone)]
pub struct Signer {
    /// One signature each.
    pub keys: Vec<SigningKey>,
    /// The key-set document to embed.
    pub keyset: Option<Vec<u8>>,
    /// The firmware the genuine releases carry (`--image`: a real lock
    /// must boot what the audit installs), else a generated image.
    pub base: Option<Vec<u8>>,
}

impl Signer {
    /// A signer with one key, no key set.
    fn single(key: SigningKey) -> Signer {
        Signer {
            base: None,
            keys: vec![key],
            keyset: None,
        }
    }
}

impl Source {
    /// Genuine releases signed with the vendor keys in `paths`, embedding
    /// the key set in `keyset` if given.
    pub fn vendor(
        paths: &[PathBuf],
        keyset: Option<&Path>,
        domain: String,
        class: String,
        next: u64,
        image_len: usize,
    ) -> Result<Source> {
        let keys = paths
            .iter()
            .map(|p| SigningKey::load(p).with_context(|| format!("--vendor-key {}", p.display())))
            .collect::<Result<Vec<_>>>()?;
        let keyset = keyset
            .map(|p| std::fs::read(p).with_context(|| format!("--keyset {}", p.display())))
            .transpose()?;
        let key = Signer {
            keys,
            keyset,
            base: None,
        };
        Ok(Source::Vendor {
            key,
            domain,
            class,
            next,
            image_len,
        })
    }

    /// The releases carry `firmware` (a runnable image for the lock under
    /// audit), its last 8 bytes followed by the sequence number so each
    /// release's image differs; the self-test marker goes at its offset.
    pub fn with_image(mut self, firmware: Vec<u8>) -> Source {
        if let Source::Vendor { key, .. } = &mut self {
            key.base = Some(firmware);
        }
        self
    }

    /// [`Source::with_image`] with the file at `path`, if given.
    pub fn with_image_file(self, path: Option<&Path>) -> Result<Source> {
        Ok(match path {
            Some(p) => self
                .with_image(std::fs::read(p).with_context(|| format!("--image {}", p.display()))?),
            None => self,
        })
    }

    /// Genuine releases from vendor-signed files.
    pub fn files(paths: &[impl AsRef<Path>], identity: Option<(String, String)>) -> Result<Source> {
        let mut v = Vec::new();
        for p in paths {
            let p = p.as_ref();
            let bytes = std::fs::read(p).with_context(|| format!("--update {}", p.display()))?;
            v.push(Release::from_envelope(
                &format!("--update {}", p.display()),
                bytes,
            )?);
        }
        v.sort_by_key(|r| r.sequence);
        Ok(Source::Files {
            queue: v.into(),
            used: Vec::new(),
            identity,
        })
    }

    /// Whether the audit can sign new releases (else checks that need a
    /// fresh signature are SKIP).
    pub fn can_sign(&self) -> bool {
        matches!(self, Source::Vendor { .. })
    }

    /// The next genuine release, with `marker` in its image if given (only
    /// a vendor key can make one with a marker). `None`: none left.
    pub fn genuine(&mut self, marker: Option<&[u8]>) -> Result<Option<Release>> {
        match self {
            Source::Vendor {
                key,
                domain,
                class,
                next,
                image_len,
            } => {
                let seq = *next;
                *next += 1;
                let r = build(key, domain, class, seq, *image_len, marker, "genuine")?;
                Ok(Some(r))
            }
            Source::Files { queue, used, .. } => {
                if marker.is_some() {
                    return Ok(None);
                }
                let r = queue.pop_front();
                if let Some(r) = &r {
                    used.push(r.clone());
                }
                Ok(r)
            }
        }
    }

    /// A release signed with the vendor key for `class` (the lock's if
    /// `None`), or `None` without a vendor key.
    fn signed(&self, class: Option<&str>, sequence: u64, what: &str) -> Result<Option<Release>> {
        let Source::Vendor {
            key,
            domain,
            class: own,
            image_len,
            ..
        } = self
        else {
            return Ok(None);
        };
        let class = class.unwrap_or(own);
        build(key, domain, class, sequence, *image_len, None, what).map(Some)
    }

    /// A release with a valid vendor signature and the sequence just below
    /// `floor` (a genuine older release: rolled back). Without a vendor
    /// key, a given file below the floor, if any.
    pub fn rolled_back(&mut self, floor: u64) -> Result<Option<Release>> {
        if let Source::Files { used, queue, .. } = self {
            return Ok(used
                .iter()
                .chain(queue.iter())
                .filter(|r| r.sequence < floor)
                .max_by_key(|r| r.sequence)
                .cloned());
        }
        self.signed(None, floor.saturating_sub(1), "rolled-back")
    }

    /// A genuine-looking release for another model, vendor-signed.
    pub fn wrong_model(&mut self, sequence: u64) -> Result<Option<Release>> {
        let other = match self {
            Source::Vendor { class, .. } => format!("{class}-other-model"),
            Source::Files { .. } => return Ok(None),
        };
        self.signed(Some(&other), sequence, "wrong-model")
    }

    /// A release signed by a key the lock does not trust (made here, so no
    /// vendor key is needed, only the vendor domain and class).
    pub fn unknown_signer(&mut self, sequence: u64) -> Result<Option<Release>> {
        let (domain, class, len) = match self {
            Source::Vendor {
                domain,
                class,
                image_len,
                ..
            } => (domain.clone(), class.clone(), *image_len),
            Source::Files { identity, .. } => match identity {
                Some((d, c)) => (d.clone(), c.clone(), 24 * 1024),
                None => return Ok(None),
            },
        };
        let key = SigningKey::generate(Algorithm::Ed25519)
            .map_err(|e| anyhow!("generating the unknown signer's key: {e}"))?;
        build(
            &Signer::single(key),
            &domain,
            &class,
            sequence,
            len,
            None,
            "unknown-signer",
        )
        .map(Some)
    }
}

/// `base` with one byte of its image flipped (its signature still valid
/// over the manifest, whose digest no longer matches the image).
pub fn tampered(base: &Release) -> Result<Release> {
    let range = base
        .payload_range()
        .ok_or_else(|| anyhow!("{}: no image to tamper with", base.label))?;
    let mut envelope = base.envelope.clone();
    let at = range.start + range.len() / 2;
    let b = envelope
        .get_mut(at)
        .ok_or_else(|| anyhow!("{}: empty image", base.label))?;
    *b ^= 0x01;
    Ok(Release {
        label: format!(
            "tampered copy of {} (image byte {} flipped)",
            base.label,
            at - range.start
        ),
        envelope,
        ..base.clone()
    })
}

fn build(
    key: &Signer,
    domain: &str,
    class: &str,
    sequence: u64,
    image_len: usize,
    marker: Option<&[u8]>,
    what: &str,
) -> Result<Release> {
    // Versions follow sequences, so an older sequence is an older version
    // (the audit log keeps a 16-bit patch number).
    let version = ReleaseVersion::new(7, 0, sequence % 60_000);
    let b = EnvelopeBuilder {
        sequence,
        version,
        vendor_domain: domain.to_owned(),
        class_name: class.to_owned(),
        notes: Some(NOTES.to_owned()),
        cves: vec![Cve::new(CVE, Severity::High)?],
        payload: match &key.base {
            Some(fw) => {
                let mut p = fw.clone();
                p.extend_from_slice(&sequence.to_le_bytes());
                if let Some(m) = marker
                    && let Some(at) = p.get_mut(SELF_TEST_FAIL_AT..SELF_TEST_FAIL_AT + m.len())
                {
                    at.copy_from_slice(m);
                }
                p
            }
            None => image(sequence, image_len, marker),
        },
        keys: key.keys.clone(),
        keyset: key.keyset.clone(),
        ..EnvelopeBuilder::default()
    };
    let built = b
        .build()
        .map_err(|e| anyhow!("signing the {what} release: {e}"))?;
    let mut r = Release::from_envelope(what, built.envelope)?;
    if marker.is_some() {
        r.label = format!("{} with the self-test-failure marker", r.label);
    }
    Ok(r)
}
