//! `keyway hub` as a process: the demo house's first line and its API,
//! `hub serve` across restarts and a SIGKILL, `hub import` of good and
//! corrupt bundles, and the loopback-only API address.

use std::path::PathBuf;
use std::process::Command;

fn keyway() -> Command {
    Command::new(env!("CARGO_BIN_EXE_keyway"))
}

/// Runs `cmd`, which must fail (else panics saying `what`); its stderr.
fn fails(cmd: &mut Command, what: &str) -> String {
    let o = cmd.output().expect("keyway runs");
    assert!(!o.status.success(), "{what}");
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The value of the environment variable `var` that `test` needs; `None`
/// (the test says it skips) when it is unset: `script` sets up a server.
fn env_or_skip(var: &str, test: &str, script: &str) -> Option<String> {
    let v = std::env::var(var).ok();
    if v.is_none() {
        println!("SKIPPED {test}: {var} is unset (eval \"$({script})\")");
    }
    v
}

/// Whether `unshare FLAGS` is permitted here; when it is not, says the
/// test skips and `why` it needs it.
fn unshare_permitted(flags: &str, why: &str) -> bool {
    let ok = Command::new("unshare")
        .args([flags, "true"])
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        eprintln!("SKIP: `unshare {flags}` is not permitted here ({why})");
    }
    ok
}

/// The model a hub takes in, trusting the vendor key that follows.
const MODEL: &str = "--model deadbolt-2 --vendor-domain locks.example --trust";

/// A command line's words (none of these has a space in it).
fn words(line: &str) -> Vec<&str> {
    line.split_whitespace().collect()
}

fn tmp(name: &str) -> PathBuf {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&d);
    d
}

/// The issue: "serve from 127.0.0.1 by default". A wildcard or LAN
/// address is refused, naming the flag that allows it, before the store
/// or the token is touched.
#[test]
fn serve_refuses_a_non_loopback_listen_without_the_flag() {
    let data = tmp("hub-listen");
    for addr in ["0.0.0.0:0", "[::]:0", "192.0.2.1:8080"] {
        let err = fails(
            keyway()
                .args(["hub", "serve", "--data"])
                .arg(&data)
                .args(["--listen", addr]),
            &format!("{addr} was served"),
        );
        assert!(
            err.contains("--listen-insecure-any-address") && err.contains("loopback"),
            "{addr}: {err}"
        );
        assert!(!data.join("api-token").exists(), "{addr}: a token was made");
    }
}

/// The vendor's releases (as the demo house signs them), published into
/// a TUF repository and written as an offline bundle: returns the
/// bundle's path, the repository's first root (what the hub pins) and
/// the vendor's directory.
fn stick(dir: &std::path::Path) -> (PathBuf, PathBuf, PathBuf) {
    stick_at(dir, keyway_tuf::jiff::Timestamp::now())
}

/// [`stick`], its metadata signed at `now` (default expiries: the
/// timestamp lasts 7 days, the snapshot 30, targets and root 365).
fn stick_at(
    dir: &std::path::Path,
    now: keyway_tuf::jiff::Timestamp,
) -> (PathBuf, PathBuf, PathBuf) {
    use keyway_tuf::{Expiries, RepoWriter};
    std::fs::create_dir_all(dir).unwrap();
    let vendor = dir.join("vendor");
    let r = keyway::hub::demo::vendor(&mut std::io::sink(), &vendor).expect("the vendor");
    let mut w = RepoWriter::init(
        &dir.join("repo"),
        &dir.join("tuf-keys"),
        Expiries::default(),
        now,
    )
    .expect("a repository");
    let files: Vec<(String, Vec<u8>)> = [&r.factory, &r.fix, &r.delta]
        .iter()
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read(p).unwrap(),
            )
        })
        .collect();
    w.add_envelopes(&files, now).expect("published");
    let root = dir.join("root.json");
    std::fs::write(&root, w.first_root().unwrap()).unwrap();
    let bundle = dir.join("stick");
    w.write_bundle(&bundle).expect("a bundle");
    (bundle, root, vendor)
}

fn import(
    data: &std::path::Path,
    bundle: &std::path::Path,
    root: &std::path::Path,
    vendor: &std::path::Path,
    extra: &[&str],
) -> std::process::Output {
    keyway()
        .args(["hub", "import"])
        .arg(bundle)
        .arg("--data")
        .arg(data)
        .arg("--tuf-root")
        .arg(root)
        .args(words(MODEL))
        .arg(vendor.join("root.pub"))
        .args(extra)
        .output()
        .expect("keyway runs")
}

