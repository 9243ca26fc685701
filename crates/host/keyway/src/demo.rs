//! `keyway demo`: Keyway's main job, end to end, on this machine alone.
//!
//! 1. A vendor makes keys: a root key (the locks' trust anchor, kept
//!    offline) delegates to two release signers in a key set.
//! 2. The factory provisions a simulated lock (`keyway-lock`, the real
//!    device core on a file-backed simulated nRF52840 flash) with the root
//!    key and a signed factory image, 1.4.0.
//! 3. The vendor signs 2.1.0, 2-of-2, with release notes naming the CVE it
//!    fixes.
//! 4. The router is unplugged: the demo re-runs itself under `unshare -rn`,
//!    a network namespace where only loopback exists, and proves no route
//!    leaves it.
//! 5. The owner pairs their phone at the door, sends the update over the
//!    lock's local SMP interface, and the power fails halfway through the
//!    upload; the lock boots again and the upload resumes. The owner reads
//!    the notes and the CVE, consents; the lock waits until the bolt is
//!    withdrawn, installs, boots the new image on trial and confirms it.
//! 6. `keyway audit` runs its nineteen checks against the same lock.
//! 7. The scorecard, and where the HTML report is.
//!
//! Every step is printed as the command that does it by hand (`keyway`,
//! `keyway-lock ctl`); the lock runs in this process, on its own threads
//! and sockets, and stops with the demo.

use std::io::{BufRead as _, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, Result, anyhow, bail};
use clap::Parser as _;

use crate::audit;

pub(crate) const VENDOR: &str = "locks.example";
pub(crate) const CLASS: &str = "deadbolt-2";

/// One line of the demo's own scorecard (the update it walks through);
/// the audit's nineteen checks follow it.
#[derive(Debug, Clone)]
pub struct Score {
    /// What was shown.
    pub name: &'static str,
    /// Whether the lock behaved as it must.
    pub pass: bool,
    /// What the lock said.
    pub evidence: String,
}

/// What the demo did.
#[derive(Debug)]
pub struct DemoOutcome {
    /// The update's own lines.
    pub steps: Vec<Score>,
    /// The audit's report.
    pub audit: audit::Report,
    /// The HTML report's path.
    pub html: PathBuf,
}

impl DemoOutcome {
    /// Whether every step and every audit check passed (SKIP counts as not
    /// failed).
    pub fn passed(&self) -> bool {
        self.steps.iter().all(|s| s.pass) && self.audit.counts().1 == 0
    }

    /// What failed that is the lock's doing: every failed step and check
    /// but the network's own ("router unplugged", audit check 1), which
    /// judge the machine the demo runs on.
    pub fn lock_failures(&self) -> Vec<String> {
        let steps = self
            .steps
            .iter()
            .filter(|s| !s.pass && s.name != ROUTER_UNPLUGGED)
            .map(|s| s.name.to_owned());
        let checks = self
            .audit
            .checks
            .iter()
            .filter(|c| c.status == audit::Status::Fail && c.number != 1)
            .map(|c| format!("audit check {} ({}): {}", c.number, c.title, c.summary));
        steps.chain(checks).collect()
    }
}

/// The demo's network step, which judges the machine, not the lock.
const ROUTER_UNPLUGGED: &str = "router unplugged";

/// Runs a `keyway` command in-process, printing it and its output.
pub(crate) fn keyway(out: &mut dyn Write, args: &[&str]) -> Result<String> {
    writeln!(out, "  $ keyway {}", args.join(" "))?;
    let mut argv = vec!["keyway"];
    argv.extend_from_slice(args);
    let cli = crate::cli::Cli::try_parse_from(&argv).context("demo built a bad command line")?;
    let mut buf = Vec::new();
    let r = crate::cli::run(cli, &mut buf, &mut std::io::sink());
    let text = String::from_utf8_lossy(&buf).into_owned();
    for line in text.lines() {
        writeln!(out, "    {line}")?;
    }
    if let Err(e) = &r {
        writeln!(out, "    error: {e:#}")?;
    }
    r.map(|()| text)
}

