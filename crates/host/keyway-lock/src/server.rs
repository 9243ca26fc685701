//! The SMP server as a sans-IO state machine: request frame and the time
//! in, response frame out. The socket loop, the files and the clock live
//! in `main.rs`.

use ciborium::Value;
use keyway_device::install::Installer;
use keyway_device::manifest_area::MAX_MANIFEST_LEN;
use sha2::{Digest, Sha256};

use crate::device::{self, BUF, BootReport, Flash, ImgError, Lock, img_rc};
use crate::smp::{
    self, Header, MgmtErr, Op, Request, Version, get_bool, get_bytes, get_text, get_u64, group,
    text,
};

/// Bytes of an upload buffered before its envelope head is verified: a
/// stored head is at most `MAX_MANIFEST_LEN` bytes, so this many bytes
/// always hold the whole head and the payload's byte-string header.
pub const HEAD_WINDOW: usize = MAX_MANIFEST_LEN + 16;
/// The largest upload: a full slot's image and the largest head.
pub const MAX_UPLOAD: u64 = device_cap() + MAX_MANIFEST_LEN as u64;

const fn device_cap() -> u64 {
    126 * 4096
}

/// `buf_count` advertised in the MCUmgr parameters.
pub const BUF_COUNT: u32 = 4;

/// OS group command ids.
mod os_cmd {
    pub const ECHO: u8 = 0;
    pub const RESET: u8 = 5;
    pub const PARAMS: u8 = 6;
    pub const INFO: u8 = 7;
}
/// Image group command ids.
mod img_cmd {
    pub const STATE: u8 = 0;
    pub const UPLOAD: u8 = 1;
    pub const ERASE: u8 = 5;
}
/// `OS_MGMT_ERR`: the format string names an unknown field.
const OS_INVALID_FORMAT: u16 = 2;

/// An upload in progress.
pub struct Upload {
    len: u64,
    sha: Option<[u8; 32]>,
    off: u64,
    hasher: Sha256,
    head: Vec<u8>,
    installer: Option<Installer<Flash, BUF>>,
}

impl core::fmt::Debug for Upload {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Upload")
            .field("len", &self.len)
            .field("off", &self.off)
            .field("streaming", &self.installer.is_some())
            .finish_non_exhaustive()
    }
}

/// Why a request failed, and in which form to answer.
enum Fail {
    /// A top-level SMP rc with a reason.
    Smp(MgmtErr, String),
    /// An image-group error.
    Img(ImgError),
    /// An OS-group error.
    Os(u16, MgmtErr, String),
}

impl From<ImgError> for Fail {
    fn from(e: ImgError) -> Self {
        Fail::Img(e)
    }
}

fn inval(what: String) -> Fail {
    Fail::Smp(MgmtErr::Inval, what)
}

type Body = Vec<(Value, Value)>;

/// The lock's SMP server.
#[derive(Debug)]
pub struct Server {
    lock: Lock,
    latch: crate::lock::Lock,
    upload: Option<Upload>,
    presence_until_ms: Option<u64>,
    presence_always: bool,
    reset_pending: bool,
    log: Vec<String>,
}

impl Server {
    /// A server for a booted lock.
    pub fn new(lock: Lock) -> Self {
        Server {
            lock,
            latch: crate::lock::Lock::new(crate::lock::Config::default()),
            upload: None,
            presence_until_ms: None,
            presence_always: false,
            reset_pending: false,
            log: Vec::new(),
        }
    }

    /// The lock.
    pub fn lock(&self) -> &Lock {
        &self.lock
    }

    /// The lock, mutably (control socket, tests).
    pub fn lock_mut(&mut self) -> &mut Lock {
        &mut self.lock
    }

    /// The lock's mechanism and sensors.
    pub fn latch(&self) -> &crate::lock::Lock {
        &self.latch
    }

