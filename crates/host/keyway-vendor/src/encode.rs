//! Encoder for Keyway envelopes and key-set documents, exactly per FORMAT.md.
//!
//! Two levels are exposed:
//!
//! * [`EnvelopeBuilder`] / [`KeySetBuilder`]: validate every input and build a
//!   complete, correctly signed document. This is what the CLI uses.
//! * The pieces they are made of ([`encode_manifest`], [`encode_text`],
//!   [`suit_digest`], [`cose_sign1`], [`sign_digest`], [`assemble_envelope`],
//!   [`encode_keyset`], [`assemble_keyset_document`], ...). These do no
//!   policy checks, so tests can craft malformed or malicious documents: swap
//!   the text map of another release in, re-sign a modified manifest, put a
//!   wrong algorithm label on a signature, leave the kid out, and so on.

use std::fmt;
use std::str::FromStr;

use sha2::{Digest as _, Sha256};

use crate::cbor::{Value, ValueExt};
use crate::keys::{Algorithm, KeyId, PublicKey, SigningKey, hex};
use crate::labels as l;

/// Name (URI) of the integrated payload, the envelope's last member.
pub const PAYLOAD_KEY: &str = "#firmware";
/// The payload URI of a detached manifest when none is given: a relative
/// reference, resolved by whoever delivers the payload (a USB stick's
/// folder, the owner's app).
pub const DETACHED_PAYLOAD_URI: &str = "firmware.bin";

/// The single component's identifier, `[h'00']`.
pub fn component_id() -> Value {
    Value::Array(vec![Value::from(vec![0u8])])
}

/// A delta manifest's patch component, `['keyway-patch']`: the integrated
/// payload, a Keyway patch.
pub fn patch_component_id() -> Value {
    Value::Array(vec![Value::from(b"keyway-patch".to_vec())])
}

/// A delta manifest's base component, `['keyway-installed']`: the image the
/// lock runs (its active slot), which the patch applies to.
pub fn installed_component_id() -> Value {
    Value::Array(vec![Value::from(b"keyway-installed".to_vec())])
}

/// Reporting policy `15` (all bits) used on conditions.
const POLICY_CONDITION: u64 = 15;
/// Reporting policy `2` used on directives.
const POLICY_DIRECTIVE: u64 = 2;

/// An input was rejected by a builder or a parser.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// `--version` is not `MAJOR.MINOR.PATCH`.
    #[error("invalid version {0:?}: expected MAJOR.MINOR.PATCH with decimal numbers, e.g. 1.2.3")]
    InvalidVersion(String),
    /// The CVE id is not `CVE-YYYY-NNNN+`.
    #[error("invalid CVE id {0:?}: expected CVE-YYYY-NNNN (four-digit year, at least four digits)")]
    InvalidCveId(String),
    /// The severity is not one of the four allowed words.
    #[error("invalid CVE severity {0:?}: expected low, medium, high or critical")]
    InvalidSeverity(String),
    /// `--cve` is not `ID:SEVERITY`.
    #[error("invalid --cve {0:?}: expected CVE-YYYY-NNNN:SEVERITY, e.g. CVE-2024-12345:high")]
    InvalidCveSyntax(String),
    /// The same CVE was listed twice.
    #[error("CVE {0} is listed more than once")]
    DuplicateCve(String),
    /// CVEs are part of the release notes, so they need notes.
    #[error("fixed CVEs are carried in the release notes, so release notes are required")]
    CvesWithoutNotes,
    /// A required text field is empty.
    #[error("{0} must not be empty")]
    Empty(&'static str),
    /// No signing key was given.
    #[error("at least one signing key is required")]
    NoSigningKeys,
    /// The same key was given twice.
    #[error("signing key {0} is given more than once")]
    DuplicateSigningKey(String),
    /// No signer in the key set.
    #[error("a key set needs at least one signer")]
    NoSigners,
    /// The same signer was listed twice.
    #[error("signer key {0} is listed more than once")]
    DuplicateSigner(String),
    /// A signer is also revoked.
    #[error("key {0} is both a signer and revoked")]
    SignerRevoked(String),
    /// Threshold 0 or above the number of signers.
    #[error(
        "threshold {threshold} is invalid: it must be between 1 and the number of signers ({signers})"
    )]
    InvalidThreshold {
        /// The requested threshold.
        threshold: u64,
        /// How many signers there are.
        signers: usize,
    },
    /// A key-set document to embed does not have the key-set shape.
    #[error("not a Keyway key-set document: {0}")]
    InvalidKeySetDocument(String),
    /// The delta patch could not be made.
    #[error("cannot make the delta patch: {0}")]
    Delta(String),
}

// ---------------------------------------------------------------------------
// Small value types

/// A release version `MAJOR.MINOR.PATCH`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Version {
    /// Major version.
    pub major: u64,
    /// Minor version.
    pub minor: u64,
    /// Patch version.
    pub patch: u64,
}

impl Version {
    /// A version from its three parts.
    pub const fn new(major: u64, minor: u64, patch: u64) -> Self {
        Version {
            major,
            minor,
            patch,
        }
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

impl FromStr for Version {
    type Err = EncodeError;

    /// Parses exactly three dot-separated decimal numbers without leading
    /// zeros, signs, whitespace or suffixes ("1.2.3" yes; "1.2", "v1.2.3",
    /// "1.02.3", "1.2.3-rc1" no).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || EncodeError::InvalidVersion(s.to_owned());
        let mut parts = [0u64; 3];
        let mut it = s.split('.');
        for part in &mut parts {
            let p = it.next().ok_or_else(bad)?;
            let ok = !p.is_empty()
                && p.bytes().all(|b| b.is_ascii_digit())
                && (p == "0" || !p.starts_with('0'));
            if !ok {
                return Err(bad());
            }
            *part = p.parse().map_err(|_| bad())?;
        }
        if it.next().is_some() {
            return Err(bad());
        }
        Ok(Version::new(parts[0], parts[1], parts[2]))
    }
}

/// Severity of a fixed vulnerability: the device crate's type, so the
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

/// vendor-uuid = UUIDv5(DNS namespace, vendor domain).
pub fn vendor_uuid(vendor_domain: &str) -> [u8; 16] {
    uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_DNS, vendor_domain.as_bytes()).into_bytes()
}

/// class-uuid = UUIDv5(vendor-uuid, class name).
pub fn class_uuid(vendor_uuid: &[u8; 16], class_name: &str) -> [u8; 16] {
    uuid::Uuid::new_v5(&uuid::Uuid::from_bytes(*vendor_uuid), class_name.as_bytes()).into_bytes()
}

/// SHA-256 of `bytes`.
pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// The encoded `SUIT_Digest` `[-16, h'SHA-256(bytes)']`.
pub fn suit_digest(bytes: &[u8]) -> Vec<u8> {
    suit_digest_of_hash(&sha256(bytes))
}

/// `bytes` encoded as a CBOR byte string (head included): what SUIT digests
/// cover for every embedded member (checked against the draft's examples).
pub fn bstr_wrapped(bytes: &[u8]) -> Vec<u8> {
    Value::from(bytes).to_bytes()
}

/// SHA-256 over `bytes` wrapped as a CBOR byte string.
pub fn wrapped_sha256(bytes: &[u8]) -> [u8; 32] {
    sha256(&bstr_wrapped(bytes))
}

/// The encoded `SUIT_Digest` for an already computed SHA-256 value.
pub fn suit_digest_of_hash(hash: &[u8]) -> Vec<u8> {
    Value::Array(vec![Value::from(l::COSE_ALG_SHA256), Value::from(hash)]).to_bytes()
}

/// A command sequence `[cmd, arg, cmd, arg, ...]` as a byte string.
fn seq_bstr(items: Vec<Value>) -> Value {
    Value::Bytes(Value::Array(items).to_bytes())
}

fn u(n: u64) -> Value {
    Value::from(n)
}

