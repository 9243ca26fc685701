//! The events a lock logs, with typed fields, and their byte encoding.
//!
//! An event body is one code byte followed by the event's fields, each at
//! a fixed size, little-endian (FORMAT.md, "Audit log"). Every code has
//! exactly one body length; an unknown code, a wrong length or an unknown
//! reason or method code is a [`DecodeError`] naming it, never a panic.

use core::fmt;

use crate::record::DecodeError;

/// The longest event body: the code byte and 16 bytes of fields
/// ([`Event::KeySetRotated`]).
pub const MAX_EVENT_LEN: usize = 17;

/// A firmware version, `major.minor.patch`, packed into a u32 as
/// `major << 24 | minor << 16 | patch`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Version {
    /// Major version.
    pub major: u8,
    /// Minor version.
    pub minor: u8,
    /// Patch version.
    pub patch: u16,
}

impl Version {
    /// `major.minor.patch`.
    pub const fn new(major: u8, minor: u8, patch: u16) -> Self {
        Self {
            major,
            minor,
            patch,
        }
    }

    /// The packed form.
    pub const fn to_u32(self) -> u32 {
        (self.major as u32) << 24 | (self.minor as u32) << 16 | self.patch as u32
    }

    /// From the packed form.
    pub const fn from_u32(v: u32) -> Self {
        Self {
            major: (v >> 24) as u8,
            minor: (v >> 16) as u8,
            patch: v as u16,
        }
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// Declares a `#[repr(u8)]` code enum with names and a checked decoder.
macro_rules! code_enum {
    ($(#[$meta:meta])* $name:ident, $field:literal { $($(#[$vmeta:meta])* $variant:ident = $code:literal => $text:literal,)* }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        #[repr(u8)]
        pub enum $name {
            $($(#[$vmeta])* $variant = $code,)*
        }

        impl $name {
            /// Every value, in code order.
            pub const ALL: &'static [$name] = &[$($name::$variant,)*];

            /// The byte stored in a record.
            pub const fn code(self) -> u8 {
                self as u8
            }

            /// The value for a stored byte, or an error naming the field and the code.
            pub const fn from_code(code: u8) -> Result<Self, DecodeError> {
                match code {
                    $($code => Ok($name::$variant),)*
                    _ => Err(DecodeError::UnknownCode { field: $field, code }),
                }
            }

            /// A short lower-case name (`keyway log show` prints it).
            pub const fn name(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)*
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.name())
            }
        }
    };
}

code_enum!(
    /// Why the lock refused an update: the check of `keyway_suit::verify_envelope`
    /// that failed (the same names `keyway verify` prints), or the payload.
    RejectReason, "reject reason" {
        /// No threshold of valid signatures from trusted keys.
        Signatures = 1 => "signatures",
        /// The carried key set failed (rollback, conflict, bad root signatures).
        KeySet = 2 => "key set",
        /// The sequence number is not above the floor.
        AntiRollback = 3 => "anti-rollback",
        /// Vendor, class or slot do not match the device.
        Compatibility = 4 => "compatibility",
        /// The release notes do not match their digest.
        ReleaseNotes = 5 => "release notes",
        /// The payload's size or digest does not match.
        Payload = 6 => "payload",
        /// A policy condition (use-before, battery, authorization) failed.
        Policy = 7 => "policy",
        /// The envelope does not decode.
        Decoding = 8 => "decoding",
    }
);

code_enum!(
    /// Why the lock went back to the previous image.
    RevertReason, "revert reason" {
        /// The trial boots ran out before a confirmation.
        TrialExhausted = 1 => "trial boots exhausted",
        /// The application's self-test (motor, sensors, comms) failed.
        SelfTestFailed = 2 => "self-test failed",
        /// The bootloader's re-verification of the image failed.
        VerificationFailed = 3 => "re-verification failed",
        /// The owner asked for the previous version.
        OwnerRequest = 4 => "owner request",
    }
);

code_enum!(
    /// How the lock was locked or unlocked.
    LockMethod, "lock method" {
        /// A PIN on the keypad.
        Keypad = 1 => "keypad",
        /// A command from the owner's app.
        OwnerCommand = 2 => "owner command",
        /// The mechanical key (sensed by the cylinder).
        MechanicalKey = 3 => "mechanical key",
        /// The auto-relock timer.
        AutoRelock = 4 => "auto-relock",
    }
);

/// An audit event with its fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Event {
    /// The lock booted `slot` running `version`.
    Boot {
        /// The slot booted (0 or 1).
        slot: u8,
        /// Its firmware version.
        version: Version,
    },
    /// An update was offered to the lock.
    UpdateOffered {
        /// The manifest's sequence number.
        sequence: u64,
        /// The release's version.
        version: Version,
    },
    /// The download of an update started.
    DownloadStarted {
        /// The manifest's sequence number.
        sequence: u64,
    },
    /// An update verified (signatures, digest, policy).
    UpdateVerified {
        /// The manifest's sequence number.
        sequence: u64,
    },
    /// An update was refused.
    UpdateRejected {
        /// The manifest's sequence number (0 if it did not decode).
        sequence: u64,
        /// The check that failed.
        reason: RejectReason,
    },
    /// An update was written into a slot.
    UpdateInstalled {
        /// The manifest's sequence number.
        sequence: u64,
        /// The slot it was written to.
        slot: u8,
    },
    /// The new image boots on trial.
    OnTrial {
        /// The slot on trial.
        slot: u8,
        /// Trial boots left.
        attempts_left: u8,
    },
    /// The new image was confirmed (the floor raised to its sequence).
    Confirmed {
        /// The confirmed slot.
        slot: u8,
        /// Its manifest's sequence number.
        sequence: u64,
    },
    /// The lock went back to the previous image.
    Reverted {
        /// The slot it went back to.
        to_slot: u8,
        /// Why.
        reason: RevertReason,
    },
    /// The owner consented to an update.
    ConsentGiven {
        /// The manifest's sequence number.
        sequence: u64,
    },
    /// The owner refused an update.
    ConsentRefused {
        /// The manifest's sequence number.
        sequence: u64,
    },
    /// A physical-presence window opened (for pairing or local updates).
    PresenceWindowOpened {
        /// Its length in seconds.
        seconds: u16,
    },
    /// An owner was paired.
    OwnerPaired {
        /// The owner key's id (SHA-256 of the key, first 8 bytes).
        owner: [u8; 8],
    },
    /// An owner was removed.
    OwnerRemoved {
        /// The owner key's id.
        owner: [u8; 8],
    },
    /// The lock was reset to factory state.
    FactoryReset,
    /// The bolt was thrown.
    Locked {
        /// How.
        method: LockMethod,
    },
    /// The bolt was withdrawn.
    Unlocked {
        /// How.
        method: LockMethod,
    },
    /// A wrong PIN was entered.
    PinFailed {
        /// Consecutive failures so far.
        consecutive: u16,
    },
    /// A tamper sensor tripped.
    TamperDetected {
        /// The sensor's number.
        sensor: u8,
    },
    /// A tamper sensor returned to normal.
    TamperCleared {
        /// The sensor's number.
        sensor: u8,
    },
    /// The battery fell below its warning level.
    BatteryLow {
        /// The battery voltage in millivolts.
        millivolts: u16,
    },
    /// A new key set took effect.
    KeySetRotated {
        /// The previous key-set version.
        from: u64,
        /// The new key-set version.
        to: u64,
    },
}

/// Event codes (the first body byte).
mod code {
    pub const BOOT: u8 = 0x01;
    pub const UPDATE_OFFERED: u8 = 0x10;
    pub const DOWNLOAD_STARTED: u8 = 0x11;
    pub const UPDATE_VERIFIED: u8 = 0x12;
    pub const UPDATE_REJECTED: u8 = 0x13;
    pub const UPDATE_INSTALLED: u8 = 0x14;
    pub const ON_TRIAL: u8 = 0x15;
    pub const CONFIRMED: u8 = 0x16;
    pub const REVERTED: u8 = 0x17;
    pub const CONSENT_GIVEN: u8 = 0x20;
    pub const CONSENT_REFUSED: u8 = 0x21;
    pub const PRESENCE_WINDOW: u8 = 0x22;
    pub const OWNER_PAIRED: u8 = 0x23;
    pub const OWNER_REMOVED: u8 = 0x24;
    pub const FACTORY_RESET: u8 = 0x25;
    pub const LOCKED: u8 = 0x30;
    pub const UNLOCKED: u8 = 0x31;
    pub const PIN_FAILED: u8 = 0x32;
    pub const TAMPER_DETECTED: u8 = 0x40;
    pub const TAMPER_CLEARED: u8 = 0x41;
    pub const BATTERY_LOW: u8 = 0x42;
    pub const KEYSET_ROTATED: u8 = 0x43;
}

/// A little-endian field writer over a fixed buffer.
struct Writer<'a> {
    buf: &'a mut [u8; MAX_EVENT_LEN],
    at: usize,
}

impl Writer<'_> {
    fn put(&mut self, bytes: &[u8]) {
        // Every event's fields fit MAX_EVENT_LEN (checked by the round-trip test).
        let end = self.at + bytes.len();
        if let Some(dst) = self.buf.get_mut(self.at..end) {
            dst.copy_from_slice(bytes);
        }
        self.at = end;
    }
    fn u8(&mut self, v: u8) {
        self.put(&[v]);
    }
    fn u16(&mut self, v: u16) {
        self.put(&v.to_le_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.put(&v.to_le_bytes());
    }
}

/// A field reader over an event body whose length was checked.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0u8; N];
        if let Some(src) = self.bytes.get(self.at..self.at + N) {
            out.copy_from_slice(src);
        }
        self.at += N;
        out
    }
    fn u8(&mut self) -> u8 {
        self.take::<1>()[0]
    }
    fn u16(&mut self) -> u16 {
        u16::from_le_bytes(self.take())
    }
    fn u32(&mut self) -> u32 {
        u32::from_le_bytes(self.take())
    }
    fn u64(&mut self) -> u64 {
        u64::from_le_bytes(self.take())
    }
}