/// [`import`] that must succeed; what it printed.
fn import_ok(
    data: &std::path::Path,
    bundle: &std::path::Path,
    root: &std::path::Path,
    vendor: &std::path::Path,
) -> String {
    let o = import(data, bundle, root, vendor, &[]);
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    println!("{text}");
    assert!(
        o.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    text
}

/// [`import`] `--json`: the report and whether it exited 0.
fn import_json(
    data: &std::path::Path,
    bundle: &std::path::Path,
    root: &std::path::Path,
    vendor: &std::path::Path,
) -> (serde_json::Value, bool) {
    let o = import(data, bundle, root, vendor, &["--json"]);
    let v = serde_json::from_slice(&o.stdout).expect("one JSON object");
    println!("{v}");
    (v, o.status.success())
}

/// Flips a byte in the middle of the stick's `deadbolt-2` target whose
/// file name ends with `suffix` (TUF names them `HASH.NAME`).
fn corrupt_target(bundle: &std::path::Path, suffix: &str) {
    let file = std::fs::read_dir(bundle.join("targets/deadbolt-2"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.to_string_lossy().ends_with(suffix))
        .unwrap_or_else(|| panic!("no target *{suffix} on the stick"));
    let mut b = std::fs::read(&file).unwrap();
    let mid = b.len() / 2;
    b[mid] ^= 0x40;
    std::fs::write(&file, b).unwrap();
}

/// A good stick: every release is imported with no network, named one a
/// line; a second import says each is already held.
#[test]
fn import_of_a_good_bundle_names_each_release() {
    let dir = tmp("hub-import-good");
    let (bundle, root, vendor) = stick(&dir);
    let data = dir.join("hub");
    let text = import_ok(&data, &bundle, &root, &vendor);
    for t in [
        "release-1.4.0.suit",
        "release-2.1.0.suit",
        "release-2.1.0-delta.suit",
    ] {
        assert!(
            text.lines()
                .any(|l| l.starts_with(&format!("imported deadbolt-2/{t}: deadbolt-2 "))),
            "{t} not imported:\n{text}"
        );
    }
    assert!(
        text.contains("3 imported, 0 already held, 0 refused"),
        "{text}"
    );
    let (v, ok) = import_json(&data, &bundle, &root, &vendor);
    assert!(ok);
    assert_eq!(v["imported"].as_array().map(Vec::len), Some(0), "{v}");
    assert_eq!(v["already_held"].as_array().map(Vec::len), Some(3), "{v}");
    assert_eq!(v["metadata_verified"], true);
}

/// A corrupt stick: a flipped byte in one release, a release signed by a
/// key the model does not trust (TUF vouches for it; the lock's verifier
/// does not), and a stick whose metadata is not the vendor's. Each
/// refusal is one line with its reason; the rest still import; only a
/// stick from which nothing could be read exits non-zero.
#[test]
fn import_of_a_corrupt_bundle_says_what_it_refused_and_why() {
    use keyway_tuf::jiff::Timestamp;
    let dir = tmp("hub-import-corrupt");
    let (bundle, root, vendor) = stick(&dir);
    // A rogue vendor's release, published by the same repository.
    let rogue = keyway::hub::demo::vendor(&mut std::io::sink(), &dir.join("rogue")).unwrap();
    let mut w = keyway_tuf::RepoWriter::open(
        &dir.join("repo"),
        &dir.join("tuf-keys"),
        keyway_tuf::Expiries::default(),
    )
    .unwrap();
    w.add_envelopes(
        &[(
            "rogue-9.9.9.suit".into(),
            std::fs::read(&rogue.fix).unwrap(),
        )],
        Timestamp::now(),
    )
    .unwrap();
    std::fs::remove_dir_all(&bundle).unwrap();
    w.write_bundle(&bundle).unwrap();
    // A flipped byte in 2.1.0's full image on the stick.
    corrupt_target(&bundle, ".release-2.1.0.suit");

    let data = dir.join("hub");
    let text = import_ok(&data, &bundle, &root, &vendor);
    let refused: Vec<&str> = text.lines().filter(|l| l.starts_with("refused ")).collect();
    assert_eq!(refused.len(), 2, "{text}");
    for (file, why) in [
        ("release-2.1.0.suit", "does not match its signed SHA-256"),
        (
            "rogue-9.9.9.suit",
            "does not verify against model deadbolt-2",
        ),
    ] {
        let head = format!("refused deadbolt-2/{file}:");
        assert!(
            refused
                .iter()
                .any(|l| l.starts_with(&head) && l.contains(why)),
            "{text}"
        );
    }
    for t in ["release-1.4.0.suit", "release-2.1.0-delta.suit"] {
        assert!(text.contains(&format!("imported deadbolt-2/{t}")), "{text}");
    }
    let (v, _) = import_json(&data, &bundle, &root, &vendor);
    let stages: Vec<&str> = v["refused"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["stage"].as_str())
        .collect();
    assert!(
        stages.contains(&"tuf") && stages.contains(&"envelope"),
        "{v}"
    );

    // A stick whose metadata another repository signed: nothing is read.
    let other = dir.join("other");
    let (other_stick, _, _) = stick(&other);
    let o = import(&dir.join("hub2"), &other_stick, &root, &vendor, &[]);
    let text = String::from_utf8_lossy(&o.stdout);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{text}");
    assert!(err.contains("nothing could be read"), "{err}");
    assert!(text.contains("refused metadata/"), "{text}");
    assert!(text.contains("0 imported"), "{text}");
}

/// An old stick (signed 10 days ago: its 7-day timestamp has expired, its
/// snapshot and targets have not): the releases are imported, with a
/// warning line naming when the timestamp expired, and `--json` carries
/// `"stale"`; each TUF refusal in `--json` carries keyway-tuf's code.
#[test]
fn import_of_an_old_stick_warns_that_it_is_stale() {
    use keyway_tuf::jiff::{SignedDuration, Timestamp};
    let dir = tmp("hub-import-stale");
    let then = Timestamp::now() - SignedDuration::from_hours(240);
    let (bundle, root, vendor) = stick_at(&dir, then);
    // A flipped byte in one target: a TUF refusal with its code.
    corrupt_target(&bundle, ".release-2.1.0-delta.suit");
    let data = dir.join("hub");
    let text = import_ok(&data, &bundle, &root, &vendor);
    let expected = (then + SignedDuration::from_hours(7 * 24)).to_string();
    let warn = text
        .lines()
        .find(|l| l.starts_with("the bundle is old: its timestamp expired at "))
        .unwrap_or_else(|| panic!("no staleness warning: {text}"));
    assert!(
        warn.contains("imported anyway") && warn.contains("anti-rollback"),
        "{warn}"
    );
    let at = warn
        .trim_start_matches("the bundle is old: its timestamp expired at ")
        .split(';')
        .next()
        .unwrap();
    let at: Timestamp = at.parse().expect("a timestamp in the warning");
    let want: Timestamp = expected.parse().unwrap();
    assert!(
        at.duration_since(want).abs() < SignedDuration::from_secs(5),
        "{at} vs {want}"
    );
    assert!(
        text.contains("imported deadbolt-2/release-1.4.0.suit"),
        "{text}"
    );
    let data2 = dir.join("hub2");
    let (v, _) = import_json(&data2, &bundle, &root, &vendor);
    let ts = v["stale"]["timestamp_expired_at"]
        .as_str()
        .unwrap_or_else(|| panic!("no \"stale\" in --json: {v}"));
    let ts: Timestamp = ts.parse().unwrap();
    assert!(
        ts.duration_since(want).abs() < SignedDuration::from_secs(5),
        "{v}"
    );
    assert!(v["stale"]["snapshot_expired_at"].is_null(), "{v}");
    let tuf: Vec<&serde_json::Value> = v["refused"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["stage"] == "tuf")
        .collect();
    assert_eq!(tuf.len(), 1, "{v}");
    assert_eq!(tuf[0]["code"], "target_hash", "{v}");
    assert!(
        tuf[0]["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{v}"
    );
    // A fresh stick has no "stale" and no warning.
    let (fresh, froot, fvendor) = stick(&dir.join("fresh"));
    let text = import_ok(&dir.join("hub3"), &fresh, &froot, &fvendor);
    assert!(!text.contains("the bundle is old"), "{text}");
    let (v, _) = import_json(&dir.join("hub4"), &fresh, &froot, &fvendor);
    assert!(v.get("stale").is_none(), "{v}");
}

/// A full disk during an import: a clear error that names the disk (its
/// mount point), and nothing lost: once there is room, the same import
/// completes. Runs in a user and mount namespace with a 200 KiB tmpfs
/// for the hub's directory; skips where `unshare -rm` is refused.
#[test]
fn import_onto_a_full_disk_names_the_disk_and_loses_nothing() {
    if !unshare_permitted("-rm", "needed to mount a small tmpfs") {
        return;
    }
    let dir = tmp("hub-import-full");
    let (bundle, root, vendor) = stick(&dir);
    let disk = dir.join("disk");
    std::fs::create_dir_all(&disk).unwrap();
    let data = disk.join("hub");
    let cmd = |extra: &str| {
        format!(
            "{} hub import {} --data {} --tuf-root {} --model deadbolt-2 --vendor-domain locks.example --trust {} {extra}",
            env!("CARGO_BIN_EXE_keyway"),
            bundle.display(),
            data.display(),
            root.display(),
            vendor.join("root.pub").display()
        )
    };
    let script = format!(
        "set -u; mount -t tmpfs -o size=200k tmpfs {disk} || exit 99; \
         {first}; echo \"first-rc=$?\" >&2; \
         mount -o remount,size=4m {disk} || exit 98; \
         {second}; echo \"second-rc=$?\" >&2",
        disk = disk.display(),
        first = cmd(""),
        second = cmd("--json"),
    );
    let o = Command::new("unshare")
        .args(["-rm", "sh", "-c", &script])
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{out}\n{err}");
    assert!(
        err.contains("first-rc=1"),
        "the full disk was not an error:\n{out}\n{err}"
    );
    assert!(
        err.contains(&format!(
            "the disk mounted at {} (tmpfs) is full",
            disk.display()
        )) && err.contains("hub.sqlite"),
        "{err}"
    );
    assert!(err.contains("second-rc=0"), "{out}\n{err}");
    let last = out.lines().last().unwrap_or("");
    let v: serde_json::Value = serde_json::from_str(last).expect("the second import's JSON");
    let (imported, held) = (
        v["imported"].as_array().map_or(0, Vec::len),
        v["already_held"].as_array().map_or(0, Vec::len),
    );
    assert_eq!(imported + held, 3, "{v}");
    assert_eq!(v["refused"].as_array().map(Vec::len), Some(0), "{v}");
}

/// The hub's JSON API, as a client sees it: (status, body).
fn api(
    method: &str,
    base: &str,
    token: Option<&str>,
    path: &str,
    body: Option<serde_json::Value>,
) -> (u16, serde_json::Value) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(std::time::Duration::from_secs(30)))
        .build()
        .into();
    let url = format!("{base}{path}");
    let auth = token.map(|t| format!("Bearer {t}"));
    let r = match (method, body) {
        ("GET", _) => {
            let mut q = agent.get(&url);
            if let Some(a) = &auth {
                q = q.header("Authorization", a);
            }
            q.call()
        }
        (_, b) => {
            let mut q = agent.post(&url);
            if let Some(a) = &auth {
                q = q.header("Authorization", a);
            }
            q.send_json(b.unwrap_or(serde_json::json!({})))
        }
    };
    let mut r = r.unwrap_or_else(|e| panic!("{method} {url}: {e}"));
    let status = r.status().as_u16();
    let v = r
        .body_mut()
        .read_json::<serde_json::Value>()
        .unwrap_or(serde_json::Value::Null);
    (status, v)
}

/// A running `keyway` child and its first line's URL and token; killed
/// when dropped.
/// `cmd` started, its stderr inherited; the lines of its stdout as they
/// come.
fn spawn_lines(cmd: &mut Command) -> (std::process::Child, std::sync::mpsc::Receiver<String>) {
    use std::io::BufRead as _;
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("{cmd:?} does not start: {e}"));
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    (child, rx)
}

