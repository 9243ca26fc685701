//! The twelve checks, run in an order that lets each build on the last:
//! the network first, then a genuine update (no forced install, notes
//! before consent, the install), the attacks, an update under load
//! (unlocks and tamper during it), the bad image, the power cuts, the
//! lock after it all, the factory reset, and last the audit log, which
//! must have recorded the whole run.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, anyhow};
use ciborium::Value;
use keyway::keys::{Algorithm, PublicKey, SigningKey, hex};
use keyway::smp::{self, Op, group, text};
use keyway_audit::{Body as RecBody, Event};
use serde_json::json;

use super::link::{Answer, Control, SlotState, Smp, Upload, kw};
use super::releases::{self, Release, SELF_TEST_FAIL_MARKER, Source};
use super::{CHECKS, Check, Options, Status, Target, netns};

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
    control_addr: Option<SocketAddr>,
    /// The lock answers the Keyway group (status, consent, notes, …).
    keyway_group: bool,
    owner: Option<SigningKey>,
    pin: String,
    source: Source,
    device_key: Option<PublicKey>,
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
    /// The lock's anti-rollback floor when the run started, if known.
    floor: Option<u64>,
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
    // A lock the audit runs itself lives as long as this.
    let mut launched = None;
    let (addr, control_addr, identity, pin, floor, device_key) = match &o.target {
        Target::Udp(a) => {
            let key = None;
            let ident = o.vendor_domain.clone().zip(o.class.clone());
            (*a, o.control, ident, o.pin.clone(), None, key)
        }
        Target::Launch { state, profile } => {
            let l = launch(state, profile.as_deref())?;
            let r = (
                l.running.smp,
                l.running.control,
                Some((l.domain.clone(), l.class.clone())),
                Some(o.pin.clone().unwrap_or_else(|| l.pin.clone())),
                Some(l.floor),
                Some(l.device_key.clone()),
            );
            launched = Some(l);
            r
        }
    };
    let mut smp = Smp::connect(addr)?;
    smp.wait_up(Duration::from_secs(5))
        .with_context(|| format!("the lock at udp:{addr}"))?;
    let source = if let Some(k) = &o.vendor_key {
        let (domain, class) = identity
            .clone()
            .ok_or_else(|| anyhow!("--vendor-key needs the lock's --vendor-domain and --class"))?;
        let first = o.sequence.unwrap_or_else(|| match floor {
            Some(f) => f + 1,
            None => keyway_lock::state::wall_clock_secs(),
        });
        Source::vendor(k, domain, class, first, o.image_len)?
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
    let mut s = Session {
        o,
        smp,
        addr,
        control: control_addr.map(Control::new),
        control_addr,
        keyway_group: false,
        owner,
        pin: pin.unwrap_or_else(|| keyway_lock::lock::DEFAULT_PIN.to_owned()),
        source,
        device_key,
        exports: Vec::new(),
        expect: Vec::new(),
        files: Vec::new(),
        results: Vec::new(),
        current: None,
        last_genuine: None,
        unplugged: false,
        floor,
        t0: Instant::now(),
    };
    s.smp.set_owner(s.owner.clone())?;
    let lock = s.setup()?;
    s.run_all();
    let mut checks = std::mem::take(&mut s.results);
    checks.sort_by_key(|c| c.number);
    if let Some(l) = launched {
        l.running.power_off();
    }
    Ok((format!("udp:{addr}"), lock, checks, s.files))
}

/// A simulated lock the audit runs in-process.
struct Launched {
    running: keyway_lock::shell::Running,
    domain: String,
    class: String,
    pin: String,
    floor: u64,
    device_key: PublicKey,
}