impl Event {
    /// The event code (the first body byte).
    pub const fn code(&self) -> u8 {
        match self {
            Event::Boot { .. } => code::BOOT,
            Event::UpdateOffered { .. } => code::UPDATE_OFFERED,
            Event::DownloadStarted { .. } => code::DOWNLOAD_STARTED,
            Event::UpdateVerified { .. } => code::UPDATE_VERIFIED,
            Event::UpdateRejected { .. } => code::UPDATE_REJECTED,
            Event::UpdateInstalled { .. } => code::UPDATE_INSTALLED,
            Event::OnTrial { .. } => code::ON_TRIAL,
            Event::Confirmed { .. } => code::CONFIRMED,
            Event::Reverted { .. } => code::REVERTED,
            Event::ConsentGiven { .. } => code::CONSENT_GIVEN,
            Event::ConsentRefused { .. } => code::CONSENT_REFUSED,
            Event::PresenceWindowOpened { .. } => code::PRESENCE_WINDOW,
            Event::OwnerPaired { .. } => code::OWNER_PAIRED,
            Event::OwnerRemoved { .. } => code::OWNER_REMOVED,
            Event::FactoryReset => code::FACTORY_RESET,
            Event::Locked { .. } => code::LOCKED,
            Event::Unlocked { .. } => code::UNLOCKED,
            Event::PinFailed { .. } => code::PIN_FAILED,
            Event::TamperDetected { .. } => code::TAMPER_DETECTED,
            Event::TamperCleared { .. } => code::TAMPER_CLEARED,
            Event::BatteryLow { .. } => code::BATTERY_LOW,
            Event::KeySetRotated { .. } => code::KEYSET_ROTATED,
        }
    }

