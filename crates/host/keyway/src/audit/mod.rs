//! `keyway audit`: the "test with the router unplugged" conformance run
//! against any lock's local interface, and its scorecard (issue 6).
//!
//! [`run`] drives a lock over SMP (and its control socket, when it has
//! one) through the nineteen checks of [`CHECKS`] and returns a [`Report`]:
//! each check PASS, FAIL or SKIP with its evidence (what was sent, what the
//! lock answered, the figures). [`report`] renders it as a terminal table,
//! JSON or a self-contained HTML page; [`netns`] makes and proves the
//! unplugged network.
//!
//! The audit reaches a lock only as any tester would: SMP over UDP
//! through the owner's client ([`link`], `keyway-smp` and the channel's
//! client side) and, when the lock has one, its control socket's JSON. It
//! does not link the simulated lock (`keyway-lock`): `keyway audit
//! --lock-state DIR` is served by the lab (`src/lab.rs`), which the command
//! line ([`crate::cli`]) calls: it starts a simulated lock, hands [`run`] its
//! `udp:` address and control socket with what its provisioning says
//! ([`Options::vendor_domain`], [`Options::floor`], …), and stops it
//! afterwards. `tests/layering.rs` keeps it that way.
//!
//! `run` makes no network namespace itself: creating one needs a process
//! with a single thread, so `keyway audit` re-executes itself under
//! `unshare -rn` ([`netns::reexec_isolated`]) before anything starts, then
//! passes the outcome in [`Options::namespace`]. A library caller (the
//! demo) does the same, or accepts that check 1 judges the host's network.
//!
//! * [`link`]: SMP through the owner's client library, and the control
//!   socket.
//! * [`releases`]: the genuine and doctored releases the checks upload.
//! * `checks`: the checks, in the order they run (the channel's, 13 to
//!   19, in `checks/channel.rs`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::Result;

mod checks;
pub mod cli;
pub mod link;
pub mod netns;
pub mod releases;
pub mod report;

/// A check's outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    /// The lock did what the check requires.
    Pass,
    /// It did not.
    Fail,
    /// The check could not run (the evidence says why).
    Skip,
}

/// One check's result.
#[derive(Debug, Clone)]
pub struct Check {
    /// 1 to 12 as issue 6 lists them, 13 to 19 the channel's.
    pub number: u8,
    /// A short stable id (`router-unplugged`, `local-update`, …).
    pub id: &'static str,
    /// Its title.
    pub title: &'static str,
    /// The outcome.
    pub status: Status,
    /// One line: why it passed, failed or was skipped.
    pub summary: String,
    /// What was sent and what the lock answered, one line each.
    pub evidence: Vec<String>,
    /// Measured figures (name, value), e.g. `keypad_p50_ms`.
    pub figures: Vec<(String, f64)>,
}

/// The checks: number, id, title. 1 to 12 are issue 6's; 13 to 19 are
/// the secure local channel's (issue 12).
pub const CHECKS: [(u8, &str, &str); 19] = [
    (1, "router-unplugged", "Router unplugged"),
    (2, "local-update", "Local update"),
    (3, "trust-anchors", "Local trust anchors"),
    (4, "interruption", "Interruption (power cuts)"),
    (5, "bad-image", "Bad image reverts"),
    (6, "physical-access", "Physical access during the update"),
    (7, "tamper-detection", "Tamper detection during the update"),
    (8, "after-update", "Fully functional after the update"),
    (9, "factory-reset", "Factory reset and re-pairing offline"),
    (10, "audit-log", "Audit log covers the run"),
    (11, "no-forced-update", "No forced update"),
    (12, "release-notes", "Release notes before consent"),
    (13, "pairing-without-code", "Pairing without the setup code"),
    (
        14,
        "stranger-in-window",
        "A stranger during the owner's window",
    ),
    (15, "replayed-command", "A replayed or held-back command"),
    (16, "forged-answer", "A forged answer"),
    (
        17,
        "chunk-injection",
        "Chunk injection into an owner's upload",
    ),
    (18, "unauthenticated-reset", "An unauthenticated reset"),
    (19, "consent-power-cut", "Consent surviving a power cut"),
];

/// The whole run.
#[derive(Debug, Clone)]
pub struct Report {
    /// What was audited (`udp:HOST:PORT`).
    pub target: String,
    /// The lock as it described itself (model, version).
    pub lock: String,
    /// When the run started (Unix seconds).
    pub started_unix: u64,
    /// The run's wall time.
    pub wall_ms: u64,
    /// The checks, in number order.
    pub checks: Vec<Check>,
    /// Files the run left (audit-log exports, releases) for checking by hand.
    pub files: Vec<String>,
}

impl Report {
    /// (PASS, FAIL, SKIP) counts.
    pub fn counts(&self) -> (usize, usize, usize) {
        let n = |s| self.checks.iter().filter(|c| c.status == s).count();
        (n(Status::Pass), n(Status::Fail), n(Status::Skip))
    }