/// The lock's hardware, through its control socket: one JSON line in,
/// one out. `shown` is the `keyway-lock ctl` form printed for the reader.
pub(crate) fn at_lock(
    out: &mut dyn Write,
    control: SocketAddr,
    shown: &str,
    line: &str,
) -> Result<serde_json::Value> {
    writeln!(out, "  [at the lock] $ keyway-lock ctl {control} {shown}")?;
    let mut s = TcpStream::connect_timeout(&control, Duration::from_secs(5))
        .with_context(|| format!("control socket {control}"))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    s.write_all(format!("{line}\n").as_bytes())?;
    let mut answer = String::new();
    BufReader::new(s).read_line(&mut answer)?;
    let v: serde_json::Value = serde_json::from_str(answer.trim())
        .with_context(|| format!("control answer {answer:?}"))?;
    writeln!(out, "    {}", answer.trim())?;
    if v.get("ok") != Some(&serde_json::Value::Bool(true)) {
        bail!("the lock refused {shown}: {}", answer.trim());
    }
    Ok(v)
}

/// A deterministic stand-in firmware image of `len` bytes.
pub(crate) fn firmware(version: u8, len: usize) -> Vec<u8> {
    // A deterministic stand-in image: a vector table-like header, then code-like bytes.
    let mut fw = vec![0u8; len];
    let mut x = 0x2545_f491_u32 ^ u32::from(version);
    for b in fw.iter_mut() {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        *b = (x >> 24) as u8;
    }
    fw[..4].copy_from_slice(&[0x00, 0x00, 0x04, 0x20]);
    fw
}

/// Signs `firmware-VERSION.bin` with `notes-VERSION.md` in `dir`, 2-of-2
/// under the key set, into `o`; `extra` adds `keyway sign` options (a
/// delta's `--delta-from`).
pub(crate) fn sign(
    out: &mut dyn Write,
    dir: &Path,
    version: &str,
    sequence: &str,
    cve: Option<&str>,
    extra: &[&str],
    o: &str,
) -> Result<()> {
    let p = |name: &str| dir.join(name).to_string_lossy().into_owned();
    let (fw, notes, keyset, a, b) = (
        p(&format!("firmware-{version}.bin")),
        p(&format!("notes-{version}.md")),
        p("keyset-v1.cbor"),
        p("signer-a.key"),
        p("signer-b.key"),
    );
    let mut args = vec![
        "sign",
        "--firmware",
        &fw,
        "--version",
        version,
        "--sequence",
        sequence,
        "--vendor-domain",
        VENDOR,
        "--class",
        CLASS,
        "--notes",
        &notes,
    ];
    if let Some(c) = cve {
        args.extend_from_slice(&["--cve", c]);
    }
    args.extend_from_slice(extra);
    args.extend_from_slice(&["--keyset", &keyset, "--key", &a, "--key", &b, "-o", o]);
    keyway(out, &args).map(|_| ())
}

/// Step 1: the vendor's keys in `dir`: `root` (the locks' anchor),
/// `signer-a` (Ed25519) and `signer-b` (P-256), and the root-signed key
/// set delegating to both, 2-of-2 (`keyset-v1.cbor`).
pub(crate) fn vendor_keys(out: &mut dyn Write, dir: &Path) -> Result<()> {
    let p = |name: &str| dir.join(name).to_string_lossy().into_owned();
    keyway(out, &["keygen", &p("root")])?;
    keyway(out, &["keygen", &p("signer-a")])?;
    keyway(out, &["keygen", &p("signer-b"), "--alg", "p256"])?;
    keyway(
        out,
        &[
            "keyset",
            "--root",
            &p("root.key"),
            "--signer",
            &p("signer-a.pub"),
            "--signer",
            &p("signer-b.pub"),
            "--threshold",
            "2",
            "--version",
            "1",
            "-o",
            &p("keyset-v1.cbor"),
        ],
    )?;

    Ok(())
}

/// Step 2's release: the factory image 1.4.0 (`firmware-1.4.0.bin`),
/// signed into `release-1.4.0.suit` in `dir`.
pub(crate) fn factory_release(out: &mut dyn Write, dir: &Path) -> Result<()> {
    let p = |name: &str| dir.join(name).to_string_lossy().into_owned();
    std::fs::write(dir.join("firmware-1.4.0.bin"), firmware(1, 96 * 1024))?;
    std::fs::write(
        dir.join("notes-1.4.0.md"),
        "# Deadbolt-2 firmware 1.4.0\n\nFactory image.\n",
    )?;
    sign(out, dir, "1.4.0", "1", None, &[], &p("release-1.4.0.suit"))
}

