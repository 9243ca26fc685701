//! The SUIT authentication wrapper: a digest of the signed bytes and one or
//! more COSE_Sign1 blocks over that digest, counted against a k-of-n
//! threshold of distinct, unrevoked keys.

use sha2::{Digest, Sha256};

use crate::cbor::{Key, Reader};
use crate::error::{Error, Limit, Part};
use crate::keys::{Algorithm, KeyId, PublicKey};
use crate::labels::*;

/// Most authentication blocks in one wrapper.
pub const MAX_SIGNATURES: usize = 8;
/// Largest COSE protected header accepted.
const MAX_PROTECTED: usize = 64;
/// Largest encoded SUIT_Digest accepted as the COSE payload.
const MAX_SIGNED_DIGEST: usize = 64;

/// The distinct keys whose signatures verified.
pub type Signers = heapless::Vec<KeyId, MAX_SIGNATURES>;

/// Who may sign, and how many must.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SignerSet<'a> {
    pub keys: &'a [PublicKey],
    pub threshold: usize,
    pub revoked: &'a [KeyId],
    /// Whether this authenticates a key set (for error messages).
    pub keyset: bool,
}

/// A decoded `SUIT_Digest`, SHA-256 only.
pub(crate) fn decode_digest(bytes: &[u8], part: Part) -> Result<&[u8; 32], Error> {
    let mut r = Reader::new(bytes, part);
    let n = r.array()?;
    if n < 2 {
        return Err(Error::Missing {
            part,
            what: "alg and digest",
        });
    }
    let alg = r.i64()?;
    if alg != COSE_ALG_SHA256 {
        return Err(Error::UnsupportedDigest(alg));
    }
    let d = r.bytes_n::<32>("32 SHA-256 digest bytes")?;
    for _ in 2..n {
        r.skip()?;
    }
    r.finish()?;
    Ok(d)
}

/// Checks the wrapper in `auth` against `signed` and `set`. Returns the
/// distinct signers when at least `set.threshold` of them verified.
///
/// Not inlined: its frame (the Sig_structure buffer) must not add to the
/// caller's, nor to the signature check's beyond one call deep.
#[inline(never)]
pub(crate) fn authenticate(
    auth: &[u8],
    signed: &[u8],
    set: SignerSet<'_>,
) -> Result<Signers, Error> {
    let mut r = Reader::new(auth, Part::Authentication);
    let n = r.array()?;
    if n < 2 {
        return Err(Error::Missing {
            part: Part::Authentication,
            what: "a signature",
        });
    }
    if n - 1 > MAX_SIGNATURES {
        return Err(Error::TooMany {
            what: Limit::Signatures,
            max: MAX_SIGNATURES,
        });
    }
    let digest_bstr = r.bytes()?;
    if digest_bstr.len() > MAX_SIGNED_DIGEST {
        return Err(Error::Malformed {
            part: Part::Digest,
            offset: 0,
            expected: "SHA-256 digest",
        });
    }
    let claimed = decode_digest(digest_bstr, Part::Digest)?;
    if claimed != Sha256::digest(signed).as_slice() {
        return Err(if set.keyset {
            Error::KeySetDigestMismatch
        } else {
            Error::ManifestDigestMismatch
        });
    }

    let mut signers = Signers::new();
    let mut unknown = None;
    let mut revoked = None;
    let mut anonymous = 0u8;
    for _ in 1..n {
        let block = r.bytes()?;
        let sig = Sign1::decode(block)?;
        if let Some(p) = sig.payload
            && p != digest_bstr
        {
            return Err(Error::Malformed {
                part: Part::Signature,
                offset: 0,
                expected: "payload = digest",
            });
        }
        let mut tbs = [0u8; 16 + MAX_PROTECTED + MAX_SIGNED_DIGEST];
        let message = sig_structure(&mut tbs, sig.protected, digest_bstr)
            .and_then(|len| tbs.get(..len))
            .ok_or(Error::TooMany {
                what: Limit::ProtectedHeader,
                max: MAX_PROTECTED,
            })?;

        let signer = match sig.kid {
            Some(kid) => {
                let id = kid_of(kid);
                if id.is_some_and(|id| set.revoked.contains(&id)) {
                    revoked = revoked.or(id);
                    continue;
                }
                match set
                    .keys
                    .iter()
                    .find(|k| Some(k.key_id()) == id && k.algorithm() == sig.alg)
                {
                    Some(k) => {
                        let key = k.key_id();
                        if !k.verify(message, sig.signature) {
                            return Err(Error::BadSignature { key });
                        }
                        key
                    }
                    None => {
                        // An 8-byte kid as it is; others shortened or padded.
                        unknown = unknown.or(Some(short_kid(kid)));
                        continue;
                    }
                }
            }
            None => match set
                .keys
                .iter()
                .filter(|k| k.algorithm() == sig.alg)
                .find(|k| k.verify(message, sig.signature))
            {
                Some(k) if set.revoked.contains(&k.key_id()) => {
                    revoked = revoked.or(Some(k.key_id()));
                    continue;
                }
                Some(k) => k.key_id(),
                None => {
                    // No key id to name: counted, never shown as a key.
                    anonymous += 1;
                    continue;
                }
            },
        };
        if signers.contains(&signer) {
            return Err(Error::DuplicateSigner { key: signer });
        }
        // Cannot overflow: at most MAX_SIGNATURES blocks are read.
        let _ = signers.push(signer);
    }
    r.finish()?;
    if signers.len() < set.threshold {
        return Err(Error::BelowThreshold {
            // Both fit: at most MAX_SIGNATURES signers, thresholds are u8.
            valid: u8::try_from(signers.len()).unwrap_or(u8::MAX),
            required: u8::try_from(set.threshold).unwrap_or(u8::MAX),
            unknown,
            revoked,
            keyset: set.keyset,
            anonymous,
        });
    }
    Ok(signers)
}

