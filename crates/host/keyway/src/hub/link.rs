//! The hub's link to a lock: [`LockLink`] over `keyway device`'s client.
//!
//! # Design
//!
//! The hub is an owner of every lock it manages, like a phone: it holds
//! one Ed25519 owner key ([`HubIdentity`], `hub-owner.key` in its data
//! directory, made on first use, mode 0600, written durably) and pairs it
//! with each lock by the lock's setup code in the lock's presence window
//! ([`SmpLink::pair`]: `Client::pair_with_code`). Pairing yields the
//! lock's device key, which the hub keeps in the lock's record; from then
//! on every call runs **sealed** in a session that proves that device key
//! (`Client::with_paired_lock`), so every answer the hub acts on was
//! authenticated by the lock. A man in the middle who rewrites an answer
//! gets [`LinkError::NotAuthenticated`], never a changed value.
//!
//! Nothing here decides on words. The client's typed errors map to
//! [`LinkError`] variants ([`link_error`]: the typed refusal, the
//! channel's typed reason, the transport), the lock's status is decoded
//! with the Keyway group's typed decoder (`keyway_smp::keyway_group::Status`) and
//! then checked strictly into a [`LockSnapshot`] ([`snapshot`]): a
//! missing, mistyped or self-contradicting field is
//! [`LinkError::Malformed`], never a default. A postponed install carries
//! its reason typed on the wire (the summary's `why`, with `have_mwh` and
//! `need_mwh` for a low battery), so [`Postponement`] is read, not
//! guessed from the sentence.
//!
//! The update path is `keyway device update`'s, shared rather than
//! copied: [`push_update`] picks a delta for the running image (else the
//! full image), uploads it with progress, and falls back to the full
//! image on the lock's typed `DeltaWrongBase`; [`wait_for`] waits for the
//! outcome after consent. The audit log is exported and verified with the
//! paired device key by the verifier `keyway log verify` runs
//! (`keyway_vendor::log::verify`); a log that does not verify is
//! [`LinkError::LogBroken`] with the verifier's first finding, typed.
//!
//! Like `src/device`, this module reaches a lock only through SMP; it
//! never links the simulated lock's crate (`tests/layering.rs`).

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use keyway_hub::link::{
    Connector, FetchedLog, InstallOutcome, LinkError, LockLink, Paired, Pushed,
};
use keyway_hub::model::{Bolt, Digest, Door, LockRecord, LockSnapshot, Postponement, UpdateState};
use keyway_smp::keyway_group::{self, UpdateState as WireState};
use keyway_smp::{Message as _, Refusal};
use keyway_vendor::keys::{Algorithm, KeyError, SigningKey};
use sha2::Digest as _;

use crate::device::cli::{Candidate, PushError, Waited, push_update, wait_for};
use crate::device::{Client, DeviceError, ImageSlot, Transport, UdpTransport};

/// The owner key's file in the hub's data directory.
pub const OWNER_KEY_FILE: &str = "hub-owner.key";

/// The name the hub gives itself when it pairs (the lock's `owners` list
/// shows it).
pub const OWNER_NAME: &str = "keyway hub";

/// How long a UDP link waits for each answer by default.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(500);
/// Sends of a request before a UDP link gives up, by default.
pub const DEFAULT_TRIES: u32 = 5;
/// How often [`LockLink::consent`] polls the lock while it waits.
pub const POLL: Duration = Duration::from_millis(100);

/// Why the hub's owner key could not be loaded or made.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// A file operation failed.
    #[error("{what} {}: {error}", path.display())]
    Io {
        /// What was being done.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The OS error.
        error: std::io::Error,
    },
    /// The key file is not an Ed25519 private key the hub can use.
    #[error("{}: {error}", path.display())]
    Key {
        /// The file.
        path: PathBuf,
        /// Why.
        error: KeyError,
    },
    /// The key is not Ed25519 (the lock's channel signs with Ed25519).
    #[error("{}: the hub's owner key must be Ed25519; move it away and the hub makes a new one (then pair the locks again)", path.display())]
    NotEd25519 {
        /// The file.
        path: PathBuf,
    },
    /// Others may read the key file.
    #[error("{}: mode {mode:o} lets others read the hub's owner key; `chmod 600` it", path.display())]
    Permissions {
        /// The file.
        path: PathBuf,
        /// Its mode bits.
        mode: u32,
    },
}

