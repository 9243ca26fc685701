//! The SMP client: typed calls over a [`Transport`], owner authentication,
//! and the lock's refusals turned into sentences.

use ciborium::Value;
use keyway::keys::SigningKey;
use keyway::smp::{self, MAX_BODY, Op, decode_response, encode_request, get, group, text};
use sha2::{Digest as _, Sha256};

use super::transport::{Transport, TransportError};

/// A CBOR map body.
pub type Map = Vec<(Value, Value)>;

/// The Keyway group's command ids (FORMAT.md, "The Keyway SMP group"),
/// as the simulated lock defines them.
pub use keyway_lock::keyway_group::cmd as keyway_cmd;

/// The OS group's command ids used here.
mod os_cmd {
    pub const ECHO: u8 = 0;
    pub const RESET: u8 = 5;
}

/// The image group's command ids used here.
mod img_cmd {
    pub const STATE: u8 = 0;
    pub const UPLOAD: u8 = 1;
}

/// The domain separator of an owner's signature (FORMAT.md).
pub use keyway_lock::owners::AUTH_CONTEXT;
/// The largest audit-log export the client reassembles.
pub const MAX_LOG_EXPORT: u64 = 16 << 20;
/// The largest log chunk accepted in one answer.
pub const MAX_LOG_CHUNK: usize = 4096;

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
    },
    /// The answer is not what the protocol allows.
    #[error("{what}: the lock's answer is malformed: {why}")]
    Malformed {
        /// The call.
        what: String,
        /// What is wrong with it.
        why: String,
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

    /// Whether the lock does not know the command (`ENOTSUP`).
    pub fn not_supported(&self) -> bool {
        matches!(self, DeviceError::Refused { rc: 8, .. })
    }

    /// Whether the lock refused for want of authority (`EACCESSDENIED`).
    pub fn access_denied(&self) -> bool {
        matches!(self, DeviceError::Refused { rc: 11, .. })
    }
}

/// An unsigned integer the answer must have.
fn required_u64(what: &str, body: &Map, key: &str) -> Result<u64, DeviceError> {
    smp::get_u64(body, key)
        .map_err(|w| malformed(what, w))?
        .ok_or_else(|| malformed(what, format!("no \"{key}\" in the answer")))
}

fn malformed(what: &str, why: impl Into<String>) -> DeviceError {
    DeviceError::Malformed {
        what: what.to_owned(),
        why: why.into(),
    }
}

/// `mcumgr_err_t` names and their meaning in words.
pub fn mgmt_err(rc: u64) -> (&'static str, &'static str) {
    match rc {
        0 => ("OK", "success"),
        1 => ("EUNKNOWN", "unknown error"),
        2 => ("ENOMEM", "the lock is out of memory"),
        3 => ("EINVAL", "invalid request"),
        4 => ("ETIMEOUT", "the operation timed out"),
        5 => ("ENOENT", "nothing there"),
        6 => ("EBADSTATE", "not allowed in the lock's current state"),
        7 => ("EMSGSIZE", "the request is too large for the lock's buffer"),
        8 => ("ENOTSUP", "the lock does not support this command"),
        9 => ("ECORRUPT", "corrupt data"),
        10 => ("EBUSY", "the lock is busy"),
        11 => ("EACCESSDENIED", "access denied"),
        12 => ("UNSUPPORTED_TOO_OLD", "the lock's SMP version is too old"),
        13 => ("UNSUPPORTED_TOO_NEW", "the lock's SMP version is too new"),
        _ => ("EUNKNOWN", "an unknown result code"),
    }
}

/// An image-group (`IMG_MGMT_ERR`) code in words.
pub fn img_err(rc: u64) -> &'static str {
    match rc {
        1 => "unknown error",
        2 => "flash configuration query failed",
        3 => "no image",
        4 => "no TLVs",
        5 => "invalid TLV",
        6 => "multiple hash TLVs",
        7 => "invalid TLV size",
        8 => "hash not found",
        9 => "no free slot",
        10 => "flash open failed",
        11 => "flash read failed",
        12 => "flash write failed",
        13 => "flash erase failed",
        14 => "invalid slot",
        15 => "no free memory",
        16 => "flash context already set",
        17 => "flash context not set",
        18 => "flash area device null",
        19 => "invalid page offset",
        20 => "invalid offset",
        21 => "invalid length",
        22 => "invalid image header",
        23 => "invalid image header magic",
        24 => "invalid hash",
        25 => "invalid flash address",
        26 => "version get failed",
        27 => "current version is newer",
        28 => "image already pending",
        29 => "invalid image vector table",
        30 => "image too large",
        31 => "image data overrun",
        32 => "image confirmation denied",
        33 => "setting test to active denied",
        34 => "active slot not known",
        _ => "unknown image-group error",
    }
}

