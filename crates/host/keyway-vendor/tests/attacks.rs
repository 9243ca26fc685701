//! Attack tests: each is named after the attack and asserts the exact
//! refusal. They run the device verifier (`keyway_suit`), the function a
//! lock runs, on envelopes made by the vendor encoder and then tampered with.

use keyway_suit::{self as suit, Error, KeyId};
use keyway_vendor::cbor::{Value, ValueExt};
use keyway_vendor::check::describe;
use keyway_vendor::encode::{
    BuiltEnvelope, Cve, EnvelopeBuilder, ReleaseVersion, SignOptions, assemble_envelope,
    encode_manifest, manifest_value, sign_digest, suit_digest_of_hash,
};
use keyway_vendor::keys::{Algorithm, SigningKey};

mod common;

use common::{CLASS, NOW, VENDOR, Vendor, device_key, keyset_signed_by, payload};

fn kid(k: &SigningKey) -> KeyId {
    KeyId(k.key_id())
}

/// A vendor with root keys, two release signers, and a lock provisioned
/// with the roots as anchors.
struct World {
    root: SigningKey,
    root2: SigningKey,
    signer: SigningKey,
    signer2: SigningKey,
    anchors: suit::TrustAnchors,
    identity: suit::DeviceIdentity,
}

impl World {
    fn new() -> World {
        let Vendor {
            root,
            p256: root2,
            anchors,
            identity,
        } = Vendor::new();
        World {
            root,
            root2,
            signer: SigningKey::generate(Algorithm::Ed25519).unwrap(),
            signer2: SigningKey::generate(Algorithm::P256).unwrap(),
            anchors,
            identity,
        }
    }

    /// A key-set document signed by `root`.
    fn keyset(
        &self,
        version: u64,
        threshold: u64,
        signers: &[&SigningKey],
        revoked: &[&SigningKey],
    ) -> Vec<u8> {
        keyset_signed_by(&[&self.root], version, threshold, signers, revoked)
    }

    /// Key set version 1: `signer` and `signer2`, both required.
    fn two_of_two(&self) -> Vec<u8> {
        self.keyset(1, 2, &[&self.signer, &self.signer2], &[])
    }

    /// [`World::release`] carrying the key-set document `keyset`.
    fn carrying(&self, sequence: u64, keys: &[&SigningKey], keyset: Vec<u8>) -> EnvelopeBuilder {
        EnvelopeBuilder {
            keyset: Some(keyset),
            ..self.release(sequence, keys)
        }
    }

    fn release(&self, sequence: u64, keys: &[&SigningKey]) -> EnvelopeBuilder {
        EnvelopeBuilder {
            sequence,
            version: ReleaseVersion::new(2, 1, sequence),
            vendor_domain: VENDOR.into(),
            class_name: CLASS.into(),
            notes: Some(format!(
                "# Release {sequence}\n\nFixes the keypad lockout bypass."
            )),
            cves: vec!["CVE-2025-10001:high".parse::<Cve>().unwrap()],
            payload: payload(),
            keys: keys.iter().map(|k| (*k).clone()).collect(),
            ..EnvelopeBuilder::default()
        }
    }

    fn verify<'a>(
        &self,
        env: &'a [u8],
        state: &suit::DeviceState,
    ) -> Result<suit::Verified<'a>, Error> {
        let v = suit::verify_envelope(env, &self.anchors, &self.identity, state)?;
        if let (Some(exp), Some(p)) = (v.payload.as_ref(), v.integrated_payload()) {
            suit::verify_payload(exp, p, 512)?;
        }
        v.manifest.policy.check(&suit::PolicyInputs {
            now: Some(NOW),
            battery_mwh: 10_000,
            consent: true,
        })?;
        Ok(v)
    }

    /// Why a lock holding sequence 4 refuses `env`.
    fn refuses(&self, env: &[u8]) -> Error {
        self.verify(env, &suit::DeviceState::new(4)).unwrap_err()
    }

    /// Why a lock holding sequence 4 refuses `b`'s envelope.
    fn refusal(&self, b: &EnvelopeBuilder) -> Error {
        self.refuses(&envelope(b))
    }

    /// Why a lock holding sequence 4 refuses release 5, signed by the
    /// root, after `edit`.
    fn refusal_of(&self, edit: impl FnOnce(&mut EnvelopeBuilder)) -> Error {
        let mut b = self.release(5, &[&self.root]);
        edit(&mut b);
        self.refusal(&b)
    }

    fn stored(&self, doc: &[u8], floor: u64) -> suit::DeviceState {
        suit::DeviceState {
            sequence_floor: Some(floor),
            keyset: Some(suit::KeySet::from_document(doc, &self.anchors).unwrap()),
        }
    }
}