fn i(n: i64) -> Value {
    Value::from(n)
}

// ---------------------------------------------------------------------------
// Manifest

/// Everything that goes into the manifest. No validation is done by
/// [`encode_manifest`]; the builder fills this in from its inputs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestParams {
    /// `suit-manifest-version`; 1 for every real envelope.
    pub manifest_version: u64,
    /// `suit-manifest-sequence-number` (anti-rollback counter).
    pub sequence: u64,
    /// `suit-set-version`.
    pub version: Version,
    /// Vendor UUID (see [`vendor_uuid`]).
    pub vendor_uuid: [u8; 16],
    /// Class UUID (see [`class_uuid`]).
    pub class_uuid: [u8; 16],
    /// SHA-256 of the payload.
    pub payload_digest: [u8; 32],
    /// Payload size in bytes.
    pub payload_size: u64,
    /// `use-before`, seconds since 1970, if any.
    pub use_before: Option<u64>,
    /// Minimum battery in mWh, if any.
    pub min_battery_mwh: Option<u64>,
    /// `update-priority` (see [`update_priority`]).
    pub update_priority: i64,
    /// SHA-256 of the text map bytes, if release notes are attached.
    pub text_digest: Option<[u8; 32]>,
    /// Where the payload is fetched from: [`PAYLOAD_KEY`] for an integrated
    /// payload, any other URI for a detached one.
    pub payload_uri: String,
    /// For a delta update (the payload is a Keyway patch): the base and
    /// the produced image. `None`: the payload is the image.
    pub delta: Option<DeltaParams>,
}

/// What a delta manifest binds besides the patch (FORMAT.md, "Delta
/// manifest").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeltaParams {
    /// SHA-256 of the image the patch applies to.
    pub base_digest: [u8; 32],
    /// Its size.
    pub base_size: u64,
    /// SHA-256 of the image the patch produces.
    pub out_digest: [u8; 32],
    /// Its size.
    pub out_size: u64,
}

/// The manifest as a [`Value`] (see [`encode_manifest`]).
pub fn manifest_value(p: &ManifestParams) -> Value {
    // Component 0 is the image in the slot: the payload itself, or what the
    // patch produces.
    let (image_digest, image_size) = match &p.delta {
        Some(d) => (d.out_digest, d.out_size),
        None => (p.payload_digest, p.payload_size),
    };
    let shared = seq_bstr(vec![
        i(l::CMD_SET_COMPONENT_INDEX),
        u(0),
        i(l::CMD_OVERRIDE_PARAMETERS),
        Value::Map(vec![
            (i(l::PARAM_VENDOR_ID), Value::Bytes(p.vendor_uuid.to_vec())),
            (i(l::PARAM_CLASS_ID), Value::Bytes(p.class_uuid.to_vec())),
            (
                i(l::PARAM_IMAGE_DIGEST),
                Value::Bytes(suit_digest_of_hash(&image_digest)),
            ),
            (i(l::PARAM_IMAGE_SIZE), u(image_size)),
        ]),
        i(l::CMD_VENDOR_ID),
        u(POLICY_CONDITION),
        i(l::CMD_CLASS_ID),
        u(POLICY_CONDITION),
    ]);
    let mut components = vec![component_id()];
    if p.delta.is_some() {
        components.extend([patch_component_id(), installed_component_id()]);
    }
    let common = Value::Map(vec![
        (i(l::COMMON_COMPONENTS), Value::Array(components)),
        (i(l::COMMON_SHARED_SEQUENCE), shared),
    ]);

    let mut install_params = Vec::new();
    if let Some(t) = p.use_before {
        install_params.push((i(l::PARAM_USE_BEFORE), u(t)));
    }
    if let Some(b) = p.min_battery_mwh {
        install_params.push((i(l::PARAM_MINIMUM_BATTERY), u(b)));
    }
    install_params.push((i(l::PARAM_UPDATE_PRIORITY), i(p.update_priority)));
    install_params.push((i(l::PARAM_URI), Value::from(p.payload_uri.as_str())));
    let mut install = Vec::new();
    if let Some(d) = &p.delta {
        // The running image (component 2) must be the patch's base; the
        // patch (component 1) is fetched and checked like a full image.
        install.extend([
            i(l::CMD_SET_COMPONENT_INDEX),
            u(2),
            i(l::CMD_OVERRIDE_PARAMETERS),
            Value::Map(vec![
                (
                    i(l::PARAM_IMAGE_DIGEST),
                    Value::Bytes(suit_digest_of_hash(&d.base_digest)),
                ),
                (i(l::PARAM_IMAGE_SIZE), u(d.base_size)),
            ]),
            i(l::CMD_IMAGE_MATCH),
            u(POLICY_CONDITION),
        ]);
        install_params.extend([
            (
                i(l::PARAM_IMAGE_DIGEST),
                Value::Bytes(suit_digest_of_hash(&p.payload_digest)),
            ),
            (i(l::PARAM_IMAGE_SIZE), u(p.payload_size)),
        ]);
    }
    let payload_component = if p.delta.is_some() { 1 } else { 0 };
    install.extend([
        i(l::CMD_SET_COMPONENT_INDEX),
        u(payload_component),
        i(l::CMD_OVERRIDE_PARAMETERS),
        Value::Map(install_params),
    ]);
    if p.use_before.is_some() {
        install.extend([i(l::CMD_USE_BEFORE), u(POLICY_CONDITION)]);
    }
    if p.min_battery_mwh.is_some() {
        install.extend([i(l::CMD_MINIMUM_BATTERY), u(POLICY_CONDITION)]);
    }
    install.extend([
        i(l::CMD_UPDATE_AUTHORIZED),
        u(POLICY_CONDITION),
        i(l::CMD_FETCH),
        u(POLICY_DIRECTIVE),
        i(l::CMD_IMAGE_MATCH),
        u(POLICY_CONDITION),
    ]);
    if p.delta.is_some() {
        // Component 0 is written by applying the patch (source-component 1)
        // to the running image (Keyway's delta-base parameter, 2), then must
        // match the output digest and size the shared sequence set.
        install.extend([
            i(l::CMD_SET_COMPONENT_INDEX),
            u(0),
            i(l::CMD_OVERRIDE_PARAMETERS),
            Value::Map(vec![
                (i(l::PARAM_SOURCE_COMPONENT), u(1)),
                (i(l::PARAM_KEYWAY_DELTA_BASE), u(2)),
            ]),
            i(l::CMD_KEYWAY_APPLY_DELTA),
            u(POLICY_DIRECTIVE),
            i(l::CMD_IMAGE_MATCH),
            u(POLICY_CONDITION),
        ]);
    }

    let mut m = vec![
        (i(l::MAN_VERSION), u(p.manifest_version)),
        (i(l::MAN_SEQUENCE), u(p.sequence)),
        (i(l::MAN_COMMON), Value::Bytes(common.to_bytes())),
        (
            // update-management §3.1: `bstr .cbor [+ int]`.
            i(l::MAN_SET_VERSION),
            Value::Bytes(
                Value::Array(vec![
                    u(p.version.major),
                    u(p.version.minor),
                    u(p.version.patch),
                ])
                .to_bytes(),
            ),
        ),
        (
            i(l::MAN_VALIDATE),
            seq_bstr(vec![
                i(l::CMD_SET_COMPONENT_INDEX),
                u(0),
                i(l::CMD_IMAGE_MATCH),
                u(POLICY_CONDITION),
            ]),
        ),
        (
            i(l::MAN_INVOKE),
            seq_bstr(vec![
                i(l::CMD_SET_COMPONENT_INDEX),
                u(0),
                i(l::CMD_INVOKE),
                u(POLICY_DIRECTIVE),
            ]),
        ),
        (i(l::MAN_INSTALL), seq_bstr(install)),
    ];
    if let Some(td) = p.text_digest {
        // Severed text: a bare SUIT_Digest (not a byte string), as the draft
        // encodes it.
        m.push((
            i(l::MAN_TEXT),
            Value::Array(vec![
                Value::from(l::COSE_ALG_SHA256),
                Value::Bytes(td.to_vec()),
            ]),
        ));
    }
    Value::Map(m)
}