/// The hub's owner key: the key it pairs with every lock and opens
/// sessions with.
#[derive(Clone)]
pub struct HubIdentity {
    key: SigningKey,
    path: PathBuf,
}

impl std::fmt::Debug for HubIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HubIdentity")
            .field("path", &self.path)
            .field("key_id", &keyway_vendor::keys::hex(&self.key_id()))
            .finish_non_exhaustive()
    }
}

impl HubIdentity {
    /// Loads `DIR/hub-owner.key`, or makes it on first use: a new Ed25519
    /// key, PKCS#8 PEM, mode 0600, written to a temporary file, synced,
    /// renamed into place and the directory synced, so a power cut leaves
    /// either no key or the whole key. An existing key that others may
    /// read is refused.
    pub fn load_or_create(dir: &Path) -> Result<HubIdentity, IdentityError> {
        let path = dir.join(OWNER_KEY_FILE);
        let io = |what, path: &Path| {
            let path = path.to_owned();
            move |error| IdentityError::Io { what, path, error }
        };
        if !path.exists() {
            fs::create_dir_all(dir).map_err(io("creating", dir))?;
            let key =
                SigningKey::generate(Algorithm::Ed25519).map_err(|error| IdentityError::Key {
                    path: path.clone(),
                    error,
                })?;
            let pem = key.to_pkcs8_pem().map_err(|error| IdentityError::Key {
                path: path.clone(),
                error,
            })?;
            let tmp = dir.join(format!(".{OWNER_KEY_FILE}.{}.tmp", std::process::id()));
            let _ = fs::remove_file(&tmp);
            let mut opts = fs::OpenOptions::new();
            opts.write(true).create_new(true);
            {
                use std::os::unix::fs::OpenOptionsExt as _;
                opts.mode(0o600);
            }
            let mut f = opts.open(&tmp).map_err(io("creating", &tmp))?;
            f.write_all(pem.as_bytes())
                .and_then(|()| f.sync_all())
                .map_err(io("writing", &tmp))?;
            drop(f);
            fs::rename(&tmp, &path).map_err(io("renaming into", &path))?;
            fs::File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(io("syncing", dir))?;
        }
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = fs::metadata(&path)
                .map_err(io("reading", &path))?
                .permissions()
                .mode();
            if mode & 0o077 != 0 {
                return Err(IdentityError::Permissions {
                    path,
                    mode: mode & 0o777,
                });
            }
        }
        let key = SigningKey::load(&path).map_err(|error| IdentityError::Key {
            path: path.clone(),
            error,
        })?;
        if key.algorithm() != Algorithm::Ed25519 {
            return Err(IdentityError::NotEd25519 { path });
        }
        Ok(HubIdentity { key, path })
    }

    /// An identity from a key in memory (tests, benches).
    pub fn from_key(key: SigningKey) -> Result<HubIdentity, IdentityError> {
        if key.algorithm() != Algorithm::Ed25519 {
            return Err(IdentityError::NotEd25519 {
                path: PathBuf::new(),
            });
        }
        Ok(HubIdentity {
            key,
            path: PathBuf::new(),
        })
    }

    /// The key.
    pub fn key(&self) -> &SigningKey {
        &self.key
    }

    /// Where it is kept (empty for [`HubIdentity::from_key`]).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Its raw Ed25519 public key.
    pub fn public_key(&self) -> [u8; 32] {
        let mut out = [0u8; 32];
        out.copy_from_slice(&self.key.raw_public_key_bytes());
        out
    }

    /// Its key id as the lock's `owners` lists it: the first 8 bytes of
    /// SHA-256 of the public key.
    pub fn key_id(&self) -> [u8; 8] {
        keyway_channel::key_id(&self.public_key())
    }
}

