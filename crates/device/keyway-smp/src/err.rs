//! Error codes as types: the SMP-level `MGMT_ERR` result codes, the image
//! and OS groups' codes, and the Keyway group's typed [`Refusal`]s, with
//! the error body both SMP versions carry them in.
//!
//! An error response is one CBOR map:
//!
//! * SMPv1 (and SMP-level errors in v2): `{"rc": MGMT_ERR, "rsn": text}`;
//! * SMPv2 group errors: `{"err": {"group": g, "rc": group code}}`;
//! * either may add Keyway's typed refusal: `"kw-rc"` (a [`Refusal`]
//!   code) and its fields (`"kw-base"`, `"kw-runs"`, `"kw-have"`,
//!   `"kw-need"`, `"kw-secs"`), FORMAT.md, "Refusals". Stock tools ignore
//!   these keys; Keyway's clients decide on them, never on `rsn`, which
//!   stays for people.

use crate::cbor::{self, Error, Reader, Writer, field, fixed};

/// Declares [`MgmtErr`]: a row per code with its `MGMT_ERR_*` name and
/// its words (one table, so a code, its name and its words stand together).
macro_rules! mgmt_codes {
    ($($variant:ident = $code:literal: $name:literal, $words:literal,)*) => {
        /// `mcumgr_err_t`: SMP-level result codes (the top-level `rc`).
        #[allow(missing_docs)]
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum MgmtErr {
            $($variant = $code,)*
        }

        impl MgmtErr {
            /// The code of `rc` (`None`: not a code MCUmgr defines).
            pub fn from_code(rc: u64) -> Option<MgmtErr> {
                match rc {
                    $($code => Some(MgmtErr::$variant),)*
                    _ => None,
                }
            }

            /// The `MGMT_ERR_*` name (without the prefix).
            pub fn name(self) -> &'static str {
                match self {
                    $(MgmtErr::$variant => $name,)*
                }
            }

            /// The code in words.
            pub fn words(self) -> &'static str {
                match self {
                    $(MgmtErr::$variant => $words,)*
                }
            }
        }
    };
}

mgmt_codes! {
    Ok = 0: "OK", "success",
    Unknown = 1: "EUNKNOWN", "unknown error",
    NoMem = 2: "ENOMEM", "the lock is out of memory",
    Inval = 3: "EINVAL", "invalid request",
    Timeout = 4: "ETIMEOUT", "the operation timed out",
    NoEnt = 5: "ENOENT", "nothing there",
    BadState = 6: "EBADSTATE", "not allowed in the lock's current state",
    MsgSize = 7: "EMSGSIZE", "the request is too large for the lock's buffer",
    NotSup = 8: "ENOTSUP", "the lock does not support this command",
    Corrupt = 9: "ECORRUPT", "corrupt data",
    Busy = 10: "EBUSY", "the lock is busy",
    AccessDenied = 11: "EACCESSDENIED", "access denied",
    TooOld = 12: "UNSUPPORTED_TOO_OLD", "the lock's SMP version is too old",
    TooNew = 13: "UNSUPPORTED_TOO_NEW", "the lock's SMP version is too new",
}

/// Declares a group's error codes: a `pub const` each, and `words`, the
/// code in words (one table, so a code and its words stand together).
macro_rules! group_codes {
    (
        $(#[$m:meta])* $module:ident, $group:literal {
            $($name:ident = $code:literal: $words:literal,)*
        }
    ) => {
        $(#[$m])*
        #[allow(missing_docs)]
        pub mod $module {
            $(pub const $name: u16 = $code;)*

            #[doc = concat!("An ", $group, " code in words.")]
            pub fn words(rc: u64) -> &'static str {
                match rc {
                    $($code => $words,)*
                    _ => concat!("unknown ", $group, " error"),
                }
            }
        }
    };
}