/// Encodes the manifest map (the bytes that go inside the envelope's `3:`
/// byte string and that the signatures cover).
pub fn encode_manifest(p: &ManifestParams) -> Vec<u8> {
    manifest_value(p).to_bytes()
}

// ---------------------------------------------------------------------------
// Text (release notes)

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
    pub version: Version,
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
        component.push((i(l::TEXT_VENDOR_NAME), Value::from(name.clone())));
    }
    component.push((
        i(l::TEXT_VENDOR_DOMAIN),
        Value::from(p.vendor_domain.clone()),
    ));
    component.push((i(l::TEXT_MODEL_NAME), Value::from(p.class_name.clone())));
    component.push((
        i(l::TEXT_CURRENT_VERSION),
        Value::from(p.version.to_string()),
    ));
    Value::Map(vec![(
        Value::from("en"),
        Value::Map(vec![
            (
                i(l::TEXT_MANIFEST_DESCRIPTION),
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

// ---------------------------------------------------------------------------
// COSE / authentication wrapper

/// Which COSE algorithm label to put on Ed25519 signatures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Ed25519Alg {
    /// `-8` (EdDSA, RFC 9053), what most COSE implementations verify.
    #[default]
    EdDsa,
    /// `-19` (Ed25519, fully specified, RFC 9864).
    Ed25519,
}

/// Which COSE algorithm label to put on P-256 signatures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum P256Alg {
    /// `-9` (ESP256, ECDSA on P-256 with SHA-256, fully specified, RFC
    /// 9864): the final COSE registry's label, what the SUIT MTI profiles
    /// and the draft's examples sign with.
    #[default]
    Esp256,
    /// `-7` (ES256, RFC 9053), for verifiers that predate RFC 9864.
    Es256,
}

impl P256Alg {
    /// The COSE algorithm label.
    pub const fn label(self) -> i64 {
        match self {
            P256Alg::Esp256 => l::COSE_ALG_ESP256,
            P256Alg::Es256 => l::COSE_ALG_ES256,
        }
    }
}

impl Ed25519Alg {
    /// The COSE algorithm label.
    pub const fn label(self) -> i64 {
        match self {
            Ed25519Alg::EdDsa => l::COSE_ALG_EDDSA,
            Ed25519Alg::Ed25519 => l::COSE_ALG_ED25519,
        }
    }
}

/// Options for [`sign_digest`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SignOptions {
    /// Algorithm label for Ed25519 keys.
    pub ed25519_alg: Ed25519Alg,
    /// Algorithm label for P-256 keys.
    pub p256_alg: P256Alg,
    /// Put `{4: kid}` in the unprotected header (default true).
    pub include_kid: bool,
}

impl Default for SignOptions {
    fn default() -> Self {
        SignOptions {
            ed25519_alg: Ed25519Alg::EdDsa,
            p256_alg: P256Alg::Esp256,
            include_kid: true,
        }
    }
}

/// The COSE algorithm label for `key` under `opts`.
pub fn cose_alg(key: &SigningKey, opts: &SignOptions) -> i64 {
    match key.algorithm() {
        Algorithm::Ed25519 => opts.ed25519_alg.label(),
        Algorithm::P256 => opts.p256_alg.label(),
    }
}

/// The encoded protected header `{1: alg}`.
pub fn protected_header(alg: i64) -> Vec<u8> {
    Value::Map(vec![(i(l::COSE_HDR_ALG), i(alg))]).to_bytes()
}

/// `Sig_structure = ["Signature1", protected, h'', payload]`, encoded.
/// For SUIT the payload is the encoded `SUIT_Digest`.
pub fn sig_structure(protected: &[u8], payload: &[u8]) -> Vec<u8> {
    Value::Array(vec![
        Value::from("Signature1"),
        Value::from(protected),
        Value::Bytes(Vec::new()),
        Value::from(payload),
    ])
    .to_bytes()
}

/// A `COSE_Sign1_Tagged` `18([bstr({1: alg}), {4: kid}?, nil, signature])`
/// over `Sig_structure(protected, payload)`, signed with `key`.
///
/// `alg` is written as given (it is not checked against the key), so a test
/// can label a signature with the wrong algorithm; use [`cose_alg`] for the
/// right one. With `kid: None` the unprotected header is an empty map.
pub fn cose_sign1(key: &SigningKey, alg: i64, kid: Option<&[u8]>, payload: &[u8]) -> Vec<u8> {
    let protected = protected_header(alg);
    let signature = key.sign(&sig_structure(&protected, payload));
    assemble_cose_sign1(&protected, kid, &signature)
}

/// A `COSE_Sign1_Tagged` from its parts, with no signing at all (for
/// crafting bad signatures).
pub fn assemble_cose_sign1(protected: &[u8], kid: Option<&[u8]>, signature: &[u8]) -> Vec<u8> {
    let unprotected = match kid {
        Some(k) => Value::Map(vec![(i(l::COSE_HDR_KID), Value::from(k))]),
        None => Value::Map(Vec::new()),
    };
    Value::Tag(
        l::TAG_COSE_SIGN1,
        Box::new(Value::Array(vec![
            Value::from(protected),
            unprotected,
            Value::Null,
            Value::from(signature),
        ])),
    )
    .to_bytes()
}

/// `SUIT_Authentication = [bstr(digest), + bstr(COSE_Sign1_Tagged)]` from an
/// encoded `SUIT_Digest` and encoded signature blocks (an empty list gives
/// the malformed, signature-less wrapper).
pub fn auth_wrapper(digest: &[u8], signatures: &[Vec<u8>]) -> Vec<u8> {
    let mut items = vec![Value::from(digest)];
    items.extend(signatures.iter().map(|s| Value::from(s.as_slice())));
    Value::Array(items).to_bytes()
}

/// Computes the `SUIT_Digest` of `covered` (the manifest bytes, or a key-set
/// body) as the byte string that carries it, head included, and signs it with every key, in order: the encoded authentication
/// wrapper. No checks on the key list (empty or duplicate keys are encoded
/// as given).
pub fn sign_digest(covered: &[u8], keys: &[SigningKey], opts: &SignOptions) -> Vec<u8> {
    let digest = suit_digest(&bstr_wrapped(covered));
    let sigs: Vec<Vec<u8>> = keys
        .iter()
        .map(|k| {
            let kid = k.key_id();
            cose_sign1(
                k,
                cose_alg(k, opts),
                opts.include_kid.then_some(&kid[..]),
                &digest,
            )
        })
        .collect();
    auth_wrapper(&digest, &sigs)
}

// ---------------------------------------------------------------------------
// Envelope

/// `107({2: auth, 3: manifest, 23: text?, -19287: keyset?, "#firmware":
/// payload?})`, each member a byte string holding the given bytes, the
/// payload always last.
pub fn assemble_envelope(
    auth: &[u8],
    manifest: &[u8],
    text: Option<&[u8]>,
    keyset: Option<&[u8]>,
    payload: Option<&[u8]>,
) -> Vec<u8> {
    let mut m = vec![
        (i(l::ENV_AUTH), Value::from(auth)),
        (i(l::ENV_MANIFEST), Value::from(manifest)),
    ];
    if let Some(t) = text {
        m.push((i(l::ENV_TEXT), Value::from(t)));
    }
    if let Some(k) = keyset {
        m.push((i(l::ENV_KEYWAY_KEYSET), Value::from(k)));
    }
    if let Some(p) = payload {
        m.push((Value::from(PAYLOAD_KEY), Value::from(p)));
    }
    Value::Tag(l::TAG_ENVELOPE, Box::new(Value::Map(m))).to_bytes()
}

/// Everything needed to build and sign one release envelope.
#[derive(Debug, Clone, Default)]
pub struct EnvelopeBuilder {
    /// Anti-rollback sequence number.
    pub sequence: u64,
    /// Release version.
    pub version: Version,
    /// Vendor domain (vendor UUID name).
    pub vendor_domain: String,
    /// Optional human-readable vendor name for the text map.
    pub vendor_name: Option<String>,
    /// Class (model) name (class UUID name).
    pub class_name: String,
    /// Release notes (Markdown). `None`: no text map and no `23:` members.
    pub notes: Option<String>,
    /// Fixed CVEs (require notes).
    pub cves: Vec<Cve>,
    /// `use-before` (seconds since 1970).
    pub use_before: Option<u64>,
    /// Minimum battery (mWh).
    pub min_battery_mwh: Option<u64>,
    /// A key-set document to carry at `-19287`.
    pub keyset: Option<Vec<u8>>,
    /// Leave the payload out of the envelope.
    pub detached: bool,
    /// With `detached`: the URI the manifest names for the payload
    /// (default [`DETACHED_PAYLOAD_URI`]).
    pub payload_uri: Option<String>,
    /// The firmware image.
    pub payload: Vec<u8>,
    /// Make a delta update: the image the lock runs now (the patch's
    /// base). The envelope then carries the patch from it to `payload`
    /// ([`crate::delta::diff`]) and the manifest binds both images.
    pub delta_from: Option<Vec<u8>>,
    /// Signing keys, one `COSE_Sign1` each, in order.
    pub keys: Vec<SigningKey>,
    /// Signature options (Ed25519 label, kid).
    pub sign_options: SignOptions,
}

/// A built envelope and its parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuiltEnvelope {
    /// The complete `SUIT_Envelope_Tagged`.
    pub envelope: Vec<u8>,
    /// The authentication wrapper bytes.
    pub auth: Vec<u8>,
    /// The manifest bytes.
    pub manifest: Vec<u8>,
    /// The text map bytes, if any.
    pub text: Option<Vec<u8>>,
    /// The embedded key-set document, if any.
    pub keyset: Option<Vec<u8>>,
    /// The delta patch (the payload) when built with `delta_from`.
    pub patch: Option<Vec<u8>>,
}

impl EnvelopeBuilder {
    /// Checks the inputs that the encoder cannot represent or that would be
    /// mistakes (no keys, duplicate keys, empty names, CVEs without notes,
    /// duplicate CVEs, a key-set document of the wrong shape).
    pub fn validate(&self) -> Result<(), EncodeError> {
        if self.vendor_domain.trim().is_empty() {
            return Err(EncodeError::Empty("the vendor domain"));
        }
        if self.class_name.trim().is_empty() {
            return Err(EncodeError::Empty("the class name"));
        }
        if self.keys.is_empty() {
            return Err(EncodeError::NoSigningKeys);
        }
        let mut kids: Vec<KeyId> = Vec::new();
        for k in &self.keys {
            let kid = k.key_id();
            if kids.contains(&kid) {
                return Err(EncodeError::DuplicateSigningKey(hex(&kid)));
            }
            kids.push(kid);
        }
        if !self.cves.is_empty() && self.notes.is_none() {
            return Err(EncodeError::CvesWithoutNotes);
        }
        for (n, c) in self.cves.iter().enumerate() {
            if self.cves[..n].iter().any(|o| o.id == c.id) {
                return Err(EncodeError::DuplicateCve(c.id.clone()));
            }
        }
        if let Some(ks) = &self.keyset {
            KeySetInfo::parse(ks)?;
        }
        Ok(())
    }

    /// The text map inputs, if release notes are given.
    pub fn text_params(&self) -> Option<TextParams> {
        self.notes.as_ref().map(|notes| TextParams {
            notes: notes.clone(),
            cves: self.cves.clone(),
            vendor_name: self.vendor_name.clone(),
            vendor_domain: self.vendor_domain.clone(),
            class_name: self.class_name.clone(),
            version: self.version,
        })
    }

    /// The manifest inputs, given the encoded text map (if any), for a
    /// full image (see [`EnvelopeBuilder::delta_manifest_params`]).
    pub fn manifest_params(&self, text: Option<&[u8]>) -> ManifestParams {
        let vendor = vendor_uuid(&self.vendor_domain);
        ManifestParams {
            manifest_version: 1,
            sequence: self.sequence,
            version: self.version,
            vendor_uuid: vendor,
            class_uuid: class_uuid(&vendor, &self.class_name),
            payload_digest: sha256(&self.payload),
            payload_size: self.payload.len() as u64,
            use_before: self.use_before,
            min_battery_mwh: self.min_battery_mwh,
            update_priority: update_priority(&self.cves),
            text_digest: text.map(wrapped_sha256),
            payload_uri: if self.detached {
                self.payload_uri
                    .clone()
                    .unwrap_or_else(|| DETACHED_PAYLOAD_URI.to_string())
            } else {
                PAYLOAD_KEY.to_string()
            },
            delta: None,
        }
    }

    /// The manifest inputs for a delta update whose payload is `patch`,
    /// from `self.delta_from` (the base) to `self.payload`.
    pub fn delta_manifest_params(&self, text: Option<&[u8]>, patch: &[u8]) -> ManifestParams {
        let base = self.delta_from.as_deref().unwrap_or(&[]);
        ManifestParams {
            payload_digest: sha256(patch),
            payload_size: patch.len() as u64,
            delta: Some(DeltaParams {
                base_digest: sha256(base),
                base_size: base.len() as u64,
                out_digest: sha256(&self.payload),
                out_size: self.payload.len() as u64,
            }),
            ..self.manifest_params(text)
        }
    }

    /// Validates, encodes and signs. With `delta_from`, makes the patch
    /// first; the envelope's payload is then the patch.
    pub fn build(&self) -> Result<BuiltEnvelope, EncodeError> {
        self.validate()?;
        let text = self.text_params().map(|t| encode_text(&t));
        let patch = match &self.delta_from {
            Some(old) => Some(
                crate::delta::diff(old, &self.payload)
                    .map_err(|e| EncodeError::Delta(format!("{e:#}")))?,
            ),
            None => None,
        };
        let params = match &patch {
            Some(p) => self.delta_manifest_params(text.as_deref(), p),
            None => self.manifest_params(text.as_deref()),
        };
        let payload = patch.as_deref().unwrap_or(&self.payload);
        let manifest = encode_manifest(&params);
        let auth = sign_digest(&manifest, &self.keys, &self.sign_options);
        let envelope = assemble_envelope(
            &auth,
            &manifest,
            text.as_deref(),
            self.keyset.as_deref(),
            (!self.detached).then_some(payload),
        );
        Ok(BuiltEnvelope {
            envelope,
            auth,
            manifest,
            text,
            keyset: self.keyset.clone(),
            patch,
        })
    }
}

// ---------------------------------------------------------------------------
// Key set

/// The `COSE_Key` of a public key: `{1: 1, -1: 6, -2: x}` (Ed25519) or
/// `{1: 2, -1: 1, -2: x, -3: y}` (P-256).
pub fn cose_key_value(key: &PublicKey) -> Value {
    let raw = key.raw_public_key_bytes();
    match key.algorithm() {
        Algorithm::Ed25519 => Value::Map(vec![
            (i(l::COSE_KEY_KTY), i(l::COSE_KTY_OKP)),
            (i(l::COSE_KEY_CRV), i(l::COSE_CRV_ED25519)),
            (i(l::COSE_KEY_X), Value::from(raw)),
        ]),
        Algorithm::P256 => Value::Map(vec![
            (i(l::COSE_KEY_KTY), i(l::COSE_KTY_EC2)),
            (i(l::COSE_KEY_CRV), i(l::COSE_CRV_P256)),
            (i(l::COSE_KEY_X), Value::from(&raw[1..33])),
            (i(l::COSE_KEY_Y), Value::from(&raw[33..65])),
        ]),
    }
}

/// The key-set body contents. [`encode_keyset`] does not validate them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeySetParams {
    /// Key-set version (anti-rollback for key sets).
    pub version: u64,
    /// Signatures required on a release.
    pub threshold: u64,
    /// Release signing keys.
    pub signers: Vec<PublicKey>,
    /// Revoked key ids.
    pub revoked: Vec<KeyId>,
}

/// Encodes `KeySet = {1: version, 2: threshold, 3: [+ COSE_Key], 4: [* kid]}`.
pub fn encode_keyset(p: &KeySetParams) -> Vec<u8> {
    Value::Map(vec![
        (i(l::KEYSET_VERSION), u(p.version)),
        (i(l::KEYSET_THRESHOLD), u(p.threshold)),
        (
            i(l::KEYSET_SIGNERS),
            Value::Array(p.signers.iter().map(cose_key_value).collect()),
        ),
        (
            i(l::KEYSET_REVOKED),
            Value::Array(p.revoked.iter().map(|k| Value::from(k.to_vec())).collect()),
        ),
    ])
    .to_bytes()
}

/// `{1: bstr(auth), 2: bstr(body)}`.
pub fn assemble_keyset_document(auth: &[u8], body: &[u8]) -> Vec<u8> {
    Value::Map(vec![
        (i(l::KEYSET_DOC_AUTH), Value::from(auth)),
        (i(l::KEYSET_DOC_BODY), Value::from(body)),
    ])
    .to_bytes()
}

/// Everything needed to build a root-signed key-set document.
#[derive(Debug, Clone)]
pub struct KeySetBuilder {
    /// Root keys that sign the document.
    pub roots: Vec<SigningKey>,
    /// The key set.
    pub keyset: KeySetParams,
    /// Signature options (Ed25519 label, kid).
    pub sign_options: SignOptions,
}

impl KeySetBuilder {
    /// Checks: at least one root and one signer, no duplicate roots or
    /// signers, no signer also revoked, 1 <= threshold <= signers.
    pub fn validate(&self) -> Result<(), EncodeError> {
        if self.roots.is_empty() {
            return Err(EncodeError::NoSigningKeys);
        }
        let mut root_kids: Vec<KeyId> = Vec::new();
        for r in &self.roots {
            let kid = r.key_id();
            if root_kids.contains(&kid) {
                return Err(EncodeError::DuplicateSigningKey(hex(&kid)));
            }
            root_kids.push(kid);
        }
        let ks = &self.keyset;
        if ks.signers.is_empty() {
            return Err(EncodeError::NoSigners);
        }
        let mut kids: Vec<KeyId> = Vec::new();
        for s in &ks.signers {
            let kid = s.key_id();
            if kids.contains(&kid) {
                return Err(EncodeError::DuplicateSigner(hex(&kid)));
            }
            if ks.revoked.contains(&kid) {
                return Err(EncodeError::SignerRevoked(hex(&kid)));
            }
            kids.push(kid);
        }
        if ks.threshold == 0 || ks.threshold > ks.signers.len() as u64 {
            return Err(EncodeError::InvalidThreshold {
                threshold: ks.threshold,
                signers: ks.signers.len(),
            });
        }
        Ok(())
    }

    /// Validates, encodes and signs the key-set document.
    pub fn build(&self) -> Result<Vec<u8>, EncodeError> {
        self.validate()?;
        let body = encode_keyset(&self.keyset);
        let auth = sign_digest(&body, &self.roots, &self.sign_options);
        Ok(assemble_keyset_document(&auth, &body))
    }
}

/// What a key-set document says (its structure only; the root signatures
/// are not verified here, that is the device verifier's job).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeySetInfo {
    /// Key-set version.
    pub version: u64,
    /// Signature threshold.
    pub threshold: u64,
    /// Key ids of the signers.
    pub signer_kids: Vec<KeyId>,
    /// Revoked key ids.
    pub revoked: Vec<KeyId>,
    /// Number of root signatures.
    pub root_signatures: usize,
}