/// The client's typed error as the hub's [`LinkError`] (decided on the
/// typed refusal, the channel's typed reason and the error's kind, never
/// on words).
pub fn link_error(address: &str, e: DeviceError) -> LinkError {
    if e.wrong_setup_code() {
        return LinkError::WrongSetupCode;
    }
    if e.refusal() == Some(Refusal::NoPresenceWindow) {
        return LinkError::NoPresence;
    }
    match e {
        DeviceError::Transport { .. } => LinkError::Unreachable {
            address: address.to_owned(),
        },
        DeviceError::Channel { .. } => LinkError::NotAuthenticated {
            address: address.to_owned(),
        },
        DeviceError::Refused { rc, .. } | DeviceError::GroupRefused { rc, .. } => {
            LinkError::Refused {
                reason: e.to_string(),
                rc,
            }
        }
        DeviceError::Malformed { .. } | DeviceError::Usage { .. } => {
            LinkError::Malformed(e.to_string())
        }
    }
}

fn malformed(why: impl Into<String>) -> LinkError {
    LinkError::Malformed(why.into())
}

/// The digest of the envelope a pending update came in: the hash of the
/// one slot that is not running and holds `version`. None or two such
/// slots is a lock contradicting itself.
fn pending_digest(version: &str, images: &[ImageSlot]) -> Result<Digest, LinkError> {
    let mut held = images.iter().filter(|i| !i.active && i.version == version);
    let (Some(slot), None) = (held.next(), held.next()) else {
        return Err(malformed(format!(
            "the lock reports a pending update {version:?}, but its image state holds it in {} inactive slots",
            images
                .iter()
                .filter(|i| !i.active && i.version == version)
                .count()
        )));
    };
    let hash: [u8; 32] = slot.hash.as_slice().try_into().map_err(|_| {
        malformed(format!(
            "slot {}'s hash has {} bytes, not 32 (SHA-256)",
            slot.slot,
            slot.hash.len()
        ))
    })?;
    Ok(Digest(hash))
}

/// A wire postponement as the hub's.
fn postponement(p: keyway_group::Postponement) -> Postponement {
    match p {
        keyway_group::Postponement::BatteryLow { have_mwh, need_mwh } => {
            Postponement::BatteryLow { have_mwh, need_mwh }
        }
        keyway_group::Postponement::BoltLocked => Postponement::BoltLocked,
    }
}

/// The lock's `status` body (and its image state, for the pending
/// envelope's digest) as a [`LockSnapshot`], strictly: the Keyway group's
/// typed decoder refuses a missing or mistyped field, and this refuses
/// what contradicts itself (a postponed update without its typed reason,
/// a reason on an update that is not postponed, a pending update no slot
/// holds, a trial of an image that is not running). Every refusal is
/// [`LinkError::Malformed`], naming the field.
pub fn snapshot(status: &[u8], images: &[ImageSlot]) -> Result<LockSnapshot, LinkError> {
    let st =
        keyway_group::Status::decode(status).map_err(|e| malformed(format!("its status: {e}")))?;
    let update = match (&st.update, st.trial) {
        (Some(u), _) => {
            let release = pending_digest(u.version, images)?;
            match (u.state, u.why) {
                (WireState::Postponed, Some(why)) => UpdateState::Postponed {
                    release,
                    reason: postponement(why),
                },
                (WireState::Postponed, None) => {
                    return Err(malformed(
                        "its status reports a postponed update without the typed reason (\"why\")",
                    ));
                }
                (_, Some(_)) => {
                    return Err(malformed(format!(
                        "its status gives a postponement reason for an update that is {}",
                        u.state.as_str()
                    )));
                }
                (WireState::AwaitingConsent, None) => UpdateState::AwaitingConsent { release },
                (WireState::Installing, None) => UpdateState::Installing { release },
                (WireState::Refused, None) => UpdateState::Declined { release },
            }
        }
        (None, true) => {
            if st.slot.is_none() {
                return Err(malformed("its status reports a trial but no running slot"));
            }
            UpdateState::Trial {
                version: st.version.to_owned(),
            }
        }
        (None, false) => UpdateState::Confirmed,
    };
    Ok(LockSnapshot {
        model: st.model.to_owned(),
        version: st.version.to_owned(),
        image: st.image.map(Digest),
        update,
        battery_mwh: st.battery_mwh,
        door: match st.door {
            keyway_group::Door::Open => Door::Open,
            keyway_group::Door::Closed => Door::Closed,
        },
        bolt: match st.bolt {
            keyway_group::Bolt::Locked => Bolt::Locked,
            keyway_group::Bolt::Unlocked => Bolt::Unlocked,
        },
        tamper: st.tamper,
    })
}

