//! Vendor keys: generation, PEM loading and saving, key ids.
//!
//! Private keys are PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`); a SEC1
//! `EC PRIVATE KEY` P-256 key (what `openssl ecparam -genkey` writes) is also
//! accepted. Public keys are SubjectPublicKeyInfo PEM
//! (`-----BEGIN PUBLIC KEY-----`). Both Ed25519 and ECDSA P-256 are
//! supported; the algorithm is detected from the key's OID.

use std::fmt;
use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use ed25519_dalek::Signer as _;
use p256::elliptic_curve::zeroize::Zeroizing;
use p256::pkcs8::der::pem;
use p256::pkcs8::spki::SubjectPublicKeyInfoRef;
use p256::pkcs8::{
    DecodePrivateKey as _, DecodePublicKey as _, EncodePrivateKey as _, EncodePublicKey as _,
    LineEnding, PrivateKeyInfoRef,
};
use sha2::{Digest as _, Sha256};

/// Length of a Keyway key id.
pub const KEY_ID_LEN: usize = 8;

/// A key id: the first 8 bytes of SHA-256 over the raw public key.
pub type KeyId = [u8; KEY_ID_LEN];

const OID_ED25519: &str = "1.3.101.112";
const OID_EC_PUBLIC_KEY: &str = "1.2.840.10045.2.1";
const OID_PRIME256V1: &str = "1.2.840.10045.3.1.7";

/// A signature algorithm family supported for vendor keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// Ed25519 (COSE alg -8 or -19).
    Ed25519,
    /// ECDSA over P-256 with SHA-256 (COSE alg -7, ES256).
    P256,
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Algorithm::Ed25519 => "Ed25519",
            Algorithm::P256 => "ECDSA P-256",
        })
    }
}

/// Why a PEM document could not be turned into a key (no file name; see
/// [`KeyError`] for the file-level error).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyParseError {
    /// The text has no PEM armour, or the armour/base64 is damaged.
    #[error("not a PEM {expected} ({detail})")]
    NotPem {
        /// "private key" or "public key".
        expected: &'static str,
        /// What the PEM decoder said.
        detail: String,
    },
    /// A PEM block of the other kind (private vs public) was found.
    #[error("wrong key type: expected a {expected}, got a {got}")]
    WrongKeyType {
        /// What the caller asked for.
        expected: &'static str,
        /// What the PEM label says it is.
        got: String,
    },
    /// The PEM block's label is not a key at all.
    #[error("unexpected PEM block \"{label}\" (expected a {expected})")]
    UnexpectedLabel {
        /// The PEM label found.
        label: String,
        /// What the caller asked for.
        expected: &'static str,
    },
    /// Encrypted PKCS#8 is not supported.
    #[error("encrypted private keys are not supported; decrypt it first (openssl pkcs8 -in KEY)")]
    Encrypted,
    /// The key's algorithm is neither Ed25519 nor P-256.
    #[error("unsupported key algorithm {0} (expected Ed25519 or ECDSA P-256)")]
    UnsupportedAlgorithm(String),
    /// The PEM decoded but the DER inside is not a valid key.
    #[error("malformed {what}: {detail}")]
    Malformed {
        /// What was being parsed.
        what: &'static str,
        /// Parser message.
        detail: String,
    },
}

/// A key-file operation failed; always names the file.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The file could not be read.
    #[error("{}: cannot read: {error}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error (part of the message, not a separate `source`).
        error: std::io::Error,
    },
    /// The file could not be written.
    #[error("{}: cannot write: {error}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// The I/O error (part of the message, not a separate `source`).
        error: std::io::Error,
    },
    /// `keygen` refuses to overwrite keys.
    #[error("{}: already exists; refusing to overwrite a key", path.display())]
    Exists {
        /// The file.
        path: PathBuf,
    },
    /// The file's contents are not a usable key.
    #[error("{}: {error}", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// What was wrong (part of the message, not a separate `source`).
        error: KeyParseError,
    },
    /// The operating system's random number generator failed.
    #[error("cannot generate a key: the system random number generator failed: {0}")]
    Random(String),
    /// Encoding a key as PEM failed (should not happen).
    #[error("cannot encode the key as PEM: {0}")]
    Encode(String),
}