group_codes! {
    /// `IMG_MGMT_ERR_*`: the image group's codes (SMPv2 `err.rc`).
    img_rc, "image-group" {
        UNKNOWN = 1: "unknown error",
        FLASH_CONFIG_QUERY_FAIL = 2: "flash configuration query failed",
        NO_IMAGE = 3: "no image",
        NO_TLVS = 4: "no TLVs",
        INVALID_TLV = 5: "invalid TLV",
        TLV_MULTIPLE_HASHES_FOUND = 6: "multiple hash TLVs",
        TLV_INVALID_SIZE = 7: "invalid TLV size",
        HASH_NOT_FOUND = 8: "hash not found",
        NO_FREE_SLOT = 9: "no free slot",
        FLASH_OPEN_FAILED = 10: "flash open failed",
        FLASH_READ_FAILED = 11: "flash read failed",
        FLASH_WRITE_FAILED = 12: "flash write failed",
        FLASH_ERASE_FAILED = 13: "flash erase failed",
        INVALID_SLOT = 14: "invalid slot",
        NO_FREE_MEMORY = 15: "no free memory",
        FLASH_CONTEXT_ALREADY_SET = 16: "flash context already set",
        FLASH_CONTEXT_NOT_SET = 17: "flash context not set",
        FLASH_AREA_DEVICE_NULL = 18: "flash area device null",
        INVALID_PAGE_OFFSET = 19: "invalid page offset",
        INVALID_OFFSET = 20: "invalid offset",
        INVALID_LENGTH = 21: "invalid length",
        INVALID_IMAGE_HEADER = 22: "invalid image header",
        INVALID_IMAGE_HEADER_MAGIC = 23: "invalid image header magic",
        INVALID_HASH = 24: "invalid hash",
        INVALID_FLASH_ADDRESS = 25: "invalid flash address",
        VERSION_GET_FAILED = 26: "version get failed",
        CURRENT_VERSION_IS_NEWER = 27: "current version is newer",
        IMAGE_ALREADY_PENDING = 28: "image already pending",
        INVALID_IMAGE_VECTOR_TABLE = 29: "invalid image vector table",
        INVALID_IMAGE_TOO_LARGE = 30: "image too large",
        INVALID_IMAGE_DATA_OVERRUN = 31: "image data overrun",
        IMAGE_CONFIRMATION_DENIED = 32: "image confirmation denied",
        IMAGE_SETTING_TEST_TO_ACTIVE_DENIED = 33: "setting test to active denied",
        ACTIVE_SLOT_NOT_KNOWN = 34: "active slot not known",
    }
}

group_codes! {
    /// `OS_MGMT_ERR_*`: the OS group's codes (SMPv2 `err.rc`).
    os_rc, "OS-group" {
        UNKNOWN = 1: "unknown error",
        INVALID_FORMAT = 2: "invalid format",
        QUERY_YIELDS_NO_ANSWER = 3: "query yields no answer",
        RTC_NOT_SET = 4: "RTC not set",
        RTC_COMMAND_FAILED = 5: "RTC command failed",
        QUERY_RESPONSE_VALUE_NOT_VALID = 6: "query response value not valid",
    }
}