/// Step 2: provisions a lock in `state` with `dir`'s root key as its
/// trust anchor and the factory release, the default PIN, and a fresh
/// setup code (the lock's label), which it returns.
pub(crate) fn provision(
    out: &mut dyn Write,
    dir: &Path,
    state: &Path,
) -> Result<keyway_channel::SetupCode> {
    let p = |name: &str| dir.join(name).to_string_lossy().into_owned();
    std::fs::create_dir_all(state)?;
    writeln!(
        out,
        "  $ keyway-lock provision --state {} --vendor-key {} --vendor-domain {VENDOR} --class {CLASS} --firmware {} --version 1.4.0",
        state.display(),
        p("root.pub"),
        p("release-1.4.0.suit")
    )?;
    let sd = keyway_lock::state::StateDir::new(state);
    sd.set_pin(keyway_lock::lock::DEFAULT_PIN)?;
    let summary = sd.provision(
        &[dir.join("root.pub")],
        1,
        VENDOR,
        CLASS,
        Some(&dir.join("release-1.4.0.suit")),
        false,
    )?;
    writeln!(out, "    provisioned: {summary}")?;
    // The label on the lock: the setup code the owner pairs with.
    let code = sd.new_setup_code()?;
    writeln!(out, "    Setup code: {code} (on the lock's label)")?;
    Ok(code)
}

/// Step 3: 2.1.0 (`firmware-2.1.0.bin`), whose notes name the CVE it
/// fixes, signed 2-of-2 into `release-2.1.0.suit` in `dir`; returns its
/// path.
pub(crate) fn fix_release(out: &mut dyn Write, dir: &Path) -> Result<String> {
    let p = |name: &str| dir.join(name).to_string_lossy().into_owned();
    std::fs::write(dir.join("firmware-2.1.0.bin"), firmware(2, 100 * 1024))?;
    std::fs::write(
        dir.join("notes-2.1.0.md"),
        "# Deadbolt-2 firmware 2.1.0\n\n\
         - Keypad: lock out for 5 minutes after 5 wrong PINs.\n\
         - BLE: owner commands answer a fresh challenge, so a captured command cannot be replayed.\n\n\
         CVE-2099-0001 is a placeholder ID for this demo, not a real vulnerability.\n",
    )?;
    let release = p("release-2.1.0.suit");
    sign(
        out,
        dir,
        "2.1.0",
        "2",
        Some("CVE-2099-0001:high"),
        &[],
        &release,
    )?;
    Ok(release)
}

/// The network the demo runs in: `Ok` inside the namespace it made (or
/// one with no route out), else why not.
pub fn isolation() -> Result<(), String> {
    let inside = std::env::var_os(audit::netns::ENV_INSIDE).is_some();
    if inside {
        audit::netns::loopback_up()?;
    }
    let i = audit::netns::inspect();
    if i.no_route_out() {
        Ok(())
    } else if inside {
        Err(format!(
            "inside the namespace but routes remain: {:?}",
            i.default_routes
        ))
    } else {
        Err(format!(
            "not in a namespace (unshare -rn refused or skipped); default routes: {}",
            i.default_routes.join("; ")
        ))
    }
}