struct Running {
    child: std::process::Child,
    base: String,
    token: String,
    rest: std::sync::mpsc::Receiver<String>,
}

impl Running {
    fn start(mut cmd: Command) -> Running {
        let (mut child, rx) = spawn_lines(&mut cmd);
        let first = rx
            .recv_timeout(std::time::Duration::from_secs(240))
            .unwrap_or_else(|_| {
                let _ = child.kill();
                panic!("no first line from {cmd:?}")
            });
        let (base, token) = keyway::hub::cli::parse_first_line(&first)
            .unwrap_or_else(|| panic!("the first line does not parse: {first:?}"));
        Running {
            child,
            base,
            token,
            rest: rx,
        }
    }

    /// `METHOD PATH` with the token and `body`: the status and the JSON.
    fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> (u16, serde_json::Value) {
        api(method, &self.base, Some(&self.token), path, body)
    }

    /// `GET PATH` with the token.
    fn get(&self, path: &str) -> (u16, serde_json::Value) {
        self.call("GET", path, None)
    }

    fn signal(&mut self, sig: i32) -> std::process::ExitStatus {
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(self.child.id() as i32, sig) };
        self.child.wait().unwrap()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `keyway hub demo`: the first line is the address and the token; the
/// API answers with that token (and refuses without it); every lock of
/// the house is paired and runs 1.4.0, and the hub holds the vendor's
/// three releases from its TUF repository; SIGTERM stops it cleanly.
#[test]
fn demo_first_line_parses_and_the_api_answers_with_its_token() {
    let dir = tmp("hub-demo");
    let mut cmd = keyway();
    cmd.args(words("hub demo --locks 3 --listen 127.0.0.1:0 --dir"))
        .arg(&dir);
    let mut run = Running::start(cmd);
    let (s, _) = api("GET", &run.base, None, "/api/locks", None);
    assert_eq!(s, 401, "the API answered without the token");
    let (s, v) = run.get("/api/locks");
    assert_eq!(s, 200, "{v}");
    let locks = v["locks"].as_array().expect("locks");
    let names: Vec<&str> = locks.iter().filter_map(|l| l["name"].as_str()).collect();
    assert_eq!(names, ["front door", "back door", "garage"], "{v}");
    for l in locks {
        assert!(!l["device_key"].is_null(), "not paired: {l}");
        assert_eq!(l["snapshot"]["version"], "1.4.0", "{l}");
    }
    let (s, v) = run.get("/api/releases");
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["releases"].as_array().map(Vec::len), Some(3), "{v}");
    // The web UI is on the same port: its login page, and no page behind it
    // without a session.
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .build()
        .into();
    let mut login = agent
        .get(format!("{}/login", run.base))
        .call()
        .expect("GET /login");
    assert_eq!(login.status().as_u16(), 200);
    let page = login.body_mut().read_to_string().expect("login page");
    assert!(page.contains("<form"), "{page}");
    let locks_page = agent.get(format!("{}/", run.base)).call().expect("GET /");
    assert_eq!(
        locks_page.status().as_u16(),
        303,
        "the locks page without a session must send the browser to log in"
    );
    let (_, u) = run.get("/api/locks/1/updates");
    assert_eq!(u["updates"][0]["version"], "2.1.0", "{u}");
    assert_eq!(u["updates"][0]["cves"][0]["id"], "CVE-2099-0001", "{u}");
    // The guide names the commands it promises.
    let guide: Vec<String> = run.rest.try_iter().collect();
    let guide = guide.join("\n");
    assert!(guide.contains("/api/locks/1/consents"), "{guide}");
    let st = run.signal(libc::SIGTERM);
    assert!(st.success(), "the demo did not stop cleanly: {st:?}");
}