/// Verifies an audit-log export with the lock's device key (`keyway log
/// verify`'s verifier): its first and last sequence numbers, or
/// [`LinkError::LogBroken`].
pub fn verify_log(bytes: &[u8], device_key: &[u8; 32]) -> Result<(u64, u64), LinkError> {
    let key = ed25519_dalek::VerifyingKey::from_bytes(device_key)
        .map_err(|_| malformed("the paired device key is not an Ed25519 point"))?;
    let report = keyway_vendor::log::verify(bytes, &keyway_vendor::keys::PublicKey::Ed25519(key));
    if let Some(first) = report.findings.first() {
        return Err(LinkError::LogBroken {
            kind: first.kind,
            reason: report
                .findings
                .iter()
                .map(|f| f.message.as_str())
                .collect::<Vec<_>>()
                .join("; "),
        });
    }
    let (first, last) = report.range.ok_or_else(|| {
        malformed("the audit log's export verifies but holds no authenticated record")
    })?;
    Ok((u64::from(first), u64::from(last)))
}

/// A lock over SMP, as the hub's owner: `keyway device`'s client with the
/// hub's key, sealed once the lock's device key is known. Generic over
/// the transport so tests can put a man in the middle; the hub uses
/// [`UdpLink`].
pub struct SmpLink<T: Transport> {
    address: String,
    client: Client<T>,
    device_key: Option<[u8; 32]>,
    poll: Duration,
}

/// A lock over UDP (`udp:HOST:PORT`).
pub type UdpLink = SmpLink<UdpTransport>;

impl<T: Transport> std::fmt::Debug for SmpLink<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmpLink")
            .field("address", &self.address)
            .field("sealed", &self.client.sealed())
            .finish_non_exhaustive()
    }
}

impl UdpLink {
    /// A link to the lock at `address` (`udp:HOST:PORT`), as `identity`;
    /// sealed with `device_key` (from pairing), else only
    /// [`LockLink::pair`] works. Each answer is waited for `timeout`,
    /// each request sent up to `tries` times.
    pub fn udp(
        address: &str,
        identity: &HubIdentity,
        device_key: Option<[u8; 32]>,
        timeout: Duration,
        tries: u32,
    ) -> Result<UdpLink, LinkError> {
        let t = UdpTransport::connect(address)
            .map_err(|_| LinkError::Unreachable {
                address: address.to_owned(),
            })?
            .with_retry(timeout, tries);
        SmpLink::over(address, t, identity, device_key)
    }
}