/// Why the Keyway lock refused a request, as a typed code with its data:
/// carried as `"kw-rc"` and fields next to the SMP `rc`/`err`, so a client
/// decides on the code and never on the English `rsn`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Refusal {
    /// 1: the owner's proof did not verify (an unpaired key and a bad
    /// signature are refused alike).
    NotAuthorized,
    /// 2: the request needs the presence window, and it is closed.
    NoPresenceWindow,
    /// 3: the challenge nonce is unknown, used or expired: ask for another.
    StaleNonce,
    /// 4: a factory reset needs the button's long press within the window.
    LongPressNeeded,
    /// 5: consent before the release notes were read.
    NotesNotOffered,
    /// 6: nothing waits for consent.
    NothingPending,
    /// 7: a delta whose base is not the running image: send the full image.
    DeltaWrongBase {
        /// The SHA-256 of the image the delta applies to.
        base_image_sha256: [u8; 32],
        /// The SHA-256 of the image the lock runs, if it knows it.
        running_image_sha256: Option<[u8; 32]>,
    },
    /// 8: the battery holds less than the install needs.
    BatteryLow {
        /// Energy left, mWh.
        have_mwh: u64,
        /// Energy the release needs, mWh.
        need_mwh: u64,
    },
    /// 9: installs need the bolt withdrawn, and it is thrown.
    BoltLocked,
    /// 10: the lock holds as many owners as it can.
    OwnersFull,
    /// 11: an owner's `auth` on an upload chunk other than the first.
    AuthMisplaced,
    /// 12: a log chunk asked for before the export began (offset 0).
    NoExport,
    /// 13: too many requests of this kind: try again later.
    RateLimited {
        /// Seconds until the lock takes the request again.
        retry_s: u64,
    },
    /// 14: the command needs an owner's session (secure channel).
    SessionRequired,
    /// 15: the setup code is wrong (pairing).
    BadSetupCode,
    /// 16: no owner of the lock has the key id named (`unpair`).
    UnknownOwner,
    /// 17: another peer's pairing is under way; try again when it ends.
    PairingBusy,
    /// 18: too many wrong setup codes: pairing stays shut until a person
    /// re-opens the presence window at the lock.
    PairingLockedOut,
    /// 19: no session with this id (expired, closed, or the lock
    /// restarted): run a new handshake.
    UnknownSession,
    /// 20: the sealed record was refused (replayed, forged, altered, or
    /// out of order); it was not executed.
    RecordRefused,
    /// 21: every session slot holds a live handshake or session; try again
    /// later.
    SessionsFull,
    /// 22: the lock holds no setup-code verifier (not provisioned).
    NotProvisioned,
    /// 23: no pairing of this peer is under way (none began, it ended, or
    /// it timed out): start again with the first message.
    NoPairing,
    /// 24: the upload in progress belongs to another owner or peer (it
    /// may be replaced once it has been idle); this chunk or erase was not
    /// taken and the upload is untouched.
    UploadBusy,
    /// A code this version does not know (a newer lock).
    Other {
        /// The code.
        code: u64,
    },
}

/// The `kw-*` keys of a refusal.
mod key {
    pub const RC: &str = "kw-rc";
    pub const BASE: &str = "kw-base";
    pub const HAVE: &str = "kw-have";
    pub const NEED: &str = "kw-need";
    pub const RUNS: &str = "kw-runs";
    pub const SECS: &str = "kw-secs";
}

impl Refusal {
    /// The numeric code (`kw-rc`).
    pub fn code(&self) -> u64 {
        match self {
            Refusal::NotAuthorized => 1,
            Refusal::NoPresenceWindow => 2,
            Refusal::StaleNonce => 3,
            Refusal::LongPressNeeded => 4,
            Refusal::NotesNotOffered => 5,
            Refusal::NothingPending => 6,
            Refusal::DeltaWrongBase { .. } => 7,
            Refusal::BatteryLow { .. } => 8,
            Refusal::BoltLocked => 9,
            Refusal::OwnersFull => 10,
            Refusal::AuthMisplaced => 11,
            Refusal::NoExport => 12,
            Refusal::RateLimited { .. } => 13,
            Refusal::SessionRequired => 14,
            Refusal::BadSetupCode => 15,
            Refusal::UnknownOwner => 16,
            Refusal::PairingBusy => 17,
            Refusal::PairingLockedOut => 18,
            Refusal::UnknownSession => 19,
            Refusal::RecordRefused => 20,
            Refusal::SessionsFull => 21,
            Refusal::NotProvisioned => 22,
            Refusal::NoPairing => 23,
            Refusal::UploadBusy => 24,
            Refusal::Other { code } => *code,
        }
    }

