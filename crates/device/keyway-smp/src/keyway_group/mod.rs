//! The Keyway group (64): the lock's own commands (FORMAT.md, "The Keyway
//! SMP group"). Every body is a CBOR map with text keys, as in the
//! standard groups; unknown keys are skipped, so a newer lock's extra
//! fields do not break an older client.
//!
//! One module per job, all re-exported here: [`status`](self::Status) and
//! presence (`status.rs`), the pending update's notes and consent
//! (`update.rs`), the log export (`log.rs`), owners and settings
//! (`owners.rs`), and the secure channel's messages (`channel.rs`). This
//! module holds the command ids, the limits, the text enums and the
//! helpers they share.

use crate::Message;
use crate::auth::Auth;
use crate::cbor::{self, Error, Reader, Writer, field};
use crate::fields::{Entry, array, bytes, flag, owner_auth, text, uint};
use crate::seq::Seq;

mod channel;
mod log;
mod owners;
mod status;
mod update;

pub use channel::{
    PakeFinish, PakeFinishRsp, PakeParams, PakeStart, PakeStartRsp, Sealed, SessionFinish,
    SessionFinishRsp, SessionStart, SessionStartRsp,
};
pub use log::{Log, LogRsp};
pub use owners::{
    Challenge, FactoryResetRsp, OwnerEntry, OwnersRsp, Pair, PairRsp, SettingsReq, SettingsRsp,
    Unpair, UnpairRsp,
};
pub use status::{Postponement, Presence, Settings, Status, UpdateSummary};
pub use update::{Consent, ConsentRsp, Cve, Notes};

/// Keyway group command ids.
pub mod cmd {
    /// Read: the lock's state.
    pub const STATUS: u8 = 0;
    /// Write: throw the bolt.
    pub const LOCK: u8 = 1;
    /// Write: withdraw the bolt.
    pub const UNLOCK: u8 = 2;
    /// Read: the presence window.
    pub const PRESENCE: u8 = 3;
    /// Read: the pending update's release notes.
    pub const NOTES: u8 = 4;
    /// Write: accept or refuse the pending update.
    pub const CONSENT: u8 = 5;
    /// Read: a chunk of the audit log's export file.
    pub const LOG: u8 = 6;
    /// Read: a fresh nonce for owner authentication.
    pub const CHALLENGE: u8 = 7;
    /// Write: pair an owner key.
    pub const PAIR: u8 = 8;
    /// Write: factory reset.
    pub const FACTORY_RESET: u8 = 9;
    /// Write: the owner's update settings.
    pub const SETTINGS: u8 = 10;
    /// Read: the lock's pairing parameters (PBKDF salt and iterations);
    /// write: pairing by PAKE, first message (`Pake1`, `keyway-channel`).
    /// Both need the presence window.
    pub const PAKE_START: u8 = 11;
    /// Write: pairing by PAKE, confirmation (`Pake3`).
    pub const PAKE_FINISH: u8 = 12;
    /// Write: session handshake, first message (`msg1`).
    pub const SESSION_START: u8 = 13;
    /// Write: session handshake, second message (`msg3`).
    pub const SESSION_FINISH: u8 = 14;
    /// Write: a sealed request inside a session; the answer is sealed.
    pub const SEALED: u8 = 15;
    /// Read: the paired owners (an owner: a session, or a signed request).
    pub const OWNERS: u8 = 16;
    /// Write: remove an owner by key id (an owner: a session, or a signed
    /// request).
    pub const UNPAIR: u8 = 17;
}

/// The largest `data` of a `log` answer a lock sends.
pub const LOG_CHUNK: usize = 1024;
/// The most CVEs a `notes` answer may list.
pub const MAX_CVES: usize = 64;
/// The most owners an `owners` answer may list (a decoder's bound; a
/// lock holds fewer).
pub const MAX_OWNERS: usize = 64;
/// The longest owner name an `owners` answer may carry, in bytes.
pub const MAX_OWNER_NAME: usize = 64;

macro_rules! text_enum {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $v:ident = $s:literal),* $(,)? }) => {
        $(#[$m])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name { $($(#[$vm])* $v),* }
        impl $name {
            /// The wire text.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$v => $s),* }
            }
            /// The value of a wire text.
            pub fn parse(s: &str) -> Option<Self> {
                match s { $($s => Some($name::$v),)* _ => None }
            }
        }
    };
}

text_enum!(
    /// The bolt.
    Bolt { /// Thrown.
        Locked = "locked", /// Withdrawn.
        Unlocked = "unlocked" }
);
text_enum!(
    /// The door sensor.
    Door { /// Open.
        Open = "open", /// Closed.
        Closed = "closed" }
);
text_enum!(
    /// Where a pending update stands.
    UpdateState {
        /// Verified, waiting for the owner's consent.
        AwaitingConsent = "awaiting-consent",
        /// Consented, waiting for the policy (battery, bolt).
        Postponed = "postponed",
        /// Armed: the lock resets into it.
        Installing = "installing",
        /// Refused by the owner (and erased).
        Refused = "refused",
    }
);
text_enum!(
    /// A CVE's severity.
    Severity { /// Low.
        Low = "low", /// Medium.
        Medium = "medium", /// High.
        High = "high", /// Critical.
        Critical = "critical" }
);

fn text_of<T>(
    r: &mut Reader<'_>,
    name: &'static str,
    expected: &'static str,
    parse: fn(&str) -> Option<T>,
) -> Result<T, Error> {
    let s = field(r.text(), name, expected)?;
    parse(s).ok_or(Error::Invalid {
        field: name,
        expected,
    })
}

/// A field's severity.
fn read_severity(r: &mut Reader<'_>, name: &'static str) -> Result<Severity, Error> {
    text_of(r, name, "a severity", Severity::parse)
}

/// A field's update state.
fn read_state(r: &mut Reader<'_>, name: &'static str) -> Result<UpdateState, Error> {
    text_of(r, name, "an update state", UpdateState::parse)
}

message! {
    /// A request whose body is only an owner's optional `auth` (lock, unlock).
    #[derive(Default)]
    pub struct Signed {
        /// An owner's authentication (absent: the presence window).
        pub auth: Option<Auth> = "auth" => owner_auth,
    }
    encode(m) { "auth" => m.auth }
}