/// A private signing key.
#[derive(Clone)]
pub enum SigningKey {
    /// An Ed25519 key.
    Ed25519(ed25519_dalek::SigningKey),
    /// An ECDSA P-256 key.
    P256(p256::ecdsa::SigningKey),
}

/// A public (verifying) key.
#[derive(Clone, PartialEq, Eq)]
pub enum PublicKey {
    /// An Ed25519 key.
    Ed25519(ed25519_dalek::VerifyingKey),
    /// An ECDSA P-256 key.
    P256(p256::ecdsa::VerifyingKey),
}

/// `Debug` for both key types: the type, algorithm and key id (never
/// secret material).
macro_rules! debug_by_key_id {
    ($($key:ident),+) => {$(
        impl fmt::Debug for $key {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                let (algorithm, kid) = (self.algorithm(), hex(&self.key_id()));
                write!(f, "{}({algorithm}, kid {kid})", stringify!($key))
            }
        }
    )+};
}

debug_by_key_id!(SigningKey, PublicKey);

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Key id of a raw public key: `SHA-256(raw)[0..8]`.
pub fn key_id_of_raw(raw: &[u8]) -> KeyId {
    let digest = Sha256::digest(raw);
    let mut kid = [0u8; KEY_ID_LEN];
    kid.copy_from_slice(&digest[..KEY_ID_LEN]);
    kid
}

impl SigningKey {
    /// Generates a fresh key from the operating system's RNG.
    pub fn generate(alg: Algorithm) -> Result<SigningKey, KeyError> {
        let mut seed = Zeroizing::new([0u8; 32]);
        match alg {
            Algorithm::Ed25519 => {
                getrandom::fill(seed.as_mut()).map_err(|e| KeyError::Random(e.to_string()))?;
                Ok(SigningKey::Ed25519(ed25519_dalek::SigningKey::from_bytes(
                    &seed,
                )))
            }
            Algorithm::P256 => {
                // Rejection sampling: a 32-byte string is a valid scalar
                // unless it is zero or >= n (probability about 2^-32).
                for _ in 0..64 {
                    getrandom::fill(seed.as_mut()).map_err(|e| KeyError::Random(e.to_string()))?;
                    if let Ok(k) = p256::ecdsa::SigningKey::from_slice(seed.as_ref()) {
                        return Ok(SigningKey::P256(k));
                    }
                }
                Err(KeyError::Random(
                    "no valid P-256 scalar after 64 attempts".into(),
                ))
            }
        }
    }

    /// The algorithm family of this key.
    pub fn algorithm(&self) -> Algorithm {
        match self {
            SigningKey::Ed25519(_) => Algorithm::Ed25519,
            SigningKey::P256(_) => Algorithm::P256,
        }
    }

    /// The matching public key.
    pub fn public_key(&self) -> PublicKey {
        match self {
            SigningKey::Ed25519(k) => PublicKey::Ed25519(k.verifying_key()),
            SigningKey::P256(k) => PublicKey::P256(*k.verifying_key()),
        }
    }

    /// Raw public key bytes (see [`PublicKey::raw_public_key_bytes`]).
    pub fn raw_public_key_bytes(&self) -> Vec<u8> {
        self.public_key().raw_public_key_bytes()
    }

    /// Key id of the public key (see [`PublicKey::key_id`]).
    pub fn key_id(&self) -> KeyId {
        self.public_key().key_id()
    }

