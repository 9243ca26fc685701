//! Delegated signing keys: a key set, signed by a threshold of the root
//! keys, names the operational signers, their threshold and revoked keys.
//! Its version only ever goes up on the device.

use sha2::{Digest, Sha256};

use crate::auth::{SignerSet, authenticate};
use crate::cbor::{Key, Reader};
use crate::error::{Error, Limit, Part};
use crate::keys::{KeyId, KeyList, PublicKey, TrustAnchors, push_distinct};
use crate::labels::*;

/// Most revoked key ids in one key set.
pub const MAX_REVOKED: usize = 16;

/// A verified key set, small enough to store in the device's state area.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeySet {
    /// Version; the device never accepts a lower one.
    pub version: u32,
    /// Distinct signer signatures a manifest needs.
    pub threshold: u8,
    /// The delegated signing keys.
    pub signers: KeyList,
    /// Key ids that must never be accepted again.
    pub revoked: heapless::Vec<KeyId, MAX_REVOKED>,
    /// SHA-256 of the key-set body, to tell two sets of one version apart.
    pub digest: [u8; 32],
}

impl KeySet {
    /// Decodes a key-set document and checks it is signed by the root
    /// threshold of `anchors`.
    pub fn from_document(doc: &[u8], anchors: &TrustAnchors) -> Result<Self, Error> {
        let mut set = KeySet::EMPTY;
        set.read_document(doc, anchors)?;
        Ok(set)
    }

    pub(crate) const EMPTY: KeySet = KeySet {
        version: 0,
        threshold: 0,
        signers: KeyList::new(),
        revoked: heapless::Vec::new(),
        digest: [0; 32],
    };

    /// [`KeySet::from_document`] in place: `self` must be empty; on an
    /// error it holds a partial key set that must not be used.
    pub(crate) fn read_document(
        &mut self,
        doc: &[u8],
        anchors: &TrustAnchors,
    ) -> Result<(), Error> {
        let mut r = Reader::new(doc, Part::KeySet);
        let n = r.map()?;
        let (mut auth, mut body) = (None, None);
        for _ in 0..n {
            match r.key()? {
                Key::Int(KEYSET_DOC_AUTH) => auth = Some(r.bytes()?),
                Key::Int(KEYSET_DOC_BODY) => body = Some(r.raw_item()?),
                _ => r.skip()?,
            }
        }
        r.finish()?;
        let missing = |what| Error::Missing {
            part: Part::KeySet,
            what,
        };
        let auth = auth.ok_or(missing("root sigs (1)"))?;
        let wrapped = body.ok_or(missing("key set (2)"))?;
        authenticate(
            auth,
            wrapped,
            SignerSet {
                keys: anchors.keys(),
                threshold: usize::from(anchors.threshold()),
                revoked: &[],
                keyset: true,
            },
        )?;
        let mut br = Reader::new(wrapped, Part::KeySet);
        self.read_body(br.bytes()?)?;
        self.digest.copy_from_slice(&Sha256::digest(wrapped));
        Ok(())
    }

    /// Reads a key-set document's version without checking its
    /// signatures (for display only).
    pub fn peek_version(doc: &[u8]) -> Result<u32, Error> {
        let mut r = Reader::new(doc, Part::KeySet);
        let n = r.map()?;
        for _ in 0..n {
            match r.key()? {
                Key::Int(KEYSET_DOC_BODY) => {
                    let mut set = KeySet::EMPTY;
                    set.read_body(r.bytes()?)?;
                    return Ok(set.version);
                }
                _ => r.skip()?,
            }
        }
        Err(Error::Missing {
            part: Part::KeySet,
            what: "key set (2)",
        })
    }

    fn read_body(&mut self, body: &[u8]) -> Result<(), Error> {
        let set = self;
        let mut r = Reader::new(body, Part::KeySet);
        let n = r.map()?;
        let (mut have_version, mut threshold) = (false, 0u64);
        for _ in 0..n {
            match r.key()? {
                Key::Int(KEYSET_VERSION) => {
                    set.version = u32::try_from(r.u64()?).map_err(|_| Error::Malformed {
                        part: Part::KeySet,
                        offset: r.position(),
                        expected: "u32",
                    })?;
                    have_version = true;
                }
                Key::Int(KEYSET_THRESHOLD) => threshold = r.u64()?,
                Key::Int(KEYSET_SIGNERS) => {
                    let k = r.array_at_most(crate::keys::MAX_KEYS, Limit::Keys)?;
                    for _ in 0..k {
                        push_distinct(&mut set.signers, PublicKey::decode_cose(&mut r)?)?;
                    }
                }
                Key::Int(KEYSET_REVOKED) => {
                    let k = r.array_at_most(MAX_REVOKED, Limit::Revoked)?;
                    for _ in 0..k {
                        let id = KeyId(*r.bytes_n::<8>("8-byte kid")?);
                        // Cannot overflow: bounded just above.
                        let _ = set.revoked.push(id);
                    }
                }
                _ => r.skip()?,
            }
        }
        r.finish()?;
        if !have_version {
            return Err(Error::Missing {
                part: Part::KeySet,
                what: "version (1)",
            });
        }
        if threshold == 0 || threshold > set.signers.len() as u64 {
            return Err(Error::KeySetThreshold {
                threshold: u32::try_from(threshold).unwrap_or(u32::MAX),
                signers: set.signers.len(),
            });
        }
        set.threshold = threshold as u8;
        if set
            .signers
            .iter()
            .any(|k| set.revoked.contains(&k.key_id()))
        {
            return Err(Error::Malformed {
                part: Part::KeySet,
                offset: 0,
                expected: "no revoked signer",
            });
        }
        Ok(())
    }
}
