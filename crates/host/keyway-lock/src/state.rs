//! The lock's state directory: the flash image and what was provisioned.
//!
//! ```text
//! DIR/flash.bin      the nRF52840 flash, 1 MiB (SimFlash::as_bytes)
//! DIR/lock.json      {"vendor_domain", "class", "threshold", "anchors": [file names]}
//! DIR/anchor-N.pub   the vendor root keys (SPKI PEM)
//! DIR/keyset.cbor    the key set the lock stored after confirming an update that carried one
//! DIR/device.key     the device's own Ed25519 key (PKCS#8 PEM, 0600): signs the audit log
//! DIR/device.pub     its public key (SPKI PEM), for `keyway log verify --device-key`
//! DIR/pin            the keypad PIN (0600; missing: lock::DEFAULT_PIN)
//! DIR/boot-count     the boot counter (decimal), raised at every power-on
//! DIR/exports/       audit-log exports the control socket wrote (`log-export NAME`)
//! DIR/setup-verifier the SPAKE2+ verifier of the lock's setup code (84 bytes, 0600;
//!                    keyway-channel's StoredVerifier: w0, L, salt, iterations)
//! DIR/setup-code     the setup code itself, `1234-5670` (0600): the label, for the lab
//! DIR/agent-store.bin the agent's store flash, 16 KiB (0600): owners, consent, settings,
//!                    the setup code's verifier, the wrong-code count (crate::agent_shell)
//! ```
//!
//! **The setup code.** `keyway-lock provision` makes a per-lock setup code
//! ([`StateDir::new_setup_code`]): 8 digits under Matter's rules from the
//! OS's randomness (keyway-channel's `SetupCode::generate`), printed like
//! a label, `Setup code: 1234-5670`. What the lock itself keeps is only
//! the SPAKE2+ verifier (`setup-verifier`): PBKDF2-HMAC-SHA256 with a
//! random 16-byte salt and keyway-channel's `DEFAULT_ITERATIONS`
//! (100,000), never the code. `setup-code` stands for the sticker on the
//! lock: a real lock has no copy of the code in its flash; the simulator
//! keeps one (0600) so `keyway-lock ctl SOCKET setup-code` can read it
//! the way a person reads the label. Provisioning again makes a new code
//! and salt (and forgets the owners).
//!
//! Everything here is private to the lock's user: the directory (and
//! `exports/`) is mode 0700 and every file 0600, from the instant it is
//! created, before it holds a byte. [`write_atomic`] writes a temp file
//! made by [`create_private`] (`O_CREAT | O_EXCL | O_NOFOLLOW`, mode 0600
//! given to `open(2)`, so the umask can only narrow it; a planted file or
//! symbolic link at the temp name is removed, never written through) and
//! renames it into place; a rename replaces a directory entry and never
//! follows a link. The flash's in-place sector writes open `flash.bin`
//! with `O_NOFOLLOW`.
//!
//! The audit log itself lives on the flash (pages 252-255, see
//! [`crate::device::audit_config`]).
//!
//! After every request that changed the flash, [`StateDir::save`] writes
//! only the 4 KiB sectors that differ from what it last wrote, in place
//! (the first save of a process writes the whole file atomically: temp
//! file, rename). An upload chunk touches one or two sectors and the
//! journal's, so an upload no longer rewrites 1 MiB per request. Killing
//! the process in the middle of a save leaves some sectors new and some
//! old: a power cut with torn flash operations, which the device core
//! (journal, installer, audit log) is built to survive, as the device
//! crate's power-cut sweeps show. No fsync: the model is a killed process,
//! not a host crash.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, anyhow, bail};
use keyway_audit::Ed25519Signer;
use keyway_suit::TrustAnchors;

use crate::device::{self, DeviceCore, Flash, Trust};

/// `lock.json`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    /// The vendor's domain (the vendor UUIDv5).
    pub vendor_domain: String,
    /// The device class name.
    pub class: String,
    /// Root signatures required.
    pub threshold: u8,
    /// Anchor file names in DIR.
    pub anchors: Vec<String>,
}