/// An OS-group (`OS_MGMT_ERR`) code in words.
pub fn os_err(rc: u64) -> &'static str {
    match rc {
        1 => "unknown error",
        2 => "invalid format",
        3 => "query yields no answer",
        4 => "RTC not set",
        5 => "RTC command failed",
        6 => "query response value not valid",
        _ => "unknown OS-group error",
    }
}

/// The refusal in a response body, if any.
fn refusal(what: &str, body: &Map) -> Result<(), DeviceError> {
    if let Some(v) = get(body, "rc") {
        let rc = match v {
            Value::Integer(i) => {
                u64::try_from(*i).map_err(|_| malformed(what, "\"rc\" is negative or too large"))?
            }
            _ => return Err(malformed(what, "\"rc\" is not an integer")),
        };
        if rc != 0 {
            let (name, words) = mgmt_err(rc);
            let reason = match smp::get_text(body, "rsn") {
                // The lock's reasons may start with the word already.
                Ok(Some(r)) => bounded(r.strip_prefix("refused: ").unwrap_or(r)),
                _ => words.to_owned(),
            };
            return Err(DeviceError::Refused {
                what: what.to_owned(),
                rc,
                name,
                reason,
            });
        }
    }
    if let Some(e) = get(body, "err") {
        let m = e
            .as_map()
            .ok_or_else(|| malformed(what, "\"err\" is not a map"))?;
        let g = smp::get_u64(m, "group")
            .map_err(|w| malformed(what, w))?
            .ok_or_else(|| malformed(what, "\"err\" has no \"group\""))?;
        let rc = smp::get_u64(m, "rc")
            .map_err(|w| malformed(what, w))?
            .ok_or_else(|| malformed(what, "\"err\" has no \"rc\""))?;
        if rc != 0 {
            let (group_name, words) = match u16::try_from(g) {
                Ok(group::IMAGE) => ("image".to_owned(), img_err(rc)),
                Ok(group::OS) => ("OS".to_owned(), os_err(rc)),
                _ => (format!("{g}"), "an error code of that group"),
            };
            let mut reason = words.to_owned();
            if let Ok(Some(r)) = smp::get_text(body, "rsn") {
                reason = format!("{reason}: {}", bounded(r));
            }
            return Err(DeviceError::GroupRefused {
                what: what.to_owned(),
                group: g,
                group_name,
                rc,
                reason,
            });
        }
    }
    Ok(())
}

/// A lock's text, cut to 200 characters for an error message.
fn bounded(s: &str) -> String {
    let mut t = printable(&s.chars().take(200).collect::<String>(), false);
    if s.chars().nth(200).is_some() {
        t.push('…');
    }
    t
}

/// `s`, a text the lock sent, safe to print on a terminal: control
/// characters (an escape sequence could rewrite the screen, e.g. hide a
/// refusal) and bidirectional overrides are shown as `\u{..}` escapes;
/// with `newlines`, line breaks and tabs stay (release notes).
pub fn printable(s: &str, newlines: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        let bidi = matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}');
        if (c.is_control() || bidi) && !(newlines && matches!(c, '\n' | '\t')) {
            out.push_str(&format!("\\u{{{:x}}}", u32::from(c)));
        } else {
            out.push(c);
        }
    }
    out
}

/// A slot as the image group reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageSlot {
    /// The slot (0 or 1).
    pub slot: u64,
    /// The release version.
    pub version: String,
    /// The image hash: SHA-256 of the whole envelope for Keyway.
    pub hash: Vec<u8>,
    /// Verifies and may boot.
    pub bootable: bool,
    /// Marked for a test boot at the next reset.
    pub pending: bool,
    /// Confirmed.
    pub confirmed: bool,
    /// Running now.
    pub active: bool,
}