/// One signature block as it claims to be, before any check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignatureInfo {
    /// The algorithm family.
    pub algorithm: Algorithm,
    /// The COSE algorithm label.
    pub cose_alg: i64,
    /// The key id it names, if any.
    pub kid: Option<KeyId>,
}

/// Lists the signature blocks of an authentication wrapper without
/// verifying them (for inspection tools; never a trust decision).
pub(crate) fn list_signatures(
    auth: &[u8],
) -> Result<heapless::Vec<SignatureInfo, MAX_SIGNATURES>, Error> {
    let mut r = Reader::new(auth, Part::Authentication);
    let n = r.array()?;
    if n < 1 || n - 1 > MAX_SIGNATURES {
        return Err(Error::TooMany {
            what: Limit::Signatures,
            max: MAX_SIGNATURES,
        });
    }
    r.bytes()?;
    let mut out = heapless::Vec::new();
    for _ in 1..n {
        let sig = Sign1::decode(r.bytes()?)?;
        let _ = out.push(SignatureInfo {
            algorithm: sig.alg,
            cose_alg: sig.cose_alg,
            kid: sig.kid.map(|k| kid_of(k).unwrap_or_else(|| short_kid(k))),
        });
    }
    Ok(out)
}

fn kid_of(kid: &[u8]) -> Option<KeyId> {
    kid.try_into().ok().map(KeyId)
}

/// A kid of another length, shortened or padded for display.
fn short_kid(kid: &[u8]) -> KeyId {
    let mut id = [0u8; 8];
    for (o, i) in id.iter_mut().zip(kid) {
        *o = *i;
    }
    KeyId(id)
}

/// One decoded COSE_Sign1 block.
struct Sign1<'b> {
    protected: &'b [u8],
    alg: Algorithm,
    cose_alg: i64,
    kid: Option<&'b [u8]>,
    payload: Option<&'b [u8]>,
    signature: &'b [u8],
}