fn launch(state: &std::path::Path, profile: Option<&str>) -> Result<Launched> {
    let dir = keyway_lock::state::StateDir::new(state);
    let id: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(state.join("lock.json"))
            .with_context(|| format!("{}: no provisioned lock", state.display()))?,
    )
    .context("lock.json is not JSON")?;
    let field = |k: &str| {
        id.get(k)
            .and_then(|v| v.as_str())
            .map(str::to_owned)
            .ok_or_else(|| anyhow!("lock.json: no \"{k}\""))
    };
    let (domain, class) = (field("vendor_domain")?, field("class")?);
    let floor = dir.load()?.state().floor.unwrap_or(0);
    let device_key = PublicKey::load(state.join("device.pub"))
        .with_context(|| format!("{}/device.pub", state.display()))?;
    let mut opts = keyway_lock::shell::Options::new(state, "127.0.0.1:0".parse()?);
    opts.control = Some("127.0.0.1:0".parse()?);
    if let Some(p) = profile {
        opts.profile =
            keyway_lock::profile::Profile::parse(p).map_err(|e| anyhow!("--lock-profile: {e}"))?;
    }
    let running = keyway_lock::shell::start(&opts)?;
    Ok(Launched {
        running,
        domain,
        class,
        pin: dir.pin()?,
        floor,
        device_key,
    })
}

