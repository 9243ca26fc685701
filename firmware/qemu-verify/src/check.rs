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

/// Which step refused the envelope, and why. The same shape in the
/// baseline build (with a stand-in error), so that the harness code that
/// prints it is in both images and the size difference is the verifier.
pub enum Rejected<E> {
    Key(E),
    Envelope(E),
    NoPayload,
    Payload(E),
}

impl<E: fmt::Display> fmt::Display for Rejected<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rejected::Key(e) => write!(f, "public key / trust anchors: {e}"),
            Rejected::Envelope(e) => write!(f, "envelope: {e}"),
            Rejected::NoPayload => f.write_str("envelope has no integrated payload"),
            Rejected::Payload(e) => write!(f, "payload: {e}"),
        }
    }
}

/// Chunk size for streaming the payload, as a flash writer would.
#[cfg(not(feature = "baseline"))]
const CHUNK: usize = 512;

#[cfg(not(feature = "baseline"))]
mod real {
    use super::*;

    use keyway_suit as suit;

    use suit::{
        DeviceIdentity, DeviceState, PayloadVerifier, PublicKey, TrustAnchors, Verified,
        verify_envelope_into,
    };

    /// The device's trust anchors, built from the raw root key (a lock keeps
    /// them in RAM; the harness keeps them in `main`'s frame, outside the
    /// measured verification call, and measures this call separately).
    pub type Trust = Result<TrustAnchors, suit::Error>;

    /// The device's stored state: floor 0, no key set (static, as a lock
    /// would keep it).
    static STATE: DeviceState = DeviceState {
        sequence_floor: Some(0),
        keyset: None,
    };

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

    /// Parses and validates the root key, and builds the anchors.
    #[inline(never)]
    pub fn trust(key_raw: &[u8]) -> Trust {
        TrustAnchors::new(&[PublicKey::from_raw(key_raw)?], 1)
    }

    /// Verifies an envelope and streams its integrated payload: holds only
    /// the verifier's result and the payload verifier.
    #[inline(never)]
    pub fn check<'a>(
        envelope: &'a [u8],
        trust: &Trust,
        vendor_id: [u8; 16],
        class_id: [u8; 16],
    ) -> Result<Accepted<'a>, Rejected<suit::Error>> {
        let anchors = trust.as_ref().map_err(|e| Rejected::Key(e.clone()))?;
        let identity = DeviceIdentity::new(vendor_id, class_id);
        // The one copy of the result, filled in place.
        let mut verified = Verified::empty();
        verify_envelope_into(&mut verified, envelope, anchors, &identity, &STATE)
            .map_err(Rejected::Envelope)?;
        let expect = verified.payload.as_ref().ok_or(Rejected::NoPayload)?;
        let payload = verified.integrated_payload().ok_or(Rejected::NoPayload)?;
        stream(expect, payload).map_err(Rejected::Payload)?;
        Ok(Accepted {
            sequence: verified.sequence,
            payload,
        })
    }

    /// Streams the payload through the payload verifier (its own frame, not
    /// added to the verification's).
    #[inline(never)]
    fn stream(expect: &suit::ImageExpectation<'_>, payload: &[u8]) -> Result<(), suit::Error> {
        let mut pv = PayloadVerifier::new(expect);
        for chunk in payload.chunks(CHUNK) {
            pv.update(chunk)?;
        }
        pv.finish()
    }
}

#[cfg(feature = "baseline")]
mod real {
    use super::*;
    use core::hint::black_box;

    /// Stand-in for the verifier's error: prints an opaque string.
    pub struct Skipped(&'static str);

    impl fmt::Display for Skipped {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.0)
        }
    }

    pub type Trust = Result<[u8; 32], Skipped>;

    pub fn type_sizes() -> [(&'static str, usize); 0] {
        []
    }

    #[inline(never)]
    pub fn trust(key_raw: &[u8]) -> Trust {
        black_box(key_raw);
        if black_box(false) {
            return Err(Skipped(black_box("baseline")));
        }
        Ok(black_box([0; 32]))
    }

    /// Same signature and the same result paths as the real check, no
    /// verifier: an opaque stand-in decides (at run time, through
    /// `black_box`) between every outcome, so the harness's handling and
    /// printing of each stays in the image and the size difference is only
    /// the verifier.
    #[inline(never)]
    pub fn check<'a>(
        envelope: &'a [u8],
        trust: &Trust,
        vendor_id: [u8; 16],
        class_id: [u8; 16],
    ) -> Result<Accepted<'a>, Rejected<Skipped>> {
        black_box((envelope, trust, vendor_id, class_id));
        let e = || Skipped(black_box("verifier not linked (baseline build)"));
        match black_box(0u8) {
            0 => Ok(Accepted {
                sequence: black_box(0),
                payload: black_box(envelope),
            }),
            1 => Err(Rejected::Key(e())),
            2 => Err(Rejected::NoPayload),
            3 => Err(Rejected::Payload(e())),
            _ => Err(Rejected::Envelope(e())),
        }
    }
}

pub use real::{check, trust, type_sizes};
