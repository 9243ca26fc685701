//! `keyway verify` and `keyway inspect`: the host shell around the device
//! verifier. All trust decisions are `keyway_suit::verify_envelope`, the
//! function a lock runs; this module only reads files, streams the payload
//! through `PayloadVerifier` in fixed-size chunks, supplies the host clock
//! as trusted time, and renders the result.

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

/// Which check failed, for the one-line verdict.
pub fn check_name(e: &suit::Error) -> &'static str {
    use suit::Error::*;
    match e {
        Malformed { .. }
        | TooMany { .. }
        | Missing { .. }
        | TrailingBytes { .. }
        | DuplicateKey { .. } => "decoding",
        UnsupportedManifestVersion(_)
        | UnsupportedDigest(_)
        | UnsupportedCommand(_)
        | UnsupportedParameter(_)
        | UnsupportedMember(_)
        | UnsupportedAuthentication(_)
        | ParameterNotSet { .. }
        | BadComponentIndex(_)
        | Aborted
        | ConditionFailed { .. } => "manifest",
        UnsupportedAlgorithm(_)
        | InvalidKey
        | ManifestDigestMismatch
        | BadSignature { .. }
        | BelowThreshold { keyset: false, .. }
        | DuplicateSigner { .. } => "signatures",
        BelowThreshold { keyset: true, .. }
        | KeySetDigestMismatch
        | KeySetRollback { .. }
        | KeySetConflict { .. }
        | KeySetThreshold { .. } => "key set",
        Rollback { .. } => "anti-rollback",
        WrongVendor { .. } | WrongClass { .. } => "compatibility",
        SeveredDigestMismatch { key: 23 }
        | SeveredMissing { key: 23 }
        | UnboundSevered { key: 23 }
        | BadCve
        | BadSeverity => "release notes",
        SeveredDigestMismatch { .. } | SeveredMissing { .. } | UnboundSevered { .. } => {
            "severed members"
        }
        PayloadTooLong { .. }
        | PayloadTruncated { .. }
        | PayloadDigestMismatch
        | PayloadMissing
        | NoPayloadExpectation => "payload",
        Expired { .. } | NoTrustedTime | BatteryTooLow { .. } | NotAuthorized => "policy",
    }
}

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
            Rejection::Verifier(e) => write!(f, "{} check failed: {}", check_name(e), describe(e)),
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

/// The slots [`alternatives`] tries.
pub const SLOTS_TRIED: u64 = 8;

/// One try-each alternative of a manifest: the slot that selects it
/// (`None` when the manifest's image does not depend on the slot) and the
/// image it expects there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Alternative<'a> {
    /// The component slot (`suit-condition-component-slot`) it is for.
    pub slot: Option<u64>,
    /// The image the payload must match in that slot.
    pub image: suit::ImageExpectation<'a>,
}

/// Every alternative the manifest offers, found by running it (structure
/// and digests checked, no signature) for each slot below [`SLOTS_TRIED`]:
/// one entry with `slot: None` when the image is the same for every slot,
/// else one per slot that some alternative accepts. Empty without a
/// payload expectation.
pub fn alternatives(bytes: &[u8]) -> Result<Vec<Alternative<'_>>, suit::Error> {
    let first = suit::inspect_envelope(bytes)?.payload;
    let mut per_slot = Vec::new();
    for slot in 0..SLOTS_TRIED {
        let id = suit::DeviceIdentity {
            slot: Some(slot),
            ..suit::DeviceIdentity::ANY
        };
        if let Ok(i) = suit::inspect_envelope_with(bytes, &id)
            && let Some(image) = i.payload
        {
            per_slot.push(Alternative {
                slot: Some(slot),
                image,
            });
        }
    }
    let uniform =
        per_slot.len() as u64 == SLOTS_TRIED && per_slot.iter().all(|a| Some(a.image) == first);
    Ok(match first {
        None => Vec::new(),
        Some(image) if uniform => vec![Alternative { slot: None, image }],
        Some(_) => per_slot,
    })
}