/// What an upload did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UploadReport {
    /// The file's length.
    pub len: u64,
    /// Where the lock said to start (non-zero: an upload resumed).
    pub resumed_from: u64,
    /// Upload requests answered.
    pub requests: u64,
    /// The largest data chunk sent.
    pub chunk: usize,
}

/// The owner's identity for `auth`.
#[derive(Debug)]
struct Owner {
    key: SigningKey,
    public: [u8; 32],
}

/// An SMP client for one lock.
#[derive(Debug)]
pub struct Client<T> {
    transport: T,
    seq: u8,
    owner: Option<Owner>,
}

/// The message an owner signs for a request (FORMAT.md, "Owner
/// authentication").
pub fn auth_message(group: u16, id: u8, nonce: &[u8; 16], body: &Map) -> Vec<u8> {
    let mut encoded = Vec::new();
    // Serializing a Value into a Vec cannot fail.
    let _ = ciborium::into_writer(&Value::Map(body.clone()), &mut encoded);
    keyway_lock::owners::auth_message(group, id, nonce, &encoded)
}

impl<T: Transport> Client<T> {
    /// A client over `transport`, without an owner key.
    pub fn new(transport: T) -> Self {
        Client {
            transport,
            seq: 0,
            owner: None,
        }
    }

    /// Signs requests that need an owner with `key` (Ed25519).
    pub fn with_owner(mut self, key: SigningKey) -> Result<Self, DeviceError> {
        let public: [u8; 32] =
            key.raw_public_key_bytes()
                .try_into()
                .map_err(|_| DeviceError::Usage {
                    what: "owner key".into(),
                    why: "an owner key must be Ed25519 (keyway keygen NAME)".into(),
                })?;
        if key.algorithm() != keyway::keys::Algorithm::Ed25519 {
            return Err(DeviceError::Usage {
                what: "owner key".into(),
                why: "an owner key must be Ed25519 (keyway keygen NAME)".into(),
            });
        }
        self.owner = Some(Owner { key, public });
        Ok(self)
    }

    /// Whether requests are signed by an owner.
    pub fn has_owner(&self) -> bool {
        self.owner.is_some()
    }

    /// The transport (its counters).
    pub fn transport(&self) -> &T {
        &self.transport
    }

    /// One request and its checked answer: the header must match (op,
    /// group, command, sequence), the body must be a map, and an `rc` or
    /// `err` becomes a [`DeviceError`].
    pub fn request(
        &mut self,
        what: &str,
        op: Op,
        group: u16,
        id: u8,
        body: Map,
    ) -> Result<Map, DeviceError> {
        let seq = self.seq;
        self.seq = self.seq.wrapping_add(1);
        let frame = encode_request(op, group, id, seq, body);
        if frame.len() > smp::MAX_FRAME {
            return Err(DeviceError::Usage {
                what: what.to_owned(),
                why: format!(
                    "a request of {} bytes exceeds the lock's buffer of {} bytes",
                    frame.len(),
                    smp::MAX_FRAME
                ),
            });
        }
        let answer =
            self.transport
                .exchange(&frame, seq)
                .map_err(|why| DeviceError::Transport {
                    what: what.to_owned(),
                    why,
                })?;
        let r = decode_response(&answer).map_err(|e| malformed(what, e.to_string()))?;
        let h = r.header;
        if h.seq != seq || h.group != group || h.id != id || h.op != op.response() {
            return Err(malformed(
                what,
                format!(
                    "it answers group {} command {} (op {:?}, sequence {}), the request was group {group} command {id} (sequence {seq})",
                    h.group, h.id, h.op, h.seq
                ),
            ));
        }
        refusal(what, &r.body)?;
        Ok(r.body)
    }

    /// `body` with the owner's `auth` for (`group`, `id`) added, if the
    /// client has an owner key; `body` unchanged otherwise.
    fn authorise(&mut self, group: u16, id: u8, mut body: Map) -> Result<Map, DeviceError> {
        if self.owner.is_none() {
            return Ok(body);
        }
        let nonce = self.challenge()?;
        let Some(owner) = &self.owner else {
            return Ok(body);
        };
        let sig = owner.key.sign(&auth_message(group, id, &nonce, &body));
        body.push((
            text("auth"),
            Value::Map(vec![
                (text("key"), Value::Bytes(owner.public.to_vec())),
                (text("nonce"), Value::Bytes(nonce.to_vec())),
                (text("sig"), Value::Bytes(sig)),
            ]),
        ));
        Ok(body)
    }