/// Percentile of sorted samples.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
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
        match self
            .smp
            .request(Op::Read, group::KEYWAY, kw::STATUS, Vec::new())?
        {
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
        self.export("start");
        Ok(lock)
    }

    /// Opens the presence window and pairs `key`.
    fn pair(&mut self, key: &SigningKey) -> Result<u64> {
        self.ctl(json!({"cmd": "presence", "seconds": 30}))?;
        let b = self.smp.pair(key)?.ok("pair")?;
        let _ = self.ctl(json!({"cmd": "presence-close"}));
        Ok(smp::get_u64(&b, "owners").ok().flatten().unwrap_or(0))
    }

    fn run_all(&mut self) {
        let c1 = self.router_unplugged();
        self.unplugged = c1.status == Status::Pass;
        self.results.push(c1);
        if self.owner.is_none() && self.control.is_none() {
            // No way in: an upload needs the lock's button or an owner.
            for n in [2, 3, 4, 5, 6, 7, 8, 9, 11, 12] {
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
        if let Some(c) = self.control_addr {
            ev.push(format!("its control socket: tcp:{c}"));
        }
        if iso.no_route_out() {
            check(
                1,
                Status::Pass,
                "no route out: only the lock is reachable",
                ev,
            )
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
            let _ = self
                .smp
                .request(Op::Read, group::KEYWAY, kw::NOTES, Vec::new())?;
            let a = self.smp.owner_call(|c| c.consent(true))?;
            // Taken: the lock installs now, or as soon as its policy allows.
            let taken = match &a {
                Answer::Ok(b) => matches!(
                    smp::get_text(b, "state").ok().flatten(),
                    Some("installing" | "postponed")
                ),
                Answer::Err { .. } => false,
            };
            return Ok((format!("consent (owner, signed): {}", summary(&a)), taken));
        }
        self.ctl(json!({"cmd": "presence", "seconds": 120}))?;
        let a = self
            .test_boot(r)?
            .ok_or_else(|| anyhow!("no answer to the test boot"))?;
        let _ = self.smp.try_request(Op::Write, group::OS, 5, Vec::new())?;
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
                keyway_lock::device::audit_version(&r.version),
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
            let _ = self.smp.try_request(Op::Write, group::OS, 5, Vec::new())?;
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
            let s = |n| {
                check(
                    n,
                    Status::Skip,
                    "no release to upload: give --vendor-key or --update",
                    vec![],
                )
            };
            return Ok((s(2), s(11), s(12)));
        };
        self.last_genuine = Some(r.clone());
        self.say(&format!("check 2/11/12: {}", r.label));
        let before = self.smp.running()?;
        let _ = self.ctl(json!({"cmd": "presence-close"}));
        let mut ev2 = vec![format!(
            "running before: {}",
            describe_slot(before.as_ref())
        )];
        let u = self.upload_all(&r)?;
        ev2.push(format!(
            "uploaded {}: {}",
            r.label,
            u.describe(r.envelope.len())
        ));
        if !matches!(u, Upload::Done { .. }) {
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
        std::thread::sleep(Duration::from_millis(300));
        let mid = self.smp.running()?;
        ev11.push(format!(
            "300 ms later the lock runs {}",
            describe_slot(mid.as_ref())
        ));
        let pending = self.pending_state();
        ev11.push(format!("pending update: {pending}"));
        let _ = self.smp.try_request(Op::Write, group::OS, 5, Vec::new())?;
        let after_reset = self.settle(None, self.settle_time())?;
        ev11.push(format!(
            "after an SMP reset the lock runs {}",
            describe_slot(after_reset.as_ref())
        ));
        let same = |s: &Option<SlotState>| match (s, &before) {
            (Some(a), Some(b)) => a.hash == b.hash,
            (None, None) => true,
            _ => false,
        };
        let forced = !same(&mid) || !same(&after_reset);
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

    fn pending_state(&mut self) -> String {
        if !self.keyway_group {
            return "(no Keyway status on this lock)".into();
        }
        match self.smp.status() {
            Ok(b) => match smp::get(&b, "update") {
                Some(Value::Map(u)) => {
                    let t = |k: &str| smp::get_text(u, k).ok().flatten().unwrap_or("").to_owned();
                    let seq = smp::get_u64(u, "sequence").ok().flatten().unwrap_or(0);
                    format!("sequence {seq} {}{}", t("state"), {
                        let r = t("reason");
                        if r.is_empty() {
                            String::new()
                        } else {
                            format!(" ({r})")
                        }
                    })
                }
                _ => "none".into(),
            },
            Err(e) => format!("status failed: {e:#}"),
        }
    }

    fn notes_before_consent(&mut self, r: &Release) -> Check {
        let mut ev = Vec::new();
        let a = match self
            .smp
            .request(Op::Read, group::KEYWAY, kw::NOTES, Vec::new())
        {
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
        if seq == Some(r.sequence) && notes == want_notes && all_cves && !r.cves.is_empty() {
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
        let (mut accepted, mut skipped) = (Vec::new(), Vec::new());
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
                _ => accepted.push(name),
            }
        }
        let run = self.settle(None, self.settle_time())?;
        ev.push(format!(
            "afterwards the lock runs {}",
            describe_slot(run.as_ref())
        ));
        Ok(verdict(
            3,
            &accepted,
            "accepted",
            &skipped,
            "the attacks sent were refused",
            "all four refused by the lock's own anchors and floor".into(),
            ev,
        ))
    }

    // ------------------------------------------------------------- 6, 7

    fn under_load(&mut self) -> Result<(Check, Check)> {
        let (Some(ctl), Some(r)) = (self.control_addr, self.next_release(None)?) else {
            let why = if self.control_addr.is_none() {
                "the lock has no control interface: its keypad and sensors cannot be driven"
            } else {
                "no release left to upload"
            };
            return Ok((
                check(6, Status::Skip, why, vec![]),
                check(7, Status::Skip, why, vec![]),
            ));
        };
        self.say(&format!("checks 6 and 7: {} under load", r.label));
        // 1 upload, 2 install, 0 stop.
        let phase = Arc::new(AtomicU8::new(1));
        let samples: Arc<Mutex<Vec<Sample>>> = Arc::default();
        let owner = if self.keyway_group {
            self.owner.clone()
        } else {
            None
        };
        let sampler = {
            let (phase, samples, pin, addr) = (
                Arc::clone(&phase),
                Arc::clone(&samples),
                self.pin.clone(),
                self.addr,
            );
            std::thread::spawn(move || {
                sample_unlocks(addr, ctl, &pin, owner.as_ref(), &phase, &samples)
            })
        };
        // Tamper half way through the upload.
        let mut ev7 = Vec::new();
        let half = r.envelope.len() as u64 / 2;
        let mut tamper_ev = Vec::new();
        let mut tamper_seen = false;
        let u = {
            let mut control = Control::new(ctl);
            let mut flag = false;
            let mut f = |off: u64| {
                if !flag && off >= half {
                    flag = true;
                    let on = control.cmd(&json!({"cmd": "tamper", "state": "on"}));
                    match on {
                        Ok(v) => {
                            tamper_seen = v["lock"]["tamper"] == json!(true);
                            tamper_ev.push(format!("at byte {off} of the upload: tamper sensor on; the lock answered tamper {}", v["lock"]["tamper"]));
                        }
                        Err(e) => tamper_ev.push(format!("tamper on failed: {e:#}")),
                    }
                }
                // On a busy machine the sampler may start late: the upload
                // waits (at most a second) until it has unlocked a few
                // times, so the figures are taken during the upload.
                if off >= half {
                    for _ in 0..50 {
                        let n = samples
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .iter()
                            .filter(|x| x.phase == 1)
                            .count();
                        if n >= 4 {
                            break;
                        }
                        std::thread::sleep(Duration::from_millis(20));
                    }
                }
                true
            };
            self.upload(&r, Duration::from_millis(15), &mut f)?
        };
        ev7.extend(tamper_ev);
        let status_tamper = if self.keyway_group {
            self.smp
                .status()
                .ok()
                .and_then(|b| smp::get_bool(&b, "tamper").ok().flatten())
        } else {
            None
        };
        if let Some(t) = status_tamper {
            ev7.push(format!("SMP status during the update: tamper {t}"));
        }
        let _ = self.ctl(json!({"cmd": "tamper", "state": "off"}));
        ev7.push(format!("upload: {}", u.describe(r.envelope.len())));
        let mut ev6 = vec![format!(
            "uploaded {} at one chunk every 15 ms: {}",
            r.label,
            u.describe(r.envelope.len())
        )];
        phase.store(2, Ordering::SeqCst);
        let installed = matches!(u, Upload::Done { .. }) && self.install(&r, &mut ev6)?;
        // A few more samples after the install settled.
        std::thread::sleep(Duration::from_millis(100));
        phase.store(0, Ordering::SeqCst);
        let _ = sampler.join();
        let samples = std::mem::take(&mut *samples.lock().unwrap_or_else(PoisonError::into_inner));
        if tamper_seen {
            self.expect.push(Expect::Tamper);
        }
        let c7 = if tamper_seen && status_tamper != Some(false) {
            check(
                7,
                Status::Pass,
                "tamper detected and reported during the update",
                ev7,
            )
        } else {
            check(
                7,
                Status::Fail,
                "tamper was not detected during the update",
                ev7,
            )
        };
        let mut c6 = latency_check(&samples, ev6);
        if !installed {
            c6.evidence
                .push("(the update itself did not install; see check 2)".into());
        }
        Ok((c6, c7))
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
        let events = self.events_since_last_export("bad image");
        let tried = events.iter().any(|e| matches!(e, Event::OnTrial { .. }));
        let reverted = events.iter().any(|e| matches!(e, Event::Reverted { .. }));
        ev.push(format!(
            "its log since: {} (on trial: {tried}, reverted: {reverted})",
            events
                .iter()
                .map(|e| e.name())
                .collect::<Vec<_>>()
                .join(", ")
        ));
        // It tried the image: it took the consent to install it (its log,
        // if complete, shows the trial and the revert too).
        let back = match (&run, &before) {
            (Some(a), Some(b)) => a.hash == b.hash && a.confirmed && (accepted || tried),
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
        } else {
            check(
                5,
                Status::Fail,
                "the lock did not come back to its previous working image",
                ev,
            )
        })
    }

    // ---------------------------------------------------------------- 4

    fn interruption(&mut self) -> Result<Check> {
        let mut ev = Vec::new();
        let mut failures = Vec::new();
        let mut scenarios = 0u32;
        let mut skipped = Vec::new();
        // (a) mid-upload
        if self.control.is_some() {
            match self.cut_mid_upload(&mut ev)? {
                Some(true) => scenarios += 1,
                Some(false) => {
                    scenarios += 1;
                    failures.push("mid-upload");
                }
                None => skipped.push("mid-upload (no release)"),
            }
            self.export("cut mid-upload");
            let (n, bad) = self.cut_sweep(false, &mut ev)?;
            scenarios += n;
            if bad {
                failures.push("mid-install");
            }
            let (n, bad) = self.cut_sweep(true, &mut ev)?;
            scenarios += n;
            if bad {
                failures.push("trial boot");
            }
        } else {
            skipped.push("mid-upload and mid-install (no control interface to cut the power)");
            match self.reset_in_trial(&mut ev)? {
                Some(ok) => {
                    scenarios += 1;
                    if !ok {
                        failures.push("trial boot (SMP reset)");
                    }
                }
                None => skipped.push("trial boot (no release)"),
            }
        }
        ev.insert(0, format!("{scenarios} power-cut scenarios run"));
        Ok(verdict(
            4,
            &failures,
            "not recovered after a power cut",
            &skipped,
            &format!("{scenarios} scenario(s) recovered"),
            format!(
                "{scenarios} power cuts: always a working, verified image, and the update completed"
            ),
            ev,
        ))
    }

    /// Whether the lock runs a confirmed, verified image.
    fn working(&mut self, ev: &mut Vec<String>, what: &str) -> Result<bool> {
        let run = self.settle(None, self.settle_time())?;
        let ok = run.as_ref().is_some_and(|s| s.confirmed && s.bootable);
        ev.push(format!(
            "{what}: the lock came back on {}",
            describe_slot(run.as_ref())
        ));
        Ok(ok)
    }

    fn cut_mid_upload(&mut self, ev: &mut Vec<String>) -> Result<Option<bool>> {
        let Some(r) = self.next_release(None)? else {
            return Ok(None);
        };
        self.say(&format!("check 4: a power cut mid-upload of {}", r.label));
        let half = r.envelope.len() as u64 / 2;
        // The lock cuts its own power at the next flash operation once
        // the upload passes byte `half`.
        self.ctl(json!({"cmd": "cut-power", "mid_upload": half}))?;
        self.smp.set_window(Some(self.cut_timeout()))?;
        let u = self.upload(&r, Duration::ZERO, &mut |_| true);
        self.smp.set_window(None)?;
        let u = u?;
        ev.push(format!(
            "mid-upload: power cut planned at byte {half} of {}; {}",
            r.label,
            u.describe(r.envelope.len())
        ));
        let ok = self.working(ev, "mid-upload")?;
        self.disarm();
        let done = self.complete(&r, ev)?;
        Ok(Some(ok && done))
    }

    /// Cancels a planned cut that did not fire.
    fn disarm(&mut self) {
        let _ = self.ctl(json!({"cmd": "cut-power", "after_ops": u64::from(u32::MAX)}));
    }

    /// Cuts the power at every flash operation of an install (`trial`:
    /// only of the boot after the reset), one scenario each, until a cut
    /// no longer lands inside it. Returns (scenarios, any failed).
    fn cut_sweep(&mut self, trial: bool, ev: &mut Vec<String>) -> Result<(u32, bool)> {
        let name = if trial { "trial boot" } else { "mid-install" };
        let mut r = match self.next_release(None)? {
            Some(r) => r,
            None => return Ok((0, false)),
        };
        self.say(&format!("check 4: power cuts {name}"));
        let mut n = 0;
        let mut failed = false;
        for k in 1..=40u64 {
            // Stage r.
            let staged = self
                .smp
                .images()?
                .iter()
                .any(|s| !s.active && s.bootable && s.hash.as_slice() == r.hash().as_slice());
            if !staged {
                let u = self.upload_all(&r)?;
                if !matches!(u, Upload::Done { .. }) {
                    ev.push(format!(
                        "{name}: staging {} failed: {}",
                        r.label,
                        u.describe(r.envelope.len())
                    ));
                    return Ok((n, true));
                }
            }
            let cuts_before = self.power_cuts();
            self.smp.set_window(Some(self.cut_timeout()))?;
            let silent = if trial {
                // A person at the lock asks for a test boot of the pending
                // update: its consent, then the install and the trial boot.
                self.ctl(json!({"cmd": "presence", "seconds": 60}))?;
                let _ = self.owner_unlock();
                self.ctl(json!({"cmd": "cut-power", "after_ops": k}))?;
                matches!(self.test_boot(&r), Ok(None))
            } else {
                let _ = self.owner_unlock();
                self.ctl(json!({"cmd": "cut-power", "after_ops": k}))?;
                let a = self.consent(&r);
                a.is_err()
            };
            let fired = match (cuts_before, self.power_cuts()) {
                (Some(b), Some(a)) => a > b,
                _ => silent || self.silent_after(),
            };
            self.smp.set_window(None)?;
            if !fired {
                self.disarm();
                // The install ran to its end without reaching op k.
                let run = self.settle(Some(&r), self.settle_time())?;
                if run
                    .as_ref()
                    .is_some_and(|s| s.hash.as_slice() == r.hash().as_slice())
                {
                    self.expect.push(Expect::Confirmed(r.sequence));
                    self.current = Some(r.clone());
                }
                ev.push(format!(
                    "{name}: the install takes {} flash operations; a cut at each of them was run",
                    k - 1
                ));
                break;
            }
            n += 1;
            let mut sev = Vec::new();
            let ok = self.working(&mut sev, &format!("{name}, cut at flash operation {k}"))?;
            self.disarm();
            let done = self.complete(&r, &mut sev)?;
            if !ok || !done {
                // One unrecovered cut is the finding: stop there.
                failed = true;
                ev.extend(sev);
                break;
            } else if k <= 2 {
                ev.extend(sev);
            }
            if k % 4 == 0 {
                self.export(&format!("{name} {k}"));
            }
            // The next scenario needs a release above the new floor.
            if done {
                match self.next_release(None)? {
                    Some(x) => r = x,
                    None => break,
                }
            }
        }
        ev.push(format!(
            "{name}: {n} scenarios, {}",
            if failed {
                "some did NOT recover"
            } else {
                "each recovered and completed"
            }
        ));
        self.export(name);
        Ok((n, failed))
    }

    /// Power cuts the lock has had since it started (its control status),
    /// if it says.
    fn power_cuts(&mut self) -> Option<u64> {
        self.ctl(json!({"cmd": "status"}))
            .ok()?
            .get("power_cuts")?
            .as_u64()
    }

    /// How long a lock may take to reset, boot and confirm: short on
    /// loopback, longer over a real link.
    fn settle_time(&self) -> Duration {
        match self.o.target {
            Target::Launch { .. } => Duration::from_millis(3000),
            Target::Udp(_) => Duration::from_secs(6),
        }
    }

    /// How long to wait for a lock that may have lost power: short on
    /// loopback, longer over a real link.
    fn cut_timeout(&self) -> Duration {
        match self.o.target {
            Target::Launch { .. } => Duration::from_millis(400),
            Target::Udp(_) => Duration::from_millis(1500),
        }
    }

    /// After a request that may have cut the power: whether the lock
    /// stopped answering for a while (it lost power and came back).
    fn silent_after(&mut self) -> bool {
        let t = self.cut_timeout();
        let a = self.smp.try_request_once(
            t,
            Op::Write,
            group::OS,
            0,
            vec![(text("d"), text("after-cut"))],
        );
        !matches!(a, Ok(Some(Answer::Ok(_))))
    }

    fn reset_in_trial(&mut self, ev: &mut Vec<String>) -> Result<Option<bool>> {
        let Some(r) = self.next_release(None)? else {
            return Ok(None);
        };
        let u = self.upload_all(&r)?;
        ev.push(format!(
            "trial boot: uploaded {}: {}",
            r.label,
            u.describe(r.envelope.len())
        ));
        ev.push(self.consent(&r)?.0);
        let _ = self.smp.try_request(Op::Write, group::OS, 5, Vec::new());
        ev.push("an SMP reset sent during the trial boot".into());
        let ok = self.working(ev, "trial boot")?;
        let done = self.complete(&r, ev)?;
        Ok(Some(ok && done))
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
        let owners = self
            .smp
            .status()
            .ok()
            .and_then(|b| smp::get_u64(&b, "owners").ok().flatten());
        ev.push(format!("owners after the reset: {owners:?}"));
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
                "factory reset, re-paired and updated again, all offline",
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

    // --------------------------------------------------------------- 10

    /// Exports the audit log now (over SMP, else the control socket) and
    /// keeps it; failures are kept as evidence for check 10.
    fn export(&mut self, label: &str) {
        let r = self.export_bytes();
        let n = self.exports.len();
        let name = format!("log-{n:02}-{}.bin", label.replace(' ', "-"));
        match r {
            Ok(bytes) => {
                let path = self.o.out_dir.join(&name);
                if std::fs::write(&path, &bytes).is_ok() {
                    self.files.push(path.display().to_string());
                }
                self.exports.push((label.to_owned(), bytes));
            }
            Err(e) => self
                .exports
                .push((format!("{label}: export failed: {e:#}"), Vec::new())),
        }
    }

    /// Takes an export and returns the events recorded since the previous
    /// one.
    fn events_since_last_export(&mut self, label: &str) -> Vec<Event> {
        let last_seq = |bytes: &[u8]| {
            keyway::log::parse(bytes)
                .into_iter()
                .filter_map(|i| match i.what {
                    keyway::log::ItemKind::Record { record, .. } => Some(record.seq),
                    keyway::log::ItemKind::Unreadable { .. } => None,
                })
                .max()
        };
        let before = self.exports.last().and_then(|(_, b)| last_seq(b));
        self.export(label);
        let Some((_, bytes)) = self.exports.last() else {
            return Vec::new();
        };
        keyway::log::parse(bytes)
            .into_iter()
            .filter_map(|i| match i.what {
                keyway::log::ItemKind::Record { record, .. }
                    if before.is_none_or(|b| record.seq > b) =>
                {
                    match record.body {
                        RecBody::Event(e) => Some(e),
                        _ => None,
                    }
                }
                _ => None,
            })
            .collect()
    }

    fn export_bytes(&mut self) -> Result<Vec<u8>> {
        if self.keyway_group {
            return self.smp.log_export();
        }
        let tmp: PathBuf = self.o.out_dir.join("log-export.tmp");
        self.ctl(json!({"cmd": "log-export", "path": tmp.display().to_string()}))?;
        let b = std::fs::read(&tmp).context("reading the control socket's export")?;
        let _ = std::fs::remove_file(&tmp);
        Ok(b)
    }

    fn audit_log(&mut self) -> Check {
        let mut ev = Vec::new();
        let Some(key) = self.device_key.clone() else {
            return check(
                10,
                Status::Skip,
                "the lock's device key is unknown (no status device_key)",
                ev,
            );
        };
        let mut broken = Vec::new();
        let mut events: Vec<Event> = Vec::new();
        let mut prev_last: Option<u32> = None;
        let mut gaps = Vec::new();
        for (label, bytes) in &self.exports {
            if bytes.is_empty() {
                broken.push(label.clone());
                continue;
            }
            let rep = keyway::log::verify(bytes, &key);
            ev.push(format!("export after {label}: {}", rep.summary(&key)));
            if !rep.intact() {
                for f in rep.findings.iter().take(3) {
                    ev.push(format!("  {}", f.message));
                }
                broken.push(label.clone());
            }
            if let (Some(p), Some((first, _))) = (prev_last, rep.range)
                && first > p + 1
            {
                gaps.push(format!(
                    "records {}..{} rotated out before the export after {label}",
                    p + 1,
                    first - 1
                ));
            }
            if let Some((_, last)) = rep.range {
                prev_last = Some(last);
            }
            for item in keyway::log::parse(bytes) {
                if let keyway::log::ItemKind::Record { record, .. } = item.what
                    && let RecBody::Event(e) = record.body
                    && !events.contains(&e)
                {
                    events.push(e);
                }
            }
        }
        if let Some(f) = self.files.iter().rev().find(|f| f.contains("log-")) {
            ev.push(format!(
                "check by hand: keyway log verify {f} --device-key DEVICE.pub (key id {})",
                hex(&key.key_id())
            ));
        }
        let missing: Vec<String> = self
            .expect
            .iter()
            .filter(|x| !events.iter().any(|e| x.matches(e)))
            .map(|x| x.describe())
            .collect();
        ev.push(format!(
            "{} update steps expected in the log, {} missing",
            self.expect.len(),
            missing.len()
        ));
        for m in missing.iter().take(6) {
            ev.push(format!("missing: {m}"));
        }
        if !broken.is_empty() {
            check(
                10,
                Status::Fail,
                format!("the log does not verify: {}", broken.join(", ")),
                ev,
            )
        } else if !gaps.is_empty() {
            ev.extend(gaps.clone());
            check(
                10,
                Status::Fail,
                format!("the exports do not cover the run: {}", gaps[0]),
                ev,
            )
        } else if !missing.is_empty() {
            check(
                10,
                Status::Fail,
                format!(
                    "{} update steps of the run are not in the log (first: {})",
                    missing.len(),
                    missing[0]
                ),
                ev,
            )
        } else {
            check(
                10,
                Status::Pass,
                format!(
                    "{} exports verify, chain unbroken, every update step logged",
                    self.exports.len()
                ),
                ev,
            )
        }
    }
}

/// One unlock and how long it took.
#[derive(Debug, Clone)]
struct Sample {
    /// `keypad` or `owner`.
    kind: &'static str,
    /// 1 upload, 2 install.
    phase: u8,
    ms: f64,
    ok: bool,
}

/// Unlocks sampled in each phase (upload, install).
const PER_PHASE: usize = 12;

/// Alternates keypad and owner unlocks (each followed by a lock) while
/// `phase` is not 0.
fn sample_unlocks(
    addr: SocketAddr,
    ctl: SocketAddr,
    pin: &str,
    owner: Option<&SigningKey>,
    phase: &AtomicU8,
    out: &Mutex<Vec<Sample>>,
) {
    let mut control = Control::new(ctl);
    let Ok(mut smp) = Smp::connect(addr) else {
        return;
    };
    if smp.set_owner(owner.cloned()).is_err() {
        return;
    }
    let mut i = 0u32;
    loop {
        let p = phase.load(Ordering::SeqCst);
        if p == 0 {
            return;
        }
        // At most PER_PHASE unlocks in each phase: each unlock and lock is
        // an audit record, and the log's ring must not rotate the update's
        // records out before the next export.
        let taken = out
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .filter(|x| x.phase == p)
            .count();
        if taken >= PER_PHASE {
            std::thread::sleep(Duration::from_millis(5));
            continue;
        }
        i += 1;
        let (kind, t0) = if i % 2 == 1 || owner.is_none() {
            ("keypad", Instant::now())
        } else {
            ("owner", Instant::now())
        };
        let ok = if kind == "keypad" {
            control
                .cmd(&json!({"cmd": "keypad", "pin": pin}))
                .is_ok_and(|v| v["result"] == "unlocked")
        } else {
            // The nonce is part of the unlock's round trip.
            owner.is_some()
                && smp.owner_call(|c| c.unlock()).is_ok_and(|a| {
                    matches!(a, Answer::Ok(b) if smp::get_text(&b, "bolt").ok().flatten() == Some("unlocked"))
                })
        };
        let dt = ms(t0.elapsed());
        out.lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Sample {
                kind,
                phase: p,
                ms: dt,
                ok,
            });
        let _ = control.cmd(&json!({"cmd": "lock"}));
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn latency_check(samples: &[Sample], mut ev: Vec<String>) -> Check {
    let mut figures = Vec::new();
    let mut failed = 0;
    for kind in ["keypad", "owner"] {
        for (phase, pname) in [(1u8, "upload"), (2, "install")] {
            let s: Vec<&Sample> = samples
                .iter()
                .filter(|x| x.kind == kind && x.phase == phase)
                .collect();
            if s.is_empty() {
                continue;
            }
            let bad = s.iter().filter(|x| !x.ok).count();
            failed += bad;
            let mut v: Vec<f64> = s.iter().map(|x| x.ms).collect();
            v.sort_by(f64::total_cmp);
            let (p50, p99, max) = (percentile(&v, 50.0), percentile(&v, 99.0), v[v.len() - 1]);
            ev.push(format!(
                "{kind} unlocks during {pname}: {} of {} worked; p50 {p50:.1} ms, p99 {p99:.1} ms, max {max:.1} ms",
                s.len() - bad,
                s.len()
            ));
            figures.push((format!("{kind}_{pname}_p50_ms"), p50));
            figures.push((format!("{kind}_{pname}_p99_ms"), p99));
            figures.push((format!("{kind}_{pname}_max_ms"), max));
            figures.push((format!("{kind}_{pname}_n"), s.len() as f64));
        }
    }
    let during_upload = samples.iter().filter(|x| x.phase == 1).count();
    let mut c = if samples.is_empty() || during_upload == 0 {
        check(
            6,
            Status::Fail,
            "no unlock could be made during the upload",
            ev,
        )
    } else if failed > 0 {
        check(
            6,
            Status::Fail,
            format!(
                "{failed} of {} unlocks failed during the update",
                samples.len()
            ),
            ev,
        )
    } else {
        check(
            6,
            Status::Pass,
            format!(
                "all {} keypad and owner unlocks worked during upload and install",
                samples.len()
            ),
            ev,
        )
    };
    c.figures = figures;
    c
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