fn alternative_text(a: &Alternative<'_>) -> String {
    let size = a
        .image
        .size
        .map_or("unsized".to_string(), |s| format!("{s} bytes"));
    let from = a.image.uri.map_or(String::new(), |u| format!(" from {u}"));
    format!(
        "slot {}: {size} sha256 {}…{from}",
        a.slot.map_or("any".to_string(), |s| s.to_string()),
        &hex(&a.image.digest[..])[..16]
    )
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
    /// `suit-set-version`, as text.
    pub version: Option<String>,
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

fn uuid_text(b: &[u8]) -> String {
    uuid::Uuid::from_slice(b).map_or_else(|_| hex(b), |u| u.hyphenated().to_string())
}

fn summarise(v: &suit::Verified<'_>, checked: bool, requirements: Vec<String>) -> Summary {
    let c0 = v.manifest.components.first();
    Summary {
        sequence: v.sequence,
        version: v.manifest.version.map(|x| x.to_string()),
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

/// Everything `keyway inspect` shows, as JSON.
pub fn inspect_json(bytes: &[u8]) -> Result<serde_json::Value, suit::Error> {
    let i = suit::inspect_envelope(bytes)?;
    let components: Vec<serde_json::Value> = i
        .manifest
        .components
        .iter()
        .map(|c| {
            serde_json::json!({
                "id": hex(c.id),
                "vendor_id": c.params.vendor_id.map(|v| uuid_text(&v[..])),
                "class_id": c.params.class_id.map(|v| uuid_text(&v[..])),
                "image_digest": c.image.map(|x| hex(&x.digest[..])),
                "image_size": c.image.and_then(|x| x.size),
                "fetched_from": c.fetched_from,
                "invoked": c.invoked,
            })
        })
        .collect();
    let notes = i.notes.map(|n| {
        serde_json::json!({
            "language": n.language,
            "text": n.description,
            "version": n.version,
            "vendor_domain": n.vendor_domain,
            "model": n.model_name,
            "cves": n.cves().map(|c| serde_json::json!({"id": c.id, "severity": c.severity.as_str()})).collect::<Vec<_>>(),
        })
    });
    let p = i.manifest.policy;
    Ok(serde_json::json!({
        "sequence": i.manifest.sequence,
        "version": i.manifest.version.map(|v| v.to_string()),
        "manifest_digest": hex(&i.manifest_digest),
        "reference_uri": i.manifest.reference_uri,
        "components": components,
        "delta": i.delta.map(|d| serde_json::json!({
            "base_digest": hex(&d.base_digest[..]),
            "base_size": d.base_size,
            "out_digest": hex(&d.out.digest[..]),
            "out_size": d.out.size,
        })),
        "payload": i.payload.map(|x| serde_json::json!({
            "digest": hex(&x.digest[..]),
            "size": x.size,
            "uri": x.uri,
            "integrated": i.integrated.map(|ip| ip.len),
        })),
        "alternatives": alternatives(bytes)?
            .iter()
            .filter(|a| a.slot.is_some())
            .map(|a| serde_json::json!({
                "slot": a.slot,
                "digest": hex(&a.image.digest[..]),
                "size": a.image.size,
                "uri": a.image.uri,
            }))
            .collect::<Vec<_>>(),
        "signatures": i.signatures.iter().map(|s| serde_json::json!({
            "cose_alg": s.cose_alg,
            "key_id": s.kid.map(|k| format!("{k:?}")),
        })).collect::<Vec<_>>(),
        "keyset_version": i.keyset_version,
        "conditions": {
            "owner_consent": p.update_authorized.is_required(),
            "update_priority": p.update_authorized.priority(),
            "minimum_battery_mwh": p.minimum_battery_mwh,
            "use_before": p.use_before,
        },
        "release_notes": notes,
        "verified": false,
    }))
}

/// `keyway inspect` as text.
pub fn inspect_text(j: &serde_json::Value) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let f = |v: &serde_json::Value| match v {
        serde_json::Value::Null => "-".to_string(),
        serde_json::Value::String(x) => x.clone(),
        other => other.to_string(),
    };
    let _ = writeln!(
        s,
        "UNVERIFIED contents (inspect checks structure and digests, not signatures; use `keyway verify`)"
    );
    let _ = writeln!(s, "sequence:        {}", f(&j["sequence"]));
    let _ = writeln!(s, "version:         {}", f(&j["version"]));
    let _ = writeln!(s, "manifest digest: {}", f(&j["manifest_digest"]));
    if let Some(cs) = j["components"].as_array() {
        for (n, c) in cs.iter().enumerate() {
            let _ = writeln!(
                s,
                "component {n}:     id {} vendor {} class {}",
                f(&c["id"]),
                f(&c["vendor_id"]),
                f(&c["class_id"])
            );
            if !c["image_digest"].is_null() {
                let _ = writeln!(
                    s,
                    "                 image sha256 {} size {}{}",
                    f(&c["image_digest"]),
                    f(&c["image_size"]),
                    if c["fetched_from"].is_null() {
                        String::new()
                    } else {
                        format!(" from {}", f(&c["fetched_from"]))
                    }
                );
            }
        }
    }
    if let Some(alts) = j["alternatives"].as_array() {
        for a in alts {
            let _ = writeln!(
                s,
                "alternative:     slot {}: image sha256 {} size {} from {}",
                f(&a["slot"]),
                f(&a["digest"]),
                f(&a["size"]),
                f(&a["uri"])
            );
        }
    }
    if let Some(sigs) = j["signatures"].as_array() {
        for sig in sigs {
            let _ = writeln!(
                s,
                "signature:       COSE alg {} key id {}",
                f(&sig["cose_alg"]),
                f(&sig["key_id"])
            );
        }
    }
    let d = &j["delta"];
    if !d.is_null() {
        let _ = writeln!(
            s,
            "delta:           payload is a Keyway patch (KWDP v1) for the installed image sha256 {} size {}",
            f(&d["base_digest"]),
            f(&d["base_size"])
        );
        let _ = writeln!(
            s,
            "                 it produces the image sha256 {} size {}",
            f(&d["out_digest"]),
            f(&d["out_size"])
        );
    }
    let _ = writeln!(s, "key set:         {}", f(&j["keyset_version"]));
    let c = &j["conditions"];
    let _ = writeln!(
        s,
        "conditions:      owner consent {}, priority {}, min battery {} mWh, use before {}",
        f(&c["owner_consent"]),
        f(&c["update_priority"]),
        f(&c["minimum_battery_mwh"]),
        f(&c["use_before"])
    );
    let n = &j["release_notes"];
    if n.is_null() {
        let _ = writeln!(s, "release notes:   none");
    } else {
        let _ = writeln!(s, "release notes ({}):", f(&n["language"]));
        for line in f(&n["text"]).lines() {
            let _ = writeln!(s, "    {line}");
        }
        if let Some(cves) = n["cves"].as_array() {
            for cve in cves {
                let _ = writeln!(
                    s,
                    "fixes:           {} ({})",
                    f(&cve["id"]),
                    f(&cve["severity"])
                );
            }
        }
    }
    s
}