    /// OS echo: the lock returns `d`.
    pub fn echo(&mut self, d: &str) -> Result<String, DeviceError> {
        let b = self.request(
            "echo",
            Op::Write,
            group::OS,
            os_cmd::ECHO,
            vec![(text("d"), text(d))],
        )?;
        smp::get_text(&b, "r")
            .map_err(|w| malformed("echo", w))?
            .map(str::to_owned)
            .ok_or_else(|| malformed("echo", "no \"r\""))
    }

    /// OS reset: the lock reboots after answering.
    pub fn reset(&mut self) -> Result<(), DeviceError> {
        // A reset needs the window or an owner: signed when there is one.
        let body = self.authorise(group::OS, os_cmd::RESET, Vec::new())?;
        self.request("reset", Op::Write, group::OS, os_cmd::RESET, body)
            .map(|_| ())
    }

    /// The image group's slot list.
    pub fn image_state(&mut self) -> Result<Vec<ImageSlot>, DeviceError> {
        let b = self.request(
            "image state",
            Op::Read,
            group::IMAGE,
            img_cmd::STATE,
            Vec::new(),
        )?;
        parse_images("image state", &b)
    }

    /// Marks the image with `hash` for a test boot at the next reset.
    pub fn image_test(&mut self, hash: &[u8]) -> Result<Vec<ImageSlot>, DeviceError> {
        self.image_write("image test", hash, false)
    }

    /// Confirms the image with `hash` (the running one).
    pub fn image_confirm(&mut self, hash: &[u8]) -> Result<Vec<ImageSlot>, DeviceError> {
        self.image_write("image confirm", hash, true)
    }

    fn image_write(
        &mut self,
        what: &str,
        hash: &[u8],
        confirm: bool,
    ) -> Result<Vec<ImageSlot>, DeviceError> {
        let body = self.authorise(
            group::IMAGE,
            img_cmd::STATE,
            vec![
                (text("hash"), Value::Bytes(hash.to_vec())),
                (text("confirm"), Value::Bool(confirm)),
            ],
        )?;
        let b = self.request(what, Op::Write, group::IMAGE, img_cmd::STATE, body)?;
        parse_images(what, &b)
    }