/// The demo house with no network at all (`unshare -rn`: loopback only,
/// down at first): the locks, the repository and the hub all live on
/// loopback, so it starts, syncs and pairs every lock.
#[test]
fn demo_runs_with_no_network() {
    if !unshare_permitted("-rn", "needed for a house with no network") {
        return;
    }
    let dir = tmp("hub-demo-netns");
    let mut cmd = Command::new("unshare");
    cmd.args(["-rn", env!("CARGO_BIN_EXE_keyway")])
        .args(words("hub demo --locks 2 --listen 127.0.0.1:8080 --dir"))
        .arg(&dir);
    let run = Running::start(cmd);
    assert!(
        run.base.starts_with("http://127.0.0.1:8080"),
        "{}",
        run.base
    );
    let guide = run
        .rest
        .recv_timeout(std::time::Duration::from_secs(10))
        .unwrap_or_default();
    assert!(
        guide.starts_with("The demo house: 2 locks paired"),
        "{guide}"
    );
}

/// A hub with its data dir, one simulated lock (bolt thrown, so an
/// install waits), and a bundle of the vendor's releases.
struct Served {
    dir: PathBuf,
    data: PathBuf,
    bundle: PathBuf,
    root: PathBuf,
    vendor: PathBuf,
    lock: keyway::hub::fleet::FleetLock,
}

