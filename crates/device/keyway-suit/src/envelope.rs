//! The outer SUIT envelope: where each member sits, without copying.
//!
//! [`Envelope::decode`] accepts either the whole envelope or a prefix that
//! ends inside the integrated payload, provided that payload is the last
//! member. A lock can then verify the manifest from its first few hundred
//! bytes and stream the payload through [`crate::PayloadVerifier`].

use crate::cbor::{Key, Reader, first_time};
use crate::error::{Error, Part};
use crate::labels::*;

/// An integrated payload: a text-keyed byte string in the envelope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IntegratedPayload<'a> {
    /// Its key, e.g. `#firmware`.
    pub key: &'a str,
    /// Offset of its first byte in the envelope.
    pub offset: usize,
    /// Its declared length.
    pub len: u64,
    /// The part of it present in the buffer given to the decoder.
    pub available: &'a [u8],
}

impl IntegratedPayload<'_> {
    /// Whether every byte of it was in the buffer.
    pub fn is_complete(&self) -> bool {
        self.available.len() as u64 == self.len
    }
}

/// The members of an envelope, borrowed from its bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Envelope<'a> {
    /// The authentication wrapper (inside of its bstr).
    pub auth: &'a [u8],
    /// The manifest as encoded in the envelope, bstr head included (what
    /// the digest covers).
    pub manifest_wrapped: &'a [u8],
    /// The manifest (inside of its bstr).
    pub manifest: &'a [u8],
    /// Severed release notes, bstr head included.
    pub text_wrapped: Option<&'a [u8]>,
    /// Severed install sequence, bstr head included.
    pub install_wrapped: Option<&'a [u8]>,
    /// Severed payload-fetch sequence, bstr head included.
    pub payload_fetch_wrapped: Option<&'a [u8]>,
    /// A root-signed key-set document (Keyway extension).
    pub keyset: Option<&'a [u8]>,
    /// The last integrated payload (the one that may be streamed).
    pub payload: Option<IntegratedPayload<'a>>,
    /// The first integrated payload, when there are two or more.
    pub other_payload: Option<IntegratedPayload<'a>>,
}

fn unwrap_bstr(wrapped: &[u8], part: Part) -> Result<&[u8], Error> {
    let mut r = Reader::new(wrapped, part);
    let inner = r.bytes()?;
    r.finish()?;
    Ok(inner)
}

impl<'a> Envelope<'a> {
    /// Decodes an envelope or a prefix of one (see the module docs).
    pub fn decode(bytes: &'a [u8]) -> Result<Self, Error> {
        let mut r = Reader::new(bytes, Part::Envelope);
        if matches!(r.datatype()?, crate::cbor::Type::Tag) {
            let tag = r.tag()?;
            if tag != TAG_ENVELOPE {
                return Err(Error::Malformed {
                    part: Part::Envelope,
                    offset: 0,
                    expected: "tag 107",
                });
            }
        }
        let n = match r.datatype()? {
            crate::cbor::Type::Map => r.map_unbounded()?,
            _ => r.map()?,
        };
        let (mut auth, mut manifest) = (None, None);
        let mut env = Envelope {
            auth: &[],
            manifest_wrapped: &[],
            manifest: &[],
            text_wrapped: None,
            install_wrapped: None,
            payload_fetch_wrapped: None,
            keyset: None,
            payload: None,
            other_payload: None,
        };
        let mut seen = 0u64;
        for i in 0..n {
            match r.key()? {
                Key::Text(key) => {
                    let len = r.bytes_head()?;
                    let offset = r.position();
                    let rest = bytes.get(offset..).unwrap_or(&[]);
                    let whole = usize::try_from(len).ok().and_then(|l| rest.get(..l));
                    let p = if let Some(available) = whole {
                        r.advance(available.len());
                        IntegratedPayload {
                            key,
                            offset,
                            len,
                            available,
                        }
                    } else if i + 1 == n {
                        IntegratedPayload {
                            key,
                            offset,
                            len,
                            available: rest,
                        }
                    } else {
                        return Err(Error::Malformed {
                            part: Part::Envelope,
                            offset,
                            expected: "payload complete or last",
                        });
                    };
                    if let Some(prev) = env.payload.replace(p)
                        && env.other_payload.replace(prev).is_some()
                    {
                        return Err(Error::TooMany {
                            what: crate::error::Limit::Components,
                            max: 2,
                        });
                    }
                    if !p.is_complete() {
                        return env.finish(auth, manifest);
                    }
                }
                Key::Int(key) => {
                    first_time(&mut seen, key, Part::Envelope)?;
                    match key {
                        ENV_AUTH => auth = Some(r.bytes()?),
                        ENV_MANIFEST => manifest = Some(r.raw_item()?),
                        ENV_TEXT => env.text_wrapped = Some(r.raw_item()?),
                        ENV_INSTALL => env.install_wrapped = Some(r.raw_item()?),
                        ENV_PAYLOAD_FETCH => env.payload_fetch_wrapped = Some(r.raw_item()?),
                        ENV_KEYWAY_KEYSET => env.keyset = Some(r.bytes()?),
                        _ => r.skip()?,
                    }
                }
                Key::Other(_) => r.skip()?,
            }
        }
        if !r.at_end() {
            return Err(Error::TrailingBytes {
                count: r.remaining(),
            });
        }
        env.finish(auth, manifest)
    }

    fn finish(mut self, auth: Option<&'a [u8]>, manifest: Option<&'a [u8]>) -> Result<Self, Error> {
        self.auth = auth.ok_or(Error::Missing {
            part: Part::Envelope,
            what: "auth (2)",
        })?;
        self.manifest_wrapped = manifest.ok_or(Error::Missing {
            part: Part::Envelope,
            what: "manifest (3)",
        })?;
        self.manifest = unwrap_bstr(self.manifest_wrapped, Part::Manifest)?;
        for m in [
            self.text_wrapped,
            self.install_wrapped,
            self.payload_fetch_wrapped,
        ]
        .into_iter()
        .flatten()
        {
            unwrap_bstr(m, Part::Envelope)?;
        }
        Ok(self)
    }

    /// The integrated payload with this key.
    pub fn payload_named(&self, key: &str) -> Option<IntegratedPayload<'a>> {
        [self.payload, self.other_payload]
            .into_iter()
            .flatten()
            .find(|p| p.key == key)
    }

    /// The release notes' bytes (inside of the bstr), if severed here.
    pub fn text(&self) -> Option<&'a [u8]> {
        self.text_wrapped
            .and_then(|w| unwrap_bstr(w, Part::Text).ok())
    }

    /// A severed sequence's bytes (inside of the bstr).
    pub(crate) fn inner(wrapped: Option<&'a [u8]>) -> Option<&'a [u8]> {
        wrapped.and_then(|w| unwrap_bstr(w, Part::Commands).ok())
    }
}