    /// Signs `message`: a 64-byte Ed25519 signature, or for P-256 an ECDSA
    /// signature over SHA-256(`message`) as raw `r || s` (64 bytes).
    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        match self {
            SigningKey::Ed25519(k) => k.sign(message).to_bytes().to_vec(),
            SigningKey::P256(k) => {
                let sig: p256::ecdsa::Signature = p256::ecdsa::signature::Signer::sign(k, message);
                sig.to_bytes().to_vec()
            }
        }
    }

    /// Encodes the key as PKCS#8 PEM.
    pub fn to_pkcs8_pem(&self) -> Result<Zeroizing<String>, KeyError> {
        match self {
            SigningKey::Ed25519(k) => k.to_pkcs8_pem(LineEnding::LF),
            SigningKey::P256(k) => k.to_pkcs8_pem(LineEnding::LF),
        }
        .map_err(|e| KeyError::Encode(e.to_string()))
    }

    /// Parses a PKCS#8 (or SEC1 P-256) PEM private key.
    pub fn from_pem(text: &[u8]) -> Result<SigningKey, KeyParseError> {
        from_pem_by_label(
            text,
            "private key",
            &[
                ("PRIVATE KEY", parse_pkcs8),
                ("EC PRIVATE KEY", |der| {
                    p256::SecretKey::from_sec1_der(der)
                        .map(|k| SigningKey::P256(k.into()))
                        .map_err(malformed("SEC1 EC private key (only P-256 is supported)"))
                }),
                ("ENCRYPTED PRIVATE KEY", |_| Err(KeyParseError::Encrypted)),
            ],
            (&["PUBLIC KEY"], "public key"),
        )
    }

    /// Reads a private key file.
    pub fn load(path: impl AsRef<Path>) -> Result<SigningKey, KeyError> {
        load_pem(path.as_ref(), SigningKey::from_pem)
    }
}

/// Splits a PEM document into label and DER, with a plain-language reason
/// when there is no PEM armour at all.
fn decode_pem(text: &[u8], expected: &'static str) -> Result<(String, Vec<u8>), KeyParseError> {
    let not_pem = |detail: String| KeyParseError::NotPem { expected, detail };
    if !text.windows(11).any(|w| w == b"-----BEGIN ") {
        return Err(not_pem("no \"-----BEGIN\" line".into()));
    }
    let (label, der) = pem::decode_vec(text).map_err(|e| not_pem(e.to_string()))?;
    Ok((label.to_owned(), der))
}

/// A parser of a key's DER.
type ParseDer<K> = fn(&[u8]) -> Result<K, KeyParseError>;

/// A key of one kind (`expected`) from a PEM document: its DER (wiped
/// after) goes to the parser `parsers` gives for its label; a label in
/// `other.0` is a key of the other kind (`other.1`).
fn from_pem_by_label<K>(
    text: &[u8],
    expected: &'static str,
    parsers: &[(&str, ParseDer<K>)],
    (other_labels, other): (&[&str], &str),
) -> Result<K, KeyParseError> {
    let (label, der) = decode_pem(text, expected)?;
    let der = Zeroizing::new(der);
    if let Some((_, parse)) = parsers.iter().find(|(l, _)| *l == label) {
        parse(&der)
    } else if other_labels.contains(&label.as_str()) {
        Err(KeyParseError::WrongKeyType {
            expected,
            got: other.into(),
        })
    } else {
        Err(KeyParseError::UnexpectedLabel { label, expected })
    }
}

/// Reads the PEM file at `path` (wiped from memory after) and parses it
/// with `parse`, naming the file in either error.
fn load_pem<K>(
    path: &Path,
    parse: impl FnOnce(&[u8]) -> Result<K, KeyParseError>,
) -> Result<K, KeyError> {
    let text = Zeroizing::new(fs::read(path).map_err(|error| KeyError::Read {
        path: path.to_owned(),
        error,
    })?);
    parse(&text).map_err(|error| KeyError::Parse {
        path: path.to_owned(),
        error,
    })
}

/// For `map_err`: [`KeyParseError::Malformed`] naming `what`, with the
/// parser's message.
fn malformed<E: fmt::Display>(what: &'static str) -> impl FnOnce(E) -> KeyParseError {
    move |e| KeyParseError::Malformed {
        what,
        detail: e.to_string(),
    }
}

fn parse_pkcs8(der: &[u8]) -> Result<SigningKey, KeyParseError> {
    let info = PrivateKeyInfoRef::try_from(der).map_err(malformed("PKCS#8 private key"))?;
    by_algorithm(
        info.algorithm.oids(),
        "PKCS#8 algorithm identifier",
        ("Ed25519 private key", || {
            ed25519_dalek::SigningKey::from_pkcs8_der(der).map(SigningKey::Ed25519)
        }),
        ("P-256 private key", || {
            p256::ecdsa::SigningKey::from_pkcs8_der(der).map(SigningKey::P256)
        }),
    )
}