impl Served {
    fn new(name: &str) -> Served {
        let dir = tmp(name);
        let (bundle, root, vendor) = stick(&dir);
        let p = keyway::hub::fleet::provision(
            &vendor,
            &dir.join("locks"),
            1,
            1,
            &mut std::io::sink(),
            false,
        )
        .unwrap();
        let lock = keyway::hub::fleet::start(&p, false).unwrap().pop().unwrap();
        Served {
            data: dir.join("hub"),
            dir,
            bundle,
            root,
            vendor,
            lock,
        }
    }

    fn serve(&self) -> Running {
        self.serve_with(&[])
    }

    fn serve_with(&self, extra: &[&str]) -> Running {
        let mut cmd = keyway();
        cmd.args(["hub", "serve", "--data"])
            .arg(&self.data)
            .args(words("--listen 127.0.0.1:0 --tick-every 3600 --tuf-root"))
            .arg(&self.root)
            .args(words(MODEL))
            .arg(self.vendor.join("root.pub"))
            .args(extra);
        Running::start(cmd)
    }

    /// Imports the bundle, adds and pairs the lock, consents to 2.1.0:
    /// returns the release consented to.
    fn populate(&self, run: &Running) -> String {
        let (s, v) = run.call(
            "POST",
            "/api/imports",
            Some(serde_json::json!({"path": self.bundle.display().to_string()})),
        );
        assert_eq!(s, 200, "{v}");
        let (s, v) = run.call("POST", "/api/locks", Some(
                serde_json::json!({"name": self.lock.name, "address": self.lock.address, "class": "deadbolt-2"}),
            ));
        assert!(s == 200 || s == 201, "{s} {v}");
        let id = v["lock"]["id"]
            .as_i64()
            .or(v["id"].as_i64())
            .expect("a lock id");
        keyway::hub::fleet::press_button(self.lock.control, 60).unwrap();
        let (s, v) = run.call(
            "POST",
            &format!("/api/locks/{id}/pair"),
            Some(serde_json::json!({"setup_code": self.lock.setup_code})),
        );
        assert_eq!(s, 200, "{v}");
        let (_, u) = run.get(&format!("/api/locks/{id}/updates"));
        let release = u["updates"][0]["release"]
            .as_str()
            .expect("an update")
            .to_owned();
        let (s, v) = run.call(
            "POST",
            &format!("/api/locks/{id}/consents"),
            Some(serde_json::json!({"release": release, "decision": "accept"})),
        );
        assert!(s == 200 || s == 202, "{s} {v}");
        release
    }