impl KeySetInfo {
    /// Parses the structure of a key-set document.
    pub fn parse(doc: &[u8]) -> Result<KeySetInfo, EncodeError> {
        let bad = |m: &str| EncodeError::InvalidKeySetDocument(m.to_owned());
        let top = Value::from_bytes(doc).map_err(|e| bad(&e.to_string()))?;
        if top.as_map().is_none() {
            return Err(bad("not a CBOR map"));
        }
        let auth = top
            .get_int(l::KEYSET_DOC_AUTH)
            .and_then(Value::decode_bstr)
            .ok_or_else(|| bad("member 1 (authentication) missing or not a byte string"))?
            .map_err(|e| bad(&format!("authentication: {e}")))?;
        let auth = auth
            .as_array()
            .filter(|a| a.len() >= 2)
            .ok_or_else(|| bad("authentication is not [digest, + signature]"))?;
        let body = top
            .get_int(l::KEYSET_DOC_BODY)
            .and_then(Value::decode_bstr)
            .ok_or_else(|| bad("member 2 (key set) missing or not a byte string"))?
            .map_err(|e| bad(&format!("key set: {e}")))?;
        let uint = |k: i64, name: &str| {
            body.get_int(k)
                .and_then(Value::as_integer)
                .and_then(|n| u64::try_from(n).ok())
                .ok_or_else(|| {
                    bad(&format!(
                        "key set {name} missing or not an unsigned integer"
                    ))
                })
        };
        let version = uint(l::KEYSET_VERSION, "version")?;
        let threshold = uint(l::KEYSET_THRESHOLD, "threshold")?;
        let signers = body
            .get_int(l::KEYSET_SIGNERS)
            .and_then(Value::as_array)
            .ok_or_else(|| bad("key set signers missing or not an array"))?;
        let mut signer_kids = Vec::new();
        for s in signers {
            let raw = cose_key_raw(s).ok_or_else(|| bad("a signer is not a valid COSE_Key"))?;
            signer_kids.push(crate::keys::key_id_of_raw(&raw));
        }
        let mut revoked = Vec::new();
        if let Some(r) = body.get_int(l::KEYSET_REVOKED) {
            for kid in r
                .as_array()
                .ok_or_else(|| bad("revoked list is not an array"))?
            {
                let kid: KeyId = kid
                    .as_bytes()
                    .and_then(|b| b.as_slice().try_into().ok())
                    .ok_or_else(|| bad("a revoked key id is not an 8-byte string"))?;
                revoked.push(kid);
            }
        }
        Ok(KeySetInfo {
            version,
            threshold,
            signer_kids,
            revoked,
            root_signatures: auth.len() - 1,
        })
    }
}

