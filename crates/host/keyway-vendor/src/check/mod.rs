//! `keyway verify` and `keyway inspect`: the host shell around the device
//! verifier. All trust decisions are `keyway_suit::verify_envelope`, the
//! function a lock runs; this module only reads files, streams the payload
//! through `PayloadVerifier` in fixed-size chunks, supplies the host clock
//! as trusted time, and renders the result.
//!
//! [`failed`] names the check a refusal failed ([`Check`], typed, for the
//! audit log and the lock's answers); [`inspect`] is `keyway inspect`
//! (structure and digests, no signatures).

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use keyway_suit as suit;

pub use crate::describe::describe;
use crate::keys::{PublicKey, hex};

/// How much of an envelope is read before the payload is streamed: enough
/// for any manifest, notes and key set Keyway accepts.
pub const HEAD_BYTES: usize = 256 * 1024;
/// The chunk size payloads stream in.
pub const CHUNK_BYTES: usize = 1024 * 1024;

pub mod failed;
pub mod inspect;

pub use failed::{Check, FailedCheck};
pub use inspect::{Alternative, SLOTS_TRIED, alternatives, inspect_json, inspect_text};
use inspect::{alternative_text, uuid_text};

/// A rejected envelope: the check that failed and the verifier's error.
#[derive(Debug)]
pub enum Rejection {
    /// The verifier refused it.
    Verifier(suit::Error),
    /// A file could not be read or a key loaded.
    Io(anyhow::Error),
}

impl std::fmt::Display for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Rejection::Verifier(e) => write!(f, "{} check failed: {}", e.check(), describe(e)),
            Rejection::Io(e) => write!(f, "{e:#}"),
        }
    }
}

impl From<suit::Error> for Rejection {
    fn from(e: suit::Error) -> Self {
        Rejection::Verifier(e)
    }
}

impl From<anyhow::Error> for Rejection {
    fn from(e: anyhow::Error) -> Self {
        Rejection::Io(e)
    }
}

/// What `keyway verify` checks an envelope against.
#[derive(Debug, Clone, Default)]
pub struct VerifyOptions {
    /// Root public keys (the device's immutable anchors).
    pub trust: Vec<PathBuf>,
    /// Root signatures required.
    pub threshold: u8,
    /// A detached payload to check.
    pub payload: Option<PathBuf>,
    /// The device identity, if a vendor domain and class are given.
    pub identity: Option<([u8; 16], [u8; 16])>,
    /// The device's anti-rollback floor.
    pub floor: Option<u64>,
    /// The key-set document the device has stored.
    pub stored_keyset: Option<PathBuf>,
    /// Trusted time; `None` uses the host clock.
    pub now: Option<u64>,
    /// Battery available (mWh), to check `minimum-battery`.
    pub battery_mwh: Option<u64>,
    /// The slot the update would be written to: chooses the try-each
    /// alternative whose component-slot condition holds (`None`: the first
    /// alternative whose conditions hold, as the draft's try-each runs).
    pub slot: Option<u64>,
}

/// A delta manifest's bindings, as hex digests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeltaSummary {
    /// The size of the image the patch applies to.
    pub base_size: u64,
    /// Its SHA-256, hex.
    pub base_digest: String,
    /// The size of the image the patch produces.
    pub out_size: Option<u64>,
    /// Its SHA-256, hex.
    pub out_digest: String,
}