    /// The lock's mechanism and sensors, and the device (to log what they
    /// did).
    pub fn latch_mut(&mut self) -> (&mut crate::lock::Lock, &mut Lock) {
        (&mut self.latch, &mut self.lock)
    }

    /// Replaces the mechanism's settings (the bolt starts locked).
    pub fn set_lock_config(&mut self, config: crate::lock::Config) {
        self.latch = crate::lock::Lock::new(config);
    }

    /// Runs the mechanism's timers (auto-relock) up to `now_ms`, queueing
    /// what they did on the audit log.
    pub fn tick(&mut self, now_ms: u64) {
        for e in self.latch.poll(now_ms) {
            self.lock.note(e);
        }
    }

    /// Keeps the physical-presence window open for good (a test flag).
    pub fn set_presence_always_open(&mut self, open: bool) {
        self.presence_always = open;
    }

    /// Opens the physical-presence window (a button held on the lock)
    /// until `now_ms + duration_ms`.
    pub fn open_presence(&mut self, now_ms: u64, duration_ms: u64) {
        self.lock.note(keyway_audit::Event::PresenceWindowOpened {
            seconds: u16::try_from(duration_ms / 1000).unwrap_or(u16::MAX),
        });
        self.presence_until_ms = Some(now_ms.saturating_add(duration_ms));
    }

    /// Closes the presence window.
    pub fn close_presence(&mut self) {
        self.presence_until_ms = None;
    }

    /// Whether the presence window is open at `now_ms`.
    pub fn presence_open(&self, now_ms: u64) -> bool {
        self.presence_always || self.presence_until_ms.is_some_and(|t| now_ms < t)
    }

    /// The upload in progress.
    pub fn upload(&self) -> Option<&Upload> {
        self.upload.as_ref()
    }

    /// Log lines since the last call (refusals, resets, boots).
    pub fn take_log(&mut self) -> Vec<String> {
        std::mem::take(&mut self.log)
    }

    /// Whether the lock lost power while handling the last request (a cut
    /// planned with [`Lock::plan_power_cut`] fired): a real lock would not
    /// have answered, so the shell drops the response.
    pub fn lost_power(&self) -> bool {
        !self.lock.powered()
    }

    /// Runs a reset a request asked for (after its response was sent), or
    /// the power-on after a power cut: the upload in RAM is lost, the
    /// bootloader runs, an image on trial self-tests and confirms.
    pub fn poll_reset(&mut self) -> Option<Result<BootReport, String>> {
        let cut = self.lost_power();
        if !std::mem::take(&mut self.reset_pending) && !cut {
            return None;
        }
        if cut {
            self.log
                .push("POWER CUT during a flash operation; power returns".to_owned());
        }
        self.upload = None;
        self.presence_until_ms = None;
        let r = self.lock.power_on();
        match &r {
            Ok(b) => self.log.push(format!(
                "reset: boot {:?} ({:?}); {}",
                b.decision.boot, b.decision.reason, b.app
            )),
            Err(e) => self.log.push(format!("reset: {e}")),
        }
        Some(r)
    }

    /// Handles one request frame at `now_ms` (milliseconds of any
    /// monotonic clock). Always answers: a frame too short for a header is
    /// answered with a zeroed header and `rc` EINVAL.
    pub fn handle(&mut self, frame: &[u8], now_ms: u64) -> Vec<u8> {
        let request = match smp::decode_request(frame) {
            Ok(r) => r,
            Err((header, e)) => {
                self.log.push(format!("refused frame: {e}"));
                let h = header.unwrap_or(Header {
                    op: Op::Write,
                    version: 0,
                    flags: 0,
                    len: 0,
                    group: 0,
                    seq: 0,
                    id: 0,
                });
                return smp::encode_response(&h, smp::rc_body(e.rc(), Some(&e.to_string())));
            }
        };
        let h = request.header;
        let body = match self.dispatch(&request, now_ms) {
            Ok(b) => b,
            Err(Fail::Smp(rc, why)) => {
                self.log.push(format!(
                    "group {} command {}: rc {} ({rc:?}): {why}",
                    h.group, h.id, rc as u8
                ));
                smp::rc_body(rc, Some(&why))
            }
            Err(Fail::Img(e)) => {
                self.log.push(format!(
                    "image group command {}: rc {}: {}",
                    h.id, e.rc, e.reason
                ));
                smp::group_err_body(h.smp_version(), group::IMAGE, e.rc, e.v1, &e.reason)
            }
            Err(Fail::Os(rc, v1, why)) => {
                self.log
                    .push(format!("os group command {}: rc {rc}: {why}", h.id));
                smp::group_err_body(h.smp_version(), group::OS, rc, v1, &why)
            }
        };
        smp::encode_response(&h, body)
    }