impl<T: Transport> SmpLink<T> {
    /// A link over any transport (tests: a transport that alters frames).
    pub fn over(
        address: &str,
        transport: T,
        identity: &HubIdentity,
        device_key: Option<[u8; 32]>,
    ) -> Result<SmpLink<T>, LinkError> {
        let mut client = Client::new(transport)
            .with_owner(identity.key().clone())
            .map_err(|e| link_error(address, e))?;
        if let Some(k) = device_key {
            client = client
                .with_paired_lock(k)
                .map_err(|e| link_error(address, e))?;
        }
        Ok(SmpLink {
            address: address.to_owned(),
            client,
            device_key,
            poll: POLL,
        })
    }

    /// Polls every `poll` while [`LockLink::consent`] waits (default
    /// [`POLL`]; the bench polls finer, to time the install closely).
    pub fn with_poll(mut self, poll: Duration) -> SmpLink<T> {
        self.poll = poll;
        self
    }

    /// The lock's address.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// The client (its channel counters, its transport).
    pub fn client(&mut self) -> &mut Client<T> {
        &mut self.client
    }

    fn err(&self, e: DeviceError) -> LinkError {
        link_error(&self.address, e)
    }

    fn paired_key(&self) -> Result<[u8; 32], LinkError> {
        self.device_key.ok_or_else(|| LinkError::NotAuthenticated {
            address: self.address.clone(),
        })
    }

    /// The snapshot and the pending envelope's digest.
    fn read_snapshot(&mut self) -> Result<LockSnapshot, LinkError> {
        self.paired_key()?;
        let status = self.client.status_body().map_err(|e| self.err(e))?;
        let images = self.client.image_state().map_err(|e| self.err(e))?;
        snapshot(&status, &images)
    }
}

/// The digest of a pending update's envelope as the snapshot names it.
fn pending_release(u: &UpdateState) -> Option<Digest> {
    match u {
        UpdateState::AwaitingConsent { release }
        | UpdateState::Postponed { release, .. }
        | UpdateState::Installing { release }
        | UpdateState::Declined { release } => Some(*release),
        UpdateState::Confirmed | UpdateState::Trial { .. } => None,
    }
}

impl<T: Transport + Send> LockLink for SmpLink<T> {
    fn pair(&mut self, setup_code: &str) -> Result<Paired, LinkError> {
        let code = keyway_channel::SetupCode::parse(setup_code.trim())
            .map_err(|_| LinkError::WrongSetupCode)?;
        let r = self
            .client
            .pair_with_code(&code, OWNER_NAME)
            .map_err(|e| self.err(e))?;
        // From now on every call runs sealed with the key pairing proved.
        self.client
            .set_paired_lock(r.device_key)
            .map_err(|e| self.err(e))?;
        self.device_key = Some(r.device_key);
        Ok(Paired {
            device_key: r.device_key,
        })
    }

    fn status(&mut self) -> Result<LockSnapshot, LinkError> {
        self.read_snapshot()
    }