    /// The refusal in words, for people (the client's sentences add what
    /// to do).
    pub fn words(&self) -> &'static str {
        match self {
            Refusal::NotAuthorized => "the owner's proof was not accepted",
            Refusal::NoPresenceWindow => "the presence window is closed",
            Refusal::StaleNonce => "the challenge nonce is unknown, used or expired",
            Refusal::LongPressNeeded => "a factory reset needs the long press",
            Refusal::NotesNotOffered => "the release notes were not read before consent",
            Refusal::NothingPending => "no update waits for consent",
            Refusal::DeltaWrongBase { .. } => "the delta applies to another image",
            Refusal::BatteryLow { .. } => "the battery is too low to install",
            Refusal::BoltLocked => "installs need the bolt withdrawn",
            Refusal::OwnersFull => "the lock holds as many owners as it can",
            Refusal::AuthMisplaced => "an owner's auth belongs in the first upload chunk",
            Refusal::NoExport => "no log export in progress",
            Refusal::RateLimited { .. } => "too many requests",
            Refusal::SessionRequired => "the command needs an owner's session",
            Refusal::BadSetupCode => "the setup code is wrong",
            Refusal::UnknownOwner => "no owner of the lock has that key id",
            Refusal::PairingBusy => "another pairing is under way",
            Refusal::PairingLockedOut => {
                "too many wrong setup codes: pairing is shut until the presence window re-opens"
            }
            Refusal::UnknownSession => "no such session",
            Refusal::RecordRefused => "the sealed request was refused",
            Refusal::SessionsFull => "every session slot is in use",
            Refusal::NotProvisioned => "the lock has no setup code",
            Refusal::NoPairing => "no pairing is under way",
            Refusal::UploadBusy => "the upload in progress belongs to someone else",
            Refusal::Other { .. } => "a refusal this client does not know",
        }
    }

    /// Number of map entries [`Refusal::write_entries`] writes.
    pub fn entries(&self) -> usize {
        1 + match self {
            Refusal::DeltaWrongBase {
                running_image_sha256,
                ..
            } => 1 + usize::from(running_image_sha256.is_some()),
            Refusal::BatteryLow { .. } => 2,
            Refusal::RateLimited { .. } => 1,
            _ => 0,
        }
    }

    /// Writes the `kw-*` entries (keys in deterministic order) into a map
    /// the caller opened.
    pub fn write_entries(&self, w: &mut Writer<'_>) -> Result<(), Error> {
        w.entry_u64(key::RC, self.code())?;
        match self {
            Refusal::DeltaWrongBase {
                base_image_sha256,
                running_image_sha256,
            } => {
                w.entry_bytes(key::BASE, base_image_sha256)?;
                if let Some(r) = running_image_sha256 {
                    w.entry_bytes(key::RUNS, r)?;
                }
            }
            Refusal::BatteryLow { have_mwh, need_mwh } => {
                w.entry_u64(key::HAVE, *have_mwh)?;
                w.entry_u64(key::NEED, *need_mwh)?;
            }
            Refusal::RateLimited { retry_s } => {
                w.entry_u64(key::SECS, *retry_s)?;
            }
            _ => {}
        }
        Ok(())
    }

    /// The refusal of a code and the `kw-*` fields read with it.
    fn from_fields(code: u64, f: &RefusalFields) -> Result<Refusal, Error> {
        let need = |v: Option<u64>, k| v.ok_or(Error::Missing { field: k });
        Ok(match code {
            1 => Refusal::NotAuthorized,
            2 => Refusal::NoPresenceWindow,
            3 => Refusal::StaleNonce,
            4 => Refusal::LongPressNeeded,
            5 => Refusal::NotesNotOffered,
            6 => Refusal::NothingPending,
            7 => Refusal::DeltaWrongBase {
                base_image_sha256: f.base.ok_or(Error::Missing { field: key::BASE })?,
                running_image_sha256: f.runs,
            },
            8 => Refusal::BatteryLow {
                have_mwh: need(f.have, key::HAVE)?,
                need_mwh: need(f.need, key::NEED)?,
            },
            9 => Refusal::BoltLocked,
            10 => Refusal::OwnersFull,
            11 => Refusal::AuthMisplaced,
            12 => Refusal::NoExport,
            13 => Refusal::RateLimited {
                retry_s: need(f.secs, key::SECS)?,
            },
            14 => Refusal::SessionRequired,
            15 => Refusal::BadSetupCode,
            16 => Refusal::UnknownOwner,
            17 => Refusal::PairingBusy,
            18 => Refusal::PairingLockedOut,
            19 => Refusal::UnknownSession,
            20 => Refusal::RecordRefused,
            21 => Refusal::SessionsFull,
            22 => Refusal::NotProvisioned,
            23 => Refusal::NoPairing,
            24 => Refusal::UploadBusy,
            code => Refusal::Other { code },
        })
    }
}

#[derive(Default)]
struct RefusalFields {
    base: Option<[u8; 32]>,
    runs: Option<[u8; 32]>,
    have: Option<u64>,
    need: Option<u64>,
    secs: Option<u64>,
}