impl Identity {
    fn to_json(&self) -> String {
        serde_json::json!({
            "vendor_domain": self.vendor_domain,
            "class": self.class,
            "threshold": self.threshold,
            "anchors": self.anchors,
        })
        .to_string()
    }

    fn from_json(text: &str) -> Result<Self> {
        let v: serde_json::Value = serde_json::from_str(text).context("lock.json is not JSON")?;
        let s = |k: &str| {
            v.get(k)
                .and_then(|x| x.as_str())
                .map(str::to_owned)
                .ok_or_else(|| anyhow!("lock.json: \"{k}\" is missing or not a string"))
        };
        let threshold = v
            .get("threshold")
            .and_then(|x| x.as_u64())
            .and_then(|t| u8::try_from(t).ok())
            .ok_or_else(|| anyhow!("lock.json: \"threshold\" is missing or not 0-255"))?;
        let anchors = v
            .get("anchors")
            .and_then(|x| x.as_array())
            .ok_or_else(|| anyhow!("lock.json: \"anchors\" is missing or not an array"))?
            .iter()
            .map(|a| {
                a.as_str()
                    .filter(|n| !n.contains('/') && !n.contains(".."))
                    .map(str::to_owned)
                    .ok_or_else(|| anyhow!("lock.json: an anchor is not a plain file name"))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Identity {
            vendor_domain: s("vendor_domain")?,
            class: s("class")?,
            threshold,
            anchors,
        })
    }
}

/// The paths of a state directory.
#[derive(Clone, Debug)]
pub struct StateDir {
    dir: PathBuf,
    /// The flash bytes `flash.bin` holds (after a save by this process).
    saved: std::cell::RefCell<Option<Vec<u8>>>,
}

impl StateDir {
    /// `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        StateDir {
            dir: dir.into(),
            saved: std::cell::RefCell::new(None),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Provisions: copies the anchors, writes the identity and a blank
    /// flash, and if `factory` is given programs it into slot 0, boots and
    /// confirms it, then makes the lock's setup code
    /// ([`StateDir::new_setup_code`]). Refuses a directory that already
    /// holds a lock unless `force`.
    pub fn provision(
        &self,
        vendor_keys: &[PathBuf],
        threshold: u8,
        vendor_domain: &str,
        class: &str,
        factory: Option<&Path>,
        force: bool,
    ) -> Result<String> {
        if self.path("flash.bin").exists() && !force {
            bail!(
                "{} already holds a lock (flash.bin); pass --force to provision it again",
                self.dir.display()
            );
        }
        if vendor_keys.is_empty() {
            bail!("provision: give at least one --vendor-key");
        }
        make_private_dir(&self.dir)?;
        let mut names = Vec::new();
        for (i, k) in vendor_keys.iter().enumerate() {
            // Parse before copying: a bad key is refused here, by name.
            keyway_vendor::keys::PublicKey::load(k)
                .with_context(|| format!("--vendor-key {}", k.display()))?;
            let name = format!("anchor-{i}.pub");
            let pem = std::fs::read(k).with_context(|| format!("reading {}", k.display()))?;
            write_atomic(&self.path(&name), &pem)
                .with_context(|| format!("copying {} into the state", k.display()))?;
            names.push(name);
        }
        let id = Identity {
            vendor_domain: vendor_domain.to_owned(),
            class: class.to_owned(),
            threshold,
            anchors: names,
        };
        write_atomic(&self.path("lock.json"), id.to_json().as_bytes())?;
        let _ = std::fs::remove_file(self.path("keyset.cbor"));
        let _ = std::fs::remove_file(self.path("owners.json"));
        // The agent's owners, consent and settings belong to the lock
        // this directory held before.
        let _ = std::fs::remove_file(self.path(crate::agent_shell::STORE_FILE));
        let _ = std::fs::remove_file(self.path("boot-count"));
        // A code made for the lock this directory held before: a new one
        // is made below (the owners pair only with it: a lock without a
        // setup code could never get an owner).
        let _ = std::fs::remove_file(self.path(SETUP_CODE));
        let _ = std::fs::remove_file(self.path(SETUP_VERIFIER));
        if force {
            let _ = std::fs::remove_file(self.path("device.key"));
            let _ = std::fs::remove_file(self.path("device.pub"));
        }
        let (signer, kid) = self.device_signer()?;
        let trust = self.trust(&id)?;
        let mut lock =
            DeviceCore::new(device::blank_flash(), trust, None).map_err(|e| anyhow!(e))?;
        // The factory boot is boot 1.
        lock.attach_audit(signer, 0).map_err(|e| anyhow!(e))?;
        let summary = match factory {
            Some(f) => {
                let env = std::fs::read(f)
                    .with_context(|| format!("reading --factory {}", f.display()))?;
                let r = lock
                    .factory(&env)
                    .map_err(|e| anyhow!("--factory {}: {e}", f.display()))?;
                let v = lock.view(0).map(|v| v.version).unwrap_or_default();
                format!("factory image {v} in slot 0: {}", r.app)
            }
            None => "no factory image: the lock boots into recovery and accepts an upload".into(),
        };
        self.set_boot_count(lock.boot_count().unwrap_or(0))?;
        lock.commit_audit(wall_clock_secs())
            .map_err(|e| anyhow!(e))?;
        self.save(&lock)?;
        self.new_setup_code().context("making the setup code")?;
        Ok(format!(
            "{summary}; device key {} (device.pub)",
            keyway_vendor::keys::hex(&kid)
        ))
    }

