//! Streaming payload check: SHA-256 and size, chunk by chunk. Nothing
//! downstream may trust a payload before [`PayloadVerifier::finish`] is Ok.

use sha2::{Digest, Sha256};

use crate::error::Error;
use crate::manifest::ImageExpectation;

/// Hashes a payload as it arrives and checks it against the manifest.
#[derive(Clone)]
pub struct PayloadVerifier {
    hasher: Sha256,
    expected_digest: [u8; 32],
    expected_size: u64,
    received: u64,
}

impl PayloadVerifier {
    /// Starts checking a payload against `expected`.
    pub fn new(expected: &ImageExpectation<'_>) -> Self {
        PayloadVerifier {
            hasher: Sha256::new(),
            expected_digest: *expected.digest,
            expected_size: expected.size.unwrap_or(u64::MAX),
            received: 0,
        }
    }

    /// Feeds the next chunk. Fails as soon as the payload would exceed the
    /// manifest's size, so endless data is cut off at the first extra byte.
    pub fn update(&mut self, chunk: &[u8]) -> Result<(), Error> {
        let total = self.received.saturating_add(chunk.len() as u64);
        if total > self.expected_size {
            return Err(Error::PayloadTooLong {
                expected: self.expected_size,
            });
        }
        self.hasher.update(chunk);
        self.received = total;
        Ok(())
    }

    /// Bytes accepted so far.
    pub fn received(&self) -> u64 {
        self.received
    }

    /// Checks the size and the digest.
    pub fn finish(self) -> Result<(), Error> {
        if self.expected_size != u64::MAX && self.received != self.expected_size {
            return Err(Error::PayloadTruncated {
                expected: self.expected_size,
                got: self.received,
            });
        }
        if self.hasher.finalize().as_slice() != self.expected_digest {
            return Err(Error::PayloadDigestMismatch);
        }
        Ok(())
    }
}

/// Checks a whole payload held in memory, in `chunk`-byte steps as a device
/// would.
pub fn verify_payload(
    expected: &ImageExpectation<'_>,
    payload: &[u8],
    chunk: usize,
) -> Result<(), Error> {
    let mut v = PayloadVerifier::new(expected);
    for c in payload.chunks(chunk.max(1)) {
        v.update(c)?;
    }
    v.finish()
}