/// An error response, decoded or to encode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ErrorRsp<'a> {
    /// The top-level `rc` (`MGMT_ERR`; 0 or absent with a group error).
    pub rc: Option<u64>,
    /// The SMPv2 group error: (group, the group's code).
    pub group: Option<(u16, u64)>,
    /// The reason in words, for people (`rsn`).
    pub rsn: Option<&'a str>,
    /// Keyway's typed refusal.
    pub refusal: Option<Refusal>,
}

impl<'a> ErrorRsp<'a> {
    /// The error in a response body, or `None` when the body reports
    /// success (no `rc`/`err`, or code 0). Other fields are skipped.
    pub fn decode(body: &'a [u8]) -> Result<Option<ErrorRsp<'a>>, Error> {
        let mut rc = None;
        let mut group = None;
        let mut rsn = None;
        let mut kw = None;
        let mut f = RefusalFields::default();
        let names = [
            "rc",
            "rsn",
            "err",
            key::RC,
            key::BASE,
            key::RUNS,
            key::HAVE,
            key::NEED,
            key::SECS,
        ];
        cbor::read_body(body, &names, &mut |i, name, r| {
            let uint = |r: &mut Reader<'_>| field(r.u64(), name, "an unsigned integer");
            match i {
                0 => rc = Some(field(r.u64(), name, "an integer (MGMT_ERR)")?),
                1 => rsn = Some(field(r.text(), name, "a text string")?),
                2 => group = Some(group_err(r)?),
                3 => kw = Some(uint(r)?),
                4 => f.base = Some(fixed(r, name, "32 bytes")?),
                5 => f.runs = Some(fixed(r, name, "32 bytes")?),
                6 => f.have = Some(uint(r)?),
                7 => f.need = Some(uint(r)?),
                _ => f.secs = Some(uint(r)?),
            }
            Ok(())
        })?;
        let refusal = kw.map(|c| Refusal::from_fields(c, &f)).transpose()?;
        let failed = rc.is_some_and(|c| c != 0) || group.is_some_and(|(_, c)| c != 0);
        if !failed {
            return Ok(None);
        }
        Ok(Some(ErrorRsp {
            rc,
            group,
            rsn,
            refusal,
        }))
    }

    /// Writes the error body (keys in deterministic order).
    pub fn encode(&self, w: &mut Writer<'_>) -> Result<(), Error> {
        let n = usize::from(self.rc.is_some())
            + usize::from(self.group.is_some())
            + usize::from(self.rsn.is_some())
            + self.refusal.map_or(0, |r| r.entries());
        w.map(n)?;
        if let Some(rc) = self.rc {
            w.entry_u64("rc", rc)?;
        }
        if let Some((g, rc)) = self.group {
            w.text("err")?;
            w.map(2)?;
            w.entry_u64("rc", rc)?;
            w.entry_u64("group", u64::from(g))?;
        }
        if let Some(r) = self.rsn {
            w.entry_text("rsn", r)?;
        }
        if let Some(r) = &self.refusal {
            r.write_entries(w)?;
        }
        Ok(())
    }

    /// The SMP-level code, if the top-level `rc` names one.
    pub fn mgmt(&self) -> Option<MgmtErr> {
        self.rc.and_then(MgmtErr::from_code)
    }
}

fn group_err(r: &mut Reader<'_>) -> Result<(u16, u64), Error> {
    let mut g = None;
    let mut rc = None;
    let names = ["err.group", "err.rc"];
    let mut value = |i, name, r: &mut Reader<'_>| {
        let v = field(r.u64(), name, "an unsigned integer")?;
        if i == 0 {
            g = Some(u16::try_from(v).map_err(|_| Error::Invalid {
                field: name,
                expected: "a group id (0 to 65535)",
            })?);
        } else {
            rc = Some(v);
        }
        Ok(())
    };
    field(
        cbor::read_fields(r, &names, 4, &mut value),
        "err",
        "a map {group, rc}",
    )?;
    Ok((cbor::need(g, "err.group")?, cbor::need(rc, "err.rc")?))
}
