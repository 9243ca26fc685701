//! The twelve checks, run in an order that lets each build on the last:
//! the network first, then a genuine update (no forced install, notes
//! before consent, the install), the attacks, an update under load
//! (unlocks and tamper during it), the bad image, the power cuts, the
//! lock after it all, the factory reset, and last the audit log, which
//! must have recorded the whole run. A lock that starts in recovery gets a
//! baseline release first, and the report says so
//! (`Session::install_baseline`).
//!
//! One module a check (or a group of checks that share one run): 1 in
//! `network`, 2, 11 and 12 in `first_update`, 3 in `attacks`, 4 in
//! `power`, 5 in `bad_image`, 6 and 7 in `load`, 8 in `after_update`, 9 in
//! `factory_reset`, 10 in `log`, 13 to 19 in `channel`. The upload and
//! install steps they share are in `install`; the session, its setup and
//! the order of the run are here.

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

use super::link::{Answer, Control, ControlAddr, SlotState, Smp, UploadOutcome};
use super::releases::{self, Release, SELF_TEST_FAIL_MARKER, Source};
use super::{CHECKS, Check, Options, Status, Target, netns};

mod after_update;
mod attacks;
mod bad_image;
mod channel;
mod factory_reset;
mod first_update;
mod install;
mod load;
mod log;
mod network;
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
    /// The lock's target string (`udp:H:P`, `serial:PATH`).
    addr: String,
    /// The lock is on a serial line: one peer, no IP network.
    serial: bool,
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

/// Check `number` FAILed: `summary` says what failed.
fn fail(number: u8, summary: impl Into<String>, evidence: Vec<String>) -> Check {
    check(number, Status::Fail, summary, evidence)
}

/// Check `number` was SKIPped: `summary` says what could not run.
fn skip(number: u8, summary: impl Into<String>, evidence: Vec<String>) -> Check {
    check(number, Status::Skip, summary, evidence)
}

/// Check `number` is NOT APPLICABLE on this transport: `why` says what
/// the check's subject is and why the line the lock is on has none.
fn not_applicable(number: u8, why: impl Into<String>) -> Check {
    check(number, Status::NotApplicable, why, vec![])
}

/// Check `number` PASSed.
fn pass(number: u8, summary: impl Into<String>, evidence: Vec<String>) -> Check {
    check(number, Status::Pass, summary, evidence)
}

/// Runs the audit; returns (target, lock, checks, files).
pub(super) fn run(o: &Options) -> Result<(String, String, Vec<Check>, Vec<String>)> {
    let addr = o.target.spec();
    let control_addr = o.control.clone();
    let identity = o.vendor_domain.clone().zip(o.class.clone());
    let floor = o.floor;
    let device_key = match &o.device_key {
        Some(p) => {
            Some(PublicKey::load(p).with_context(|| format!("--device-key {}", p.display()))?)
        }
        None => None,
    };
    let mut smp = Smp::connect(&addr)?;
    smp.wait_up(Duration::from_secs(5))
        .with_context(|| format!("the lock at {addr}"))?;
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
        .with_image_file(o.image.as_deref())?
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
                .find(&addr)
                .or_else(|| addr.strip_prefix("udp:").and_then(|a| locks.find(a)));
            smp.set_paired(record.map(|r| r.device_key))?;
        }
    }
    let mut s = Session {
        o,
        smp,
        addr: addr.clone(),
        serial: o.target.is_serial(),
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
    Ok((addr, lock, checks, s.files))
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
        if self.serial {
            ", over a serial line (no network)"
        } else if self.unplugged {
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
                let text = |k: &str| {
                    smp::get_text(&b, k)
                        .ok()
                        .flatten()
                        .unwrap_or("?")
                        .to_owned()
                };
                lock = format!("model {}, version {}", text("model"), text("version"));
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
                self.results.push(skip(n, "the audit cannot upload: the lock has no control interface (its button) and no paired owner was given (--owner-key)",
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
            .unwrap_or_else(|e| (errored(2, &e), errored(11, &e), errored(12, &e)));
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
            skip(
                n,
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
}

/// The slot runs release `r`, confirmed.
fn runs_confirmed(s: &SlotState, r: &Release) -> bool {
    s.confirmed && s.hash.as_slice() == r.hash().as_slice()
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
            let text = |k: &str| smp::get_text(b, k).ok().flatten().map(str::to_owned);
            match (text("state"), text("reason")) {
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
    fail_summary: &str,
    skipped: &[&str],
    skip_summary: &str,
    pass_summary: String,
    ev: Vec<String>,
) -> Check {
    if !failed.is_empty() {
        fail(n, format!("{fail_summary}: {}", failed.join(", ")), ev)
    } else if !skipped.is_empty() {
        skip(
            n,
            format!("{skip_summary}; not run: {}", skipped.join(", ")),
            ev,
        )
    } else {
        pass(n, pass_summary, ev)
    }
}

fn errored(n: u8, e: &anyhow::Error) -> Check {
    fail(
        n,
        format!("the check could not finish: {e:#}"),
        vec![format!("{e:#}")],
    )
}