/// `built`'s signed head (its authentication wrapper and manifest) with
/// the text member `text`, no key set and the payload `payload`.
fn repacked(built: &BuiltEnvelope, text: Option<&[u8]>, payload: &[u8]) -> Vec<u8> {
    assemble_envelope(&built.auth, &built.manifest, text, None, Some(payload))
}

fn envelope(b: &EnvelopeBuilder) -> Vec<u8> {
    b.build().unwrap().envelope
}

/// Byte offset of `needle` in `hay`.
fn find(hay: &[u8], needle: &[u8]) -> usize {
    hay.windows(needle.len())
        .position(|w| w == needle)
        .expect("needle present")
}

#[test]
fn genuine_release_verifies_with_root_keys_and_with_a_key_set() {
    let w = World::new();
    let env = envelope(&w.release(5, &[&w.root]));
    let v = w.verify(&env, &suit::DeviceState::new(4)).unwrap();
    assert_eq!(v.sequence, 5);
    assert_eq!(v.signers.as_slice(), &[kid(&w.root)]);
    let notes = v.notes.unwrap();
    assert_eq!(notes.cves().next().unwrap().id, "CVE-2025-10001");

    let b = w.carrying(6, &[&w.signer, &w.signer2], w.two_of_two());
    let env = envelope(&b);
    let v = w.verify(&env, &suit::DeviceState::new(5)).unwrap();
    assert_eq!(
        v.new_keyset.as_ref().unwrap().version,
        1,
        "the lock learns the key set from the update"
    );
    assert_eq!(v.signers.len(), 2);
}

#[test]
fn attack_arbitrary_payload() {
    let w = World::new();
    let b = w.release(5, &[&w.root]);
    let mut env = envelope(&b);
    let at = find(&env, &b.payload[..64]);
    for (i, x) in env[at..at + b.payload.len()].iter_mut().enumerate() {
        *x = (i % 251) as u8;
    }
    assert_eq!(w.refuses(&env), Error::PayloadDigestMismatch);
}

#[test]
fn attack_modified_manifest() {
    let w = World::new();
    let b = w.release(5, &[&w.root]);
    let built = b.build().unwrap();
    // Raise the sequence number inside the signed manifest: still valid CBOR.
    let mut params = b.manifest_params(built.text.as_deref());
    params.sequence = 500;
    let forged = encode_manifest(&params);
    let env = assemble_envelope(
        &built.auth,
        &forged,
        built.text.as_deref(),
        None,
        Some(&b.payload),
    );
    assert_eq!(w.refuses(&env), Error::ManifestDigestMismatch);
    // Flip one bit anywhere in the manifest.
    let mut env = built.envelope.clone();
    let at = find(&env, &built.manifest) + built.manifest.len() / 2;
    env[at] ^= 0x04;
    assert!(w.verify(&env, &suit::DeviceState::new(4)).is_err());
}

#[test]
fn attack_signature_by_unknown_key() {
    let w = World::new();
    let mallory = SigningKey::generate(Algorithm::Ed25519).unwrap();
    let env = envelope(&w.release(5, &[&mallory]));
    let err = w.refuses(&env);
    assert_eq!(
        err,
        Error::BelowThreshold {
            valid: 0,
            required: 1,
            unknown: Some(kid(&mallory)),
            revoked: None,
            keyset: false,
            anonymous: 0,
        }
    );
    assert!(
        describe(&err).contains(&format!("signature by unknown key {}", kid(&mallory))),
        "{err}"
    );
}

