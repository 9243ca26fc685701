//! The twelve checks, run in an order that lets each build on the last:
//! the network first, then a genuine update (no forced install, notes
//! before consent, the install), the attacks, an update under load
//! (unlocks and tamper during it), the bad image, the power cuts, the
//! lock after it all, the factory reset, and last the audit log, which
//! must have recorded the whole run. A lock that starts in recovery gets a
//! baseline release first, and the report says so
//! (`Session::install_baseline`).
//!
//! Checks 6 and 7 are in `load`, 4 in `power`, 10 in `log`; the rest,
//! the session and its upload and install steps here.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, anyhow};
use ciborium::Value;
use keyway_audit::{Body as RecBody, Event};
use keyway_vendor::keys::{Algorithm, PublicKey, SigningKey, hex};
use keyway_vendor::smp::{self, Op, group, text};
use serde_json::json;

use super::link::{Answer, Control, ControlAddr, SlotState, Smp, Upload};
use super::releases::{self, Release, SELF_TEST_FAIL_MARKER, Source};
use super::{CHECKS, Check, Options, Status, Target, netns};

mod channel;
mod load;
mod log;
mod power;

/// What the audit expects the lock's log to hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// A download of this sequence started.
    Download(u64),
    /// This sequence was confirmed.
    Confirmed(u64),
    /// This sequence was confirmed, or a boot ran its version (after a
    /// power cut during its install).
    Ran(u64, keyway_audit::Version),
    /// An upload of this sequence was refused.
    Rejected(u64),
    /// The tamper sensor fired.
    Tamper,
}

impl Expect {
    fn matches(self, e: &Event) -> bool {
        match (self, e) {
            (Expect::Download(s), Event::DownloadStarted { sequence }) => s == *sequence,
            (Expect::Confirmed(s) | Expect::Ran(s, _), Event::Confirmed { sequence, .. }) => {
                s == *sequence
            }
            (Expect::Ran(_, v), Event::Boot { version, .. }) => v == *version,
            (Expect::Rejected(s), Event::UpdateRejected { sequence, .. }) => s == *sequence,
            (Expect::Tamper, Event::TamperDetected { .. }) => true,
            _ => false,
        }
    }

    fn describe(self) -> String {
        match self {
            Expect::Download(s) => format!("download of sequence {s} started"),
            Expect::Confirmed(s) => format!("sequence {s} confirmed"),
            Expect::Ran(s, v) => format!("sequence {s} ({v}) confirmed or booted"),
            Expect::Rejected(s) => format!("upload of sequence {s} rejected"),
            Expect::Tamper => "tamper detected".to_owned(),
        }
    }
}

/// One run against one lock.
struct Session<'a> {
    o: &'a Options,
    smp: Smp,
    addr: SocketAddr,
    control: Option<Control>,
    control_addr: Option<ControlAddr>,
    /// The lock answers the Keyway group (status, consent, notes, …).
    keyway_group: bool,
    owner: Option<SigningKey>,
    pin: String,
    source: Source,
    device_key: Option<PublicKey>,
    /// The device key is the one the lock announced (its status), not
    /// one the tester gave or the state directory holds.
    device_key_from_lock: bool,
    exports: Vec<(String, Vec<u8>)>,
    expect: Vec<Expect>,
    files: Vec<String>,
    results: Vec<Check>,
    /// The last release the lock confirmed during the run.
    current: Option<Release>,
    /// Check 1 passed: the run is offline.
    unplugged: bool,
    /// The last genuine release uploaded.
    last_genuine: Option<Release>,
    /// The lock took a genuine upload whole (check 2): its refusals of
    /// doctored ones can then be told from refusing everything.
    genuine_accepted: bool,
    /// The lock's anti-rollback floor when the run started, if known.
    floor: Option<u64>,
    /// The lock started in recovery: what the audit did about it (the
    /// baseline it installed first), for check 2's evidence.
    baseline: Vec<String>,
    /// The lock's setup code (`--setup-code`, else read off its label
    /// through the control socket).
    setup_code: Option<keyway_channel::SetupCode>,
    t0: Instant,
}

fn check(number: u8, status: Status, summary: impl Into<String>, evidence: Vec<String>) -> Check {
    let (_, id, title) = CHECKS
        .iter()
        .copied()
        .find(|c| c.0 == number)
        .unwrap_or((number, "?", "?"));
    Check {
        number,
        id,
        title,
        status,
        summary: summary.into(),
        evidence,
        figures: Vec::new(),
    }
}

/// Runs the audit; returns (target, lock, checks, files).
pub(super) fn run(o: &Options) -> Result<(String, String, Vec<Check>, Vec<String>)> {
    let Target::Udp(addr) = o.target;
    let control_addr = o.control.clone();
    let identity = o.vendor_domain.clone().zip(o.class.clone());
    let floor = o.floor;
    let device_key = match &o.device_key {
        Some(p) => {
            Some(PublicKey::load(p).with_context(|| format!("--device-key {}", p.display()))?)
        }
        None => None,
    };
    let mut smp = Smp::connect(addr)?;
    smp.wait_up(Duration::from_secs(5))
        .with_context(|| format!("the lock at udp:{addr}"))?;
    let source = if !o.vendor_keys.is_empty() {
        let (domain, class) = identity
            .clone()
            .ok_or_else(|| anyhow!("--vendor-key needs the lock's --vendor-domain and --class"))?;
        let first = o.sequence.unwrap_or_else(|| match floor {
            Some(f) => f + 1,
            None => super::unix_now(),
        });
        Source::vendor(
            &o.vendor_keys,
            o.keyset.as_deref(),
            domain,
            class,
            first,
            o.image_len,
        )?
    } else if !o.updates.is_empty() {
        Source::files(&o.updates, identity.clone())?
    } else {
        anyhow::bail!(
            "give --vendor-key V.key or --update FILE... (the releases the audit uploads)"
        );
    };
    let owner = match &o.owner_key {
        Some(p) => {
            Some(SigningKey::load(p).with_context(|| format!("--owner-key {}", p.display()))?)
        }
        None => None,
    };
    // An owner key paired with this lock by its setup code
    // (`keyway device pair --setup-code`): its sessions are sealed.
    if let Some(p) = &o.owner_key
        && let Some(k) = &owner
    {
        let path = crate::device::paired::locks_path(p);
        if path.exists() {
            let locks = crate::device::paired::PairedLocks::load(&path, k.key_id())
                .map_err(|e| anyhow!("{}: {e}", path.display()))?;
            let record = locks
                .find(&format!("udp:{addr}"))
                .or_else(|| locks.find(&addr.to_string()));
            smp.set_paired(record.map(|r| r.device_key))?;
        }
    }
    let mut s = Session {
        o,
        smp,
        addr,
        control: control_addr.clone().map(Control::new),
        control_addr,
        keyway_group: false,
        owner,
        pin: o
            .pin
            .clone()
            .unwrap_or_else(|| super::DEFAULT_PIN.to_owned()),
        source,
        device_key,
        device_key_from_lock: false,
        exports: Vec::new(),
        expect: Vec::new(),
        files: Vec::new(),
        results: Vec::new(),
        current: None,
        last_genuine: None,
        genuine_accepted: false,
        unplugged: false,
        floor,
        baseline: Vec::new(),
        setup_code: match &o.setup_code {
            Some(c) => Some(
                keyway_channel::SetupCode::parse(c).map_err(|e| anyhow!("--setup-code: {e}"))?,
            ),
            None => None,
        },
        t0: Instant::now(),
    };
    s.smp.set_owner(s.owner.clone())?;
    let mut lock = s.setup()?;
    if let Some(b) = s.install_baseline()? {
        lock.push_str("; ");
        lock.push_str(&b);
    }
    if let Some(note) = &o.lock_note {
        lock.push_str("; ");
        lock.push_str(note);
    }
    s.run_all();
    let mut checks = std::mem::take(&mut s.results);
    checks.sort_by_key(|c| c.number);
    Ok((format!("udp:{addr}"), lock, checks, s.files))
}

