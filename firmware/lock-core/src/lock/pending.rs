//! The verified update waiting for (or armed by) the owner's consent, and
//! the release version text it carries.

use keyway_smp::keyway_group::{Postponement, UpdateState};

/// The verified, complete update waiting for (or armed by) consent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ready {
    /// The slot it is in.
    pub slot: u8,
    /// Its manifest's sequence number.
    pub sequence: u64,
    /// The envelope's SHA-256, as the lock computed it.
    pub digest: [u8; 32],
    /// Its manifest digest (the image state's hash).
    pub manifest: [u8; 32],
    /// Whether the client's `sha` equalled it.
    pub matched: bool,
    /// Its release notes were served to an owner.
    pub notes_offered: bool,
    /// Consent armed it (the journal's trial is pending).
    pub armed: bool,
    /// The owner's consent to it is stored and waits for the install
    /// policy (the bolt withdrawn): the update is postponed until then.
    pub consented: bool,
    /// Its release notes' version text.
    pub version: VersionText,
}

impl Ready {
    /// Where it stands: armed (installing), consented and waiting for the
    /// bolt (postponed, why), or awaiting consent.
    pub fn state(&self) -> (UpdateState, Option<Postponement>) {
        if self.armed {
            (UpdateState::Installing, None)
        } else if self.consented {
            (UpdateState::Postponed, Some(Postponement::BoltLocked))
        } else {
            (UpdateState::AwaitingConsent, None)
        }
    }
}

/// The most bytes of a release's version text the lock keeps.
pub const VERSION_MAX: usize = 32;

/// A release's version text, kept by value (the head buffer it came from
/// is reused by every slot check).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VersionText {
    bytes: [u8; VERSION_MAX],
    len: u8,
}

impl VersionText {
    /// No text.
    pub const EMPTY: VersionText = VersionText {
        bytes: [0; VERSION_MAX],
        len: 0,
    };

    /// `s`, if it fits (else no text).
    pub fn new(s: &str) -> Self {
        let mut t = Self::EMPTY;
        if let Some(dst) = t.bytes.get_mut(..s.len()) {
            dst.copy_from_slice(s.as_bytes());
            t.len = s.len() as u8;
        }
        t
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        core::str::from_utf8(&self.bytes[..usize::from(self.len)]).unwrap_or("")
    }

    /// The version as the audit log packs it: the first three dotted
    /// numbers, each clamped to its field (a part that is not a number
    /// reads 0), as `keyway_vendor::log::audit_version` reads it back.
    pub fn audit(&self) -> keyway_audit::Version {
        let mut parts = self
            .as_str()
            .split('.')
            .map(|p| p.parse::<u64>().unwrap_or(0));
        let mut next = || parts.next().unwrap_or(0);
        let major = u8::try_from(next()).unwrap_or(u8::MAX);
        let minor = u8::try_from(next()).unwrap_or(u8::MAX);
        let patch = u16::try_from(next()).unwrap_or(u16::MAX);
        keyway_audit::Version::new(major, minor, patch)
    }
}
