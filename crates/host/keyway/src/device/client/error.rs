//! Why a call failed ([`DeviceError`]), the lock's refusals decoded from
//! an answer body, and the result codes in words.

use keyway_smp::{ErrorRsp, Message, Refusal, group};
use keyway_vendor::smp;

use super::Map;
use crate::device::transport::TransportError;
use crate::terminal;

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    /// No usable answer arrived.
    #[error("{what}: {why}")]
    Transport {
        /// The call.
        what: String,
        /// Why. (Not named `source`: the message already includes it, and
        /// a source would print it twice in an error chain.)
        why: TransportError,
    },
    /// The lock refused with a top-level SMP `rc`.
    #[error("{what}: refused: {reason} ({name}, rc {rc})")]
    Refused {
        /// The call.
        what: String,
        /// `mcumgr_err_t`.
        rc: u64,
        /// Its name.
        name: &'static str,
        /// The lock's `rsn`, or the code in words.
        reason: String,
        /// Keyway's typed refusal (`kw-rc`): what the client decides on
        /// (boxed: it holds two image digests).
        refusal: Option<Box<Refusal>>,
    },
    /// The lock refused with an SMPv2 group error.
    #[error("{what}: refused by the {group_name} group: {reason} (rc {rc})")]
    GroupRefused {
        /// The call.
        what: String,
        /// The group id.
        group: u64,
        /// The group's name.
        group_name: String,
        /// The group's code.
        rc: u64,
        /// The code in words (and the `rsn`, if the lock sent one).
        reason: String,
        /// Keyway's typed refusal (`kw-rc`): what the client decides on
        /// (boxed: it holds two image digests).
        refusal: Option<Box<Refusal>>,
    },
    /// The answer is not what the protocol allows.
    #[error("{what}: the lock's answer is malformed: {why}")]
    Malformed {
        /// The call.
        what: String,
        /// What is wrong with it.
        why: String,
    },
    /// The secure channel refused on the client's side: the lock did not
    /// prove the paired device key, an answer did not authenticate
    /// (forged, altered, replayed), the setup code does not match.
    #[error("{what}: {}", channel_words(*error))]
    Channel {
        /// The call.
        what: String,
        /// The channel's typed reason.
        error: keyway_channel::Error,
    },
    /// The client cannot make the request (a bad argument).
    #[error("{what}: {why}")]
    Usage {
        /// The call.
        what: String,
        /// Why.
        why: String,
    },
}

impl DeviceError {
    /// The top-level or group rc, if the lock refused.
    pub fn rc(&self) -> Option<u64> {
        match self {
            DeviceError::Refused { rc, .. } | DeviceError::GroupRefused { rc, .. } => Some(*rc),
            _ => None,
        }
    }

    /// Keyway's typed refusal, if the lock sent one.
    pub fn refusal(&self) -> Option<Refusal> {
        match self {
            DeviceError::Refused { refusal, .. } | DeviceError::GroupRefused { refusal, .. } => {
                refusal.as_deref().copied()
            }
            _ => None,
        }
    }

    /// The channel's typed reason, if the channel refused at the client.
    pub fn channel(&self) -> Option<keyway_channel::Error> {
        match self {
            DeviceError::Channel { error, .. } => Some(*error),
            _ => None,
        }
    }

    /// Whether pairing failed because the setup code is wrong: the lock's
    /// typed refusal [`Refusal::BadSetupCode`] (kw-rc 15), or the client's
    /// own check of the lock's confirmation.
    pub fn wrong_setup_code(&self) -> bool {
        self.refusal() == Some(Refusal::BadSetupCode)
            || self.channel() == Some(keyway_channel::Error::WrongCode)
    }

    /// Whether the lock does not know the command (`ENOTSUP`).
    pub fn not_supported(&self) -> bool {
        matches!(self, DeviceError::Refused { rc: 8, .. })
    }

    /// Whether the lock refused for want of authority (`EACCESSDENIED`).
    pub fn access_denied(&self) -> bool {
        matches!(self, DeviceError::Refused { rc: 11, .. })
    }
}

