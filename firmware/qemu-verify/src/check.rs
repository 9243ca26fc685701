//! The one function that calls into the verifier: everything the device
//! would do with an envelope received over the air, using only borrowed data
//! and the stack (no allocator exists in this firmware).

use core::fmt;

/// What a verified envelope told us.
pub struct Accepted<'a> {
    pub sequence: u64,
    /// The integrated payload, as the verifier located it in the envelope.
    pub payload: &'a [u8],
}

#[cfg(not(feature = "baseline"))]
mod real {
    use super::*;

    use keyway_suit as suit;

    use suit::{
        DeviceIdentity, DeviceState, PayloadVerifier, PublicKey, TrustAnchors, verify_envelope,
    };

    /// Which step refused the envelope, and why.
    pub enum Rejected {
        Key(suit::Error),
        Anchors(suit::Error),
        Envelope(suit::Error),
        NoPayload,
        Payload(suit::Error),
    }

    impl fmt::Display for Rejected {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            match self {
                Rejected::Key(e) => write!(f, "public key: {e}"),
                Rejected::Anchors(e) => write!(f, "trust anchors: {e}"),
                Rejected::Envelope(e) => write!(f, "envelope: {e}"),
                Rejected::NoPayload => f.write_str("envelope has no integrated payload"),
                Rejected::Payload(e) => write!(f, "payload: {e}"),
            }
        }
    }

    /// Sizes of the verifier's values that live on the caller's stack, to
    /// explain the stack figure.
    pub fn type_sizes() -> [(&'static str, usize); 10] {
        use core::mem::size_of;
        [
            ("PublicKey", size_of::<PublicKey>()),
            ("TrustAnchors", size_of::<TrustAnchors>()),
            ("KeySet", size_of::<suit::KeySet>()),
            ("DeviceState", size_of::<DeviceState>()),
            ("Verified", size_of::<suit::Verified<'static>>()),
            ("Manifest", size_of::<suit::Manifest<'static>>()),
            ("Component", size_of::<suit::Component<'static>>()),
            ("Envelope", size_of::<suit::Envelope<'static>>()),
            ("Error", size_of::<suit::Error>()),
            ("PayloadVerifier", size_of::<PayloadVerifier>()),
        ]
    }

    /// Chunk size for streaming the payload, as a flash writer would.
    const CHUNK: usize = 512;

    #[inline(never)]
    pub fn check<'a>(
        envelope: &'a [u8],
        key_raw: &[u8],
        vendor_id: [u8; 16],
        class_id: [u8; 16],
    ) -> Result<Accepted<'a>, Rejected> {
        let key = PublicKey::from_raw(key_raw).map_err(Rejected::Key)?;
        let anchors = TrustAnchors::new(&[key], 1).map_err(Rejected::Anchors)?;
        let identity = DeviceIdentity::new(vendor_id, class_id);
        let state = DeviceState::new(0);
        let verified =
            verify_envelope(envelope, &anchors, &identity, &state).map_err(Rejected::Envelope)?;
        let expect = verified.payload.as_ref().ok_or(Rejected::NoPayload)?;
        let payload = verified.integrated_payload().ok_or(Rejected::NoPayload)?;
        let mut pv = PayloadVerifier::new(expect);
        for chunk in payload.chunks(CHUNK) {
            pv.update(chunk).map_err(Rejected::Payload)?;
        }
        pv.finish().map_err(Rejected::Payload)?;
        Ok(Accepted {
            sequence: verified.sequence,
            payload,
        })
    }
}

#[cfg(feature = "baseline")]
mod real {
    use super::*;

    pub enum Rejected {
        Skipped,
    }

    impl fmt::Display for Rejected {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("verifier not linked (baseline build)")
        }
    }

    pub fn type_sizes() -> [(&'static str, usize); 0] {
        []
    }

    /// Same signature, no verifier: keeps every input alive so the fixtures
    /// and the harness stay in the image and the size difference is only
    /// the verifier.
    #[inline(never)]
    pub fn check<'a>(
        envelope: &'a [u8],
        key_raw: &[u8],
        vendor_id: [u8; 16],
        class_id: [u8; 16],
    ) -> Result<Accepted<'a>, Rejected> {
        use core::hint::black_box;
        black_box((envelope, key_raw, vendor_id, class_id));
        if black_box(false) {
            return Ok(Accepted {
                sequence: black_box(0),
                payload: envelope,
            });
        }
        Err(Rejected::Skipped)
    }
}

pub use real::{check, type_sizes};