    /// The body length (code byte included) an event with this code has,
    /// or `None` for an unknown code.
    pub const fn body_len(code: u8) -> Option<usize> {
        Some(
            1 + match code {
                code::BOOT => 5,
                code::UPDATE_OFFERED => 12,
                code::DOWNLOAD_STARTED | code::UPDATE_VERIFIED => 8,
                code::UPDATE_REJECTED | code::UPDATE_INSTALLED | code::CONFIRMED => 9,
                code::ON_TRIAL | code::REVERTED => 2,
                code::CONSENT_GIVEN | code::CONSENT_REFUSED => 8,
                code::PRESENCE_WINDOW => 2,
                code::OWNER_PAIRED | code::OWNER_REMOVED => 8,
                code::FACTORY_RESET => 0,
                code::LOCKED | code::UNLOCKED => 1,
                code::PIN_FAILED => 2,
                code::TAMPER_DETECTED | code::TAMPER_CLEARED => 1,
                code::BATTERY_LOW => 2,
                code::KEYSET_ROTATED => 16,
                _ => return None,
            },
        )
    }

    /// A short lower-case name of the event (`keyway log show` prints it).
    pub const fn name(&self) -> &'static str {
        match self {
            Event::Boot { .. } => "boot",
            Event::UpdateOffered { .. } => "update offered",
            Event::DownloadStarted { .. } => "download started",
            Event::UpdateVerified { .. } => "update verified",
            Event::UpdateRejected { .. } => "update rejected",
            Event::UpdateInstalled { .. } => "update installed",
            Event::OnTrial { .. } => "on trial",
            Event::Confirmed { .. } => "confirmed",
            Event::Reverted { .. } => "reverted",
            Event::ConsentGiven { .. } => "consent given",
            Event::ConsentRefused { .. } => "consent refused",
            Event::PresenceWindowOpened { .. } => "presence window opened",
            Event::OwnerPaired { .. } => "owner paired",
            Event::OwnerRemoved { .. } => "owner removed",
            Event::FactoryReset => "factory reset",
            Event::Locked { .. } => "locked",
            Event::Unlocked { .. } => "unlocked",
            Event::PinFailed { .. } => "PIN failed",
            Event::TamperDetected { .. } => "tamper detected",
            Event::TamperCleared { .. } => "tamper cleared",
            Event::BatteryLow { .. } => "battery low",
            Event::KeySetRotated { .. } => "key set rotated",
        }
    }

    /// Encodes the body (code and fields) into `buf`; returns its length.
    pub fn encode(&self, buf: &mut [u8; MAX_EVENT_LEN]) -> usize {
        let mut w = Writer { buf, at: 0 };
        w.u8(self.code());
        match *self {
            Event::Boot { slot, version } => {
                w.u8(slot);
                w.put(&version.to_u32().to_le_bytes());
            }
            Event::UpdateOffered { sequence, version } => {
                w.u64(sequence);
                w.put(&version.to_u32().to_le_bytes());
            }
            Event::DownloadStarted { sequence }
            | Event::UpdateVerified { sequence }
            | Event::ConsentGiven { sequence }
            | Event::ConsentRefused { sequence } => w.u64(sequence),
            Event::UpdateRejected { sequence, reason } => {
                w.u64(sequence);
                w.u8(reason.code());
            }
            Event::UpdateInstalled { sequence, slot } => {
                w.u64(sequence);
                w.u8(slot);
            }
            Event::OnTrial {
                slot,
                attempts_left,
            } => {
                w.u8(slot);
                w.u8(attempts_left);
            }
            Event::Confirmed { slot, sequence } => {
                w.u8(slot);
                w.u64(sequence);
            }
            Event::Reverted { to_slot, reason } => {
                w.u8(to_slot);
                w.u8(reason.code());
            }
            Event::PresenceWindowOpened { seconds } => w.u16(seconds),
            Event::OwnerPaired { owner } | Event::OwnerRemoved { owner } => w.put(&owner),
            Event::FactoryReset => {}
            Event::Locked { method } | Event::Unlocked { method } => w.u8(method.code()),
            Event::PinFailed { consecutive } => w.u16(consecutive),
            Event::TamperDetected { sensor } | Event::TamperCleared { sensor } => w.u8(sensor),
            Event::BatteryLow { millivolts } => w.u16(millivolts),
            Event::KeySetRotated { from, to } => {
                w.u64(from);
                w.u64(to);
            }
        }
        w.at
    }

    /// Decodes an event body (code and fields). The length must be the
    /// code's exact body length.
    pub fn decode(body: &[u8]) -> Result<Self, DecodeError> {
        let Some(&code) = body.first() else {
            return Err(DecodeError::EmptyEvent);
        };
        let expected = Event::body_len(code).ok_or(DecodeError::UnknownCode {
            field: "event",
            code,
        })?;
        if body.len() != expected {
            return Err(DecodeError::EventLength {
                code,
                expected,
                got: body.len(),
            });
        }
        let mut r = Reader { bytes: body, at: 1 };
        Ok(match code {
            code::BOOT => Event::Boot {
                slot: r.u8(),
                version: Version::from_u32(r.u32()),
            },
            code::UPDATE_OFFERED => Event::UpdateOffered {
                sequence: r.u64(),
                version: Version::from_u32(r.u32()),
            },
            code::DOWNLOAD_STARTED => Event::DownloadStarted { sequence: r.u64() },
            code::UPDATE_VERIFIED => Event::UpdateVerified { sequence: r.u64() },
            code::UPDATE_REJECTED => Event::UpdateRejected {
                sequence: r.u64(),
                reason: RejectReason::from_code(r.u8())?,
            },
            code::UPDATE_INSTALLED => Event::UpdateInstalled {
                sequence: r.u64(),
                slot: r.u8(),
            },
            code::ON_TRIAL => Event::OnTrial {
                slot: r.u8(),
                attempts_left: r.u8(),
            },
            code::CONFIRMED => Event::Confirmed {
                slot: r.u8(),
                sequence: r.u64(),
            },
            code::REVERTED => Event::Reverted {
                to_slot: r.u8(),
                reason: RevertReason::from_code(r.u8())?,
            },
            code::CONSENT_GIVEN => Event::ConsentGiven { sequence: r.u64() },
            code::CONSENT_REFUSED => Event::ConsentRefused { sequence: r.u64() },
            code::PRESENCE_WINDOW => Event::PresenceWindowOpened { seconds: r.u16() },
            code::OWNER_PAIRED => Event::OwnerPaired { owner: r.take() },
            code::OWNER_REMOVED => Event::OwnerRemoved { owner: r.take() },
            code::FACTORY_RESET => Event::FactoryReset,
            code::LOCKED => Event::Locked {
                method: LockMethod::from_code(r.u8())?,
            },
            code::UNLOCKED => Event::Unlocked {
                method: LockMethod::from_code(r.u8())?,
            },
            code::PIN_FAILED => Event::PinFailed {
                consecutive: r.u16(),
            },
            code::TAMPER_DETECTED => Event::TamperDetected { sensor: r.u8() },
            code::TAMPER_CLEARED => Event::TamperCleared { sensor: r.u8() },
            code::BATTERY_LOW => Event::BatteryLow {
                millivolts: r.u16(),
            },
            code::KEYSET_ROTATED => Event::KeySetRotated {
                from: r.u64(),
                to: r.u64(),
            },
            _ => {
                return Err(DecodeError::UnknownCode {
                    field: "event",
                    code,
                });
            }
        })
    }
}