/// The channel's refusals at the client as sentences that say what to do.
fn channel_words(e: keyway_channel::Error) -> String {
    use keyway_channel::Error as E;
    match e {
        E::LockNotAuthenticated => "the lock did not prove the device key recorded at pairing: this is not the lock this owner key paired with (an impostor, or a replaced lock); nothing was sent to it".into(),
        E::Forged => "the answer does not authenticate as the lock's answer to this request (forged, altered or replayed on the way): the command's outcome is unknown; check the lock with `status`".into(),
        E::StaleAtLock => "the lock refused the request as held back (stale), twice: nothing ran; check the link and try again".into(),
        E::WrongCode => "the setup code is wrong: re-read the code on the lock's label".into(),
        E::Iterations(n) => format!("the lock asks for {n} PBKDF2 iterations, outside what a client accepts: it is not a Keyway lock"),
        other => format!("the secure channel refused: {other}"),
    }
}

pub(super) fn malformed(what: &str, why: impl Into<String>) -> DeviceError {
    DeviceError::Malformed {
        what: what.to_owned(),
        why: why.into(),
    }
}

/// The key id a lock's answer reports against the one the client meant:
/// `Malformed` ("it reports `doing` key id …, `expected` …") when they differ.
pub(super) fn same_key_id(
    what: &str,
    doing: &str,
    reported: &[u8; 8],
    expected: &str,
    key_id: &[u8; 8],
) -> Result<(), DeviceError> {
    if reported == key_id {
        return Ok(());
    }
    Err(malformed(
        what,
        format!(
            "it reports {doing} key id {}, {expected} {}",
            keyway_vendor::keys::hex(reported),
            keyway_vendor::keys::hex(key_id)
        ),
    ))
}

/// `mcumgr_err_t` names and their meaning in words.
pub fn mgmt_err(rc: u64) -> (&'static str, &'static str) {
    keyway_smp::MgmtErr::from_code(rc).map_or(("EUNKNOWN", "an unknown result code"), |e| {
        (e.name(), e.words())
    })
}

/// An image-group (`IMG_MGMT_ERR`) code in words.
pub fn img_err(rc: u64) -> &'static str {
    keyway_smp::err::img_rc::words(rc)
}

/// An OS-group (`OS_MGMT_ERR`) code in words.
pub fn os_err(rc: u64) -> &'static str {
    keyway_smp::err::os_rc::words(rc)
}

/// The refusal in a response body, if any: the top-level `rc` (SMPv1 and
/// SMP-level errors), the SMPv2 group `err`, and Keyway's typed refusal.
pub(super) fn refusal(what: &str, body: &[u8]) -> Result<(), DeviceError> {
    let Some(e) = ErrorRsp::decode(body).map_err(|e| malformed(what, e.to_string()))? else {
        return Ok(());
    };
    let rsn = e
        .rsn
        .map(|r| bounded(r.strip_prefix("refused: ").unwrap_or(r)));
    if let Some(rc) = e.rc.filter(|rc| *rc != 0) {
        let (name, words) = mgmt_err(rc);
        return Err(DeviceError::Refused {
            what: what.to_owned(),
            rc,
            name,
            reason: rsn.unwrap_or_else(|| words.to_owned()),
            refusal: e.refusal.map(Box::new),
        });
    }
    let (g, rc) = e.group.unwrap_or((0, 0));
    let (group_name, words) = match g {
        group::IMAGE => ("image".to_owned(), img_err(rc)),
        group::OS => ("OS".to_owned(), os_err(rc)),
        _ => (format!("{g}"), "an error code of that group"),
    };
    let mut reason = words.to_owned();
    if let Some(r) = e.rsn {
        reason = format!("{reason}: {}", bounded(r));
    }
    Err(DeviceError::GroupRefused {
        what: what.to_owned(),
        group: u64::from(g),
        group_name,
        rc,
        reason,
        refusal: e.refusal.map(Box::new),
    })
}

/// A typed answer body, or what is wrong with it.
pub(super) fn typed<'a, T: Message<'a>>(what: &str, body: &'a [u8]) -> Result<T, DeviceError> {
    T::decode(body).map_err(|e| malformed(what, e.to_string()))
}

/// An answer body as a map, for printing (after its typed decode checked it).
pub(super) fn map_of(what: &str, body: &[u8]) -> Result<Map, DeviceError> {
    smp::decode_body(body).map_err(|e| malformed(what, e.to_string()))
}

/// A lock's text, cut to 200 characters for an error message.
pub(super) fn bounded(s: &str) -> String {
    let mut t = terminal::line(&s.chars().take(200).collect::<String>());
    if s.chars().nth(200).is_some() {
        t.push('…');
    }
    t
}