    /// What must survive: the lock (paired), the releases, the consent.
    fn assert_kept(&self, run: &Running, release: &str) {
        let (_, v) = run.get("/api/locks");
        let locks = v["locks"].as_array().expect("locks");
        assert_eq!(locks.len(), 1, "{v}");
        assert_eq!(locks[0]["name"], self.lock.name.as_str());
        assert!(
            !locks[0]["device_key"].is_null(),
            "the pairing was lost: {v}"
        );
        let (_, v) = run.get("/api/releases");
        assert_eq!(v["releases"].as_array().map(Vec::len), Some(3), "{v}");
        let (_, v) = run.get("/api/locks/1/consents");
        let consents = v["consents"].as_array().expect("consents");
        assert!(
            consents
                .iter()
                .any(|c| c["release"] == release && c["decision"] == "accept"),
            "the consent was lost: {v}"
        );
    }
}

/// `hub serve` stopped (SIGTERM) and started again on the same data
/// dir: the same token, and its lock, releases and consent kept.
#[test]
fn serve_restarts_on_its_data_dir_with_its_locks_releases_and_consents() {
    let s = Served::new("hub-restart");
    let mut run = s.serve();
    let release = s.populate(&run);
    let token = run.token.clone();
    let st = run.signal(libc::SIGTERM);
    assert!(st.success(), "SIGTERM: {st:?}");
    drop(run);
    let run = s.serve();
    assert_eq!(run.token, token, "the token changed across a restart");
    s.assert_kept(&run, &release);
    let _ = &s.dir;
}