    /// The device's Ed25519 key (`device.key`), created with `device.pub`
    /// if the directory has none yet, and its key id.
    pub fn device_signer(&self) -> Result<(Ed25519Signer, keyway_vendor::keys::KeyId)> {
        let path = self.path("device.key");
        if !path.exists() {
            self.new_device_key()
                .with_context(|| format!("creating the device key {}", path.display()))?;
        }
        let key = keyway_vendor::keys::SigningKey::load(&path)
            .with_context(|| format!("the device key {}", path.display()))?;
        let kid = key.key_id();
        let keyway_vendor::keys::SigningKey::Ed25519(k) = key else {
            bail!("{}: the device key must be Ed25519", path.display());
        };
        let signer = Ed25519Signer::from_seed(k.to_bytes())
            .ok_or_else(|| anyhow!("{}: unusable Ed25519 seed", path.display()))?;
        Ok((signer, kid))
    }

    /// The device's Ed25519 key pair (`device.key`, created if missing)
    /// as the agent holds it: the key its pairing and sessions prove, the
    /// same key that signs the audit log.
    pub fn device_keypair(&self) -> Result<keyway_channel::SigningKey> {
        self.device_signer()?;
        let path = self.path("device.key");
        let key = keyway_vendor::keys::SigningKey::load(&path)
            .with_context(|| format!("the device key {}", path.display()))?;
        let keyway_vendor::keys::SigningKey::Ed25519(k) = key else {
            bail!("{}: the device key must be Ed25519", path.display());
        };
        Ok(keyway_channel::SigningKey::from_bytes(&k.to_bytes()))
    }

