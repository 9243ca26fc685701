//! An A/B release (SUIT draft's example 3): one manifest for a lock with
//! two image slots. The shared sequence's try-each sets the image digest
//! and size per component slot, the install sequence's try-each the URI
//! (`#slot0`/`#slot1`). Not made by the CLI ([`super::EnvelopeBuilder`]
//! has one image); what tests of the verifier and of the lock's slot
//! choice send.

use super::{
    SignOptions, class_uuid, int, seq_bstr, sha256, sign_digest, suit_digest_of_hash, uint,
    vendor_uuid,
};
use crate::cbor::{Value, ValueExt};
use crate::keys::SigningKey;

/// What an A/B envelope says and carries.
#[derive(Debug, Clone, Copy)]
pub struct AbRelease<'a> {
    /// The vendor domain the manifest's vendor id is made from.
    pub vendor_domain: &'a str,
    /// The device class the manifest's class id is made from.
    pub class_name: &'a str,
    /// The manifest's sequence number.
    pub sequence: u64,
    /// The image for slot 0 and the one for slot 1.
    pub images: [&'a [u8]; 2],
}

impl AbRelease<'_> {
    /// The envelope signed by `keys` (default options), integrating the
    /// images of the slots in `carry` in that order (members in insertion
    /// order: a lock installs the last one, so `[1, 0]` is allowed).
    pub fn envelope(&self, keys: &[SigningKey], carry: &[u8]) -> Vec<u8> {
        let manifest = self.manifest();
        let auth = sign_digest(&manifest, keys, &SignOptions::default());
        let mut members = vec![
            (int(2), Value::Bytes(auth)),
            (int(3), Value::Bytes(manifest)),
        ];
        for &slot in carry {
            let image = self.images[usize::from(slot != 0)];
            members.push((
                Value::from(format!("#slot{slot}")),
                Value::Bytes(image.to_vec()),
            ));
        }
        Value::Tag(107, Box::new(Value::Map(members))).to_bytes_as_is()
    }

    /// The manifest's bytes (unsigned).
    pub fn manifest(&self) -> Vec<u8> {
        let v = vendor_uuid(self.vendor_domain);
        let c = class_uuid(&v, self.class_name);
        // `set-component-index slot`, a condition, `override-parameters`.
        let alt = |slot: i64, params: Vec<(Value, Value)>| {
            seq_bstr(vec![
                int(20),
                Value::Map(vec![(int(5), int(slot))]),
                int(5),
                int(15),
                int(20),
                Value::Map(params),
            ])
        };
        let per_slot = |slot: i64, image: &[u8]| {
            alt(
                slot,
                vec![
                    (int(3), Value::Bytes(suit_digest_of_hash(&sha256(image)))),
                    (int(14), uint(image.len() as u64)),
                ],
            )
        };
        let shared = seq_bstr(vec![
            int(12),
            int(0),
            int(20),
            Value::Map(vec![
                (int(1), Value::Bytes(v.to_vec())),
                (int(2), Value::Bytes(c.to_vec())),
            ]),
            int(1),
            int(15),
            int(2),
            int(15),
            int(15),
            Value::Array(vec![
                per_slot(0, self.images[0]),
                per_slot(1, self.images[1]),
            ]),
        ]);
        let common = Value::Map(vec![
            (
                int(2),
                Value::Array(vec![Value::Array(vec![Value::Bytes(vec![0])])]),
            ),
            (int(4), shared),
        ]);
        let install = seq_bstr(vec![
            int(12),
            int(0),
            int(15),
            Value::Array(vec![
                alt(0, vec![(int(21), Value::from("#slot0"))]),
                alt(1, vec![(int(21), Value::from("#slot1"))]),
            ]),
            int(21),
            int(2),
            int(3),
            int(15),
        ]);
        Value::Map(vec![
            (int(1), int(1)),
            (int(2), uint(self.sequence)),
            (int(3), Value::Bytes(common.to_bytes())),
            (int(20), install),
        ])
        .to_bytes()
    }
}