/// SIGKILL of `keyway hub serve` while it pushes an update, then a
/// restart: no consent, release or lock is lost (each was durable before
/// the call that made it returned).
#[test]
fn sigkill_mid_update_then_restart_loses_no_consent_or_release() {
    let s = Served::new("hub-sigkill");
    let mut run = s.serve();
    let release = s.populate(&run);
    // Kill it as soon as the push is under way.
    let t0 = std::time::Instant::now();
    let mut phase = String::new();
    while t0.elapsed() < std::time::Duration::from_secs(20) {
        let (_, p) = run.get("/api/locks/1/progress");
        phase = p["progress"]["phase"].as_str().unwrap_or("").to_owned();
        if matches!(phase.as_str(), "uploading" | "installing" | "postponed") {
            break;
        }
    }
    println!("SIGKILL during the push's {phase:?} phase");
    assert!(
        matches!(phase.as_str(), "uploading" | "installing" | "postponed"),
        "the push never got under way in 20 s (last phase {phase:?}): the kill would not test a push"
    );
    let st = run.signal(libc::SIGKILL);
    assert!(!st.success());
    drop(run);
    let run = s.serve();
    s.assert_kept(&run, &release);
}

/// `hub serve --mqtt`: the hub publishes Home Assistant discovery for its
/// lock on the broker, under the given prefix, and the update entity's
/// `release_url` is the hub's own address. Needs a broker:
/// `eval "$(scripts/mosquitto.sh)"` (KEYWAY_TEST_MQTT).
#[test]
fn serve_with_mqtt_publishes_discovery_for_its_lock() {
    let Some(url) = env_or_skip(
        "KEYWAY_TEST_MQTT",
        "serve_with_mqtt_publishes_discovery_for_its_lock",
        "scripts/mosquitto.sh",
    ) else {
        return;
    };
    let s = Served::new("hub-mqtt");
    let prefix = format!("kwtest{}", std::process::id());
    let mut run = s.serve_with(&["--mqtt", &url, "--mqtt-prefix", &prefix]);
    let release = s.populate(&run);
    // A Home Assistant stand-in: everything under the prefix and the
    // hub's state topics.
    let u = url.trim_start_matches("mqtt://");
    let (host, port) = u.rsplit_once(':').unwrap_or((u, "1883"));
    let mut mo = rumqttc::MqttOptions::new(
        format!("hub-cli-test-{}", std::process::id()),
        host,
        port.parse().unwrap(),
    );
    mo.set_keep_alive(std::time::Duration::from_secs(5));
    let (client, mut conn) = rumqttc::Client::new(mo, 64);
    client
        .subscribe(format!("{prefix}/#"), rumqttc::QoS::AtLeastOnce)
        .unwrap();
    client
        .subscribe("keyway/lock/1/update/state", rumqttc::QoS::AtLeastOnce)
        .unwrap();
    let (mut lock_config, mut update_config, mut release_url) = (None, None, None);
    let t0 = std::time::Instant::now();
    while t0.elapsed() < std::time::Duration::from_secs(30)
        && (lock_config.is_none() || update_config.is_none() || release_url.is_none())
    {
        let Ok(ev) = conn.recv_timeout(std::time::Duration::from_secs(1)) else {
            continue;
        };
        let Ok(rumqttc::Event::Incoming(rumqttc::Packet::Publish(p))) = ev else {
            continue;
        };
        let v: serde_json::Value = serde_json::from_slice(&p.payload).unwrap_or_default();
        if p.topic == format!("{prefix}/lock/keyway/lock_1/config") {
            lock_config = Some(v);
        } else if p.topic == format!("{prefix}/update/keyway/lock_1/config") {
            update_config = Some(v);
        } else if p.topic == "keyway/lock/1/update/state"
            && let Some(r) = v["release_url"].as_str()
            && r.starts_with(&run.base)
        {
            release_url = Some(r.to_owned());
        }
    }
    let lock_config = lock_config.expect("no lock discovery under the prefix");
    assert!(
        update_config.is_some(),
        "no update discovery under the prefix"
    );
    assert_eq!(
        lock_config["state_topic"], "keyway/lock/1/lock/state",
        "{lock_config}"
    );
    assert_eq!(
        release_url.as_deref(),
        Some(format!("{}/releases/{release}", run.base).as_str()),
        "release_url is not the hub's own page"
    );
    let st = run.signal(libc::SIGTERM);
    assert!(st.success(), "SIGTERM: {st:?}");
}

