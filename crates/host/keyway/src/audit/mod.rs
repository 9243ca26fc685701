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
//! The audit reaches a lock only as any tester would: SMP over UDP (or
//! the MCUmgr serial transport, `serial:PATH`)
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
//!
//! # keyway audit
//!
//! ```text
//! keyway audit --lock-state DIR ──▶ cli.rs ──▶ the lab's audit(): re-exec under `unshare -rn` (audit::cli::isolate), `ip link set lo up`
//!                                     ├─▶ Lab::start: the simulated keyway-lock from DIR (in-process, same namespace, SMP + control socket on loopback)
//!                                     └─▶ Lab::configure: a plain udp: target + control socket, floor, device key, PIN → audit::run, then the lock off
//! keyway audit --target udp:H:P  ──▶ (no namespace: check 1 proves no route out, or names the default route)
//! keyway audit --target serial:P ──▶ the same checks over the line; 1 and 17 are N/A (no network, one peer)
//! audit::run(&Options) -> Report ──▶ checks.rs: SMP (audit/link.rs over the client `device::Client`) + control socket
//!                                  ──▶ report.rs: table | JSON | self-contained HTML
//! ```
//!
//! The audit (`crates/host/keyway/src/audit/`) tests a lock the way any tester
//! would: SMP through the owner's client and, when the lock offers one,
//! its control socket's JSON; its targets are `udp:HOST:PORT` and
//! `serial:PATH` (both through `device::TargetTransport`), and it
//! does not link `keyway-lock`. `--lock-state DIR` is the *lab*'s
//! (`src/lab.rs`): the command line's dispatch sends it to the lab's `audit`, which
//! starts the simulated lock from its state directory in the audit's unplugged
//! network, hands the audit a plain target and what the provisioning says
//! (control socket, vendor domain, class, floor, device key, PIN unless
//! `--pin` names one, `in_process` for short settle and power-cut timeouts),
//! and prints the same report with the same exit codes
//! (`audit::cli::finish`). The seam is in the dispatch, not inside `audit/`,
//! so the audit has exactly one way to reach a lock and cannot grow a
//! shortcut into the simulator's state. Conventions both sides need are
//! written on both sides and checked equal by `tests/layering.rs`
//! (`cargo test -p keyway --test layering`): the bad image of check 5
//! (`audit::releases::SELF_TEST_FAIL_MARKER`, `KEYWAY-SELF-TEST-FAIL` at byte
//! `SELF_TEST_FAIL_AT` = 256; keyway-lock's `profile.rs` holds the same bytes)
//! and the keypad PIN (`--pin`, default `audit::DEFAULT_PIN` = `1234`).
//! `audit::run` is a library call returning a
//! structured `Report` (nineteen `Check`s: number, id, title, PASS/FAIL/SKIP,
//! summary, evidence lines, figures), so the demo can call it and print its
//! scorecard. The demo (`demo.rs`) re-executes itself under `unshare -rn` the
//! same way (`--no-netns`: it stays in the host's network, and its "router
//! unplugged" line and check 1 judge that network); `Outcome::lock_failures`
//! tells the lock's failures (exit 1, named) from the network's own (a note,
//! exit 0).
//!
//! * **`netns.rs`**: the unplugged network. A launched lock must share the
//!   audit's namespace, and `unshare(CLONE_NEWUSER)` is refused to a
//!   multi-threaded process, so the command re-executes itself under
//!   `unshare -rn` before it starts any thread, rather than calling
//!   `unshare(2)` itself (which would also need `libc`). The proof is read
//!   from the kernel: default routes in `/proc/net/route` and
//!   `/proc/net/ipv6_route` (up, not `RTF_REJECT`), and a UDP `connect` to a
//!   public IPv4 and IPv6 address, which asks for a route without sending a
//!   packet (`ENETUNREACH`). Where namespaces are not permitted, the evidence
//!   says so and the same proof decides.
//! * **`link.rs`**: SMP goes through the owner's client library
//!   (`crate::device::Client` over `UdpTransport`: framing, pairing by setup
//!   code, sessions, uploads, log export, refusals as sentences), with what an audit adds: a
//!   refusal is an answer (evidence), "no answer" is an outcome (a power
//!   cut), and while a cut is expected each request waits once, briefly
//!   (`set_window`), instead of resending. The control socket is one JSON
//!   line each way, each answer line bounded in length (64 KiB) and time
//!   (5 s, however slowly it trickles). Every other wait is bounded too
//!   (the client's retries, `wait_up`, `settle`); lengths the lock sends are
//!   bounded by the client (log export, upload offsets).
//! * **`releases.rs`**: every release is built with
//!   `keyway_vendor::encode::EnvelopeBuilder` and the vendor key: genuine ones
//!   (sequence above the lock's floor, notes with a CVE, 24 KiB images), a
//!   tampered copy (one image byte flipped), an unknown signer (a fresh key),
//!   a rolled-back one (a valid signature, the sequence just below the floor)
//!   and the wrong model (another class name). With `--update FILE...` the
//!   files are used in sequence order, and what needs a fresh signature is
//!   SKIP.
//! * **`checks.rs`**: one session, checks in an order where each builds on the
//!   last (2/11/12 on the first release, 3, 6/7 on a paced upload with a
//!   sampler thread doing keypad and owner unlocks, 5, 4, 8, 9, then 10 over
//!   every export taken along the way). A check that cannot run because an
//!   earlier one failed is SKIP "blocked", so a flawed lock fails exactly the
//!   checks its flaw breaks; the channel's checks 13 to 19 run after 9, and
//!   10 last, over every export. Power cuts use the control socket's `cut-power`
//!   (`mid_upload`, `after_ops`): the mid-install sweep (the owner's consent)
//!   and the trial-boot sweep (a test boot asked at the lock) cut at flash
//!   operation k = 1, 2, … from the consent on, one scenario each, until a
//!   cut no longer lands inside the install (the control status's
//!   `power_cuts` says whether it fired; without it, silence does), or the
//!   first scenario that does not recover. After each, the lock must run a
//!   verified, confirmed image and the retried or resumed update must
//!   complete (a lock left in recovery is given the update again and reset,
//!   the reset in a presence window the audit opens and closes around it,
//!   since an owner's reset is refused in the first minute after the boot
//!   the cut caused, so the run can go on). A sweep in which no cut landed is SKIP, not a
//!   pass. No check passes on absent evidence: 3 runs only on a lock that
//!   took a genuine upload whole (refusing everything proves nothing), and
//!   silence to an attack is a FAIL, not a refusal; 6 needs unlocks of each kind
//!   (keypad, owner) during the upload; 7 needs the sensor quiet before,
//!   triggered while bytes remain, reported by the lock's SMP status and a
//!   tamper record in its log since the update began; 5 needs the log to
//!   show the bad image tried (its trial or a boot of its version); 11
//!   watches the running image for a while (1 s on loopback, 5 s over a
//!   link) before and after a reset (the agent refuses an owner's reset in
//!   the first minute after a boot, `ResetLimiter::at_boot`: a lock that
//!   declines it is power-cycled through the control socket instead,
//!   `Session::power_cycle`, and the evidence says so), and a status saying
//!   `installing` without consent fails it; 10 fails a log that goes back between exports
//!   or shows different bytes for a record already exported, and checks the
//!   log against the provisioned device key (the state directory's, or
//!   `--device-key`), else against the key the lock announces, saying so.
//! * **`checks/channel.rs`**: checks 13 to 19, issue 12's channel findings
//!   tried again from radio range. The audit's owner, paired by the setup
//!   code (`--setup-code`, or read through the control socket's
//!   `setup-code`), is the victim; the attacker is a second UDP socket with
//!   no key; the man in the middle is `Tap`, a `Transport` around the
//!   owner's that records the last request, holds one back (delivered
//!   6.5 s later, past the lock's 5 s freshness limit) or alters the
//!   answer's last byte, or hands back an earlier answer. Verdicts rest on
//!   what the lock does (the bolt in the owner's authenticated status, the
//!   owners, the slots, the typed update state), never on its words. 13, 14
//!   and 17 need the button and 19 the power (SKIP without `--control`); 15,
//!   16 and 18 need only the owner's session; 14 and 17 need fresh releases.
//! * **`report.rs`**: the table, JSON (`serde_json`) and HTML (inline CSS,
//!   every text escaped, no scripts or external resources; tested with
//!   hostile evidence); the table prints the lock's control characters as
//!   `\u{..}`, so no escape sequence from a lock repaints the scorecard.
//!
//! **Over a serial line** (`--target serial:PATH`, issue 17 §3) the link
//! is the MCUmgr serial transport (`device::SerialTransport`, through
//! `TargetTransport`), and every check runs as over UDP, except where its
//! subject does not exist on a serial line: those are
//! [`Status::NotApplicable`] (`N/A` in the table, the JSON and the HTML,
//! counted apart from PASS, FAIL and SKIP), with the reason as summary.
//! Check 1's subject is the IP network between the audit and the lock
//! (the host's routes, the namespace): there is none. Check 17's is
//! another peer's chunks joining the owner's upload: one line carries one
//! peer, so every client on it is the owner's link. The other channel
//! attacks (13, 14, 16, 18) need only a client without the owner's key,
//! which on a serial line is someone at the lock's port: the audit opens
//! the same line again as that client, between the owner's requests.
//! Check 6 samples keypad unlocks only (through the control socket): the
//! line carries one request at a time and the upload holds it, so owner
//! unlocks cannot run alongside it, and the evidence says so.
//!
//! `keyway-lock --profile NAME` (`keyway-lock/src/profile.rs`) gives the
//! flawed locks; each flaw is one hook marked `PROFILE HOOK` in `server.rs` or
//! `device.rs`, except `open-pairing`'s, which are the agent's own
//! (`agent_shell::agent_config` sets `Flaws::OPEN_PAIRING` in the agent's
//! `Config`, at start and after each boot; see `keyway-agent` above): `cloud-verify` refuses an install unless a TCP connect to its
//! vendor server (`--vendor-server`, default `1.1.1.1:443`) succeeds;
//! `no-rollback` copies the staged image over the running slot in place,
//! confirms it with no trial and erases the staging slot, and its boot never
//! falls back (`Lock::install_in_place`); `unsigned` takes an upload whose
//! signatures or key set fail (`inspect_envelope` stands in for the
//! verifier); `downgrade` verifies uploads against no floor; `forced` arms a
//! complete upload on its own timer (`Server::tick`, `FORCED_DELAY_MS` =
//! 400 ms later) and resets, with no consent and no policy; `log-gaps` drops
//! update events in `Lock::note`; `open-pairing` pairs a plain public key in
//! the window without the setup code, runs held-back requests (no
//! freshness), runs owner commands sent in the clear as the first owner and
//! answers them unauthenticated, takes any peer's chunks into the upload in
//! progress, resets for anyone with no limit, and keeps consent in RAM. The boot re-verification still guards
//! `unsigned` and `downgrade` images (they are accepted, never booted), which
//! is why the audit judges acceptance, as a real owner would see it. The simulated application's self-test fails for an image
//! carrying `KEYWAY-SELF-TEST-FAIL` at byte 256 (`profile::fails_self_test`),
//! which is how the audit's check 5 gets a bad image on any profile; a
//! failed self-test leaves no trial boots, and the application resets itself
//! (its watchdog) so the bootloader reverts at once. Two lock fixes came with
//! the audit: a lock whose update reverted (journal trial state `None`) now
//! offers the next upload for consent, and an image refused at its last chunk
//! is logged with its sequence number (it was 0).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

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
    /// The check's subject does not exist on this transport: on a serial
    /// line there is no IP network to unplug and no second peer on the
    /// medium. Neither a pass nor a fail; the summary gives the reason.
    NotApplicable,
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
    /// What was audited (`udp:HOST:PORT`, `serial:PATH`).
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

    /// How many checks were not applicable on the run's transport.
    pub fn not_applicable(&self) -> usize {
        self.checks
            .iter()
            .filter(|c| c.status == Status::NotApplicable)
            .count()
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

/// How long, by default, a lock may take to answer again after a reset or
/// a power cut (`--boot-seconds`): the emulated lock (QEMU) is back in
/// about a second on an idle machine and in several on a loaded one; a
/// real lock's bootloader verifies the image first.
pub const DEFAULT_BOOT_SECONDS: u64 = 30;

/// Which lock to audit: the transports the audit speaks. (A simulated
/// lock is started by the lab and reached over [`Target::Udp`] like any
/// other.)
#[derive(Debug, Clone)]
pub enum Target {
    /// A lock already running, reached over SMP on UDP.
    Udp(SocketAddr),
    /// A lock reached over the MCUmgr serial transport on this tty or pty
    /// (`serial:PATH`). One line carries one peer, and there is no IP
    /// network between the audit and the lock: the checks whose subject
    /// is the network or a second peer are [`Status::NotApplicable`].
    Serial(PathBuf),
}

impl Target {
    /// The target string the owner's client opens (`udp:H:P`,
    /// `serial:PATH`).
    pub fn spec(&self) -> String {
        match self {
            Target::Udp(a) => format!("udp:{a}"),
            Target::Serial(p) => format!("serial:{}", p.display()),
        }
    }

    /// The lock is on a serial line.
    pub fn is_serial(&self) -> bool {
        matches!(self, Target::Serial(_))
    }
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
    /// The firmware the audit's genuine releases carry (a lock that boots
    /// real code, such as the emulated one, needs it), else generated.
    pub image: Option<PathBuf>,
    /// Where the run's files go (exports, releases).
    pub out_dir: PathBuf,
    /// The network isolation the caller made, or why it could not.
    pub namespace: Result<(), String>,
    /// Progress lines on stderr.
    pub verbose: bool,
    /// How long a lock may take to answer again after a reset or a power
    /// cut the audit caused (a bootloader that verifies the image, an
    /// install it resumes). The lab holds its in-process lock to 5 s.
    pub boot_wait: Duration,
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
            image: None,
            out_dir: out_dir.into(),
            namespace: Err("the audit did not make a network namespace".into()),
            verbose: false,
            boot_wait: Duration::from_secs(DEFAULT_BOOT_SECONDS),
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