/// Runs the demo in `dir` (emptied first), printing to `out`.
/// `namespace` is what [`isolation`] found.
pub fn run(dir: &Path, namespace: Result<(), String>, out: &mut dyn Write) -> Result<DemoOutcome> {
    if dir.exists() {
        std::fs::remove_dir_all(dir).with_context(|| format!("{}: cannot clear", dir.display()))?;
    }
    std::fs::create_dir_all(dir).with_context(|| format!("{}: cannot create", dir.display()))?;
    let dir = &dir
        .canonicalize()
        .with_context(|| format!("{}: cannot resolve", dir.display()))?;
    let p = |name: &str| dir.join(name).to_string_lossy().into_owned();
    let mut steps = Vec::new();

    writeln!(
        out,
        "\n1. Vendor: keys. A root key (the locks' trust anchor, kept offline) delegates to two release signers."
    )?;
    vendor_keys(out, dir)?;

    writeln!(
        out,
        "\n2. Factory: a lock is provisioned with the root key as its trust anchor and a signed 1.4.0."
    )?;
    factory_release(out, dir)?;
    let state = dir.join("lock");
    provision(out, dir, &state)?;

    writeln!(
        out,
        "\n3. Vendor: 2.1.0 fixes a vulnerability; its notes name the CVE; signed 2-of-2."
    )?;
    let release = fix_release(out, dir)?;

    writeln!(
        out,
        "\n4. Unplug the router: the lock and the owner's phone must share a network with no route out."
    )?;
    let iso = audit::netns::inspect();
    writeln!(
        out,
        "  interfaces: {}; default routes: {}; {}",
        iso.interfaces.join(", "),
        if iso.default_routes.is_empty() {
            "none".to_owned()
        } else {
            iso.default_routes.join("; ")
        },
        iso.probes
            .iter()
            .map(|(a, r)| format!("connect {a}: {r}"))
            .collect::<Vec<_>>()
            .join("; ")
    )?;
    match &namespace {
        Ok(()) => writeln!(out, "  unplugged: no route leaves this network")?,
        Err(e) => writeln!(out, "  NOT unplugged: {e}")?,
    }
    steps.push(Score {
        name: ROUTER_UNPLUGGED,
        pass: namespace.is_ok(),
        evidence: match &namespace {
            Ok(()) => format!(
                "{}; no default route; public addresses unreachable",
                if std::env::var_os(audit::netns::ENV_INSIDE).is_some() {
                    "network namespace with loopback only".to_owned()
                } else {
                    format!("no namespace, but interfaces {}", iso.interfaces.join(", "))
                }
            ),
            Err(e) => e.clone(),
        },
    });

    writeln!(
        out,
        "\n5. The owner updates the lock over its local interface, with consent; the power fails mid-way."
    )?;
    let mut o = keyway_lock::shell::Options::new(&state, "127.0.0.1:0".parse()?);
    o.control = Some("127.0.0.1:0".parse()?);
    let lock = keyway_lock::shell::start(&o)?;
    let control = lock
        .control
        .ok_or_else(|| anyhow!("the lock has no control socket"))?;
    let target = format!("udp:{}", lock.smp);
    writeln!(
        out,
        "  $ keyway-lock --state {} --bind {} --control {control}\n    {}",
        state.display(),
        lock.smp,
        lock.boot
    )?;
    keyway(out, &["keygen", &p("owner")])?;
    at_lock(
        out,
        control,
        "presence 60",
        r#"{"cmd":"presence","seconds":60}"#,
    )?;
    let owner = p("owner.key");
    // The owner reads the code off the label; pairing proves it (SPAKE2+)
    // and from then on every owner command runs in an encrypted session.
    let label = at_lock(out, control, "setup-code", r#"{"cmd":"setup-code"}"#)?;
    let code = label
        .get("setup_code")
        .and_then(serde_json::Value::as_str)
        .ok_or_else(|| anyhow!("the lock shows no setup code"))?
        .to_owned();
    keyway(
        out,
        &[
            "device",
            "--target",
            &target,
            "--owner-key",
            &owner,
            "pair",
            "--setup-code",
            &code,
            "--name",
            "owner",
        ],
    )?;
    let owner_args = ["device", "--target", &target, "--owner-key", &owner];
    let kd = |out: &mut dyn Write, extra: &[&str]| -> Result<String> {
        let mut args = owner_args.to_vec();
        args.extend_from_slice(extra);
        keyway(out, &args)
    };
    at_lock(
        out,
        control,
        "presence-close",
        r#"{"cmd":"presence-close"}"#,
    )?;
    writeln!(
        out,
        "  The power will fail when the upload passes its halfway point:"
    )?;
    at_lock(
        out,
        control,
        "cut-power --mid-upload",
        r#"{"cmd":"cut-power","mid_upload":null}"#,
    )?;
    let up = kd(out, &["--json", "update", &release]);
    let boots_after_cut = status_json(&target, &owner)?;
    let up_text = up.as_deref().unwrap_or("");
    let resumed = serde_json::from_str::<serde_json::Value>(up_text.trim())
        .ok()
        .and_then(|v| v.get("resumed_from").and_then(serde_json::Value::as_u64))
        .unwrap_or(0);
    steps.push(Score {
        name: "power cut mid-upload, upload resumed",
        pass: up.is_ok() && resumed > 0,
        evidence: match &up {
            Ok(_) => format!(
                "the lock lost power mid-upload, booted again ({}), and the upload resumed at byte {resumed}",
                boots_after_cut
                    .get("version")
                    .and_then(serde_json::Value::as_str)
                    .unwrap_or("?")
            ),
            Err(e) => format!("{e:#}"),
        },
    });
    let notes = kd(out, &["notes"]);
    // Decided on the typed answer (`--json`), never on the printed words.
    let cve_listed = device_json(&target, &owner, &["notes"]).is_ok_and(|n| {
        n.get("cves")
            .and_then(serde_json::Value::as_array)
            .is_some_and(|cves| {
                cves.iter().any(|c| {
                    c.get("id").and_then(serde_json::Value::as_str) == Some("CVE-2099-0001")
                        && c.get("severity").and_then(serde_json::Value::as_str) == Some("high")
                })
            })
    });
    steps.push(Score {
        name: "release notes and CVE before consent",
        pass: notes.is_ok() && cve_listed,
        evidence: notes
            .as_ref()
            .map(|n| {
                n.lines()
                    .find(|l| l.contains("CVE-"))
                    .unwrap_or("no CVE line")
                    .trim()
                    .to_owned()
            })
            .unwrap_or_else(|e| format!("{e:#}")),
    });
    let before = status_json(&target, &owner)?;
    let consent = kd(out, &["--json", "consent", "accept"]);
    let postponed = consent.as_deref().is_ok_and(|t| {
        serde_json::from_str::<serde_json::Value>(t.trim())
            .ok()
            .and_then(|v| v.get("state").and_then(|s| s.as_str()).map(str::to_owned))
            .as_deref()
            == Some("postponed")
    });
    at_lock(
        out,
        control,
        "keypad 1234",
        r#"{"cmd":"keypad","pin":"1234"}"#,
    )?;
    writeln!(
        out,
        "  The bolt is withdrawn: the lock installs by itself, boots 2.1.0 on trial, self-tests and confirms."
    )?;
    let after = wait_version(&target, &owner, "2.1.0", Duration::from_secs(20))?;
    kd(out, &["status"])?;
    let version = |v: &serde_json::Value| {
        v.get("version")
            .and_then(serde_json::Value::as_str)
            .unwrap_or("?")
            .to_owned()
    };
    steps.push(Score {
        name: "no install before consent; postponed while locked",
        pass: version(&before) == "1.4.0" && postponed,
        evidence: format!(
            "before consent the lock ran {}; consent while the bolt was locked: {}",
            version(&before),
            if postponed {
                "postponed"
            } else {
                "not postponed"
            }
        ),
    });
    let confirmed = after
        .get("trial")
        .and_then(serde_json::Value::as_bool)
        .is_some_and(|t| !t);
    steps.push(Score {
        name: "2.1.0 installed, self-tested, confirmed",
        pass: version(&after) == "2.1.0" && confirmed,
        evidence: format!(
            "the lock runs {} ({})",
            version(&after),
            if confirmed { "confirmed" } else { "on trial" }
        ),
    });

    writeln!(
        out,
        "\n6. keyway audit: the nineteen checks of the \"router unplugged\" method, against this lock."
    )?;
    writeln!(
        out,
        "  $ keyway audit --target {target} --control {control} --vendor-key {} --vendor-key {} --keyset {} --owner-key {} --device-key {} --vendor-domain {VENDOR} --class {CLASS} --sequence 3 --out {} --report {}",
        p("signer-a.key"),
        p("signer-b.key"),
        p("keyset-v1.cbor"),
        p("owner.key"),
        state.join("device.pub").display(),
        p("audit"),
        p("report.html")
    )?;
    let mut a = audit::Options::new(audit::Target::Udp(lock.smp), dir.join("audit"));
    a.control = Some(control.into());
    a.vendor_keys = vec![dir.join("signer-a.key"), dir.join("signer-b.key")];
    a.keyset = Some(dir.join("keyset-v1.cbor"));
    a.owner_key = Some(dir.join("owner.key"));
    a.device_key = Some(state.join("device.pub"));
    a.vendor_domain = Some(VENDOR.to_owned());
    a.class = Some(CLASS.to_owned());
    a.sequence = Some(3);
    a.namespace = namespace;
    let report = audit::run(&a)?;
    lock.power_off();
    let html = dir.join("report.html");
    std::fs::write(&html, audit::report::html(&report))
        .with_context(|| format!("writing {}", html.display()))?;
    Ok(DemoOutcome {
        steps,
        audit: report,
        html,
    })
}

/// The lock's status as JSON (`keyway device --owner-key OWNER --json
/// status`: status is for owners), quietly.
fn status_json(target: &str, owner: &str) -> Result<serde_json::Value> {
    device_json(target, owner, &["status"])
}

/// `keyway device --json ARGS` as the owner, its answer parsed (not shown).
fn device_json(target: &str, owner: &str, args: &[&str]) -> Result<serde_json::Value> {
    let mut argv = vec![
        "keyway",
        "device",
        "--target",
        target,
        "--owner-key",
        owner,
        "--json",
    ];
    argv.extend_from_slice(args);
    let cli = crate::cli::Cli::try_parse_from(argv)?;
    let mut buf = Vec::new();
    crate::cli::run(cli, &mut buf, &mut std::io::sink())?;
    Ok(serde_json::from_slice(&buf)?)
}

/// Polls the status until `version` runs confirmed, or `limit` passes.
fn wait_version(
    target: &str,
    owner: &str,
    version: &str,
    limit: Duration,
) -> Result<serde_json::Value> {
    let start = std::time::Instant::now();
    loop {
        let s = status_json(target, owner);
        if let Ok(s) = &s
            && s.get("version").and_then(serde_json::Value::as_str) == Some(version)
            && s.get("trial").and_then(serde_json::Value::as_bool) == Some(false)
        {
            return Ok(s.clone());
        }
        if start.elapsed() > limit {
            return s;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Prints the scorecard: the update's lines, then the audit's table.
pub fn print_scorecard(o: &DemoOutcome, out: &mut dyn Write) -> Result<()> {
    writeln!(out, "\nScorecard: the update")?;
    let w = o.steps.iter().map(|s| s.name.len()).max().unwrap_or(0);
    for s in &o.steps {
        writeln!(
            out,
            "  {}  {:w$}  {}",
            if s.pass { "PASS" } else { "FAIL" },
            s.name,
            s.evidence
        )?;
    }
    writeln!(out, "\nScorecard: keyway audit")?;
    write!(out, "{}", audit::report::table(&o.audit))?;
    let passed = o.steps.iter().filter(|s| s.pass).count();
    let (ap, af, askip) = o.audit.counts();
    writeln!(
        out,
        "\nupdate: {passed} passed, {} failed; audit: {ap} passed, {af} failed, {askip} skipped",
        o.steps.len() - passed
    )?;
    writeln!(out, "HTML report: {}", o.html.display())?;
    Ok(())
}

/// The default demo folder: `target/keyway-demo` under the current directory.
pub fn default_dir() -> PathBuf {
    PathBuf::from("target").join("keyway-demo")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(failing_checks: &[u8]) -> DemoOutcome {
        let checks = audit::CHECKS
            .iter()
            .map(|&(number, id, title)| audit::Check {
                number,
                id,
                title,
                status: if failing_checks.contains(&number) {
                    audit::Status::Fail
                } else {
                    audit::Status::Pass
                },
                summary: format!("summary {number}"),
                evidence: vec![],
                figures: vec![],
            })
            .collect();
        DemoOutcome {
            steps: vec![Score {
                name: ROUTER_UNPLUGGED,
                pass: false,
                evidence: "--no-netns".into(),
            }],
            audit: audit::Report {
                target: "udp:127.0.0.1:1".into(),
                lock: "test".into(),
                started_unix: 0,
                wall_ms: 0,
                checks,
                files: vec![],
            },
            html: PathBuf::new(),
        }
    }

    /// With the router plugged in (--no-netns), the network's own lines
    /// fail but nothing is blamed on the lock; a real failure is named.
    #[test]
    fn a_plugged_in_router_is_not_blamed_on_the_lock() {
        let o = outcome(&[1]);
        assert!(!o.passed());
        assert!(o.lock_failures().is_empty(), "{:?}", o.lock_failures());
        let o = outcome(&[1, 11]);
        let f = o.lock_failures();
        assert_eq!(f.len(), 1, "{f:?}");
        assert!(f[0].contains("audit check 11") && f[0].contains("summary 11"));
    }
}