    /// Uploads `file` (an envelope) in chunks that keep each frame within
    /// the transport's MTU, continuing from whatever offset the lock
    /// answers (a resumed upload starts where the lock's journal stands).
    /// `progress(done, total)` is called after every answer.
    pub fn upload(
        &mut self,
        file: &[u8],
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<UploadReport, DeviceError> {
        const WHAT: &str = "upload";
        let len = file.len() as u64;
        if file.is_empty() {
            return Err(DeviceError::Usage {
                what: WHAT.into(),
                why: "the file is empty".into(),
            });
        }
        let sha: [u8; 32] = Sha256::digest(file).into();
        // Authenticate the first chunk if the lock has the Keyway group.
        let mut auth_first = self.owner.is_some();
        let budget = self
            .transport
            .mtu()
            .min(smp::MAX_FRAME)
            .saturating_sub(smp::HEADER_LEN);
        let mut report = UploadReport {
            len,
            resumed_from: 0,
            requests: 0,
            chunk: 0,
        };
        let mut off = 0u64;
        let mut stalled = 0u32;
        // Each answer either advances, or moves the offset: a bounded
        // number of requests for any lock.
        let limit = 3 * (len / 16 + 1) + 64;
        while report.requests < limit {
            let first = off == 0;
            let mut head: Map = vec![(text("off"), Value::from(off))];
            if first {
                head.push((text("len"), Value::from(len)));
                head.push((text("sha"), Value::Bytes(sha.to_vec())));
                head.push((text("image"), Value::from(0u8)));
            }
            let with_auth = first && auth_first;
            let n = chunk_len(&head, with_auth, budget)
                .min(usize::try_from(len - off).unwrap_or(usize::MAX));
            if n == 0 {
                return Err(DeviceError::Usage {
                    what: WHAT.into(),
                    why: format!(
                        "an MTU of {} bytes leaves no room for data",
                        self.transport.mtu()
                    ),
                });
            }
            let start = usize::try_from(off).unwrap_or(usize::MAX);
            let data = file.get(start..start + n).unwrap_or(&[]);
            head.insert(1, (text("data"), Value::Bytes(data.to_vec())));
            let body = if with_auth {
                match self.authorise(group::IMAGE, img_cmd::UPLOAD, head.clone()) {
                    Ok(b) => b,
                    // A lock without the Keyway group: the presence window
                    // is the only way in.
                    Err(e) if e.not_supported() => {
                        auth_first = false;
                        head
                    }
                    Err(e) => return Err(e),
                }
            } else {
                head
            };
            report.chunk = report.chunk.max(n);
            let b = self.request(WHAT, Op::Write, group::IMAGE, img_cmd::UPLOAD, body)?;
            report.requests += 1;
            let next = required_u64(WHAT, &b, "off")?;
            if next > len {
                return Err(malformed(
                    WHAT,
                    format!("it answers offset {next}, past the file's {len} bytes"),
                ));
            }
            if first && next > n as u64 {
                report.resumed_from = next;
            }
            progress(next, len);
            if next == len {
                if smp::get_bool(&b, "match").ok().flatten() == Some(false) {
                    return Err(malformed(
                        WHAT,
                        "the lock reports the SHA-256 does not match",
                    ));
                }
                return Ok(report);
            }
            if next == off + n as u64 || next != off {
                stalled = 0;
            } else {
                stalled += 1;
                if stalled > 8 {
                    return Err(malformed(
                        WHAT,
                        format!("it keeps answering offset {next} without taking data"),
                    ));
                }
            }
            off = next;
        }
        Err(malformed(
            WHAT,
            format!("not complete after {} requests", report.requests),
        ))
    }

    /// The Keyway group's `status` (for owners: signed).
    pub fn status(&mut self) -> Result<Map, DeviceError> {
        self.keyway_signed_read("status", keyway_cmd::STATUS, Vec::new())
    }

    /// `lock` (an owner's `auth`).
    pub fn lock(&mut self) -> Result<Map, DeviceError> {
        self.keyway_write("lock", keyway_cmd::LOCK, Vec::new())
    }

    /// `unlock` (an owner's `auth`).
    pub fn unlock(&mut self) -> Result<Map, DeviceError> {
        self.keyway_write("unlock", keyway_cmd::UNLOCK, Vec::new())
    }

    /// `presence`: whether the window is open.
    pub fn presence(&mut self) -> Result<Map, DeviceError> {
        self.keyway_signed_read("presence", keyway_cmd::PRESENCE, Vec::new())
    }

    /// `notes`: the pending update's release notes and CVEs.
    pub fn notes(&mut self) -> Result<Map, DeviceError> {
        self.keyway_signed_read("notes", keyway_cmd::NOTES, Vec::new())
    }

    /// `consent`: accept or refuse the pending update.
    pub fn consent(&mut self, accept: bool) -> Result<Map, DeviceError> {
        self.keyway_write(
            "consent",
            keyway_cmd::CONSENT,
            vec![(text("accept"), Value::Bool(accept))],
        )
    }

    /// `challenge`: a fresh 16-byte nonce.
    pub fn challenge(&mut self) -> Result<[u8; 16], DeviceError> {
        let b = self.keyway_read("challenge", keyway_cmd::CHALLENGE, Vec::new())?;
        let n = smp::get_bytes(&b, "nonce")
            .map_err(|w| malformed("challenge", w))?
            .ok_or_else(|| malformed("challenge", "no \"nonce\""))?;
        <[u8; 16]>::try_from(n).map_err(|_| {
            malformed(
                "challenge",
                format!("the nonce has {} bytes, not 16", n.len()),
            )
        })
    }

    /// `pair`: adds an owner's public key (needs the presence window).
    pub fn pair(&mut self, key: &[u8; 32], name: Option<&str>) -> Result<Map, DeviceError> {
        let mut body = vec![(text("key"), Value::Bytes(key.to_vec()))];
        if let Some(n) = name {
            body.push((text("name"), text(n)));
        }
        self.keyway_request("pair", Op::Write, keyway_cmd::PAIR, body)
    }

    /// `factory reset` (the presence window and the long press).
    pub fn factory_reset(&mut self) -> Result<Map, DeviceError> {
        self.keyway_request(
            "factory reset",
            Op::Write,
            keyway_cmd::FACTORY_RESET,
            Vec::new(),
        )
    }

    /// `settings`: changes the given settings, returns them all.
    pub fn settings(
        &mut self,
        auto_install_cve: Option<bool>,
        install_needs_unlocked: Option<bool>,
    ) -> Result<Map, DeviceError> {
        let mut body = Vec::new();
        if let Some(v) = auto_install_cve {
            body.push((text("auto_install_cve"), Value::Bool(v)));
        }
        if let Some(v) = install_needs_unlocked {
            body.push((text("install_needs_unlocked"), Value::Bool(v)));
        }
        self.keyway_write("settings", keyway_cmd::SETTINGS, body)
    }

    /// The audit log's export file, reassembled from its chunks.
    /// `progress(done, total)` after every chunk.
    pub fn log_export(
        &mut self,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<Vec<u8>, DeviceError> {
        const WHAT: &str = "log export";
        let mut out: Vec<u8> = Vec::new();
        let mut total: Option<u64> = None;
        loop {
            let off = out.len() as u64;
            // The owner signs the first chunk; the lock keeps the rest of
            // the export for this peer.
            let body = vec![(text("off"), Value::from(off))];
            let b = if off == 0 {
                self.keyway_signed_read(WHAT, keyway_cmd::LOG, body)?
            } else {
                self.keyway_read(WHAT, keyway_cmd::LOG, body)?
            };
            let got_off = required_u64(WHAT, &b, "off")?;
            if got_off != off {
                return Err(malformed(
                    WHAT,
                    format!("asked for offset {off}, the answer is at {got_off}"),
                ));
            }
            let len = required_u64(WHAT, &b, "len")?;
            if len > MAX_LOG_EXPORT {
                return Err(malformed(
                    WHAT,
                    format!(
                        "an export of {len} bytes exceeds the client's limit of {MAX_LOG_EXPORT}"
                    ),
                ));
            }
            match total {
                None => total = Some(len),
                Some(t) if t != len => {
                    return Err(malformed(
                        WHAT,
                        format!("the export's length changed from {t} to {len} bytes"),
                    ));
                }
                Some(_) => {}
            }
            let data = smp::get_bytes(&b, "data")
                .map_err(|w| malformed(WHAT, w))?
                .unwrap_or(&[]);
            if data.len() > MAX_LOG_CHUNK || data.len() as u64 > len - off {
                return Err(malformed(
                    WHAT,
                    format!("a chunk of {} bytes at offset {off} of {len}", data.len()),
                ));
            }
            if data.is_empty() && off < len {
                return Err(malformed(
                    WHAT,
                    format!("an empty chunk at offset {off} of {len}"),
                ));
            }
            out.extend_from_slice(data);
            progress(out.len() as u64, len);
            if out.len() as u64 == len {
                return Ok(out);
            }
        }
    }

    fn keyway_read(&mut self, what: &str, id: u8, body: Map) -> Result<Map, DeviceError> {
        self.keyway_request(what, Op::Read, id, body)
    }

    /// A read that an owner signs (status, notes, the log export's first
    /// chunk): the lock answers them to owners only.
    fn keyway_signed_read(&mut self, what: &str, id: u8, body: Map) -> Result<Map, DeviceError> {
        let body = self.authorise(group::KEYWAY, id, body)?;
        self.keyway_request(what, Op::Read, id, body)
    }

    fn keyway_request(
        &mut self,
        what: &str,
        op: Op,
        id: u8,
        body: Map,
    ) -> Result<Map, DeviceError> {
        self.request(what, op, group::KEYWAY, id, body)
    }

    /// A write that an owner signs (or the presence window allows).
    fn keyway_write(&mut self, what: &str, id: u8, body: Map) -> Result<Map, DeviceError> {
        let body = self.authorise(group::KEYWAY, id, body)?;
        self.keyway_request(what, Op::Write, id, body)
    }
}

/// The largest data chunk that keeps an upload body (`head`, the data,
/// and, with `auth`, an owner's `auth` entry) within `budget` bytes.
fn chunk_len(head: &Map, auth: bool, budget: usize) -> usize {
    let mut probe = head.clone();
    probe.push((text("data"), Value::Bytes(Vec::new())));
    if auth {
        probe.push((
            text("auth"),
            Value::Map(vec![
                (text("key"), Value::Bytes(vec![0; 32])),
                (text("nonce"), Value::Bytes(vec![0; 16])),
                (text("sig"), Value::Bytes(vec![0; 64])),
            ]),
        ));
    }
    let mut enc = Vec::new();
    let _ = ciborium::into_writer(&Value::Map(probe), &mut enc);
    // The empty byte string's 1-byte header is in `enc`.
    let fixed = enc.len() - 1;
    let budget = budget.min(MAX_BODY);
    let header = |n: usize| match n {
        0..=23 => 1,
        24..=255 => 2,
        _ => 3,
    };
    (1..=3)
        .filter_map(|h| {
            let n = budget.checked_sub(fixed + h)?;
            (header(n) <= h).then_some(n)
        })
        .max()
        .unwrap_or(0)
}

fn parse_images(what: &str, body: &Map) -> Result<Vec<ImageSlot>, DeviceError> {
    let images = match get(body, "images") {
        Some(Value::Array(a)) => a,
        Some(_) => return Err(malformed(what, "\"images\" is not an array")),
        None => return Err(malformed(what, "no \"images\"")),
    };
    if images.len() > 16 {
        return Err(malformed(what, format!("{} images listed", images.len())));
    }
    images
        .iter()
        .map(|i| {
            let m = i
                .as_map()
                .ok_or_else(|| malformed(what, "an image entry is not a map"))?;
            let flag = |k: &str| smp::get_bool(m, k).map(|b| b.unwrap_or(false));
            let bad = |w: String| malformed(what, w);
            Ok(ImageSlot {
                slot: smp::get_u64(m, "slot").map_err(bad)?.unwrap_or(0),
                version: smp::get_text(m, "version")
                    .map_err(bad)?
                    .map(bounded)
                    .unwrap_or_default(),
                hash: smp::get_bytes(m, "hash")
                    .map_err(bad)?
                    .map(<[u8]>::to_vec)
                    .unwrap_or_default(),
                bootable: flag("bootable").map_err(bad)?,
                pending: flag("pending").map_err(bad)?,
                confirmed: flag("confirmed").map_err(bad)?,
                active: flag("active").map_err(bad)?,
            })
        })
        .collect()
}

/// A CBOR value as JSON: byte strings as hex text, other keys as text.
pub fn to_json(v: &Value) -> serde_json::Value {
    use serde_json::Value as J;
    match v {
        Value::Integer(i) => {
            let i = i128::from(*i);
            i64::try_from(i)
                .map(J::from)
                .or_else(|_| u64::try_from(i).map(J::from))
                .unwrap_or(J::Null)
        }
        Value::Bytes(b) => J::String(keyway::keys::hex(b)),
        Value::Float(f) => serde_json::Number::from_f64(*f).map_or(J::Null, J::Number),
        Value::Text(t) => J::String(t.clone()),
        Value::Bool(b) => J::Bool(*b),
        Value::Null => J::Null,
        Value::Tag(_, v) => to_json(v),
        Value::Array(a) => J::Array(a.iter().map(to_json).collect()),
        Value::Map(m) => map_to_json(m),
        _ => J::Null,
    }
}

/// A body map as a JSON object.
pub fn map_to_json(m: &Map) -> serde_json::Value {
    serde_json::Value::Object(
        m.iter()
            .map(|(k, v)| {
                let key = match k {
                    Value::Text(t) => t.clone(),
                    other => to_json(other).to_string(),
                };
                (key, to_json(v))
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_len_fills_the_budget_exactly() {
        for budget in [60usize, 100, 236, 300, 1464, 2048] {
            for off in [0u64, 23, 300, 70_000, 1 << 20] {
                let head = vec![(text("off"), Value::from(off))];
                let n = chunk_len(&head, false, budget);
                let mut body = head.clone();
                body.push((text("data"), Value::Bytes(vec![7; n])));
                let mut enc = Vec::new();
                ciborium::into_writer(&Value::Map(body.clone()), &mut enc).unwrap();
                assert!(enc.len() <= budget, "budget {budget}: {} bytes", enc.len());
                body[1] = (text("data"), Value::Bytes(vec![7; n + 1]));
                let mut enc = Vec::new();
                ciborium::into_writer(&Value::Map(body), &mut enc).unwrap();
                assert!(enc.len() > budget, "budget {budget}: one more byte fits");
            }
        }
    }
}