/// The raw public key (32-byte Ed25519 or 65-byte SEC1 P-256) in a
/// `COSE_Key`, if it has one of the two supported shapes.
pub fn cose_key_raw(key: &Value) -> Option<Vec<u8>> {
    let int = |k| key.get_int(k).and_then(Value::as_integer).map(i128::from);
    let bytes = |k| key.get_int(k).and_then(Value::as_bytes);
    match (int(l::COSE_KEY_KTY)?, int(l::COSE_KEY_CRV)?) {
        (kty, crv)
            if kty == i128::from(l::COSE_KTY_OKP) && crv == i128::from(l::COSE_CRV_ED25519) =>
        {
            let x = bytes(l::COSE_KEY_X)?;
            (x.len() == 32).then(|| x.to_vec())
        }
        (kty, crv) if kty == i128::from(l::COSE_KTY_EC2) && crv == i128::from(l::COSE_CRV_P256) => {
            let (x, y) = (bytes(l::COSE_KEY_X)?, bytes(l::COSE_KEY_Y)?);
            if x.len() != 32 || y.len() != 32 {
                return None;
            }
            let mut raw = vec![0x04];
            raw.extend_from_slice(x);
            raw.extend_from_slice(y);
            Some(raw)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use p256::ecdsa::signature::Verifier as _;
    use p256::ecdsa::signature::hazmat::PrehashVerifier as _;

    fn key(alg: Algorithm) -> SigningKey {
        SigningKey::generate(alg).unwrap()
    }

    fn builder(keys: Vec<SigningKey>) -> EnvelopeBuilder {
        EnvelopeBuilder {
            sequence: 7,
            version: Version::new(1, 2, 3),
            vendor_domain: "keyway.example".into(),
            vendor_name: Some("Keyway Locks".into()),
            class_name: "deadbolt-v2".into(),
            notes: Some("# 1.2.3\n\nFixes.".into()),
            cves: vec![
                Cve::new("CVE-2024-12345", Severity::High).unwrap(),
                Cve::new("cve-2023-0001", Severity::Low).unwrap(),
            ],
            use_before: Some(1_900_000_000),
            min_battery_mwh: Some(500),
            keyset: None,
            detached: false,
            payload_uri: None,
            payload: (0..=255u8).cycle().take(3000).collect(),
            delta_from: None,
            keys,
            sign_options: SignOptions::default(),
        }
    }

    fn decode(b: &[u8]) -> Value {
        Value::from_bytes(b).unwrap()
    }

    fn bstr_item(v: &Value) -> Value {
        v.decode_bstr().expect("a byte string").unwrap()
    }

    fn keys_of(v: &Value) -> Vec<Value> {
        v.as_map().unwrap().iter().map(|(k, _)| k.clone()).collect()
    }

    /// Checks one COSE_Sign1 block against an independent verifier.
    fn check_sign1(block: &[u8], signer: &SigningKey, expect_alg: i64, digest: &[u8]) {
        let v = decode(block);
        let (tag, inner) = v.as_tag().unwrap();
        assert_eq!(tag, 18);
        let parts = inner.as_array().unwrap();
        assert_eq!(parts.len(), 4);
        let protected = parts[0].as_bytes().unwrap();
        assert_eq!(
            decode(protected),
            Value::Map(vec![(Value::from(1), Value::from(expect_alg))])
        );
        let kid = parts[1].get_int(4).unwrap().as_bytes().unwrap();
        let raw = signer.raw_public_key_bytes();
        assert_eq!(kid, &Sha256::digest(&raw)[..8]);
        assert_eq!(parts[1].as_map().unwrap().len(), 1);
        assert_eq!(parts[2], Value::Null);
        let sig = parts[3].as_bytes().unwrap();
        assert_eq!(sig.len(), 64);

        // Sig_structure built by hand, not with `sig_structure`.
        fn bstr_header(len: usize) -> Vec<u8> {
            match len {
                0..=23 => vec![0x40 | len as u8],
                24..=255 => vec![0x58, len as u8],
                _ => panic!("test helper: unexpected length"),
            }
        }
        let mut tbs = vec![0x84, 0x6a];
        tbs.extend_from_slice(b"Signature1");
        tbs.extend(bstr_header(protected.len()));
        tbs.extend_from_slice(protected);
        tbs.push(0x40);
        tbs.extend(bstr_header(digest.len()));
        tbs.extend_from_slice(digest);
        assert_eq!(tbs, sig_structure(protected, digest));

        match signer.public_key() {
            PublicKey::Ed25519(_) => {
                let vk = ed25519_dalek::VerifyingKey::from_bytes(&raw.try_into().unwrap()).unwrap();
                let s = ed25519_dalek::Signature::from_slice(sig).unwrap();
                vk.verify_strict(&tbs, &s).unwrap();
                assert!(vk.verify_strict(&tbs[1..], &s).is_err());
            }
            PublicKey::P256(_) => {
                let vk = p256::ecdsa::VerifyingKey::from_sec1_bytes(&raw).unwrap();
                let s = p256::ecdsa::Signature::from_slice(sig).unwrap();
                vk.verify(&tbs, &s).unwrap();
                // ES256 = ECDSA over SHA-256(Sig_structure), r||s.
                vk.verify_prehash(&Sha256::digest(&tbs), &s).unwrap();
                assert!(vk.verify(&tbs[1..], &s).is_err());
            }
        }
    }

    #[test]
    fn envelope_structure_and_member_order() {
        let b = builder(vec![key(Algorithm::Ed25519)]);
        let keyset = KeySetBuilder {
            roots: vec![key(Algorithm::Ed25519)],
            keyset: KeySetParams {
                version: 1,
                threshold: 1,
                signers: vec![b.keys[0].public_key()],
                revoked: vec![],
            },
            sign_options: SignOptions::default(),
        }
        .build()
        .unwrap();
        let b = EnvelopeBuilder {
            keyset: Some(keyset.clone()),
            ..b
        };
        let built = b.build().unwrap();
        assert_eq!(&built.envelope[..2], &[0xd8, 0x6b], "tag 107");
        let env = decode(&built.envelope);
        let (tag, map) = env.as_tag().unwrap();
        assert_eq!(tag, l::TAG_ENVELOPE);
        assert_eq!(
            keys_of(map),
            vec![
                Value::from(2),
                Value::from(3),
                Value::from(23),
                Value::from(-19287),
                Value::from("#firmware")
            ]
        );
        assert_eq!(
            map.get_int(2).unwrap().as_bytes().unwrap().as_slice(),
            built.auth
        );
        assert_eq!(
            map.get_int(3).unwrap().as_bytes().unwrap().as_slice(),
            built.manifest
        );
        assert_eq!(
            map.get_int(23).unwrap().as_bytes().unwrap().as_slice(),
            built.text.as_deref().unwrap()
        );
        assert_eq!(
            map.get_int(-19287).unwrap().as_bytes().unwrap().as_slice(),
            keyset
        );
        // The payload is the last member, and the envelope ends with it.
        let (last_k, last_v) = map.as_map().unwrap().last().unwrap();
        assert_eq!(last_k, &Value::from(PAYLOAD_KEY));
        assert_eq!(last_v.as_bytes().unwrap().as_slice(), b.payload);
        assert!(built.envelope.ends_with(&b.payload));

        // Detached: same manifest, no payload member.
        let detached = EnvelopeBuilder {
            detached: true,
            ..b.clone()
        }
        .build()
        .unwrap();
        // The detached manifest names where the payload comes from instead
        // of the integrated member.
        assert_ne!(detached.manifest, built.manifest);
        let dm = decode(&detached.manifest);
        let install = bstr_item(dm.get_int(20).unwrap());
        let params = install.as_array().unwrap()[3].clone();
        assert_eq!(params.get_int(21), Some(&Value::from(DETACHED_PAYLOAD_URI)));
        let env = decode(&detached.envelope);
        let map = env.as_tag().unwrap().1;
        assert!(map.get_text(PAYLOAD_KEY).is_none());
        assert_eq!(map.as_map().unwrap().len(), 4);

        // No notes: no text member and no text digest in the manifest.
        let plain = EnvelopeBuilder {
            notes: None,
            cves: vec![],
            keyset: None,
            ..b
        }
        .build()
        .unwrap();
        let env = decode(&plain.envelope);
        assert_eq!(
            keys_of(env.as_tag().unwrap().1),
            vec![Value::from(2), Value::from(3), Value::from("#firmware")]
        );
        assert!(decode(&plain.manifest).get_int(23).is_none());
    }

    #[test]
    fn manifest_matches_format() {
        let b = builder(vec![key(Algorithm::Ed25519)]);
        let built = b.build().unwrap();
        let m = decode(&built.manifest);
        assert_eq!(
            keys_of(&m),
            [1, 2, 3, 6, 7, 9, 20, 23].map(Value::from).to_vec()
        );
        assert_eq!(m.get_int(1), Some(&Value::from(1)));
        assert_eq!(m.get_int(2), Some(&Value::from(7)));
        // update-management §3.1: `bstr .cbor [+ int]`.
        assert_eq!(
            bstr_item(m.get_int(6).unwrap()),
            Value::Array([1, 2, 3].map(Value::from).to_vec())
        );

        let common = bstr_item(m.get_int(3).unwrap());
        assert_eq!(
            common.get_int(2),
            Some(&Value::Array(vec![Value::Array(vec![Value::from(vec![
                0
            ])])]))
        );
        let shared = bstr_item(common.get_int(4).unwrap());
        let shared = shared.as_array().unwrap();
        assert_eq!(shared.len(), 8);
        assert_eq!(shared[..2], [Value::from(12), Value::from(0)]);
        assert_eq!(shared[2], Value::from(20));
        assert_eq!(shared[4..], [1, 15, 2, 15].map(Value::from));
        let params = &shared[3];
        assert_eq!(keys_of(params), [1, 2, 3, 14].map(Value::from).to_vec());
        let vendor = vendor_uuid("keyway.example");
        assert_eq!(
            params.get_int(1).unwrap().as_bytes().unwrap().as_slice(),
            vendor
        );
        assert_eq!(
            params.get_int(2).unwrap().as_bytes().unwrap().as_slice(),
            class_uuid(&vendor, "deadbolt-v2")
        );
        let digest = bstr_item(params.get_int(3).unwrap());
        assert_eq!(
            digest,
            Value::Array(vec![
                Value::from(-16),
                Value::Bytes(sha256(&b.payload).to_vec())
            ])
        );
        assert_eq!(params.get_int(14), Some(&Value::from(3000)));

        // Exact bytes of the fixed sequences.
        assert_eq!(
            m.get_int(7).unwrap().as_bytes().unwrap().as_slice(),
            [0x84, 0x0c, 0x00, 0x03, 0x0f]
        );
        assert_eq!(
            m.get_int(9).unwrap().as_bytes().unwrap().as_slice(),
            [0x84, 0x0c, 0x00, 0x17, 0x02]
        );

        let install = bstr_item(m.get_int(20).unwrap());
        let install = install.as_array().unwrap();
        assert_eq!(install[..3], [12, 0, 20].map(Value::from));
        assert_eq!(
            install[3],
            // RFC 8949 §4.2.1 order: 4, 21, 26 (0x18 1a), 27 (0x18 1b).
            Value::Map(vec![
                (Value::from(4), Value::from(1_900_000_000)),
                (Value::from(21), Value::from("#firmware")),
                (Value::from(26), Value::from(500)),
                (Value::from(27), Value::from(-1)),
            ])
        );
        assert_eq!(
            install[4..],
            [4, 15, 26, 15, 27, 15, 21, 2, 3, 15].map(Value::from)
        );

        // Severed text: a bare SUIT_Digest over the bstr-wrapped text.
        assert_eq!(
            m.get_int(23).unwrap(),
            &Value::Array(vec![
                Value::from(-16),
                Value::Bytes(wrapped_sha256(built.text.as_deref().unwrap()).to_vec())
            ])
        );
    }

    #[test]
    fn install_without_optional_conditions() {
        let b = EnvelopeBuilder {
            use_before: None,
            min_battery_mwh: None,
            cves: vec![Cve::new("CVE-2024-0001", Severity::Medium).unwrap()],
            ..builder(vec![key(Algorithm::P256)])
        };
        let m = decode(&b.build().unwrap().manifest);
        let install = bstr_item(m.get_int(20).unwrap());
        assert_eq!(
            install,
            Value::Array(vec![
                Value::from(12),
                Value::from(0),
                Value::from(20),
                Value::Map(vec![
                    (Value::from(21), Value::from("#firmware")),
                    (Value::from(27), Value::from(0)),
                ]),
                Value::from(27),
                Value::from(15),
                Value::from(21),
                Value::from(2),
                Value::from(3),
                Value::from(15),
            ])
        );
    }

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
    fn signatures_verify_for_every_algorithm() {
        let keys = vec![
            key(Algorithm::Ed25519),
            key(Algorithm::P256),
            key(Algorithm::Ed25519),
        ];
        for ed in [Ed25519Alg::EdDsa, Ed25519Alg::Ed25519] {
            let b = EnvelopeBuilder {
                sign_options: SignOptions {
                    ed25519_alg: ed,
                    ..SignOptions::default()
                },
                ..builder(keys.clone())
            };
            let built = b.build().unwrap();
            let auth = decode(&built.auth);
            let auth = auth.as_array().unwrap();
            assert_eq!(auth.len(), 1 + keys.len());
            let digest = auth[0].as_bytes().unwrap();
            assert_eq!(
                decode(digest),
                Value::Array(vec![
                    Value::from(-16),
                    Value::Bytes(wrapped_sha256(&built.manifest).to_vec())
                ])
            );
            for (k, block) in keys.iter().zip(&auth[1..]) {
                let alg = match k.algorithm() {
                    Algorithm::Ed25519 => ed.label(),
                    Algorithm::P256 => -9,
                };
                check_sign1(block.as_bytes().unwrap(), k, alg, digest);
            }
        }
        assert_eq!(Ed25519Alg::default().label(), -8);
        assert_eq!(Ed25519Alg::Ed25519.label(), -19);
        assert_eq!(P256Alg::default().label(), -9);
        assert_eq!(P256Alg::Es256.label(), -7);
    }

    #[test]
    fn kid_can_be_left_out() {
        let k = key(Algorithm::P256);
        let auth = sign_digest(
            b"manifest",
            std::slice::from_ref(&k),
            &SignOptions {
                include_kid: false,
                ..SignOptions::default()
            },
        );
        let auth = decode(&auth);
        let block = bstr_item(&auth.as_array().unwrap()[1]);
        assert_eq!(
            block.as_tag().unwrap().1.as_array().unwrap()[1],
            Value::Map(vec![])
        );
    }

    #[test]
    fn low_level_pieces_compose_into_attack_envelopes() {
        let k = key(Algorithm::Ed25519);
        let old = builder(vec![k.clone()]);
        let new = EnvelopeBuilder {
            notes: Some("new notes".into()),
            sequence: 8,
            ..old.clone()
        };
        let (old_b, new_b) = (old.build().unwrap(), new.build().unwrap());
        // Swap the old release's text into the new envelope: still validly
        // signed, but the manifest's text digest no longer matches.
        let swapped = assemble_envelope(
            &new_b.auth,
            &new_b.manifest,
            old_b.text.as_deref(),
            None,
            Some(&new.payload),
        );
        let env = decode(&swapped);
        let map = env.as_tag().unwrap().1;
        let text = map.get_int(23).unwrap().as_bytes().unwrap();
        let bound = decode(&new_b.manifest).get_int(23).unwrap().clone();
        assert_ne!(
            bound.as_array().unwrap()[1].as_bytes().unwrap().as_slice(),
            wrapped_sha256(text)
        );

        // Re-sign a modified manifest (sequence bumped) with the same key.
        let mut params = new.manifest_params(new_b.text.as_deref());
        params.sequence = 99;
        let manifest = encode_manifest(&params);
        let auth = sign_digest(&manifest, std::slice::from_ref(&k), &SignOptions::default());
        let env = assemble_envelope(&auth, &manifest, new_b.text.as_deref(), None, None);
        let m = bstr_item(decode(&env).as_tag().unwrap().1.get_int(3).unwrap());
        assert_eq!(m.get_int(2), Some(&Value::from(99)));
        let auth = decode(&auth);
        let a = auth.as_array().unwrap();
        check_sign1(a[1].as_bytes().unwrap(), &k, -8, a[0].as_bytes().unwrap());

        // A wrong algorithm label can be put on a signature.
        let block = cose_sign1(&k, -7, None, b"x");
        let v = decode(&block);
        let protected = v.as_tag().unwrap().1.as_array().unwrap()[0].clone();
        assert_eq!(bstr_item(&protected).get_int(1), Some(&Value::from(-7)));

        // An empty key list gives a signature-less wrapper.
        let empty = decode(&sign_digest(b"m", &[], &SignOptions::default()));
        assert_eq!(empty.as_array().unwrap().len(), 1);
    }

    #[test]
    fn builder_rejects_bad_inputs() {
        let k = key(Algorithm::Ed25519);
        let b = builder(vec![k.clone()]);
        let err = |b: EnvelopeBuilder| b.build().unwrap_err();
        assert_eq!(
            err(EnvelopeBuilder {
                keys: vec![],
                ..b.clone()
            }),
            EncodeError::NoSigningKeys
        );
        assert!(matches!(
            err(EnvelopeBuilder {
                keys: vec![k.clone(), k.clone()],
                ..b.clone()
            }),
            EncodeError::DuplicateSigningKey(_)
        ));
        assert_eq!(
            err(EnvelopeBuilder {
                notes: None,
                ..b.clone()
            }),
            EncodeError::CvesWithoutNotes
        );
        let dup = Cve::new("CVE-2024-12345", Severity::Low).unwrap();
        let mut cves = b.cves.clone();
        cves.push(dup);
        assert_eq!(
            err(EnvelopeBuilder { cves, ..b.clone() }),
            EncodeError::DuplicateCve("CVE-2024-12345".into())
        );
        assert_eq!(
            err(EnvelopeBuilder {
                vendor_domain: " ".into(),
                ..b.clone()
            }),
            EncodeError::Empty("the vendor domain")
        );
        assert!(matches!(
            err(EnvelopeBuilder {
                keyset: Some(vec![0xa0]),
                ..b.clone()
            }),
            EncodeError::InvalidKeySetDocument(_)
        ));
        assert!(matches!(
            err(EnvelopeBuilder {
                keyset: Some(b"garbage".to_vec()),
                ..b
            }),
            EncodeError::InvalidKeySetDocument(_)
        ));
    }

    #[test]
    fn version_parsing() {
        assert_eq!("1.2.3".parse(), Ok(Version::new(1, 2, 3)));
        assert_eq!("0.0.0".parse(), Ok(Version::new(0, 0, 0)));
        assert_eq!(
            "10.20.300".parse::<Version>().unwrap().to_string(),
            "10.20.300"
        );
        for bad in [
            "",
            "1",
            "1.2",
            "1.2.3.4",
            "v1.2.3",
            "1.2.3-rc1",
            "1..3",
            "1.02.3",
            " 1.2.3",
            "1.2.+3",
            "1.2.-3",
            "1.2.x",
            "99999999999999999999.0.0",
        ] {
            assert_eq!(
                bad.parse::<Version>(),
                Err(EncodeError::InvalidVersion(bad.into())),
                "{bad:?}"
            );
        }
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

    #[test]
    fn uuids_follow_the_suit_convention() {
        // draft-ietf-suit-manifest examples: vendor ID = UUID5(DNS, "arm.com").
        let v = vendor_uuid("arm.com");
        assert_eq!(
            uuid::Uuid::from_bytes(v).to_string(),
            "fa6b4a53-d5ad-5fdf-be9d-e663e4d41ffe"
        );
        // The class UUID is a v5 UUID in the vendor's namespace.
        let c = uuid::Uuid::from_bytes(class_uuid(&v, "deadbolt-v2"));
        assert_eq!(c.get_version_num(), 5);
        assert_eq!(
            c,
            uuid::Uuid::new_v5(&uuid::Uuid::from_bytes(v), b"deadbolt-v2")
        );
        assert_ne!(class_uuid(&v, "deadbolt-v2"), class_uuid(&v, "deadbolt-v3"));
        assert_ne!(
            class_uuid(&v, "deadbolt-v2"),
            class_uuid(&vendor_uuid("other.example"), "deadbolt-v2")
        );
    }

    #[test]
    fn keyset_document_matches_format() {
        let roots = vec![key(Algorithm::Ed25519), key(Algorithm::P256)];
        let (e, p) = (key(Algorithm::Ed25519), key(Algorithm::P256));
        let old = key(Algorithm::Ed25519);
        let doc = KeySetBuilder {
            roots: roots.clone(),
            keyset: KeySetParams {
                version: 3,
                threshold: 2,
                signers: vec![e.public_key(), p.public_key()],
                revoked: vec![old.key_id()],
            },
            sign_options: SignOptions::default(),
        }
        .build()
        .unwrap();
        let top = decode(&doc);
        assert_eq!(keys_of(&top), vec![Value::from(1), Value::from(2)]);
        let body_bytes = top.get_int(2).unwrap().as_bytes().unwrap();
        let body = decode(body_bytes);
        assert_eq!(keys_of(&body), [1, 2, 3, 4].map(Value::from).to_vec());
        assert_eq!(body.get_int(1), Some(&Value::from(3)));
        assert_eq!(body.get_int(2), Some(&Value::from(2)));
        let praw = p.raw_public_key_bytes();
        assert_eq!(
            body.get_int(3),
            Some(&Value::Array(vec![
                Value::Map(vec![
                    (Value::from(1), Value::from(1)),
                    (Value::from(-1), Value::from(6)),
                    (Value::from(-2), Value::from(e.raw_public_key_bytes())),
                ]),
                Value::Map(vec![
                    (Value::from(1), Value::from(2)),
                    (Value::from(-1), Value::from(1)),
                    (Value::from(-2), Value::from(&praw[1..33])),
                    (Value::from(-3), Value::from(&praw[33..])),
                ]),
            ]))
        );
        assert_eq!(
            body.get_int(4),
            Some(&Value::Array(vec![Value::from(old.key_id().to_vec())]))
        );
        let auth = bstr_item(top.get_int(1).unwrap());
        let auth = auth.as_array().unwrap();
        assert_eq!(auth.len(), 3);
        let digest = auth[0].as_bytes().unwrap();
        assert_eq!(*digest, suit_digest(&bstr_wrapped(body_bytes)));
        check_sign1(auth[1].as_bytes().unwrap(), &roots[0], -8, digest);
        check_sign1(auth[2].as_bytes().unwrap(), &roots[1], -9, digest);

        let info = KeySetInfo::parse(&doc).unwrap();
        assert_eq!(
            info,
            KeySetInfo {
                version: 3,
                threshold: 2,
                signer_kids: vec![e.key_id(), p.key_id()],
                revoked: vec![old.key_id()],
                root_signatures: 2,
            }
        );
    }

    #[test]
    fn keyset_builder_rejects_bad_inputs() {
        let s = key(Algorithm::Ed25519).public_key();
        let mk = |threshold, signers: Vec<PublicKey>, revoked| KeySetBuilder {
            roots: vec![key(Algorithm::Ed25519)],
            keyset: KeySetParams {
                version: 1,
                threshold,
                signers,
                revoked,
            },
            sign_options: SignOptions::default(),
        };
        assert_eq!(
            mk(0, vec![s.clone()], vec![]).build(),
            Err(EncodeError::InvalidThreshold {
                threshold: 0,
                signers: 1
            })
        );
        assert_eq!(
            mk(2, vec![s.clone()], vec![]).build(),
            Err(EncodeError::InvalidThreshold {
                threshold: 2,
                signers: 1
            })
        );
        assert_eq!(mk(1, vec![], vec![]).build(), Err(EncodeError::NoSigners));
        assert!(matches!(
            mk(1, vec![s.clone(), s.clone()], vec![]).build(),
            Err(EncodeError::DuplicateSigner(_))
        ));
        assert!(matches!(
            mk(1, vec![s.clone()], vec![s.key_id()]).build(),
            Err(EncodeError::SignerRevoked(_))
        ));
        let mut no_roots = mk(1, vec![s], vec![]);
        no_roots.roots.clear();
        assert_eq!(no_roots.build(), Err(EncodeError::NoSigningKeys));
    }
}