#[test]
fn attack_signatures_below_threshold() {
    let w = World::new();
    let b = w.carrying(5, &[&w.signer], w.two_of_two());
    let err = w.refusal(&b);
    assert!(
        matches!(
            err,
            Error::BelowThreshold {
                valid: 1,
                required: 2,
                keyset: false,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn attack_same_key_counted_twice() {
    let w = World::new();
    let b = w.carrying(5, &[&w.signer], w.two_of_two());
    let built = b.build().unwrap();
    // Two signatures, both by `signer`; without key ids too, the verifier
    // must not count one key twice.
    for include_kid in [true, false] {
        let auth = sign_digest(
            &built.manifest,
            &[w.signer.clone(), w.signer.clone()],
            &SignOptions {
                include_kid,
                ..SignOptions::default()
            },
        );
        let env = assemble_envelope(
            &auth,
            &built.manifest,
            built.text.as_deref(),
            b.keyset.as_deref(),
            Some(&b.payload),
        );
        assert_eq!(
            w.refuses(&env),
            Error::DuplicateSigner {
                key: kid(&w.signer)
            },
            "include_kid {include_kid}"
        );
    }
}

#[test]
fn attack_rollback_lower_or_equal_sequence() {
    let w = World::new();
    let env = envelope(&w.release(7, &[&w.root]));
    assert_eq!(
        w.verify(&env, &suit::DeviceState::new(7)).unwrap_err(),
        Error::Rollback { floor: 7, got: 7 }
    );
    assert_eq!(
        w.verify(&env, &suit::DeviceState::new(9)).unwrap_err(),
        Error::Rollback { floor: 9, got: 7 }
    );
    w.verify(&env, &suit::DeviceState::new(6)).unwrap();
}

#[test]
fn attack_wrong_device_class() {
    let err = World::new().refusal_of(|b| b.class_name = "padlock-1".into());
    assert!(matches!(err, Error::WrongClass { .. }), "{err}");
}

#[test]
fn attack_wrong_vendor() {
    let err = World::new().refusal_of(|b| b.vendor_domain = "other-vendor.example".into());
    assert!(matches!(err, Error::WrongVendor { .. }), "{err}");
}

#[test]
fn attack_truncated_payload() {
    let w = World::new();
    let b = w.release(5, &[&w.root]);
    let env = envelope(&b);
    // The transfer stops short: the envelope verifies as a prefix, and the
    // streamed payload is refused at the end.
    let cut = &env[..env.len() - 1000];
    let v =
        suit::verify_envelope(cut, &w.anchors, &w.identity, &suit::DeviceState::new(4)).unwrap();
    let mut pv = suit::PayloadVerifier::new(v.payload.as_ref().unwrap());
    pv.update(v.integrated.unwrap().available).unwrap();
    assert_eq!(
        pv.finish().unwrap_err(),
        Error::PayloadTruncated {
            expected: 40_000,
            got: 39_000
        }
    );
    // A shorter payload re-packed into an envelope is refused up front.
    let built = b.build().unwrap();
    let env = repacked(&built, built.text.as_deref(), &b.payload[..39_999]);
    assert_eq!(
        w.refuses(&env),
        Error::PayloadTruncated {
            expected: 40_000,
            got: 39_999
        }
    );
}

#[test]
fn attack_payload_with_extra_trailing_bytes() {
    let w = World::new();
    let b = w.release(5, &[&w.root]);
    let built = b.build().unwrap();
    let mut longer = b.payload.clone();
    longer.extend_from_slice(b"and then some");
    let env = repacked(&built, built.text.as_deref(), &longer);
    assert_eq!(w.refuses(&env), Error::PayloadTooLong { expected: 40_000 });
    // Endless data while streaming: cut off at the first extra byte.
    let v = w
        .verify(&built.envelope, &suit::DeviceState::new(4))
        .unwrap();
    let mut pv = suit::PayloadVerifier::new(v.payload.as_ref().unwrap());
    pv.update(&b.payload).unwrap();
    assert_eq!(
        pv.update(&[0; 4096]).unwrap_err(),
        Error::PayloadTooLong { expected: 40_000 }
    );
    // Bytes after the envelope itself.
    let mut env = built.envelope.clone();
    env.extend_from_slice(&[0; 16]);
    assert_eq!(w.refuses(&env), Error::TrailingBytes { count: 16 });
}

#[test]
fn attack_oversize_length_fields() {
    let w = World::new();
    let built = w.release(5, &[&w.root]).build().unwrap();
    let env = built.envelope;
    // The manifest's bstr head claims 4 GiB.
    let m = find(&env, &built.manifest);
    let head = match (env[m - 2], env[m - 3]) {
        (0x58, _) => 2,
        (_, 0x59) => 3,
        other => panic!("unexpected manifest head {other:?}"),
    };
    let mut huge = env[..m - head].to_vec();
    huge.extend_from_slice(&[0x5a, 0xff, 0xff, 0xff, 0xff]);
    huge.extend_from_slice(&env[m..]);
    assert!(matches!(
        w.verify(&huge, &suit::DeviceState::new(4)),
        Err(Error::Malformed { .. })
    ));
    // The auth wrapper claims 2^64-1 signatures.
    let mut auth = built.auth.clone();
    auth[0] = 0x9b;
    let mut tail = vec![0xff; 8];
    tail.extend_from_slice(&built.auth[1..]);
    auth.truncate(1);
    auth.extend_from_slice(&tail);
    let env = assemble_envelope(&auth, &built.manifest, built.text.as_deref(), None, None);
    assert!(matches!(
        w.verify(&env, &suit::DeviceState::new(4)),
        Err(Error::Malformed { .. })
    ));
    // The envelope map claims 2^32 members.
    let mut env2 = env.clone();
    env2[2] = 0xba;
    env2.splice(3..3, [0xff, 0xff, 0xff]);
    assert!(matches!(
        w.verify(&env2, &suit::DeviceState::new(4)),
        Err(Error::Malformed { .. })
    ));
}

#[test]
fn attack_expired_use_before() {
    let w = World::new();
    let err = w.refusal_of(|b| b.use_before = Some(NOW - 1));
    assert_eq!(
        err,
        Error::Expired {
            use_before: NOW - 1,
            now: NOW
        }
    );
    let mut b = w.release(5, &[&w.root]);
    b.use_before = Some(NOW + 3600);
    w.verify(&envelope(&b), &suit::DeviceState::new(4)).unwrap();
}

#[test]
fn attack_release_notes_from_another_release_mix_and_match() {
    let w = World::new();
    let old = w.release(5, &[&w.root]).build().unwrap();
    let mut nb = w.release(6, &[&w.root]);
    nb.cves = vec![];
    nb.notes = Some("# Release 6\n\nNo security fixes.".into());
    let new = nb.build().unwrap();
    // Release 6 shipped with release 5's notes (which list a CVE fix).
    let env = repacked(&new, old.text.as_deref(), &nb.payload);
    assert_eq!(w.refuses(&env), Error::SeveredDigestMismatch { key: 23 });
    // Notes stripped from an envelope whose manifest binds them.
    let env = repacked(&new, None, &nb.payload);
    assert_eq!(w.refuses(&env), Error::SeveredMissing { key: 23 });
}

#[test]
fn attack_key_revoked_by_key_set_rotation() {
    let w = World::new();
    let v1 = w.keyset(1, 1, &[&w.signer], &[]);
    let v2 = w.keyset(2, 1, &[&w.signer2], &[&w.signer]);
    // The lock learnt v2 from an earlier update. An attacker with the old
    // signer's key signs a release and carries no key set.
    let env = envelope(&w.release(9, &[&w.signer]));
    let err = w.verify(&env, &w.stored(&v2, 8)).unwrap_err();
    assert_eq!(
        err,
        Error::BelowThreshold {
            valid: 0,
            required: 1,
            unknown: None,
            revoked: Some(kid(&w.signer)),
            keyset: false,
            anonymous: 0,
        }
    );
    assert!(describe(&err).contains("revoked key"), "{err}");
    // ...or carries the old key set v1, which listed the signer.
    let b = w.carrying(9, &[&w.signer], v1);
    assert_eq!(
        w.verify(&envelope(&b), &w.stored(&v2, 8)).unwrap_err(),
        Error::KeySetRollback { stored: 2, got: 1 }
    );
    // The new signer is accepted.
    w.verify(&envelope(&w.release(9, &[&w.signer2])), &w.stored(&v2, 8))
        .unwrap();
}

#[test]
fn attack_key_set_rollback() {
    let w = World::new();
    let v1 = w.keyset(1, 1, &[&w.signer], &[]);
    let v3 = w.keyset(3, 1, &[&w.signer], &[]);
    let mut b = w.carrying(9, &[&w.signer], v1);
    assert_eq!(
        w.verify(&envelope(&b), &w.stored(&v3, 8)).unwrap_err(),
        Error::KeySetRollback { stored: 3, got: 1 }
    );
    // Same version, different contents: refused too.
    let v3b = w.keyset(3, 1, &[&w.signer, &w.signer2], &[]);
    b.keyset = Some(v3b);
    assert_eq!(
        w.verify(&envelope(&b), &w.stored(&v3, 8)).unwrap_err(),
        Error::KeySetConflict { version: 3 }
    );
}

#[test]
fn attack_key_set_not_signed_by_the_root() {
    let w = World::new();
    let fake = keyset_signed_by(&[&w.signer], 5, 1, &[&w.signer], &[]);
    let b = w.carrying(9, &[&w.signer], fake);
    let err = w
        .verify(&envelope(&b), &suit::DeviceState::new(8))
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::BelowThreshold {
                keyset: true,
                valid: 0,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn root_threshold_two_of_two_for_key_sets() {
    let w = World::new();
    let anchors = suit::TrustAnchors::new(&[device_key(&w.root), device_key(&w.root2)], 2).unwrap();
    let one = w.keyset(1, 1, &[&w.signer], &[]);
    assert!(matches!(
        suit::KeySet::from_document(&one, &anchors),
        Err(Error::BelowThreshold {
            valid: 1,
            required: 2,
            keyset: true,
            ..
        })
    ));
    let both = keyset_signed_by(&[&w.root, &w.root2], 1, 1, &[&w.signer], &[]);
    assert_eq!(
        suit::KeySet::from_document(&both, &anchors)
            .unwrap()
            .version,
        1
    );
}

#[test]
fn every_signature_algorithm_label_verifies() {
    let w = World::new();
    for ed in [
        keyway_vendor::encode::Ed25519Alg::EdDsa,
        keyway_vendor::encode::Ed25519Alg::Ed25519,
    ] {
        let mut b = w.release(5, &[&w.root, &w.root2]);
        b.sign_options = SignOptions {
            ed25519_alg: ed,
            ..SignOptions::default()
        };
        let env = envelope(&b);
        let v = w.verify(&env, &suit::DeviceState::new(4)).unwrap();
        assert_eq!(v.signers.len(), 2);
    }
}

#[test]
fn policy_conditions_travel_in_the_manifest() {
    let w = World::new();
    let mut b = w.release(5, &[&w.root]);
    b.min_battery_mwh = Some(1_500);
    b.cves = vec!["CVE-2025-10002:critical".parse().unwrap()];
    let env = envelope(&b);
    let v =
        suit::verify_envelope(&env, &w.anchors, &w.identity, &suit::DeviceState::new(4)).unwrap();
    let p = v.manifest.policy;
    assert_eq!(p.minimum_battery_mwh, Some(1_500));
    assert_eq!(
        p.update_authorized.priority(),
        Some(-2),
        "critical fixes carry the most urgent priority"
    );
    let low = suit::PolicyInputs {
        now: Some(NOW),
        battery_mwh: 1_499,
        consent: true,
    };
    assert_eq!(
        p.check(&low).unwrap_err(),
        Error::BatteryTooLow {
            required_mwh: 1_500,
            have_mwh: 1_499
        }
    );
    let refused = suit::PolicyInputs {
        battery_mwh: 2_000,
        consent: false,
        ..low
    };
    assert_eq!(p.check(&refused).unwrap_err(), Error::NotAuthorized);
}

/// A signed delta release (base: the world's usual payload, output: that
/// payload with one byte changed) whose install sequence is replaced by
/// `install` (`None`: the encoder's own). Returns the envelope.
fn delta_release(w: &World, install: Option<Vec<Value>>) -> Vec<u8> {
    let mut b = w.release(6, &[&w.root]);
    let old = b.payload.clone();
    b.payload[100] ^= 1;
    b.delta_from = Some(old);
    let built = b.build().unwrap();
    let Some(install) = install else {
        return built.envelope;
    };
    let patch = built.patch.unwrap();
    let mut m = manifest_value(&b.delta_manifest_params(built.text.as_deref(), &patch));
    let Value::Map(entries) = &mut m else {
        unreachable!()
    };
    for (k, v) in entries.iter_mut() {
        if *k == Value::from(20) {
            *v = Value::Bytes(Value::Array(install.clone()).to_bytes());
        }
    }
    let manifest = m.to_bytes();
    let auth = sign_digest(&manifest, &b.keys, &b.sign_options);
    assemble_envelope(&auth, &manifest, built.text.as_deref(), None, Some(&patch))
}

/// The patch's fetch and image-match on component 1, as the encoder writes
/// them, for a hand-made install sequence.
fn fetch_patch(w: &World) -> Vec<Value> {
    let env = delta_release(w, None);
    let v = suit::inspect_envelope(&env).unwrap();
    let p = v.payload.unwrap();
    let i = |n: i64| Value::from(n);
    vec![
        i(12),
        i(1),
        i(20),
        Value::Map(vec![
            (i(21), Value::from("#firmware")),
            (i(3), Value::Bytes(suit_digest_of_hash(p.digest))),
            (i(14), Value::from(p.size.unwrap())),
        ]),
        i(21),
        i(2),
        i(3),
        i(15),
    ]
}

fn apply_delta(patch: i64, base: i64) -> Vec<Value> {
    let i = |n: i64| Value::from(n);
    vec![
        i(12),
        i(0),
        i(20),
        Value::Map(vec![(i(22), i(patch)), (i(-257), i(base))]),
        i(-257),
        i(2),
        i(3),
        i(15),
    ]
}

#[test]
fn genuine_delta_release_binds_base_and_output() {
    let w = World::new();
    let env = delta_release(&w, None);
    let v = w.verify(&env, &suit::DeviceState::new(4)).unwrap();
    let d = v.delta.expect("a delta binding");
    assert_eq!(d.base_size, 40_000);
    assert_eq!(d.out.size, Some(40_000));
    assert_ne!(d.base_digest, d.out.digest);
    assert_ne!(Some(d.out), v.payload);
}

/// The refusal of a delta release whose install sequence fetches the
/// patch, runs `prefix` before and applies it with these components.
fn refusal(w: &World, prefix: Vec<Value>, patch: i64, base: i64) -> Error {
    let mut install = prefix;
    install.extend(fetch_patch(w));
    install.extend(apply_delta(patch, base));
    let env = delta_release(w, Some(install));
    w.refuses(&env)
}

const NO_BASE: Error = Error::Missing {
    part: suit::Part::Commands,
    what: "delta base image-match",
};

#[test]
fn attack_delta_without_a_base_condition() {
    // A patch applied to "whatever is installed": no image-match binds the base.
    let w = World::new();
    assert_eq!(refusal(&w, Vec::new(), 1, 2), NO_BASE);
}

#[test]
fn attack_delta_applied_onto_its_own_output() {
    let w = World::new();
    assert_eq!(refusal(&w, Vec::new(), 1, 0), NO_BASE);
}

#[test]
fn attack_delta_patch_source_is_not_the_signed_payload() {
    // The "patch" named by source-component is the installed image, not the
    // fetched, digest-checked payload.
    let w = World::new();
    let env = delta_release(&w, None);
    let d = suit::inspect_envelope(&env).unwrap().delta.unwrap();
    let i = |n: i64| Value::from(n);
    let base = vec![
        i(12),
        i(2),
        i(20),
        Value::Map(vec![
            (i(3), Value::Bytes(suit_digest_of_hash(d.base_digest))),
            (i(14), Value::from(d.base_size)),
        ]),
        i(3),
        i(15),
    ];
    assert_eq!(
        refusal(&w, base, 2, 2),
        Error::Missing {
            part: suit::Part::Commands,
            what: "delta output size or fetched patch"
        }
    );
}

#[test]
fn attack_delta_patch_replaced() {
    let w = World::new();
    let mut env = delta_release(&w, None);
    let at = suit::inspect_envelope(&env)
        .unwrap()
        .integrated
        .unwrap()
        .offset
        + 100;
    env[at] ^= 0x10;
    assert_eq!(w.refuses(&env), Error::PayloadDigestMismatch);
}