/// `hub demo --dir` on a folder the demo did not make (not empty, no
/// `.keyway-hub-demo` marker) refuses, says what to do, and leaves every
/// file; a folder a demo made is emptied and reused.
#[test]
fn demo_refuses_to_empty_a_folder_it_did_not_make() {
    let dir = tmp("hub-demo-foreign");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("thesis.tex"), "years of work").unwrap();
    let err = fails(
        keyway()
            .args(["hub", "demo", "--listen", "127.0.0.1:0", "--dir"])
            .arg(&dir),
        "the demo ran in a foreign folder",
    );
    assert!(
        err.contains("not empty") && err.contains("--dir"),
        "the refusal does not say what to do: {err}"
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("thesis.tex")).unwrap(),
        "years of work"
    );
    // A folder with the marker (what a previous demo left) is emptied.
    let ours = tmp("hub-demo-ours");
    std::fs::create_dir_all(&ours).unwrap();
    std::fs::write(ours.join(keyway::hub::demo::MARKER), "").unwrap();
    std::fs::write(ours.join("stale"), "old run").unwrap();
    keyway::hub::demo::clear_dir(&ours).unwrap();
    assert!(!ours.join("stale").exists(), "the old run was kept");
    assert!(ours.join(keyway::hub::demo::MARKER).is_file());
    // An empty or missing folder is made a demo folder.
    let fresh = tmp("hub-demo-fresh");
    keyway::hub::demo::clear_dir(&fresh).unwrap();
    assert!(fresh.join(keyway::hub::demo::MARKER).is_file());
    let _ = std::fs::remove_dir_all(&dir);
}

/// Bare `keyway hub` (no arguments): the demo house in
/// `./target/keyway-hub-demo`, its first stdout line the API on port 8080
/// and the token. Run with no network (`unshare -rn`, so 8080 is free)
/// and its working directory in a temporary folder.
#[test]
fn bare_keyway_hub_starts_the_demo_on_port_8080() {
    if !unshare_permitted("-rn", "needed so that port 8080 is free") {
        return;
    }
    let cwd = tmp("hub-bare");
    std::fs::create_dir_all(&cwd).unwrap();
    // unshare execs keyway (no fork): killing the child kills the hub.
    let (mut child, rx) = spawn_lines(
        Command::new("unshare")
            .args(["-rn", env!("CARGO_BIN_EXE_keyway"), "hub"])
            .current_dir(&cwd),
    );
    let first = rx.recv_timeout(std::time::Duration::from_secs(240));
    let _ = child.kill();
    let _ = child.wait();
    let first = first.expect("no first line from bare `keyway hub`");
    assert!(
        first.starts_with("keyway hub: http://127.0.0.1:8080/ token "),
        "{first:?}"
    );
    assert!(
        cwd.join("target/keyway-hub-demo")
            .join(keyway::hub::demo::MARKER)
            .is_file(),
        "the demo house is not in ./target/keyway-hub-demo"
    );
}

/// `hub serve --store postgres://…`: stopped and started again, the hub
/// keeps its lock and the consent (they live in PostgreSQL). Needs a
/// server: `eval "$(scripts/postgres.sh)"` (KEYWAY_TEST_POSTGRES).
#[test]
fn serve_on_postgres_restarts_with_its_lock_and_consent() {
    let Some(pg) = env_or_skip(
        "KEYWAY_TEST_POSTGRES",
        "serve_on_postgres_restarts_with_its_lock_and_consent",
        "scripts/postgres.sh",
    ) else {
        return;
    };
    // A schema of its own (other tests share the database), dropped after.
    let schema = format!("kwcli_{}", std::process::id());
    let mut c =
        postgres::Client::connect(&pg, postgres::NoTls).expect("connect to KEYWAY_TEST_POSTGRES");
    c.batch_execute(&format!(
        "DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}"
    ))
    .unwrap();
    let sep = if pg.contains('?') { '&' } else { '?' };
    let url = format!("{pg}{sep}options=-c%20search_path%3D{schema}");
    let s = Served::new("hub-postgres");
    let mut run = s.serve_with(&["--store", &url]);
    let release = s.populate(&run);
    let st = run.signal(libc::SIGTERM);
    assert!(st.success(), "SIGTERM: {st:?}");
    drop(run);
    let run = s.serve_with(&["--store", &url]);
    s.assert_kept(&run, &release);
    // Nothing in SQLite: the hub kept it all in PostgreSQL.
    assert!(
        !s.data.join(keyway::hub::cli::SQLITE_FILE).exists(),
        "a SQLite store was made beside --store"
    );
    drop(run);
    let _ = c.batch_execute(&format!("DROP SCHEMA {schema} CASCADE"));
}