/// A verified envelope, summarised.
#[derive(Debug, Clone)]
pub struct Summary {
    /// Sequence number.
    pub sequence: u64,
    /// `suit-set-version`, as the verifier decoded it.
    pub version: Option<suit::Version>,
    /// Vendor and class UUIDs of the first component.
    pub vendor_class: Option<(String, String)>,
    /// Payload size and digest, if the envelope describes one.
    pub payload: Option<(Option<u64>, String)>,
    /// Whether the payload bytes were checked (integrated or `--payload`).
    pub payload_checked: bool,
    /// For a delta update: what the manifest binds.
    pub delta: Option<DeltaSummary>,
    /// Key ids that signed.
    pub signers: Vec<String>,
    /// Key-set version in force.
    pub keyset_version: u32,
    /// A newer key set the envelope carries.
    pub new_keyset: Option<u32>,
    /// CVEs fixed.
    pub cves: Vec<(String, String)>,
    /// Install-time requirements.
    pub requirements: Vec<String>,
    /// The slot verified for (`--slot`), if given.
    pub slot: Option<u64>,
    /// Every try-each alternative, when the image depends on the slot.
    pub alternatives: Vec<String>,
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "sequence {}", self.sequence)?;
        if let Some(v) = &self.version {
            write!(f, ", version {v}")?;
        }
        if let Some((vendor, class)) = &self.vendor_class {
            let short = |s: &str| s.get(..8).unwrap_or(s).to_string();
            write!(f, ", vendor/class {}…/{}…", short(vendor), short(class))?;
        }
        if let Some((size, digest)) = &self.payload {
            let size = size.map_or("unsized".to_string(), |s| format!("{s} bytes"));
            let state = if self.payload_checked {
                "verified"
            } else {
                "NOT checked (detached; give --payload)"
            };
            let what = if self.delta.is_some() {
                "patch"
            } else {
                "payload"
            };
            write!(f, ", {what} {size} sha256 {}… {state}", &digest[..16])?;
        }
        if let Some(d) = &self.delta {
            let os = d
                .out_size
                .map_or("unsized".to_string(), |s| format!("{s} bytes"));
            write!(
                f,
                ", delta: applies to the image sha256 {}… ({} bytes), produces sha256 {}… ({os})",
                &d.base_digest[..16],
                d.base_size,
                &d.out_digest[..16]
            )?;
        }
        write!(
            f,
            ", {} signature(s) ({})",
            self.signers.len(),
            self.signers.join(", ")
        )?;
        match (self.keyset_version, self.new_keyset) {
            (_, Some(n)) => write!(f, ", key set v{n} (new)")?,
            (0, None) => write!(f, ", signed by root keys")?,
            (v, None) => write!(f, ", key set v{v}")?,
        }
        if !self.cves.is_empty() {
            let ids: Vec<String> = self
                .cves
                .iter()
                .map(|(id, sev)| format!("{id} {sev}"))
                .collect();
            write!(f, ", fixes {}", ids.join(", "))?;
        }
        if !self.requirements.is_empty() {
            write!(f, "; install needs {}", self.requirements.join(", "))?;
        }
        if !self.alternatives.is_empty() {
            let which = self
                .slot
                .map_or("the first whose conditions hold".to_string(), |s| {
                    format!("slot {s}")
                });
            write!(
                f,
                "; alternatives: {} (verified: {which})",
                self.alternatives.join("; ")
            )?;
        }
        Ok(())
    }
}

fn load_anchors(opts: &VerifyOptions) -> Result<suit::TrustAnchors, Rejection> {
    let mut keys = Vec::new();
    for p in &opts.trust {
        let k = PublicKey::load(p).map_err(|e| Rejection::Io(e.into()))?;
        let raw = k.raw_public_key_bytes();
        keys.push(
            suit::PublicKey::from_raw(&raw)
                .map_err(|e| anyhow::anyhow!("{}: {}", p.display(), describe(&e)))?,
        );
    }
    suit::TrustAnchors::new(&keys, opts.threshold).map_err(|e| {
        Rejection::Io(anyhow::anyhow!(
            "--trust/--threshold: {} (give between 1 and {} for --threshold)",
            describe(&e),
            keys.len()
        ))
    })
}

/// Reads at most [`HEAD_BYTES`] from the start of `file`: all of an
/// envelope but the tail of a large payload.
pub fn read_head(file: &mut File) -> std::io::Result<Vec<u8>> {
    let mut head = Vec::with_capacity(HEAD_BYTES);
    file.by_ref()
        .take(HEAD_BYTES as u64)
        .read_to_end(&mut head)?;
    Ok(head)
}

fn io_err(path: &Path, what: &str, e: std::io::Error) -> Rejection {
    Rejection::Io(anyhow::anyhow!(
        "{}: cannot read {what}: {e}",
        path.display()
    ))
}

/// Streams `len` more bytes (or to the end when `None`) from `reader` into
/// the payload verifier, in [`CHUNK_BYTES`] chunks.
fn stream(
    reader: &mut impl Read,
    len: Option<u64>,
    pv: &mut suit::PayloadVerifier,
    path: &Path,
) -> Result<(), Rejection> {
    let mut buf = vec![0u8; CHUNK_BYTES];
    let mut left = len;
    loop {
        let want = left.map_or(CHUNK_BYTES, |l| l.min(CHUNK_BYTES as u64) as usize);
        if want == 0 {
            return Ok(());
        }
        let n = reader
            .read(&mut buf[..want])
            .map_err(|e| io_err(path, "the payload", e))?;
        if n == 0 {
            return Ok(()); // finish() reports the truncation with sizes.
        }
        pv.update(&buf[..n])?;
        if let Some(l) = left.as_mut() {
            *l -= n as u64;
        }
    }
}

