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
//!
//! One module per job: [`ids`] (component ids, UUIDs, digests, the release
//! version), [`manifest`], [`text`] (release notes and CVEs), [`cose`]
//! (signatures and the authentication wrapper), [`envelope`],
//! [`keyset`] and [`ab`] (an A/B release, for tests). Everything is re-exported here, so `encode::X` names every
//! piece.

use crate::cbor::{Value, ValueExt};

pub mod ab;
pub mod cose;
pub mod envelope;
pub mod ids;
pub mod keyset;
pub mod manifest;
pub mod text;

#[cfg(test)]
mod fixtures;

pub use ab::*;
pub use cose::*;
pub use envelope::*;
pub use ids::*;
pub use keyset::*;
pub use manifest::*;
pub use text::*;

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

/// A command sequence `[cmd, arg, cmd, arg, ...]` as a byte string.
fn seq_bstr(items: Vec<Value>) -> Value {
    Value::Bytes(Value::Array(items).to_bytes())
}

/// An unsigned CBOR integer.
fn uint(n: u64) -> Value {
    Value::from(n)
}

/// A CBOR integer (a label, a command code, a negative algorithm id).
fn int(n: i64) -> Value {
    Value::from(n)
}