    fn dispatch(&mut self, r: &Request, now_ms: u64) -> Result<Body, Fail> {
        let h = r.header;
        let write = h.op == Op::Write;
        match (h.group, h.id) {
            (group::OS, os_cmd::ECHO) => {
                let d = get_text(&r.body, "d").map_err(inval)?.unwrap_or("");
                Ok(vec![(text("r"), text(d))])
            }
            (group::OS, os_cmd::RESET) if write => {
                self.reset_pending = true;
                Ok(Vec::new())
            }
            (group::OS, os_cmd::PARAMS) if !write => Ok(vec![
                (text("buf_size"), Value::from(smp::MAX_FRAME as u64)),
                (text("buf_count"), Value::from(BUF_COUNT)),
            ]),
            (group::OS, os_cmd::INFO) if !write => {
                let f = get_text(&r.body, "format").map_err(inval)?.unwrap_or("s");
                self.info(f).map(|o| vec![(text("output"), text(&o))])
            }
            (group::IMAGE, img_cmd::STATE) if !write => Ok(self.state_body()),
            (group::IMAGE, img_cmd::STATE) => {
                let hash = get_bytes(&r.body, "hash").map_err(inval)?;
                let confirm = get_bool(&r.body, "confirm")
                    .map_err(inval)?
                    .unwrap_or(false);
                if confirm {
                    self.lock.confirm(hash)?;
                } else {
                    let hash =
                        hash.ok_or_else(|| inval("\"hash\" is required to test an image".into()))?;
                    self.lock.test(hash)?;
                }
                Ok(self.state_body())
            }
            (group::IMAGE, img_cmd::UPLOAD) if write => {
                self.gate(now_ms, "image upload")?;
                self.upload_chunk(&r.body)
            }
            (group::IMAGE, img_cmd::ERASE) if write => {
                self.gate(now_ms, "image erase")?;
                let slot = get_u64(&r.body, "slot").map_err(inval)?;
                let slot = slot.map(|s| u8::try_from(s).unwrap_or(u8::MAX));
                self.upload = None;
                self.lock.erase(slot)?;
                Ok(Vec::new())
            }
            (g, id) => Err(Fail::Smp(
                MgmtErr::NotSup,
                format!(
                    "group {g} command {id} ({}) is not supported",
                    if write { "write" } else { "read" }
                ),
            )),
        }
    }

    /// Refuses with ACCESSDENIED (rc 11, top level) unless the presence
    /// window is open.
    fn gate(&self, now_ms: u64, what: &str) -> Result<(), Fail> {
        if self.presence_open(now_ms) {
            Ok(())
        } else {
            Err(Fail::Smp(
                MgmtErr::AccessDenied,
                format!("{what} needs the physical-presence window: hold the lock's button"),
            ))
        }
    }