/// Dispatches on a key's algorithm OIDs to the Ed25519 or the P-256
/// decoder, naming unsupported algorithms and curves.
fn by_algorithm<K, E: fmt::Display, E1: fmt::Display, E2: fmt::Display>(
    oids: Result<
        (
            p256::pkcs8::ObjectIdentifier,
            Option<p256::pkcs8::ObjectIdentifier>,
        ),
        E,
    >,
    what: &'static str,
    ed25519: (&'static str, impl FnOnce() -> Result<K, E1>),
    p256: (&'static str, impl FnOnce() -> Result<K, E2>),
) -> Result<K, KeyParseError> {
    let (oid, param) = oids.map_err(malformed(what))?;
    match (oid.to_string().as_str(), param.map(|p| p.to_string())) {
        (OID_ED25519, _) => (ed25519.1)().map_err(malformed(ed25519.0)),
        (OID_EC_PUBLIC_KEY, Some(curve)) if curve == OID_PRIME256V1 => {
            (p256.1)().map_err(malformed(p256.0))
        }
        (OID_EC_PUBLIC_KEY, curve) => Err(KeyParseError::UnsupportedAlgorithm(format!(
            "EC key on curve {}",
            curve.unwrap_or_else(|| "(none)".into())
        ))),
        (other, _) => Err(KeyParseError::UnsupportedAlgorithm(format!("OID {other}"))),
    }
}

impl PublicKey {
    /// The algorithm family of this key.
    pub fn algorithm(&self) -> Algorithm {
        match self {
            PublicKey::Ed25519(_) => Algorithm::Ed25519,
            PublicKey::P256(_) => Algorithm::P256,
        }
    }

    /// Raw public key: 32 bytes for Ed25519, the 65-byte uncompressed SEC1
    /// point `0x04 || x || y` for P-256.
    pub fn raw_public_key_bytes(&self) -> Vec<u8> {
        match self {
            PublicKey::Ed25519(k) => k.to_bytes().to_vec(),
            PublicKey::P256(k) => k.to_sec1_point(false).as_bytes().to_vec(),
        }
    }

    /// Key id: the first 8 bytes of SHA-256 over [`Self::raw_public_key_bytes`].
    pub fn key_id(&self) -> KeyId {
        key_id_of_raw(&self.raw_public_key_bytes())
    }

    /// Verifies a signature made by [`SigningKey::sign`].
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        match self {
            PublicKey::Ed25519(k) => ed25519_dalek::Signature::from_slice(signature)
                .is_ok_and(|s| k.verify_strict(message, &s).is_ok()),
            PublicKey::P256(k) => p256::ecdsa::Signature::from_slice(signature)
                .is_ok_and(|s| p256::ecdsa::signature::Verifier::verify(k, message, &s).is_ok()),
        }
    }

    /// Encodes the key as SubjectPublicKeyInfo PEM.
    pub fn to_spki_pem(&self) -> Result<String, KeyError> {
        match self {
            PublicKey::Ed25519(k) => k.to_public_key_pem(LineEnding::LF),
            PublicKey::P256(k) => k.to_public_key_pem(LineEnding::LF),
        }
        .map_err(|e| KeyError::Encode(e.to_string()))
    }

    /// Parses a SubjectPublicKeyInfo PEM public key.
    pub fn from_pem(text: &[u8]) -> Result<PublicKey, KeyParseError> {
        from_pem_by_label(
            text,
            "public key",
            &[("PUBLIC KEY", parse_spki)],
            (
                &["PRIVATE KEY", "EC PRIVATE KEY", "ENCRYPTED PRIVATE KEY"],
                "private key",
            ),
        )
    }

    /// Reads a public key file.
    pub fn load(path: impl AsRef<Path>) -> Result<PublicKey, KeyError> {
        load_pem(path.as_ref(), PublicKey::from_pem)
    }
}

fn parse_spki(der: &[u8]) -> Result<PublicKey, KeyParseError> {
    let info = SubjectPublicKeyInfoRef::try_from(der)
        .map_err(malformed("SubjectPublicKeyInfo public key"))?;
    by_algorithm(
        info.algorithm.oids(),
        "public key algorithm identifier",
        ("Ed25519 public key", || {
            ed25519_dalek::VerifyingKey::from_public_key_der(der).map(PublicKey::Ed25519)
        }),
        ("P-256 public key", || {
            p256::ecdsa::VerifyingKey::from_public_key_der(der).map(PublicKey::P256)
        }),
    )
}

/// Where [`keygen`] wrote a key pair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyPairFiles {
    /// `NAME.key`, PKCS#8 PEM, mode 0600 on Unix.
    pub private: PathBuf,
    /// `NAME.pub`, SubjectPublicKeyInfo PEM.
    pub public: PathBuf,
    /// The new key's id.
    pub key_id: KeyId,
}