    fn push(
        &mut self,
        candidates: &[&[u8]],
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<Pushed, LinkError> {
        self.paired_key()?;
        let candidates: Vec<Candidate> = candidates
            .iter()
            .enumerate()
            .map(|(i, b)| {
                let sha: [u8; 32] = sha2::Sha256::digest(b).into();
                Candidate {
                    path: PathBuf::from(format!(
                        "envelope {i} (sha256 {})",
                        keyway_vendor::keys::hex(&sha[..8])
                    )),
                    bytes: b.to_vec(),
                    sha,
                }
            })
            .collect();
        let r = push_update(&mut self.client, &candidates, progress).map_err(|e| match e {
            PushError::NothingToUpload(reason) => LinkError::NothingToPush { reason },
            PushError::NoFullImage { error, .. } | PushError::Device { error, .. } => {
                self.err(error)
            }
        })?;
        let pick = &candidates[r.chosen];
        Ok(Pushed {
            release: Digest(pick.sha),
            bytes: r.upload.len - r.upload.resumed_from,
            resumed_from: r.upload.resumed_from,
            delta: keyway_suit::inspect_envelope(&pick.bytes).is_ok_and(|i| i.delta.is_some()),
        })
    }

    fn consent(&mut self, accept: bool, wait_ms: u64) -> Result<InstallOutcome, LinkError> {
        let now = self.read_snapshot()?;
        let release = pending_release(&now.update).ok_or_else(|| LinkError::Refused {
            reason: "nothing waits for consent: push the update first".into(),
            rc: 0,
        })?;
        // The lock takes consent only for notes it has offered.
        self.client.notes().map_err(|e| self.err(e))?;
        let answer = self.client.consent_body(accept).map_err(|e| self.err(e))?;
        if !accept {
            return Ok(InstallOutcome::Refused(
                "the owner declined the update; the lock erased it".into(),
            ));
        }
        let answer = keyway_group::ConsentRsp::decode(&answer)
            .map_err(|e| malformed(format!("its consent answer: {e}")))?;
        if let Some(u) = answer.update {
            match (u.state, u.why) {
                (WireState::Postponed, Some(why)) => {
                    return Ok(InstallOutcome::Postponed(postponement(why)));
                }
                (WireState::Postponed, None) => {
                    return Err(malformed(
                        "its consent answer reports a postponed update without the typed reason (\"why\")",
                    ));
                }
                _ => {}
            }
        }
        let waited = wait_for(
            &mut self.client,
            &release.0,
            Duration::from_millis(wait_ms),
            self.poll,
            &mut |_| {},
        )
        .map_err(|e| self.err(e))?;
        match waited {
            Waited::Running { .. } => Ok(InstallOutcome::Running),
            Waited::Postponed { why: Some(w), .. } => {
                Ok(InstallOutcome::Postponed(postponement(w)))
            }
            Waited::Postponed { why: None, .. } => Err(malformed(
                "its status reports a postponed update without the typed reason (\"why\")",
            )),
            Waited::Refused { message } => Ok(InstallOutcome::Refused(message)),
            Waited::TimedOut => Ok(InstallOutcome::Pending),
        }
    }

    fn fetch_log(&mut self, _since: Option<u64>) -> Result<FetchedLog, LinkError> {
        let key = self.paired_key()?;
        let bytes = self
            .client
            .log_export(&mut |_, _| {})
            .map_err(|e| self.err(e))?;
        let (first_seq, last_seq) = verify_log(&bytes, &key)?;
        Ok(FetchedLog {
            bytes,
            first_seq,
            last_seq,
        })
    }
}

/// Connects the hub's locks over UDP as the hub's owner: a [`UdpLink`]
/// for a lock's record (its address, and its device key once paired).
#[derive(Debug, Clone)]
pub struct UdpConnector {
    identity: HubIdentity,
    timeout: Duration,
    tries: u32,
}

impl UdpConnector {
    /// A connector with the default wait ([`DEFAULT_TIMEOUT`] per answer,
    /// [`DEFAULT_TRIES`] sends).
    pub fn new(identity: HubIdentity) -> UdpConnector {
        UdpConnector {
            identity,
            timeout: DEFAULT_TIMEOUT,
            tries: DEFAULT_TRIES,
        }
    }

    /// With another wait per answer and number of sends.
    pub fn with_retry(mut self, timeout: Duration, tries: u32) -> UdpConnector {
        self.timeout = timeout;
        self.tries = tries;
        self
    }

    /// The hub's identity.
    pub fn identity(&self) -> &HubIdentity {
        &self.identity
    }

    /// A link to `lock` (sealed with its device key once it is paired).
    pub fn link(&self, lock: &LockRecord) -> Result<UdpLink, LinkError> {
        UdpLink::udp(
            &lock.address,
            &self.identity,
            lock.device_key,
            self.timeout,
            self.tries,
        )
    }
}

impl Connector for UdpConnector {
    /// [`UdpConnector::link`], boxed as the engine takes it.
    fn connect(&self, lock: &LockRecord) -> Result<Box<dyn LockLink>, LinkError> {
        Ok(Box::new(self.link(lock)?))
    }
}