    fn info(&self, format: &str) -> Result<String, Fail> {
        let release = match self.lock.running() {
            Some(s) => self.lock.version(s).unwrap_or_else(|| format!("slot{s}")),
            None => "recovery".to_owned(),
        };
        let all = "snrvbmpio";
        let mut want = [false; 9];
        for c in format.chars() {
            match c {
                'a' => want = [true; 9],
                c => match all.find(c) {
                    Some(i) => want[i] = true,
                    None => {
                        return Err(Fail::Os(
                            OS_INVALID_FORMAT,
                            MgmtErr::Inval,
                            format!("format character {c:?} is not one of {all}a"),
                        ));
                    }
                },
            }
        }
        let fields = [
            "Keyway".to_owned(),
            "keyway-lock".to_owned(),
            release,
            env!("CARGO_PKG_VERSION").to_owned(),
            String::new(),
            "nrf52840-sim".to_owned(),
            "cortex-m4".to_owned(),
            "keyway-sim".to_owned(),
            "Keyway".to_owned(),
        ];
        Ok(fields
            .iter()
            .zip(want)
            .filter(|(f, w)| *w && !f.is_empty())
            .map(|(f, _)| f.as_str())
            .collect::<Vec<_>>()
            .join(" "))
    }

    fn state_body(&mut self) -> Body {
        let images = self
            .lock
            .views()
            .into_iter()
            .map(|v| {
                let mut m = vec![
                    (text("image"), Value::from(0u8)),
                    (text("slot"), Value::from(v.slot)),
                    (text("version"), text(&v.version)),
                    (text("hash"), Value::Bytes(v.hash.to_vec())),
                ];
                for (k, on) in [
                    ("bootable", v.bootable),
                    ("pending", v.pending),
                    ("confirmed", v.confirmed),
                    ("active", v.active),
                    ("permanent", false),
                ] {
                    m.push((text(k), Value::Bool(on)));
                }
                Value::Map(m)
            })
            .collect();
        vec![(text("images"), Value::Array(images))]
    }

    /// One upload request: `off`, `data`, and with `off` 0 `len` and
    /// optionally `sha`, `image`, `upgrade`.
    /// The manifest sequence number of the head `slot` stores (0: none).
    fn slot_sequence(&self, slot: u8) -> u64 {
        self.lock
            .head(slot)
            .and_then(|h| {
                keyway_suit::inspect_envelope(&h)
                    .ok()
                    .map(|i| i.manifest.sequence)
            })
            .unwrap_or(0)
    }

    /// Logs an upload the installer refused for its image.
    fn note_payload_rejection(&mut self, e: &ImgError) {
        if matches!(
            e.rc,
            img_rc::INVALID_HASH | img_rc::INVALID_IMAGE_DATA_OVERRUN | img_rc::INVALID_LENGTH
        ) {
            let sequence = self
                .lock
                .state()
                .download
                .map_or(0, |d| self.slot_sequence(d.slot));
            self.lock.note(keyway_audit::Event::UpdateRejected {
                sequence,
                reason: keyway_audit::RejectReason::Payload,
            });
        }
    }