/// `NAME` with `suffix` appended (`NAME.key`, `NAME.pub`), keeping any
/// directory part and any dots already in the name.
fn with_suffix(name: &Path, suffix: &str) -> PathBuf {
    let mut s = name.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// Generates a key pair and writes `NAME.key` and `NAME.pub`. Refuses to
/// overwrite either file.
pub fn keygen(name: impl AsRef<Path>, alg: Algorithm) -> Result<KeyPairFiles, KeyError> {
    let name = name.as_ref();
    let private = with_suffix(name, ".key");
    let public = with_suffix(name, ".pub");
    for p in [&private, &public] {
        if p.exists() {
            return Err(KeyError::Exists { path: p.clone() });
        }
    }
    let key = SigningKey::generate(alg)?;
    let private_pem = key.to_pkcs8_pem()?;
    let public_pem = key.public_key().to_spki_pem()?;
    write_new(&private, private_pem.as_bytes(), true)?;
    if let Err(e) = write_new(&public, public_pem.as_bytes(), false) {
        // Do not leave half a key pair behind.
        let _ = fs::remove_file(&private);
        return Err(e);
    }
    Ok(KeyPairFiles {
        private,
        public,
        key_id: key.key_id(),
    })
}

fn write_new(path: &Path, contents: &[u8], secret: bool) -> Result<(), KeyError> {
    let mut opts = fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        opts.mode(if secret { 0o600 } else { 0o644 });
    }
    #[cfg(not(unix))]
    let _ = secret;
    let mut f = opts.open(path).map_err(|error| match error.kind() {
        std::io::ErrorKind::AlreadyExists => KeyError::Exists {
            path: path.to_owned(),
        },
        _ => KeyError::Write {
            path: path.to_owned(),
            error,
        },
    })?;
    f.write_all(contents)
        .and_then(|()| f.sync_all())
        .map_err(|error| KeyError::Write {
            path: path.to_owned(),
            error,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmpdir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!(
            "keyway-keys-{tag}-{}-{}",
            std::process::id(),
            getrandom::u64().unwrap()
        ));
        fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn keygen_round_trips_both_algorithms() {
        let dir = tmpdir("rt");
        for alg in [Algorithm::Ed25519, Algorithm::P256] {
            let name = dir.join(format!("{alg:?}"));
            let files = keygen(&name, alg).unwrap();
            assert_eq!(files.private, dir.join(format!("{alg:?}.key")));
            let sk = SigningKey::load(&files.private).unwrap();
            let pk = PublicKey::load(&files.public).unwrap();
            assert_eq!(sk.algorithm(), alg);
            assert_eq!(sk.public_key(), pk);
            assert_eq!(pk.key_id(), files.key_id);
            let raw = pk.raw_public_key_bytes();
            match alg {
                Algorithm::Ed25519 => assert_eq!(raw.len(), 32),
                Algorithm::P256 => {
                    assert_eq!(raw.len(), 65);
                    assert_eq!(raw[0], 0x04);
                }
            }
            assert_eq!(pk.key_id()[..], Sha256::digest(&raw)[..8]);
            let sig = sk.sign(b"hello");
            assert_eq!(sig.len(), 64);
            assert!(pk.verify(b"hello", &sig));
            assert!(!pk.verify(b"hellO", &sig));
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt as _;
                let mode = fs::metadata(&files.private).unwrap().permissions().mode();
                assert_eq!(
                    mode & 0o077,
                    0,
                    "private key must not be group/world readable"
                );
            }
            // Refuses to overwrite.
            let err = keygen(&name, alg).unwrap_err();
            assert!(matches!(err, KeyError::Exists { .. }));
            assert!(err.to_string().contains("already exists"), "{err}");
        }
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn wrong_key_type_errors() {
        let sk = SigningKey::generate(Algorithm::Ed25519).unwrap();
        let priv_pem = sk.to_pkcs8_pem().unwrap();
        let pub_pem = sk.public_key().to_spki_pem().unwrap();
        assert_eq!(
            PublicKey::from_pem(priv_pem.as_bytes())
                .unwrap_err()
                .to_string(),
            "wrong key type: expected a public key, got a private key"
        );
        assert_eq!(
            SigningKey::from_pem(pub_pem.as_bytes())
                .unwrap_err()
                .to_string(),
            "wrong key type: expected a private key, got a public key"
        );
    }

    #[test]
    fn garbage_and_truncated_pem_are_errors_not_panics() {
        let sk = SigningKey::generate(Algorithm::P256).unwrap();
        let pem = sk.to_pkcs8_pem().unwrap();
        let bytes = pem.as_bytes();
        for cut in [0, 10, 30, bytes.len() / 2, bytes.len() - 30] {
            assert!(SigningKey::from_pem(&bytes[..cut]).is_err(), "cut {cut}");
            assert!(PublicKey::from_pem(&bytes[..cut]).is_err(), "cut {cut}");
        }
        let err = PublicKey::from_pem(b"\x00\xffgarbage").unwrap_err();
        assert!(err.to_string().starts_with("not a PEM public key"), "{err}");
        // Valid PEM armour around bytes that are not a key.
        let junk = "-----BEGIN PRIVATE KEY-----\nAAECAwQF\n-----END PRIVATE KEY-----\n";
        let err = SigningKey::from_pem(junk.as_bytes()).unwrap_err();
        assert!(matches!(err, KeyParseError::Malformed { .. }), "{err}");
        let cert = "-----BEGIN CERTIFICATE-----\nAAECAwQF\n-----END CERTIFICATE-----\n";
        let err = PublicKey::from_pem(cert.as_bytes()).unwrap_err();
        assert!(err.to_string().contains("CERTIFICATE"), "{err}");
    }

    #[test]
    fn load_errors_name_the_file() {
        let dir = tmpdir("load");
        let missing = dir.join("nope.pub");
        let err = PublicKey::load(&missing).unwrap_err().to_string();
        assert!(
            err.starts_with(&format!("{}: cannot read", missing.display())),
            "{err}"
        );
        let bad = dir.join("bad.pub");
        fs::write(&bad, "hello").unwrap();
        let err = PublicKey::load(&bad).unwrap_err().to_string();
        assert!(
            err.starts_with(&format!("{}: not a PEM public key", bad.display())),
            "{err}"
        );
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn rejects_unsupported_algorithms() {
        // A P-384 and an RSA SPKI public key (generated with openssl).
        let p384 = "-----BEGIN PUBLIC KEY-----
MHYwEAYHKoZIzj0CAQYFK4EEACIDYgAEXkvDjJVTY56p9uDaBk4ovpQL02Rqvh27
XN86xKC77d7cNe7nVCwQdBBxosduFH2mAyPd7IOuWTwz7iedweDz43UYLZPc4khX
5RpSVqjUIJwMhcmIwwsRMVtieeK60Vo/
-----END PUBLIC KEY-----
";
        let err = PublicKey::from_pem(p384.as_bytes()).unwrap_err();
        assert!(
            matches!(err, KeyParseError::UnsupportedAlgorithm(_)),
            "{err}"
        );
        assert!(err.to_string().contains("1.3.132.0.34"), "{err}");
        let rsa = "-----BEGIN PUBLIC KEY-----
MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQCa1n91W8ooE4YtjO63XvHxn14D
+wunWGB+uUnySLWFE5At7GiYw5++wSBMbU2a2fSWFboLheFo1qtgI2J6WHJ73jv1
riA5GHrVMrdsKSjI6Kie1Nt72B+ph150/xyIhvoLUfMALUbfjvSB4xl51GLKgwkF
DMHWf2fr5kjadZhOjQIDAQAB
-----END PUBLIC KEY-----
";
        let err = PublicKey::from_pem(rsa.as_bytes()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "unsupported key algorithm OID 1.2.840.113549.1.1.1 (expected Ed25519 or ECDSA P-256)"
        );
    }

    // Keys generated with OpenSSL 3 (`genpkey -algorithm ed25519`,
    // `ecparam -name prime256v1 -genkey`, `pkcs8 -topk8`, `pkey -pubout`).
    const OPENSSL_ED25519_KEY: &str = "-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEIHYMK1mEiUkwZewWQwbyMWcfa2Lm4uVncuSdAMJZr4yJ
-----END PRIVATE KEY-----
";
    const OPENSSL_ED25519_PUB: &str = "-----BEGIN PUBLIC KEY-----
MCowBQYDK2VwAyEAKVK7PA021Stg/FHXZ8dbbfP1Hv1KGhnOe6s8zQeoXaY=
-----END PUBLIC KEY-----
";
    const OPENSSL_P256_SEC1: &str = "-----BEGIN EC PRIVATE KEY-----
MHcCAQEEIOLZbmLE3/CNE1obAOhfSNR25WmfK6qA46LNBwibjv19oAoGCCqGSM49
AwEHoUQDQgAECIzrW0fUPukVw7oMHmaLGVMUPmmBsiizo2Cw/natRyUNoPl0xLxR
ZlMCR8KdsqZ1IsSGrvlfR8W5OWcGHymbFw==
-----END EC PRIVATE KEY-----
";
    const OPENSSL_P256_KEY: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg4tluYsTf8I0TWhsA
6F9I1HblaZ8rqoDjos0HCJuO/X2hRANCAAQIjOtbR9Q+6RXDugweZosZUxQ+aYGy
KLOjYLD+dq1HJQ2g+XTEvFFmUwJHwp2ypnUixIau+V9Hxbk5ZwYfKZsX
-----END PRIVATE KEY-----
";
    const OPENSSL_P256_PUB: &str = "-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAECIzrW0fUPukVw7oMHmaLGVMUPmmB
siizo2Cw/natRyUNoPl0xLxRZlMCR8KdsqZ1IsSGrvlfR8W5OWcGHymbFw==
-----END PUBLIC KEY-----
";

    #[test]
    fn reads_openssl_keys() {
        let e = SigningKey::from_pem(OPENSSL_ED25519_KEY.as_bytes()).unwrap();
        let e_pub = PublicKey::from_pem(OPENSSL_ED25519_PUB.as_bytes()).unwrap();
        assert_eq!(e.algorithm(), Algorithm::Ed25519);
        assert_eq!(e.public_key(), e_pub);
        // The raw key is the last 32 bytes of the SPKI: base64 "KVK7PA02..."
        assert_eq!(
            &e_pub.raw_public_key_bytes()[..4],
            &[0x29, 0x52, 0xbb, 0x3c]
        );

        let p = SigningKey::from_pem(OPENSSL_P256_KEY.as_bytes()).unwrap();
        let p_sec1 = SigningKey::from_pem(OPENSSL_P256_SEC1.as_bytes()).unwrap();
        let p_pub = PublicKey::from_pem(OPENSSL_P256_PUB.as_bytes()).unwrap();
        assert_eq!(p.algorithm(), Algorithm::P256);
        assert_eq!(p.public_key(), p_pub);
        assert_eq!(p_sec1.public_key(), p_pub);
        let raw = p_pub.raw_public_key_bytes();
        assert_eq!(raw.len(), 65);
        assert_eq!(&raw[..4], &[0x04, 0x08, 0x8c, 0xeb]);

        // Our PEM output re-reads to the same key.
        let again = SigningKey::from_pem(p.to_pkcs8_pem().unwrap().as_bytes()).unwrap();
        assert_eq!(again.key_id(), p.key_id());
        let again = PublicKey::from_pem(e_pub.to_spki_pem().unwrap().as_bytes()).unwrap();
        assert_eq!(again, e_pub);
    }
}