    /// The check numbered `n`.
    pub fn check(&self, n: u8) -> Option<&Check> {
        self.checks.iter().find(|c| c.number == n)
    }

    /// The numbers of the checks with `status`.
    pub fn numbers(&self, status: Status) -> Vec<u8> {
        self.checks
            .iter()
            .filter(|c| c.status == status)
            .map(|c| c.number)
            .collect()
    }
}

/// The keypad PIN the audit enters when not told one (`--pin`): the
/// factory PIN of Keyway's reference lock (and of its simulation, kept
/// equal by `tests/layering.rs`).
pub const DEFAULT_PIN: &str = "1234";

/// Which lock to audit: the transports the audit speaks. (A simulated
/// lock is started by the lab and reached over [`Target::Udp`] like any
/// other.)
#[derive(Debug, Clone)]
pub enum Target {
    /// A lock already running, reached over SMP on UDP.
    Udp(SocketAddr),
}

/// How to run the audit.
#[derive(Debug, Clone)]
pub struct Options {
    /// The lock.
    pub target: Target,
    /// Its control socket, if it offers one: a TCP address or a Unix
    /// socket path.
    pub control: Option<link::ControlAddr>,
    /// The vendor's signing key (PKCS#8 PEM): the audit signs the genuine
    /// and doctored releases it needs.
    pub vendor_keys: Vec<PathBuf>,
    /// The key set to embed in the releases the audit signs (when the
    /// vendor keys are release signers a root key delegated to).
    pub keyset: Option<PathBuf>,
    /// Vendor-signed envelopes to use instead of a vendor key.
    pub updates: Vec<PathBuf>,
    /// An owner key already paired with the lock (for a lock without a
    /// control socket, where the audit cannot pair its own).
    pub owner_key: Option<PathBuf>,
    /// The lock's setup code, as printed on its label (else the audit
    /// reads it through the control socket's `setup-code`): the audit
    /// pairs its own owner key with it, and guesses wrong codes near it.
    pub setup_code: Option<String>,
    /// The lock's device public key from its provisioning (SPKI PEM), to
    /// verify its audit log against (else the key the lock announces in
    /// its status is used, and the evidence says so).
    pub device_key: Option<PathBuf>,
    /// The lock's vendor domain.
    pub vendor_domain: Option<String>,
    /// The lock's class (model).
    pub class: Option<String>,
    /// The lock's anti-rollback floor when the run starts, if the caller
    /// knows it (from its provisioning): the first release is signed
    /// above it, and check 3's rollback goes below it.
    pub floor: Option<u64>,
    /// The first sequence number to sign (default: above [`floor`] if
    /// known, else the current Unix time).
    ///
    /// [`floor`]: Options::floor
    pub sequence: Option<u64>,
    /// The keypad PIN (default: [`DEFAULT_PIN`]).
    pub pin: Option<String>,
    /// The lock runs in this process (the lab's simulated lock): it
    /// reboots and powers up in milliseconds, so the audit waits less for
    /// it to settle or to come back from a power cut.
    pub in_process: bool,
    /// What the caller knows about the lock that it cannot say itself,
    /// appended to the report's lock line (e.g. that it is a deliberately
    /// flawed simulation).
    pub lock_note: Option<String>,
    /// Image size of the releases the audit signs, in bytes.
    pub image_len: usize,
    /// Where the run's files go (exports, releases).
    pub out_dir: PathBuf,
    /// The network isolation the caller made, or why it could not.
    pub namespace: Result<(), String>,
    /// Progress lines on stderr.
    pub verbose: bool,
}

impl Options {
    /// Defaults for `target`, files in `out_dir`.
    pub fn new(target: Target, out_dir: impl Into<PathBuf>) -> Options {
        Options {
            target,
            control: None,
            vendor_keys: Vec::new(),
            keyset: None,
            updates: Vec::new(),
            owner_key: None,
            setup_code: None,
            device_key: None,
            vendor_domain: None,
            class: None,
            floor: None,
            sequence: None,
            pin: None,
            in_process: false,
            lock_note: None,
            image_len: 24 * 1024,
            out_dir: out_dir.into(),
            namespace: Err("the audit did not make a network namespace".into()),
            verbose: false,
        }
    }
}

/// Runs every check against the lock and returns the scorecard. Fails
/// only when the audit itself cannot start (no lock to talk to, unreadable
/// keys); a lock that misbehaves gets FAILs, not an error.
pub fn run(o: &Options) -> Result<Report> {
    let start = Instant::now();
    let started_unix = unix_now();
    std::fs::create_dir_all(&o.out_dir)?;
    let (target, lock, checks, files) = checks::run(o)?;
    Ok(Report {
        target,
        lock,
        started_unix,
        wall_ms: u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX),
        checks,
        files,
    })
}

/// The wall clock in Unix seconds (0 before 1970).
pub(crate) fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