    fn upload_chunk(&mut self, body: &[(Value, Value)]) -> Result<Body, Fail> {
        let off = get_u64(body, "off")
            .map_err(inval)?
            .ok_or_else(|| inval("\"off\" is missing".into()))?;
        let data = get_bytes(body, "data")
            .map_err(inval)?
            .ok_or_else(|| inval("\"data\" is missing".into()))?;
        if let Some(i) = get_u64(body, "image").map_err(inval)?
            && i > 1
        {
            return Err(ImgError::new(
                img_rc::INVALID_SLOT,
                MgmtErr::Inval,
                format!("image {i}: the lock has one image (0)"),
            )
            .into());
        }
        if off == 0 {
            let len = get_u64(body, "len")
                .map_err(inval)?
                .ok_or_else(|| inval("\"len\" is required with \"off\" 0".into()))?;
            if len == 0 || len > MAX_UPLOAD {
                return Err(ImgError::new(
                    img_rc::INVALID_IMAGE_TOO_LARGE,
                    MgmtErr::Inval,
                    format!("an upload of {len} bytes: the lock takes 1 to {MAX_UPLOAD}"),
                )
                .into());
            }
            let sha = match get_bytes(body, "sha").map_err(inval)? {
                None => None,
                Some(s) => Some(<[u8; 32]>::try_from(s).map_err(|_| {
                    ImgError::new(
                        img_rc::INVALID_HASH,
                        MgmtErr::Inval,
                        format!("\"sha\" has {} bytes, SHA-256 has 32", s.len()),
                    )
                })?),
            };
            // The same upload again: tell the client where to continue.
            if let Some(u) = &self.upload
                && sha.is_some()
                && u.sha == sha
                && u.len == len
                && u.off > 0
            {
                return Ok(vec![(text("off"), Value::from(u.off))]);
            }
            // A download the journal records (the upload in RAM was lost
            // to a power cut or a restart): continue it.
            if self.upload.is_none()
                && let Some((inst, head, image)) = self.lock.resume_download(data, len)
            {
                let mut hasher = Sha256::new();
                hasher.update(&head);
                hasher.update(&image);
                let off = (head.len() + image.len()) as u64;
                self.log.push(format!(
                    "upload resumed from the journal at byte {off} of {len}"
                ));
                self.upload = Some(Upload {
                    len,
                    sha,
                    off,
                    hasher,
                    head: Vec::new(),
                    installer: Some(inst),
                });
                return Ok(vec![(text("off"), Value::from(off))]);
            }
            self.upload = Some(Upload {
                len,
                sha,
                off: 0,
                hasher: Sha256::new(),
                head: Vec::new(),
                installer: None,
            });
        }
        let Some(u) = self.upload.as_mut() else {
            // No session (a reset or a restart lost it): start over.
            return Ok(vec![(text("off"), Value::from(0u8))]);
        };
        if off != u.off {
            // Out of order or repeated: the client continues from here.
            return Ok(vec![(text("off"), Value::from(u.off))]);
        }
        let end = off.saturating_add(data.len() as u64);
        if end > u.len {
            let e = ImgError::new(
                img_rc::INVALID_IMAGE_DATA_OVERRUN,
                MgmtErr::Inval,
                format!(
                    "data up to byte {end} overruns the declared length {}",
                    u.len
                ),
            );
            return Err(e.into());
        }
        let result = feed(&mut self.lock, u, data);
        if let Err(e) = result {
            self.upload = None;
            self.note_payload_rejection(&e);
            return Err(e.into());
        }
        let Some(u) = self.upload.as_mut() else {
            return Ok(Vec::new());
        };
        if u.off < u.len {
            return Ok(vec![(text("off"), Value::from(u.off))]);
        }
        // Complete.
        let Some(u) = self.upload.take() else {
            return Ok(Vec::new());
        };
        let len = u.len;
        let slot = finish(&mut self.lock, u).inspect_err(|e| self.note_payload_rejection(e))?;
        let sequence = self.slot_sequence(slot);
        self.lock
            .note(keyway_audit::Event::UpdateInstalled { sequence, slot });
        self.log.push(format!(
            "upload of {len} bytes complete: slot {slot} pending; a reset boots it on trial"
        ));
        Ok(vec![
            (text("off"), Value::from(len)),
            (text("match"), Value::Bool(true)),
        ])
    }
}

/// Takes `data` at the upload's offset: buffers the head until it can be
/// verified, then streams into the installer.
fn feed(lock: &mut Lock, u: &mut Upload, data: &[u8]) -> Result<(), ImgError> {
    u.hasher.update(data);
    u.off += data.len() as u64;
    if let Some(inst) = u.installer.as_mut() {
        return lock.push(inst, data);
    }
    u.head.extend_from_slice(data);
    let need = usize::try_from(u.len)
        .unwrap_or(usize::MAX)
        .min(HEAD_WINDOW);
    if u.head.len() < need {
        return Ok(());
    }
    let trust = lock.trust().clone();
    let state = lock.device_state();
    let inst = begin(lock, u, &trust, &state)?;
    u.installer = Some(inst);
    u.head = Vec::new();
    Ok(())
}