/// Verifies the envelope at `path` as a lock with these anchors and state
/// would, streaming any payload.
pub fn verify_file(path: &Path, opts: &VerifyOptions) -> Result<Summary, Rejection> {
    let anchors = load_anchors(opts)?;
    let stored = match &opts.stored_keyset {
        Some(p) => {
            let doc = std::fs::read(p).map_err(|e| io_err(p, "the stored key set", e))?;
            Some(suit::KeySet::from_document(&doc, &anchors).map_err(|e| {
                Rejection::Io(anyhow::anyhow!(
                    "{}: the stored key set does not verify: {}",
                    p.display(),
                    describe(&e)
                ))
            })?)
        }
        None => None,
    };
    let state = suit::DeviceState {
        sequence_floor: opts.floor,
        keyset: stored,
    };
    let identity = suit::DeviceIdentity {
        slot: opts.slot,
        ..match opts.identity {
            Some((v, c)) => suit::DeviceIdentity::new(v, c),
            None => suit::DeviceIdentity::ANY,
        }
    };
    let mut file = File::open(path).map_err(|e| io_err(path, "the envelope", e))?;
    let total = file
        .metadata()
        .map_err(|e| io_err(path, "the envelope", e))?
        .len();
    let head = read_head(&mut file).map_err(|e| io_err(path, "the envelope", e))?;
    let v = suit::verify_envelope(&head, &anchors, &identity, &state)?;

    // A delta's patch header must be the one the manifest binds (the lock
    // refuses it otherwise); checked here when the header is in the head.
    if let (Some(d), Some(ip)) = (v.delta.as_ref(), v.integrated) {
        let expected = keyway_device::delta::expected_header(d).map_err(|f| {
            anyhow::anyhow!(
                "delta: the manifest's {} does not fit a patch header",
                f.name()
            )
        })?;
        if let Err(field) =
            keyway_device::delta::check_header(&expected.to_bytes(), 0, ip.available)
        {
            return Err(Rejection::Io(anyhow::anyhow!(
                "delta: the patch header's {} differs from the signed manifest's",
                field.name()
            )));
        }
    }
    let mut checked = false;
    if let Some(exp) = v.payload.as_ref() {
        let mut pv = suit::PayloadVerifier::new(exp);
        if let Some(ip) = v.integrated {
            pv.update(ip.available)?;
            let rest = ip.len - ip.available.len() as u64;
            stream(
                &mut BufReader::with_capacity(0, &mut file),
                Some(rest),
                &mut pv,
                path,
            )?;
            let end = ip.offset as u64 + ip.len;
            if total > end {
                return Err(suit::Error::TrailingBytes {
                    count: (total - end) as usize,
                }
                .into());
            }
            pv.finish()?;
            checked = true;
        } else if let Some(fw) = &opts.payload {
            let mut f = File::open(fw).map_err(|e| io_err(fw, "the payload", e))?;
            stream(&mut f, None, &mut pv, fw)?;
            pv.finish()?;
            checked = true;
        }
    } else if opts.payload.is_some() {
        return Err(suit::Error::NoPayloadExpectation.into());
    }

    // Policy: the host clock is trusted time here; battery is checked only
    // when given; consent is the owner's, so it is reported, not checked.
    let now = opts.now.unwrap_or_else(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    });
    let mut policy = v.manifest.policy;
    let mut requirements = Vec::new();
    if let Some(pr) = std::mem::take(&mut policy.update_authorized).priority() {
        requirements.push(format!("owner consent (priority {pr})"));
    }
    if let Some(b) = policy.minimum_battery_mwh {
        requirements.push(format!("battery ≥ {b} mWh"));
        if opts.battery_mwh.is_none() {
            policy.minimum_battery_mwh = None;
        }
    }
    if let Some(t) = policy.use_before {
        requirements.push(format!("install before {t} (unix time)"));
    }
    policy.check(&suit::PolicyInputs {
        now: Some(now),
        battery_mwh: opts.battery_mwh.unwrap_or(0),
        consent: true,
    })?;
    let mut summary = summarise(&v, checked, requirements);
    summary.slot = opts.slot;
    let alts = alternatives(&head)?;
    if alts.iter().any(|a| a.slot.is_some()) {
        summary.alternatives = alts.iter().map(alternative_text).collect();
    }
    Ok(summary)
}

fn summarise(v: &suit::Verified<'_>, checked: bool, requirements: Vec<String>) -> Summary {
    let c0 = v.manifest.components.first();
    Summary {
        sequence: v.sequence,
        version: v.manifest.version,
        vendor_class: c0.and_then(|c| {
            Some((
                uuid_text(&c.params.vendor_id?[..]),
                uuid_text(&c.params.class_id?[..]),
            ))
        }),
        payload: v.payload.map(|p| (p.size, hex(&p.digest[..]))),
        payload_checked: checked,
        delta: v.delta.map(|d| DeltaSummary {
            base_size: d.base_size,
            base_digest: hex(&d.base_digest[..]),
            out_size: d.out.size,
            out_digest: hex(&d.out.digest[..]),
        }),
        signers: v.signers.iter().map(|k| k.to_string()).collect(),
        keyset_version: v.keyset_version,
        new_keyset: v.new_keyset.as_ref().map(|k| k.version),
        cves: v
            .notes
            .iter()
            .flat_map(|n| n.cves())
            .map(|c| (c.id.to_string(), c.severity.as_str().to_string()))
            .collect(),
        requirements,
        slot: None,
        alternatives: Vec::new(),
    }
}