impl<'b> Sign1<'b> {
    fn decode(block: &'b [u8]) -> Result<Self, Error> {
        let mut r = Reader::new(block, Part::Signature);
        match r.tag()? {
            TAG_COSE_SIGN1 => {}
            t @ (TAG_COSE_SIGN | TAG_COSE_MAC0 | TAG_COSE_MAC) => {
                return Err(Error::UnsupportedAuthentication(t));
            }
            _ => {
                return Err(Error::Malformed {
                    part: Part::Signature,
                    offset: 0,
                    expected: "tag 18",
                });
            }
        }
        if r.array()? != 4 {
            return Err(Error::Malformed {
                part: Part::Signature,
                offset: r.position(),
                expected: "COSE_Sign1 [4]",
            });
        }
        let protected = r.bytes()?;
        if protected.len() > MAX_PROTECTED {
            return Err(Error::TooMany {
                what: Limit::ProtectedHeader,
                max: MAX_PROTECTED,
            });
        }
        let (mut alg, mut kid) = (None, None);
        let mut h = Reader::new(protected, Part::Signature);
        if !protected.is_empty() {
            read_header(&mut h, &mut alg, &mut kid)?;
            h.finish()?;
        }
        read_header(&mut r, &mut alg, &mut kid)?;
        let payload = match r.datatype()? {
            crate::cbor::Type::Null => {
                r.null()?;
                None
            }
            _ => Some(r.bytes()?),
        };
        let signature = r.bytes()?;
        r.finish()?;
        let alg = alg.ok_or(Error::Missing {
            part: Part::Signature,
            what: "alg (1)",
        })?;
        Ok(Sign1 {
            protected,
            alg: Algorithm::from_cose(alg)?,
            cose_alg: alg,
            kid,
            payload,
            signature,
        })
    }
}

fn read_header<'b>(
    r: &mut Reader<'b>,
    alg: &mut Option<i64>,
    kid: &mut Option<&'b [u8]>,
) -> Result<(), Error> {
    let n = r.map()?;
    for _ in 0..n {
        match r.key()? {
            Key::Int(COSE_HDR_ALG) => *alg = Some(r.i64()?),
            Key::Int(COSE_HDR_KID) => *kid = Some(r.bytes()?),
            _ => r.skip()?,
        }
    }
    Ok(())
}

/// A bounded writer: every write is checked, so no path can panic.
struct Out<'o> {
    buf: &'o mut [u8],
    at: usize,
}

impl Out<'_> {
    fn put(&mut self, bytes: &[u8]) -> Option<()> {
        let end = self.at.checked_add(bytes.len())?;
        self.buf.get_mut(self.at..end)?.copy_from_slice(bytes);
        self.at = end;
        Some(())
    }

    /// A CBOR head (major type and a length below 65536).
    fn head(&mut self, major: u8, len: usize) -> Option<()> {
        let m = major << 5;
        match u8::try_from(len) {
            Ok(l) if l < 24 => self.put(&[m | l]),
            Ok(l) => self.put(&[m | 24, l]),
            Err(_) => {
                let [hi, lo] = u16::try_from(len).ok()?.to_be_bytes();
                self.put(&[m | 25, hi, lo])
            }
        }
    }
}

/// Encodes `Sig_structure = ["Signature1", protected, h'', payload]` into
/// `out` and returns its length. The inputs are bounded by the caller so
/// that it always fits; `None` if it did not.
fn sig_structure(out: &mut [u8], protected: &[u8], payload: &[u8]) -> Option<usize> {
    const CONTEXT: &[u8] = b"Signature1";
    let mut o = Out { buf: out, at: 0 };
    o.head(4, 4)?;
    o.head(3, CONTEXT.len())?;
    o.put(CONTEXT)?;
    o.head(2, protected.len())?;
    o.put(protected)?;
    o.head(2, 0)?;
    o.head(2, payload.len())?;
    o.put(payload)?;
    Some(o.at)
}
