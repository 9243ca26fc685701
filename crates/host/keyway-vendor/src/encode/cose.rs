//! COSE: the `COSE_Sign1` signatures over a `SUIT_Digest`, the
//! algorithm labels they carry, and the `SUIT_Authentication` wrapper.

use super::{EncodeError, bstr_wrapped, int, suit_digest};
use crate::cbor::{Value, ValueExt};
use crate::keys::{Algorithm, SigningKey, hex};
use crate::labels as l;

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
    Value::Map(vec![(int(l::COSE_HDR_ALG), int(alg))]).to_bytes()
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
        Some(k) => Value::Map(vec![(int(l::COSE_HDR_KID), Value::from(k))]),
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

/// Refuses an empty key list or one that names a key twice (by key id):
/// what both builders require of the keys they sign with.
pub(super) fn check_signing_keys(keys: &[SigningKey]) -> Result<(), EncodeError> {
    if keys.is_empty() {
        return Err(EncodeError::NoSigningKeys);
    }
    for (n, k) in keys.iter().enumerate() {
        let kid = k.key_id();
        if keys[..n].iter().any(|o| o.key_id() == kid) {
            return Err(EncodeError::DuplicateSigningKey(hex(&kid)));
        }
    }
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::super::fixtures::*;

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
}