/// Hex of an owner id, for [`Event`]'s `Display`.
struct Hex<'a>(&'a [u8]);

impl fmt::Display for Hex<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl fmt::Display for Event {
    /// The name and the fields, e.g. `update rejected: sequence 5, reason anti-rollback`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())?;
        match *self {
            Event::Boot { slot, version } => write!(f, ": slot {slot}, version {version}"),
            Event::UpdateOffered { sequence, version } => {
                write!(f, ": sequence {sequence}, version {version}")
            }
            Event::DownloadStarted { sequence }
            | Event::UpdateVerified { sequence }
            | Event::ConsentGiven { sequence }
            | Event::ConsentRefused { sequence } => write!(f, ": sequence {sequence}"),
            Event::UpdateRejected { sequence, reason } => {
                write!(f, ": sequence {sequence}, reason {reason}")
            }
            Event::UpdateInstalled { sequence, slot } => {
                write!(f, ": sequence {sequence}, slot {slot}")
            }
            Event::OnTrial {
                slot,
                attempts_left,
            } => write!(f, ": slot {slot}, {attempts_left} attempt(s) left"),
            Event::Confirmed { slot, sequence } => {
                write!(f, ": slot {slot}, sequence {sequence}")
            }
            Event::Reverted { to_slot, reason } => {
                write!(f, ": to slot {to_slot}, reason {reason}")
            }
            Event::PresenceWindowOpened { seconds } => write!(f, ": {seconds} s"),
            Event::OwnerPaired { owner } | Event::OwnerRemoved { owner } => {
                write!(f, ": owner {}", Hex(&owner))
            }
            Event::FactoryReset => Ok(()),
            Event::Locked { method } | Event::Unlocked { method } => write!(f, ": {method}"),
            Event::PinFailed { consecutive } => write!(f, ": {consecutive} in a row"),
            Event::TamperDetected { sensor } | Event::TamperCleared { sensor } => {
                write!(f, ": sensor {sensor}")
            }
            Event::BatteryLow { millivolts } => write!(f, ": {millivolts} mV"),
            Event::KeySetRotated { from, to } => write!(f, ": version {from} -> {to}"),
        }
    }
}