/// Verifies the buffered head and begins the download with it.
fn begin(
    lock: &mut Lock,
    u: &Upload,
    trust: &device::Trust,
    state: &keyway_suit::DeviceState,
) -> Result<Installer<Flash, BUF>, ImgError> {
    use keyway_audit::{Event, RejectReason};
    let offered = keyway_suit::inspect_envelope(&u.head).ok().map(|i| {
        let version = i
            .manifest
            .version
            .map_or_else(String::new, |v| v.to_string());
        (i.manifest.sequence, device::audit_version(&version))
    });
    let sequence = offered.map_or(0, |(s, _)| s);
    if let Some((sequence, version)) = offered {
        lock.note(Event::UpdateOffered { sequence, version });
    }
    let v = keyway_suit::verify_envelope(&u.head, &trust.anchors, &trust.identity, state).map_err(
        |e| {
            lock.note(Event::UpdateRejected {
                sequence,
                reason: device::reject_reason(&e),
            });
            let mut r = device::envelope_refusal(&e);
            if matches!(e, keyway_suit::Error::Malformed { .. }) && u.head.len() < u.len as usize {
                r.reason.push_str(&format!(
                    " (within the first {} bytes, where the envelope head must end)",
                    u.head.len()
                ));
            }
            r
        },
    )?;
    let exp = v.payload.ok_or_else(|| {
        ImgError::new(
            img_rc::NO_IMAGE,
            MgmtErr::Inval,
            "the envelope's manifest names no image",
        )
    })?;
    let ip = v.integrated.ok_or_else(|| {
        ImgError::new(
            img_rc::INVALID_IMAGE_HEADER,
            MgmtErr::Inval,
            "the envelope does not carry its image (a detached payload cannot be uploaded)",
        )
    })?;
    let total = (ip.offset as u64).saturating_add(ip.len);
    if total != u.len {
        lock.note(Event::UpdateRejected {
            sequence,
            reason: RejectReason::Payload,
        });
        return Err(ImgError::new(
            img_rc::INVALID_LENGTH,
            MgmtErr::Inval,
            format!(
                "the envelope is {total} bytes (head {} + image {}), the upload declared {}",
                ip.offset, ip.len, u.len
            ),
        ));
    }
    let head = u.head.get(..ip.offset).unwrap_or(&[]);
    lock.note(Event::UpdateVerified { sequence });
    let mut inst = lock.begin_download(&exp, v.manifest_digest, head)?;
    lock.note(Event::DownloadStarted { sequence });
    let rest = u.head.get(ip.offset..).unwrap_or(&[]);
    lock.push(&mut inst, rest)?;
    Ok(inst)
}

/// All bytes arrived: the file's SHA-256 must match `sha`, then the
/// installer checks the image digest and marks the slot pending.
fn finish(lock: &mut Lock, u: Upload) -> Result<u8, ImgError> {
    let got: [u8; 32] = u.hasher.finalize().into();
    if let Some(want) = u.sha
        && want != got
    {
        return Err(ImgError::new(
            img_rc::INVALID_HASH,
            MgmtErr::Inval,
            format!(
                "the upload's SHA-256 is {}, \"sha\" announced {}",
                keyway::keys::hex(&got),
                keyway::keys::hex(&want)
            ),
        ));
    }
    let inst = u.installer.ok_or_else(|| {
        ImgError::new(
            img_rc::INVALID_IMAGE_HEADER,
            MgmtErr::Inval,
            "the upload ended before its envelope head",
        )
    })?;
    lock.finish(inst)
}

/// The version a request was answered in (tests).
pub fn response_version(frame: &[u8]) -> Option<Version> {
    Header::decode(frame).ok().map(|h| h.smp_version())
}