impl Session<'_> {
    fn say(&self, what: &str) {
        if self.o.verbose {
            eprintln!(
                "keyway audit: {:6.2} s  {what}",
                self.t0.elapsed().as_secs_f64()
            );
        }
    }

    /// What the summaries may claim about the network (check 1).
    fn offline(&self) -> &'static str {
        if self.unplugged {
            ", no internet"
        } else {
            " (the network was NOT unplugged: see check 1)"
        }
    }

    fn ctl(&mut self, cmd: serde_json::Value) -> Result<serde_json::Value> {
        match self.control.as_mut() {
            Some(c) => c.cmd(&cmd),
            None => Err(anyhow!("the lock has no control interface")),
        }
    }

    /// Reads what the lock says it is, pairs the audit's owner key, and
    /// takes the first log export.
    fn setup(&mut self) -> Result<String> {
        let mut lock = String::new();
        // `status` is for owners (signed when the audit has an owner key);
        // a lock that refuses it for want of one (rc 11) has the group.
        let mut status_later = false;
        match self.smp.owner_call(|c| c.status())? {
            Answer::Err { rc: 11, .. } => {
                self.keyway_group = true;
                status_later = true;
            }
            Answer::Ok(b) => {
                self.keyway_group = true;
                let t = |k: &str| {
                    smp::get_text(&b, k)
                        .ok()
                        .flatten()
                        .unwrap_or("?")
                        .to_owned()
                };
                lock = format!("model {}, version {}", t("model"), t("version"));
                if self.device_key.is_none()
                    && let Ok(Some(raw)) = smp::get_bytes(&b, "device_key")
                    && let Ok(arr) = <[u8; 32]>::try_from(raw)
                    && let Ok(k) = ed25519_dalek::VerifyingKey::from_bytes(&arr)
                {
                    self.device_key = Some(PublicKey::Ed25519(k));
                    self.device_key_from_lock = true;
                }
            }
            e => self.say(&format!(
                "the lock has no Keyway group ({}); using the image group and the control socket",
                e.describe()
            )),
        }
        if let Some(r) = self.smp.running()? {
            if lock.is_empty() {
                lock = format!("version {}", r.version);
            }
        } else {
            lock.push_str(" (in recovery: no verified image)");
        }
        if self.owner.is_none() && self.control.is_some() && self.keyway_group {
            let key = SigningKey::generate(Algorithm::Ed25519)
                .map_err(|e| anyhow!("generating the audit's owner key: {e}"))?;
            if self.pair(&key).is_ok() {
                self.owner = Some(key);
                self.smp.set_owner(self.owner.clone())?;
            }
        }
        if status_later
            && self.device_key.is_none()
            && let Ok(b) = self.smp.status()
            && let Ok(Some(raw)) = smp::get_bytes(&b, "device_key")
            && let Ok(arr) = <[u8; 32]>::try_from(raw)
            && let Ok(k) = ed25519_dalek::VerifyingKey::from_bytes(&arr)
        {
            self.device_key = Some(PublicKey::Ed25519(k));
            self.device_key_from_lock = true;
        }
        self.export("start");
        Ok(lock)
    }

    /// A lock that starts in recovery (provisioned without a factory image)
    /// runs nothing to protect, so it installs its first verified upload at
    /// once, without consent: checks 11 and 12 would call that a forced
    /// update, and every later check would start from a lock unlike a
    /// provisioned one. The audit therefore installs a baseline first (the
    /// next release it signs with the vendor key, or the lowest `--update`
    /// file) and says so: the returned line goes into the report's
    /// description of the lock, the evidence into check 2. `None`: the lock
    /// runs a verified image, nothing to do.
    fn install_baseline(&mut self) -> Result<Option<String>> {
        if self.smp.running()?.is_some() {
            return Ok(None);
        }
        let Some(r) = self.next_release(None)? else {
            return Ok(Some(
                "started in recovery (no verified image) and the audit has no release to install as a baseline".into(),
            ));
        };
        self.say(&format!("the lock is in recovery: baseline {}", r.label));
        let mut ev = vec![format!(
            "the lock started in recovery (no verified image): the audit installed {} ({}, sequence {}) as a baseline before the checks",
            r.label, r.version, r.sequence
        )];
        // The reset that boots the armed upload is the lock's button's
        // business where it has one.
        let _ = self.ctl(json!({"cmd": "presence", "seconds": 60}));
        let ok = self.complete(&r, &mut ev);
        let _ = self.ctl(json!({"cmd": "presence-close"}));
        let ok = ok?;
        let line = if ok {
            format!(
                "started in recovery (no verified image): the audit installed {} ({}) as a baseline first",
                r.label, r.version
            )
        } else {
            ev.push("the baseline did not install: the checks start from recovery".into());
            format!(
                "started in recovery (no verified image): the baseline {} ({}) did NOT install",
                r.label, r.version
            )
        };
        self.baseline = ev.into_iter().map(|e| format!("baseline: {e}")).collect();
        Ok(Some(line))
    }

    /// Opens the presence window and pairs `key`: with the setup code
    /// read off the lock's label (the control socket's `setup-code`) where
    /// the lock has one (its owner commands then run in a session); a
    /// lock that shows none cannot get an owner.
    fn pair(&mut self, key: &SigningKey) -> Result<u64> {
        self.ctl(json!({"cmd": "presence", "seconds": 30}))?;
        if self.setup_code.is_none() {
            self.setup_code = self
                .ctl(json!({"cmd": "setup-code"}))
                .ok()
                .and_then(|v| v.get("setup_code")?.as_str().map(str::to_owned))
                .and_then(|c| keyway_channel::SetupCode::parse(&c).ok());
        }
        let code = self.setup_code;
        let b = match code {
            Some(code) => self.smp.pair_by_code(key, &code)?.ok("pair")?,
            None => {
                let _ = self.ctl(json!({"cmd": "presence-close"}));
                return Err(anyhow!(
                    "the lock's control interface gave no setup code: an owner pairs only by setup code"
                ));
            }
        };
        let _ = self.ctl(json!({"cmd": "presence-close"}));
        Ok(smp::get_u64(&b, "owners").ok().flatten().unwrap_or(0))
    }

    fn run_all(&mut self) {
        let c1 = self.router_unplugged();
        self.unplugged = c1.status == Status::Pass;
        self.results.push(c1);
        if self.owner.is_none() && self.control.is_none() {
            // No way in: an upload needs the lock's button or an owner.
            for n in [2, 3, 4, 5, 6, 7, 8, 9, 11, 12, 13, 14, 15, 16, 17, 18, 19] {
                self.results.push(check(
                    n,
                    Status::Skip,
                    "the audit cannot upload: the lock has no control interface (its button) and no paired owner was given (--owner-key)",
                    vec![],
                ));
            }
            self.export("end");
            let c10 = self.audit_log();
            self.results.push(c10);
            return;
        }
        let (c2, c11, c12) = self
            .first_update()
            .unwrap_or_else(|e| errored3(&[2, 11, 12], &e));
        let installed = c2.status == Status::Pass;
        self.results.extend([c2, c11, c12]);
        self.export("first update");
        let c3 = self.attacks().unwrap_or_else(|e| errored(3, &e));
        self.results.push(c3);
        self.export("attacks");
        let (c6, c7) = self
            .under_load()
            .unwrap_or_else(|e| (errored(6, &e), errored(7, &e)));
        self.results.extend([c6, c7]);
        self.export("update under load");
        let blocked = |n| {
            check(
                n,
                Status::Skip,
                "blocked: the lock installs no genuine update (check 2 failed)",
                vec![],
            )
        };
        if installed {
            let c5 = self.bad_image().unwrap_or_else(|e| errored(5, &e));
            self.results.push(c5);
            let c4 = self.interruption().unwrap_or_else(|e| errored(4, &e));
            self.results.push(c4);
            self.say("check 4 done");
            let c8 = self.after_update().unwrap_or_else(|e| errored(8, &e));
            self.results.push(c8);
            let c9 = self.factory_reset().unwrap_or_else(|e| errored(9, &e));
            self.results.push(c9);
        } else {
            self.results
                .extend([blocked(4), blocked(5), blocked(8), blocked(9)]);
        }
        self.say("check 9 done");
        let channel = self.channel_checks();
        self.results.extend(channel);
        self.export("end");
        let c10 = self.audit_log();
        self.results.push(c10);
    }

    // ----------------------------------------------------------------- 1

    fn router_unplugged(&mut self) -> Check {
        let iso = netns::inspect();
        let mut ev = Vec::new();
        match (&self.o.namespace, iso.in_namespace) {
            (Ok(()), true) => ev.push(
                "the audit runs in its own network namespace (unshare -rn): only lo, brought up for the lock".into(),
            ),
            (Ok(()), false) => ev.push("the caller isolated the network".into()),
            (Err(why), _) => ev.push(format!("no network namespace: {why}")),
        }
        ev.push(format!("interfaces: {}", iso.interfaces.join(", ")));
        if iso.default_routes.is_empty() {
            ev.push("no default route in /proc/net/route or /proc/net/ipv6_route".into());
        }
        for r in &iso.default_routes {
            ev.push(format!("default route found: {r}"));
        }
        for (p, r) in &iso.probes {
            ev.push(format!("UDP connect to {p}: {r}"));
        }
        ev.push(format!("the lock answers on udp:{} (echo)", self.addr));
        if let Some(c) = &self.control_addr {
            ev.push(format!("its control socket: {c}"));
        }
        if iso.no_route_out() {
            let summary = match self.o.target {
                // A lock in this process or on loopback runs on this host:
                // its routes are these.
                Target::Udp(a) if self.o.in_process || a.ip().is_loopback() => {
                    "no route out: only the lock is reachable"
                }
                // The audit sees its own host's routes, not a real lock's
                // radios: the tester must unplug the lock's router too.
                Target::Udp(_) => {
                    ev.push("the lock's own uplinks (its Wi-Fi router, a cellular modem) cannot be seen from here: unplug them for the run".into());
                    "no route out from this host: only the lock is reachable from here"
                }
            };
            check(1, Status::Pass, summary, ev)
        } else {
            let why = iso
                .default_routes
                .first()
                .cloned()
                .unwrap_or_else(|| "a public address is routable".into());
            check(
                1,
                Status::Fail,
                format!("the network is not unplugged: {why}"),
                ev,
            )
        }
    }

    // ------------------------------------------------- uploads, installs

    /// Uploads `r` with the owner's auth (or the presence window).
    fn upload(
        &mut self,
        r: &Release,
        pace: Duration,
        between: &mut dyn FnMut(u64) -> bool,
    ) -> Result<Upload> {
        if !self.keyway_group || self.owner.is_none() {
            self.ctl(json!({"cmd": "presence", "seconds": 120}))
                .context("an upload needs the presence window or a paired owner")?;
        }
        self.expect_download(r);
        self.smp.upload(&r.envelope, pace, between)
    }

    fn expect_download(&mut self, r: &Release) {
        if !self.expect.contains(&Expect::Download(r.sequence)) {
            self.expect.push(Expect::Download(r.sequence));
        }
    }

    fn upload_all(&mut self, r: &Release) -> Result<Upload> {
        self.upload(r, Duration::ZERO, &mut |_| true)
    }

    /// Unlocks the bolt as the owner (the default policy installs only
    /// while it is unlocked).
    fn owner_unlock(&mut self) -> Result<Answer> {
        match (self.keyway_group, self.owner.clone()) {
            (true, Some(_)) => self.smp.owner_call(|c| c.unlock()),
            _ => {
                self.ctl(json!({"cmd": "unlock"}))?;
                Ok(Answer::Ok(Vec::new()))
            }
        }
    }

    /// Gives consent to the pending update (or, on a lock without the
    /// Keyway group, asks for a test boot with the presence window open
    /// and resets).
    fn consent(&mut self, r: &Release) -> Result<(String, bool)> {
        let _ = self.owner_unlock();
        if self.keyway_group && self.owner.is_some() {
            // The lock offers the notes before it takes consent.
            let _ = self.smp.owner_call(|c| c.notes())?;
            let a = self.smp.owner_call(|c| c.consent(true))?;
            // Taken: the lock installs now, or as soon as its policy allows.
            let taken = match &a {
                Answer::Ok(b) => matches!(
                    smp::get_text(b, "state").ok().flatten(),
                    Some("installing" | "postponed")
                ),
                Answer::Err { .. } => false,
            };
            let how = if self.smp.paired().is_some() {
                "owner, in a session"
            } else {
                "owner, signed"
            };
            return Ok((format!("consent ({how}): {}", summary(&a)), taken));
        }
        self.ctl(json!({"cmd": "presence", "seconds": 120}))?;
        let a = self
            .test_boot(r)?
            .ok_or_else(|| anyhow!("no answer to the test boot"))?;
        let _ = self.smp.owner_call(|c| c.reset().map(|()| Vec::new()));
        Ok((
            format!(
                "test boot with the presence window open, reset: {}",
                a.describe()
            ),
            !a.is_err(),
        ))
    }

    /// Asks for a test boot of `r` (image state write): with the presence
    /// window open, a person's consent at the lock.
    fn test_boot(&mut self, r: &Release) -> Result<Option<Answer>> {
        self.smp.try_request(
            Op::Write,
            group::IMAGE,
            0,
            vec![
                (text("hash"), Value::Bytes(r.hash().to_vec())),
                (text("confirm"), Value::Bool(false)),
            ],
        )
    }

    /// Polls the slots until a confirmed image runs (and it is `want`, if
    /// given) or `within` passes; returns the running slot last seen.
    fn settle(&mut self, want: Option<&Release>, within: Duration) -> Result<Option<SlotState>> {
        let end = Instant::now() + within;
        let mut last = None;
        let mut recovery_since: Option<Instant> = None;
        loop {
            let _ = self.smp.wait_up(Duration::from_secs(3));
            if let Ok(imgs) = self.smp.images() {
                let run = imgs.into_iter().find(|s| s.active);
                let done = run.as_ref().is_some_and(|s| {
                    s.confirmed && want.is_none_or(|w| s.hash.as_slice() == w.hash().as_slice())
                });
                // A lock that answers and runs nothing has booted into
                // recovery; it stays there (half a second to be sure).
                let since = if run.is_none() {
                    *recovery_since.get_or_insert_with(Instant::now)
                } else {
                    recovery_since = None;
                    Instant::now()
                };
                last = run;
                if done || (want.is_none() && since.elapsed() > Duration::from_millis(500)) {
                    return Ok(last);
                }
            }
            if Instant::now() > end {
                return Ok(last);
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// Consent, then wait until `r` runs confirmed. Returns whether it
    /// does, with evidence.
    fn install(&mut self, r: &Release, ev: &mut Vec<String>) -> Result<bool> {
        let (c, accepted) = self.consent(r)?;
        ev.push(c);
        // A refused consent installs nothing: look once, briefly.
        let wait = if accepted {
            self.settle_time()
        } else {
            Duration::from_millis(300)
        };
        let run = self.settle(Some(r), wait)?;
        let ok = run
            .as_ref()
            .is_some_and(|s| s.confirmed && s.hash.as_slice() == r.hash().as_slice());
        ev.push(format!(
            "then the lock runs {}",
            describe_slot(run.as_ref())
        ));
        if ok {
            self.expect.push(Expect::Confirmed(r.sequence));
            self.current = Some(r.clone());
        }
        Ok(ok)
    }

    /// Brings the lock to run `r`, uploading it again only if no slot
    /// holds it (a retried or resumed update).
    fn complete(&mut self, r: &Release, ev: &mut Vec<String>) -> Result<bool> {
        let imgs = self.smp.images()?;
        if imgs
            .iter()
            .any(|s| s.active && s.confirmed && s.hash.as_slice() == r.hash().as_slice())
        {
            ev.push("the update had completed".into());
            // The cut may have struck the confirm's own write after its
            // bytes were in (the write "failed", the record stands): the
            // lock then never logs the confirm, but its next boot logs
            // the version it runs.
            self.expect.push(Expect::Ran(
                r.sequence,
                keyway_vendor::log::audit_version(&r.version),
            ));
            self.current = Some(r.clone());
            return Ok(true);
        }
        let staged = imgs
            .iter()
            .any(|s| !s.active && s.bootable && s.hash.as_slice() == r.hash().as_slice());
        if !staged {
            let u = self.upload_all(r)?;
            ev.push(format!(
                "retried the upload: {}",
                u.describe(r.envelope.len())
            ));
            if !matches!(u, Upload::Done { .. }) {
                return Ok(false);
            }
        } else {
            ev.push("the image was still staged".into());
        }
        // A lock in recovery arms an upload at once: a reset boots it.
        if self.smp.running()?.is_none() {
            if staged {
                let u = self.upload_all(r)?;
                ev.push(format!(
                    "uploaded again in recovery: {}",
                    u.describe(r.envelope.len())
                ));
            }
            // The agent rate-limits an owner's resets (none in the first
            // minute after a boot, as after this cut); a press of the
            // button pays for one at once, where the lock has one.
            let _ = self.ctl(json!({"cmd": "presence", "seconds": 60}));
            let _ = self.smp.owner_call(|c| c.reset().map(|()| Vec::new()));
            let _ = self.ctl(json!({"cmd": "presence-close"}));
            let run = self.settle(Some(r), self.settle_time())?;
            ev.push(format!(
                "reset from recovery: the lock runs {}",
                describe_slot(run.as_ref())
            ));
            let ok = run.is_some_and(|s| s.confirmed && s.hash.as_slice() == r.hash().as_slice());
            if ok {
                self.expect.push(Expect::Confirmed(r.sequence));
                self.current = Some(r.clone());
            }
            return Ok(ok);
        }
        self.install(r, ev)
    }

    fn next_release(&mut self, marker: Option<&[u8]>) -> Result<Option<Release>> {
        self.source.genuine(marker)
    }

    // ------------------------------------------------------- 2, 11, 12

    fn first_update(&mut self) -> Result<(Check, Check, Check)> {
        let Some(r) = self.next_release(None)? else {
            let s = |n, ev| {
                check(
                    n,
                    Status::Skip,
                    "no release to upload: give --vendor-key or --update",
                    ev,
                )
            };
            let ev2 = std::mem::take(&mut self.baseline);
            return Ok((s(2, ev2), s(11, vec![]), s(12, vec![])));
        };
        self.last_genuine = Some(r.clone());
        self.say(&format!("check 2/11/12: {}", r.label));
        let before = self.smp.running()?;
        let _ = self.ctl(json!({"cmd": "presence-close"}));
        let mut ev2 = std::mem::take(&mut self.baseline);
        ev2.push(format!(
            "running before: {}",
            describe_slot(before.as_ref())
        ));
        let u = self.upload_all(&r)?;
        ev2.push(format!(
            "uploaded {}: {}",
            r.label,
            u.describe(r.envelope.len())
        ));
        self.genuine_accepted = matches!(u, Upload::Done { .. });
        if !self.genuine_accepted {
            let c2 = check(
                2,
                Status::Fail,
                format!(
                    "the genuine update was not accepted: {}",
                    u.describe(r.envelope.len())
                ),
                ev2,
            );
            let s = |n| {
                check(
                    n,
                    Status::Skip,
                    "blocked: the genuine upload was refused",
                    vec![],
                )
            };
            return Ok((c2, s(11), s(12)));
        }
        // 11: nothing installs without consent, not even across a reset.
        let mut ev11 = vec![format!(
            "uploaded {} without the presence window and without consent",
            r.label
        )];
        // Watched for a while, not looked at once: a lock that installs
        // on a timer a moment later is forcing the update just the same.
        let watch = self.consent_watch();
        let (mid, changed) = self.watch_running(before.as_ref(), watch)?;
        ev11.push(format!(
            "watched {} ms: {}the lock runs {}",
            watch.as_millis(),
            if changed { "it CHANGED: " } else { "" },
            describe_slot(mid.as_ref())
        ));
        let (pending, state) = self.pending_state();
        ev11.push(format!("pending update: {pending}"));
        // Decided on the typed state, never on the words shown.
        let installing = state == Some(keyway_smp::kw::UpdateState::Installing);
        let a = self.smp.owner_call(|c| c.reset().map(|()| Vec::new()))?;
        // A lock that declines the reset (an agent limits resets right
        // after its boot) is power-cycled instead, where it has a control
        // socket: either way it boots with the update unconsented.
        let how = if a.is_err() && self.control.is_some() {
            ev11.push(format!(
                "the SMP reset was refused ({}): power-cycled the lock instead",
                a.describe()
            ));
            self.power_cycle()?;
            "a power cycle"
        } else if a.is_err() {
            ev11.push(format!("the SMP reset was refused ({})", a.describe()));
            "a refused SMP reset"
        } else {
            "an SMP reset"
        };
        let _ = self.settle(None, self.settle_time())?;
        let (after_reset, changed_after) = self.watch_running(before.as_ref(), watch)?;
        ev11.push(format!(
            "after {how}, watched {} ms: the lock runs {}",
            watch.as_millis(),
            describe_slot(after_reset.as_ref())
        ));
        let forced = changed || changed_after || installing;
        // 12: the notes and CVEs, read before consent.
        let c12 = self.notes_before_consent(&r);
        let c11 = if forced {
            check(
                11,
                Status::Fail,
                "the lock installed the update without consent",
                ev11,
            )
        } else {
            check(
                11,
                Status::Pass,
                "nothing installed without consent, not even across a reset",
                ev11,
            )
        };
        // 2: consent, install.
        let ok = self.install(&r, &mut ev2)?;
        let c2 = if ok {
            check(
                2,
                Status::Pass,
                format!(
                    "{} installed and confirmed over the local channel{}",
                    r.version,
                    self.offline()
                ),
                ev2,
            )
        } else {
            check(
                2,
                Status::Fail,
                format!("{} was not installed after consent", r.version),
                ev2,
            )
        };
        Ok((c2, c11, c12))
    }

    /// How long check 11 watches a lock that holds an update without
    /// consent (before and after a reset).
    fn consent_watch(&self) -> Duration {
        match self.o.target {
            Target::Udp(a) if self.o.in_process || a.ip().is_loopback() => {
                Duration::from_millis(1000)
            }
            Target::Udp(_) => Duration::from_secs(5),
        }
    }

    /// Polls the running image for `within`; returns the last seen and
    /// whether it ever differed from `before` (by hash; recovery counts).
    fn watch_running(
        &mut self,
        before: Option<&SlotState>,
        within: Duration,
    ) -> Result<(Option<SlotState>, bool)> {
        let end = Instant::now() + within;
        let mut last = before.cloned();
        loop {
            // An unanswered poll (the lock resetting) is looked at again.
            if let Ok(run) = self.smp.running() {
                let same = match (&run, before) {
                    (Some(a), Some(b)) => a.hash == b.hash,
                    (None, None) => true,
                    _ => false,
                };
                if !same {
                    return Ok((run, true));
                }
                last = run;
            }
            if Instant::now() >= end {
                return Ok((last, false));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The pending update as the evidence shows it, and its typed state
    /// (`None`: nothing pending, or no status to read).
    fn pending_state(&mut self) -> (String, Option<keyway_smp::kw::UpdateState>) {
        if !self.keyway_group {
            return ("(no Keyway status on this lock)".into(), None);
        }
        match self.smp.status() {
            Ok(b) => match smp::get(&b, "update") {
                Some(Value::Map(u)) => {
                    let t = |k: &str| smp::get_text(u, k).ok().flatten().unwrap_or("").to_owned();
                    let seq = smp::get_u64(u, "sequence").ok().flatten().unwrap_or(0);
                    let state = keyway_smp::kw::UpdateState::parse(&t("state"));
                    let shown = format!("sequence {seq} {}{}", t("state"), {
                        let r = t("reason");
                        if r.is_empty() {
                            String::new()
                        } else {
                            format!(" ({r})")
                        }
                    });
                    (shown, state)
                }
                _ => ("none".into(), None),
            },
            Err(e) => (format!("status failed: {e:#}"), None),
        }
    }

    fn notes_before_consent(&mut self, r: &Release) -> Check {
        let mut ev = Vec::new();
        let a = match self.smp.owner_call(|c| c.notes()) {
            Ok(a) => a,
            Err(e) => return errored(12, &e),
        };
        let b = match a {
            Answer::Ok(b) => b,
            e => {
                ev.push(format!("notes request answered {}", e.describe()));
                return check(
                    12,
                    Status::Fail,
                    "the pending update's notes cannot be read before consent",
                    ev,
                );
            }
        };
        let notes = smp::get_text(&b, "notes")
            .ok()
            .flatten()
            .unwrap_or("")
            .to_owned();
        let seq = smp::get_u64(&b, "sequence").ok().flatten();
        let mut ids = Vec::new();
        if let Some(Value::Array(cves)) = smp::get(&b, "cves") {
            for c in cves {
                if let Value::Map(m) = c
                    && let Ok(Some(id)) = smp::get_text(m, "id")
                {
                    let sev = smp::get_text(m, "severity").ok().flatten().unwrap_or("?");
                    ids.push(format!("{id} ({sev})"));
                }
            }
        }
        ev.push(format!(
            "notes of sequence {}: {} bytes, CVEs: {}",
            seq.map_or_else(|| "?".into(), |s| s.to_string()),
            notes.len(),
            if ids.is_empty() {
                "none".into()
            } else {
                ids.join(", ")
            }
        ));
        if let Some(first) = notes.lines().find(|l| !l.trim().is_empty()) {
            ev.push(format!("notes begin: {first}"));
        }
        let want_notes = r.notes.as_deref().unwrap_or("");
        let all_cves = r
            .cves
            .iter()
            .all(|c| ids.iter().any(|i| i.starts_with(c.as_str())));
        if r.cves.is_empty() {
            ev.push(format!(
                "signed: sequence {}, {} bytes of notes, no CVE ids",
                r.sequence,
                want_notes.len()
            ));
            check(
                12,
                Status::Skip,
                "the release uploaded lists no CVE ids, so their display cannot be checked: give --update files whose notes list CVEs (or --vendor-key)",
                ev,
            )
        } else if seq == Some(r.sequence) && notes == want_notes && all_cves {
            check(
                12,
                Status::Pass,
                format!("notes and {} read before consent", r.cves.join(", ")),
                ev,
            )
        } else {
            ev.push(format!(
                "signed: sequence {}, {} bytes of notes, CVEs {}",
                r.sequence,
                want_notes.len(),
                r.cves.join(", ")
            ));
            check(
                12,
                Status::Fail,
                "the notes the lock shows are not the signed release's",
                ev,
            )
        }
    }

    // ---------------------------------------------------------------- 3

    fn attacks(&mut self) -> Result<Check> {
        self.say("check 3: attacks");
        if !self.genuine_accepted {
            // A lock that refuses every upload refuses the attacks too:
            // that proves nothing about its anchors.
            return Ok(check(
                3,
                Status::Skip,
                "blocked: the lock took no genuine upload (check 2), so refusing the doctored ones proves nothing",
                vec![],
            ));
        }
        // The floor the lock holds: the last release it confirmed, else
        // what it started with.
        let floor = self.current.as_ref().map(|c| c.sequence).or(self.floor);
        let next = floor.unwrap_or(0) + 1000;
        // Tamper with a genuine release the lock would otherwise take
        // (a fresh one when the audit can sign), so only the image can be
        // what is refused.
        let base = if self.source.can_sign() {
            self.next_release(None)?
        } else {
            self.last_genuine.clone()
        };
        let tampered = base.as_ref().map(releases::tampered).transpose()?;
        let rolled_back = match floor {
            Some(f) => self.source.rolled_back(f)?,
            None => None,
        };
        let list: Vec<(&str, Option<Release>, &str)> = vec![
            (
                "tampered payload",
                tampered,
                "no genuine release to tamper with",
            ),
            (
                "unknown signer",
                self.source.unknown_signer(next)?,
                "needs the vendor domain and class",
            ),
            (
                "rolled-back version",
                rolled_back,
                "needs a fresh vendor signature (or an --update file below the floor) and the lock's floor",
            ),
            (
                "wrong model",
                self.source.wrong_model(next)?,
                "needs a fresh vendor signature",
            ),
        ];
        let mut ev = Vec::new();
        let (mut accepted, mut skipped, mut unanswered) = (Vec::new(), Vec::new(), Vec::new());
        for (name, rel, why) in list {
            let Some(rel) = rel else {
                ev.push(format!("{name}: SKIP, {why}"));
                skipped.push(name);
                continue;
            };
            let u = self.upload_all(&rel)?;
            // The refused upload must leave no download behind.
            self.expect.retain(|e| *e != Expect::Download(rel.sequence));
            ev.push(format!(
                "{name}: sent {}; {}",
                rel.label,
                u.describe(rel.envelope.len())
            ));
            match u {
                Upload::Refused { .. } => self.expect.push(Expect::Rejected(rel.sequence)),
                Upload::Done { .. } => accepted.push(name),
                // Silence is no refusal: a lock that hangs or crashes on
                // a doctored upload fails too, by name.
                Upload::NoAnswer { .. } => unanswered.push(name),
            }
        }
        let run = self.settle(None, self.settle_time())?;
        ev.push(format!(
            "afterwards the lock runs {}",
            describe_slot(run.as_ref())
        ));
        if accepted.is_empty() && !unanswered.is_empty() {
            return Ok(check(
                3,
                Status::Fail,
                format!(
                    "no answer (the lock hung or reset): {}",
                    unanswered.join(", ")
                ),
                ev,
            ));
        }
        let what = if unanswered.is_empty() {
            "accepted".to_owned()
        } else {
            format!("no answer to {}; accepted", unanswered.join(", "))
        };
        Ok(verdict(
            3,
            &accepted,
            &what,
            &skipped,
            "the attacks sent were refused",
            "all four refused by the lock's own anchors and floor".into(),
            ev,
        ))
    }

    // ---------------------------------------------------------------- 5

    fn bad_image(&mut self) -> Result<Check> {
        if !self.source.can_sign() {
            return Ok(check(
                5,
                Status::Skip,
                "needs a fresh vendor signature (an image that fails its self-test): give --vendor-key",
                vec![],
            ));
        }
        let Some(r) = self.next_release(Some(SELF_TEST_FAIL_MARKER))? else {
            return Ok(check(5, Status::Skip, "no release", vec![]));
        };
        self.say(&format!("check 5: {}", r.label));
        let before = self.smp.running()?;
        let mut ev = vec![format!("running: {}", describe_slot(before.as_ref()))];
        let u = self.upload_all(&r)?;
        ev.push(format!(
            "uploaded {} (its image carries {:?}, which fails the simulated self-test): {}",
            r.label,
            String::from_utf8_lossy(SELF_TEST_FAIL_MARKER),
            u.describe(r.envelope.len())
        ));
        if !matches!(u, Upload::Done { .. }) {
            return Ok(check(
                5,
                Status::Fail,
                "the signed image was not accepted",
                ev,
            ));
        }
        let (c, accepted) = self.consent(&r)?;
        ev.push(c);
        let previous = self.current.clone();
        let run = self.settle(previous.as_ref(), self.settle_time())?;
        ev.push(format!(
            "then the lock runs {}",
            describe_slot(run.as_ref())
        ));
        // The lock must have tried the image (a trial boot) and gone back
        // by itself (its log says so), not merely ignored it.
        let exported = self.exports.len();
        let events = self.events_since_last_export("bad image");
        let log_read = self.exports.len() > exported
            && self.exports.last().is_some_and(|(_, b)| !b.is_empty());
        let bad_version = keyway_vendor::log::audit_version(&r.version);
        let tried = events.iter().any(|e| match e {
            Event::OnTrial { .. } => true,
            Event::Boot { version, .. } => *version == bad_version,
            _ => false,
        });
        let reverted = events.iter().any(|e| matches!(e, Event::Reverted { .. }));
        ev.push(format!(
            "its log since: {} (booted the bad image or put it on trial: {tried}, reverted: {reverted})",
            events
                .iter()
                .map(|e| e.name())
                .collect::<Vec<_>>()
                .join(", ")
        ));
        // Back on the previous image is a revert only if the lock tried
        // the bad one: its log shows the trial or the boot of it (a lock
        // that ignored the consent did not revert anything). Where the log
        // cannot be read, the consent it took is all there is.
        let back = match (&run, &before) {
            (Some(a), Some(b)) => {
                a.hash == b.hash && a.confirmed && if log_read { tried } else { accepted }
            }
            _ => false,
        };
        Ok(if back {
            check(
                5,
                Status::Pass,
                "the image failed its self-test and the lock reverted by itself",
                ev,
            )
        } else if run
            .as_ref()
            .is_some_and(|s| s.hash.as_slice() == r.hash().as_slice())
        {
            check(
                5,
                Status::Fail,
                "the lock kept the image that fails its self-test",
                ev,
            )
        } else if log_read
            && !tried
            && run.as_ref().map(|s| &s.hash) == before.as_ref().map(|s| &s.hash)
        {
            check(
                5,
                Status::Fail,
                "the lock never tried the image: it ignored the consent instead of installing and reverting",
                ev,
            )
        } else {
            check(
                5,
                Status::Fail,
                "the lock did not come back to its previous working image",
                ev,
            )
        })
    }

    /// How long a lock may take to reset, boot and confirm: short in
    /// this process, longer over a real link.
    fn settle_time(&self) -> Duration {
        if self.o.in_process {
            Duration::from_millis(3000)
        } else {
            Duration::from_secs(6)
        }
    }

    // ---------------------------------------------------------------- 8

    fn after_update(&mut self) -> Result<Check> {
        self.say("check 8: after the update");
        let mut ev = Vec::new();
        let mut bad = Vec::new();
        let run = self.settle(None, self.settle_time())?;
        ev.push(format!("runs {}", describe_slot(run.as_ref())));
        let want = self.current.as_ref().map(Release::hash);
        if !run.as_ref().is_some_and(|s| {
            s.confirmed
                && s.bootable
                && Some(s.hash.as_slice()) == want.as_ref().map(|h| h.as_slice())
        }) {
            bad.push("not on the last installed release, confirmed");
        }
        match self
            .smp
            .request(Op::Write, group::OS, 0, vec![(text("d"), text("ping"))])?
        {
            Answer::Ok(_) => ev.push("SMP echo answered".into()),
            e => {
                ev.push(format!("SMP echo: {}", e.describe()));
                bad.push("echo");
            }
        }
        if self.control.is_some() {
            let _ = self.ctl(json!({"cmd": "lock"}));
            match self.ctl(json!({"cmd": "keypad", "pin": self.pin})) {
                Ok(v) if v["result"] == "unlocked" => ev.push("keypad PIN: unlocked".into()),
                Ok(v) => {
                    ev.push(format!("keypad PIN: {v}"));
                    bad.push("keypad");
                }
                Err(e) => {
                    ev.push(format!("keypad: {e:#}"));
                    bad.push("keypad");
                }
            }
            let _ = self.ctl(json!({"cmd": "lock"}));
        }
        if self.keyway_group && self.owner.is_some() {
            for (what, lock) in [("unlock", false), ("lock", true)] {
                let a = self
                    .smp
                    .owner_call(|c| if lock { c.lock() } else { c.unlock() })?;
                match a {
                    Answer::Ok(b) => ev.push(format!(
                        "owner {what} over SMP: bolt {}",
                        smp::get_text(&b, "bolt").ok().flatten().unwrap_or("?")
                    )),
                    e => {
                        ev.push(format!("owner {what} over SMP: {}", e.describe()));
                        bad.push(if lock { "owner lock" } else { "owner unlock" });
                    }
                }
            }
        }
        let iso = netns::inspect();
        ev.push(format!("still no route out: {}", iso.no_route_out()));
        Ok(if bad.is_empty() {
            check(
                8,
                Status::Pass,
                format!(
                    "updated, confirmed, and {} work{}",
                    [
                        self.control.is_some().then_some("the keypad"),
                        (self.keyway_group && self.owner.is_some()).then_some("owner commands"),
                        Some("SMP"),
                    ]
                    .into_iter()
                    .flatten()
                    .collect::<Vec<_>>()
                    .join(", "),
                    self.offline()
                ),
                ev,
            )
        } else {
            check(
                8,
                Status::Fail,
                format!("after the update: {}", bad.join(", ")),
                ev,
            )
        })
    }

    // ---------------------------------------------------------------- 9

    fn factory_reset(&mut self) -> Result<Check> {
        if self.control.is_none() {
            return Ok(check(
                9,
                Status::Skip,
                "needs the lock's button (presence and long press): the lock has no control interface",
                vec![],
            ));
        }
        if !self.keyway_group {
            return Ok(check(
                9,
                Status::Fail,
                "the lock offers no factory reset or pairing over its local interface",
                vec![],
            ));
        }
        self.say("check 9: factory reset, re-pairing, a second update");
        let mut ev = Vec::new();
        self.ctl(json!({"cmd": "presence", "seconds": 60}))?;
        let lp = self.ctl(json!({"cmd": "long-press"}));
        ev.push(format!(
            "button held 10 s (control long-press): {}",
            lp.as_ref()
                .map_or_else(|e| format!("{e:#}"), |_| "ok".into())
        ));
        let a = self.smp.owner_call(|c| c.factory_reset())?;
        ev.push(format!("SMP factory reset: {}", summary(&a)));
        if a.is_err() {
            return Ok(check(
                9,
                Status::Fail,
                "the factory reset was refused offline",
                ev,
            ));
        }
        if self.owner.is_some() {
            // Still signed by the owner paired before the reset.
            let a = self.smp.owner_call(|c| c.unlock())?;
            ev.push(format!("the old owner's unlock: {}", a.describe()));
            if !a.is_err() {
                return Ok(check(
                    9,
                    Status::Fail,
                    "the factory reset kept the old owner",
                    ev,
                ));
            }
        }
        let key =
            SigningKey::generate(Algorithm::Ed25519).map_err(|e| anyhow!("owner key: {e}"))?;
        let n = self.pair(&key)?;
        ev.push(format!(
            "re-paired a new owner {} offline: owners {n}",
            hex(&key.key_id())
        ));
        // `status` is for owners, and none is left after the reset: the
        // pairing's count tells how many the reset left.
        let owners = n.checked_sub(1);
        ev.push(format!("owners after the reset: {owners:?}"));
        self.owner = Some(key);
        self.smp.set_owner(self.owner.clone())?;
        let Some(r) = self.next_release(None)? else {
            return Ok(check(
                9,
                Status::Skip,
                "reset and re-paired; no release left for the second update",
                ev,
            ));
        };
        let u = self.upload_all(&r)?;
        ev.push(format!(
            "second update {}: {}",
            r.label,
            u.describe(r.envelope.len())
        ));
        let ok = matches!(u, Upload::Done { .. }) && self.install(&r, &mut ev)?;
        Ok(if ok && owners == Some(0) {
            check(
                9,
                Status::Pass,
                format!(
                    "factory reset, re-paired and updated again{}",
                    self.offline()
                ),
                ev,
            )
        } else if owners != Some(0) {
            check(9, Status::Fail, "the factory reset left owners paired", ev)
        } else {
            check(
                9,
                Status::Fail,
                "the second update after the reset did not install",
                ev,
            )
        })
    }
}

fn describe_slot(s: Option<&SlotState>) -> String {
    match s {
        None => "nothing (recovery: no verified image)".into(),
        Some(s) => format!(
            "{} in slot {}{}{} (hash {}…)",
            s.version,
            s.slot,
            if s.confirmed {
                ", confirmed"
            } else {
                ", NOT confirmed"
            },
            if s.bootable {
                ", verifies"
            } else {
                ", does NOT verify"
            },
            hex(s.hash.get(..6).unwrap_or(&[]))
        ),
    }
}

fn summary(a: &Answer) -> String {
    match a {
        Answer::Ok(b) => {
            let t = |k: &str| smp::get_text(b, k).ok().flatten().map(str::to_owned);
            match (t("state"), t("reason")) {
                (Some(s), Some(r)) => format!("ok, update {s} ({r})"),
                (Some(s), None) => format!("ok, update {s}"),
                _ => "ok".into(),
            }
        }
        e => e.describe(),
    }
}

/// FAIL naming what failed, else SKIP naming what could not run, else
/// PASS.
fn verdict(
    n: u8,
    failed: &[&str],
    fail: &str,
    skipped: &[&str],
    skip: &str,
    pass: String,
    ev: Vec<String>,
) -> Check {
    if !failed.is_empty() {
        check(
            n,
            Status::Fail,
            format!("{fail}: {}", failed.join(", ")),
            ev,
        )
    } else if !skipped.is_empty() {
        check(
            n,
            Status::Skip,
            format!("{skip}; not run: {}", skipped.join(", ")),
            ev,
        )
    } else {
        check(n, Status::Pass, pass, ev)
    }
}

fn errored(n: u8, e: &anyhow::Error) -> Check {
    check(
        n,
        Status::Fail,
        format!("the check could not finish: {e:#}"),
        vec![format!("{e:#}")],
    )
}

fn errored3(n: &[u8; 3], e: &anyhow::Error) -> (Check, Check, Check) {
    (errored(n[0], e), errored(n[1], e), errored(n[2], e))
}