    /// The agent's store flash (`agent-store.bin`; a blank one if the
    /// lock has none yet).
    pub fn agent_store(&self) -> Result<crate::agent_shell::StoreFlash> {
        let path = self.path(crate::agent_shell::STORE_FILE);
        match std::fs::read(&path) {
            Ok(b) => crate::agent_shell::store_from_bytes(b)
                .map_err(|e| anyhow!("{}: {e}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                crate::agent_shell::blank_store().map_err(|e| anyhow!(e))
            }
            Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
        }
    }

    /// Writes the agent's store flash (`agent-store.bin`, 0600,
    /// atomically: the file holds the flash before or after the write).
    pub fn save_agent_store(&self, bytes: &[u8]) -> Result<()> {
        write_atomic(&self.path(crate::agent_shell::STORE_FILE), bytes)
    }

    /// Makes `device.key` (PKCS#8 PEM) and `device.pub` (SPKI PEM), both
    /// 0600 from their creation ([`write_atomic`]).
    fn new_device_key(&self) -> Result<()> {
        let key =
            keyway_vendor::keys::SigningKey::generate(keyway_vendor::keys::Algorithm::Ed25519)?;
        let private = key.to_pkcs8_pem()?;
        let public = key.public_key().to_spki_pem()?;
        write_atomic(&self.path("device.key"), private.as_bytes())?;
        write_atomic(&self.path("device.pub"), public.as_bytes())
    }

    /// Makes the directory private (0700; created if missing): the
    /// provisioning and every start call it.
    pub fn secure(&self) -> Result<()> {
        make_private_dir(&self.dir)
    }

    /// Makes the lock's setup code: a fresh random code, its SPAKE2+
    /// verifier (random salt, keyway-channel's default iterations) into
    /// `setup-verifier`, and the code into `setup-code` (the label; see
    /// the module doc), both 0600 before they hold a byte
    /// ([`write_atomic`]). Replaces a code made before. Returns the code.
    pub fn new_setup_code(&self) -> Result<keyway_channel::SetupCode> {
        use keyway_channel::pairing::{DEFAULT_ITERATIONS, SALT_LEN};
        use keyway_channel::{SetupCode, StoredVerifier};
        let mut salt = [0u8; SALT_LEN];
        getrandom::fill(&mut salt)
            .map_err(|e| anyhow!("the setup code needs the OS's randomness: {e}"))?;
        // The OS answered just now; `UnwrapErr` would panic only if it
        // stopped answering between two calls.
        let code = SetupCode::generate(&mut getrandom::rand_core::UnwrapErr(getrandom::SysRng));
        let verifier = StoredVerifier::derive(&code, &salt, DEFAULT_ITERATIONS);
        make_private_dir(&self.dir)?;
        write_atomic(&self.path(SETUP_VERIFIER), &verifier.to_bytes())?;
        write_atomic(&self.path(SETUP_CODE), format!("{code}\n").as_bytes())?;
        Ok(code)
    }

    /// The setup code's SPAKE2+ verifier (`setup-verifier`; `None`: the
    /// lock was provisioned without a setup code).
    pub fn setup_verifier(&self) -> Result<Option<keyway_channel::StoredVerifier>> {
        let path = self.path(SETUP_VERIFIER);
        match std::fs::read(&path) {
            Ok(b) => keyway_channel::StoredVerifier::from_bytes(&b)
                .map(Some)
                .map_err(|e| anyhow!("{}: not a setup-code verifier: {e}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
        }
    }

    /// The setup code as the label shows it (`setup-code`; `None`: the
    /// lock was provisioned without one).
    pub fn setup_code(&self) -> Result<Option<keyway_channel::SetupCode>> {
        let path = self.path(SETUP_CODE);
        match std::fs::read_to_string(&path) {
            Ok(t) => keyway_channel::SetupCode::parse(t.trim())
                .map(Some)
                .map_err(|e| anyhow!("{}: {e}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
        }
    }

    /// Stores the keypad PIN (`pin`, mode 0600 before it holds the PIN).
    pub fn set_pin(&self, pin: &str) -> Result<()> {
        if pin.is_empty() || pin.len() > 12 || !pin.bytes().all(|b| b.is_ascii_digit()) {
            bail!("the PIN must be 1 to 12 digits");
        }
        make_private_dir(&self.dir)?;
        write_atomic(&self.path("pin"), pin.as_bytes())
    }

    /// Writes an audit-log export as `exports/NAME` in the state
    /// directory and returns its path. `name` is a plain file name
    /// (letters, digits, `.`, `_`, `-`; not starting with `.`; at most 64
    /// bytes): an absolute path, a `/`, `..` or a symbolic link at the
    /// name is refused, so the control socket cannot make the lock write
    /// anywhere else. An export already there under that name is replaced.
    /// The path returned is absolute.
    pub fn write_export(&self, name: &str, bytes: &[u8]) -> Result<PathBuf, ExportError> {
        check_export_name(name)?;
        let dir = self.path("exports");
        match std::fs::symlink_metadata(&dir) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => return Err(ExportError::ExportsNotADirectory { dir }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                use std::os::unix::fs::DirBuilderExt as _;
                std::fs::DirBuilder::new()
                    .mode(0o700)
                    .create(&dir)
                    .map_err(|error| ExportError::Io {
                        path: dir.clone(),
                        error: error.to_string(),
                    })?;
            }
            Err(error) => {
                return Err(ExportError::Io {
                    path: dir,
                    error: error.to_string(),
                });
            }
        }
        let path = dir.join(name);
        if std::fs::symlink_metadata(&path).is_ok_and(|m| !m.is_file()) {
            return Err(ExportError::NotAFile { path });
        }
        write_atomic(&path, bytes).map_err(|e| ExportError::Io {
            path: path.clone(),
            error: format!("{e:#}"),
        })?;
        // Absolute: the answer is read by a client with its own cwd.
        Ok(std::path::absolute(&path).unwrap_or(path))
    }

    /// The keypad PIN ([`crate::lock::DEFAULT_PIN`] if none was set).
    pub fn pin(&self) -> Result<String> {
        match std::fs::read_to_string(self.path("pin")) {
            Ok(p) => Ok(p.trim().to_owned()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Ok(crate::lock::DEFAULT_PIN.to_owned())
            }
            Err(e) => Err(e).context("reading the PIN"),
        }
    }

    /// The stored boot counter (0 before the first boot).
    pub fn boot_count(&self) -> Result<u32> {
        let path = self.path("boot-count");
        match std::fs::read_to_string(&path) {
            Ok(t) => t
                .trim()
                .parse::<u32>()
                .with_context(|| format!("{}: not a number", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
            Err(e) => Err(e).context("reading boot-count"),
        }
    }

    /// Stores the boot counter.
    pub fn set_boot_count(&self, n: u32) -> Result<()> {
        write_atomic(&self.path("boot-count"), n.to_string().as_bytes())
    }

    fn trust(&self, id: &Identity) -> Result<Trust> {
        let mut keys = Vec::new();
        for n in &id.anchors {
            let p = self.path(n);
            let k = keyway_vendor::keys::PublicKey::load(&p)
                .with_context(|| format!("anchor {}", p.display()))?;
            keys.push(
                keyway_suit::PublicKey::from_raw(&k.raw_public_key_bytes()).map_err(|e| {
                    anyhow!("{}: {}", p.display(), keyway_vendor::describe::describe(&e))
                })?,
            );
        }
        let anchors = TrustAnchors::new(&keys, id.threshold).map_err(|e| {
            anyhow!(
                "the anchors and threshold {} are refused: {}",
                id.threshold,
                keyway_vendor::describe::describe(&e)
            )
        })?;
        Ok(Trust::new(anchors, &id.vendor_domain, &id.class))
    }

    /// Loads the lock (not booted).
    pub fn load(&self) -> Result<DeviceCore> {
        let text = std::fs::read_to_string(self.path("lock.json")).with_context(|| {
            format!(
                "{}: no provisioned lock (run `keyway-lock provision` first)",
                self.path("lock.json").display()
            )
        })?;
        let id = Identity::from_json(&text)?;
        let trust = self.trust(&id)?;
        let bytes = std::fs::read(self.path("flash.bin"))
            .with_context(|| format!("reading {}", self.path("flash.bin").display()))?;
        let flash: Flash = device::flash_from_bytes(bytes)
            .map_err(|e| anyhow!("{}: {e}", self.path("flash.bin").display()))?;
        let keyset = match std::fs::read(self.path("keyset.cbor")) {
            Ok(d) => Some(d),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(e).context("reading keyset.cbor"),
        };
        DeviceCore::new(flash, trust, keyset).map_err(|e| anyhow!(e))
    }

    /// Writes the flash and the stored key set: the whole file atomically
    /// the first time, then only the sectors that changed, in place.
    pub fn save(&self, lock: &DeviceCore) -> Result<()> {
        let bytes = lock.flash().as_bytes();
        let path = self.path("flash.bin");
        let mut saved = self.saved.borrow_mut();
        match &mut *saved {
            Some(old) if old.len() == bytes.len() && path.exists() => {
                write_changed_sectors(&path, old, bytes)?;
            }
            _ => {
                write_atomic(&path, bytes)?;
                *saved = Some(bytes.to_vec());
            }
        }
        if let Some(doc) = lock.keyset_doc() {
            write_atomic(&self.path("keyset.cbor"), doc)?;
        }
        Ok(())
    }
}

/// The file that holds the setup code's SPAKE2+ verifier.
pub const SETUP_VERIFIER: &str = "setup-verifier";
/// The file that holds the setup code as the label shows it (lab only).
pub const SETUP_CODE: &str = "setup-code";

/// The sector size `save` compares and writes by (the nRF52840 page).
pub const SAVE_SECTOR: usize = 4096;

/// Writes the sectors of `new` that differ from `old` into `path` at their
/// offsets, and updates `old`.
fn write_changed_sectors(path: &Path, old: &mut [u8], new: &[u8]) -> Result<()> {
    use std::os::unix::fs::FileExt as _;
    let mut file = None;
    for (i, (o, n)) in old
        .chunks_mut(SAVE_SECTOR)
        .zip(new.chunks(SAVE_SECTOR))
        .enumerate()
    {
        if o == n {
            continue;
        }
        if file.is_none() {
            use std::os::unix::fs::OpenOptionsExt as _;
            file = Some(
                std::fs::OpenOptions::new()
                    .write(true)
                    .custom_flags(libc::O_NOFOLLOW)
                    .open(path)
                    .with_context(|| format!("opening {}", path.display()))?,
            );
        }
        if let Some(f) = &file {
            f.write_all_at(n, (i * SAVE_SECTOR) as u64)
                .with_context(|| format!("writing sector {i} of {}", path.display()))?;
        }
        o.copy_from_slice(n);
    }
    Ok(())
}

/// Wall-clock seconds since 1970 (the audit log's RTC).
pub fn wall_clock_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Creates `path` for writing, private from its first instant: mode
/// 0600 given to `open(2)` (the umask can only narrow it), and
/// `O_CREAT | O_EXCL | O_NOFOLLOW`, so an existing file or a symbolic link
/// at `path` is refused, never opened or followed.
pub fn create_private(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt as _;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
}

/// Writes `bytes` to `path.tmp`, made by [`create_private`] (a stale or
/// planted `path.tmp`, even a symbolic link, is removed first, not
/// written through), and renames it over `path`: the file is 0600 before
/// it holds a byte, and `path` is whole or old, never half written.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write as _;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    match std::fs::remove_file(&tmp) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("removing {}", tmp.display())),
    }
    let written = create_private(&tmp).and_then(|mut f| f.write_all(bytes));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(e).with_context(|| format!("writing {}", tmp.display()));
    }
    std::fs::rename(&tmp, path)
        .with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))
}

/// Creates `dir` (and missing parents) mode 0700 if it does not exist,
/// then sets it to 0700.
pub fn make_private_dir(dir: &Path) -> Result<()> {
    use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
    match std::fs::metadata(dir) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => bail!("{} is not a directory", dir.display()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .with_context(|| format!("creating {}", dir.display()))?,
        Err(e) => return Err(e).with_context(|| format!("{}", dir.display())),
    }
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .with_context(|| format!("chmod 700 {}", dir.display()))
}

/// Why `log-export` refused to write.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExportError {
    /// The name is a path, `..`, hidden, empty, too long or has other
    /// characters.
    #[error(
        "log-export {name:?}: give a plain file name (letters, digits, '.', '_', '-'; at most 64; not a path, not starting with '.'): the lock writes exports only into its state directory's exports/ folder"
    )]
    BadName {
        /// The name given.
        name: String,
    },
    /// `exports` in the state directory is not a directory (a link, a file).
    #[error("{dir} is not a directory (a symbolic link or a file): refused")]
    ExportsNotADirectory {
        /// The path.
        dir: PathBuf,
    },
    /// Something other than a regular file (a symbolic link, a directory)
    /// has the export's name.
    #[error("{path} is a symbolic link or not a regular file: refused")]
    NotAFile {
        /// The path.
        path: PathBuf,
    },
    /// The write failed.
    #[error("writing {path}: {error}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The system's error.
        error: String,
    },
}

fn check_export_name(name: &str) -> Result<(), ExportError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(ExportError::BadName {
            name: name.to_owned(),
        })
    }
}
