//! The hub and a fleet of simulated locks: one rollout to N locks, each
//! paired and with the owner's accepted consent, K at a time; SQLite and
//! PostgreSQL side by side.
//!
//! The locks run in a process of their own (this example re-run as
//! `--locks-process`; `keyway::hub::fleet::serve`): each is the real
//! lock (`keyway-lock`'s shell, the agent, the device core) on its own
//! file-backed simulated flash, serving SMP on a loopback UDP port. The
//! hub is this process: the engine (`keyway_hub::engine::Hub`) over the
//! store and the UDP connector (`keyway::hub::link`), exactly as
//! `keyway hub serve` builds it, driven through the engine's calls (the
//! JSON API is a thin layer over them and is left out: an accepted
//! consent through the API starts its push at once, and this run wants
//! every consent in before one rollout). So this process's RSS is the
//! hub's, not the locks' flash images.
//!
//! Each size N runs in a fresh process (peak RSS is per process):
//! provision and start N locks, add and pair each (its button pressed,
//! then its setup code), record an accepted consent for 2.1.0 on each,
//! then time a rollout to one lock alone (t1) and a rollout to the other
//! N-1 in one wave with concurrency K (T). Reported: T against
//! t1 x (N-1) / K, the hub's RSS after pairing and its peak, RSS per lock,
//! disk per simulated lock.
//!
//! ```sh
//! cargo run --release -p keyway --example hub_fleet -- --locks 10,100,1000 --concurrency 16
//! eval "$(scripts/postgres.sh)"    # a throwaway PostgreSQL; exports KEYWAY_TEST_POSTGRES
//! cargo run --release -p keyway --example hub_fleet -- --locks 10,100,1000 --concurrency 16 \
//!     --store sqlite --store "$KEYWAY_TEST_POSTGRES"
//! ```

use std::io::{BufRead as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, anyhow, bail};
use keyway::hub::fleet;
use keyway::hub::link::{HubIdentity, UdpConnector};
use keyway_hub::engine::{Hub, HubConfig, Incoming, SystemClock};
use keyway_hub::model::{
    ConsentSource, Decision, ModelAnchors, NewLock, ReleaseOrigin, RolloutOutcome, RolloutState,
};
use keyway_hub::store::{PgStore, SqliteStore, Store};
use serde_json::{Value, json};

fn arg(args: &[String], name: &str) -> Vec<String> {
    args.windows(2)
        .filter(|w| w[0] == name)
        .map(|w| w[1].clone())
        .collect()
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--locks-process") {
        let [_, vendor, dir, n] = args.as_slice() else {
            bail!("--locks-process VENDOR DIR N");
        };
        return fleet::serve(
            Path::new(vendor),
            Path::new(dir),
            n.parse()?,
            &mut std::io::stdout(),
        );
    }
    let k: usize = arg(&args, "--concurrency")
        .first()
        .map_or(Ok(16), |s| s.parse())?;
    let stores = {
        let s = arg(&args, "--store");
        if s.is_empty() {
            vec!["sqlite".to_owned()]
        } else {
            s
        }
    };
    if let Some(n) = arg(&args, "--one").first() {
        let r = one(n.parse()?, k, &stores[0])?;
        println!("{r}");
        return Ok(());
    }
    let sizes: Vec<usize> = arg(&args, "--locks")
        .first()
        .map_or("10,100,1000", String::as_str)
        .split(',')
        .map(str::parse)
        .collect::<Result<_, _>>()?;
    let exe = std::env::current_exe()?;
    println!(
        "hub_fleet: {} cores, concurrency K = {k}",
        std::thread::available_parallelism().map_or(0, |p| p.get())
    );
    println!(
        "{:<10} {:>5} {:>9} {:>9} {:>9} {:>10} {:>6} {:>9} {:>9} {:>9} {:>9} {:>9}",
        "store",
        "N",
        "t1 (s)",
        "T (s)",
        "t1*(N-1)/K",
        "T/expected",
        "ok",
        "pair (s)",
        "RSS0 MiB",
        "RSS MiB",
        "peak MiB",
        "KiB/lock"
    );
    let mut rows = Vec::new();
    for store in &stores {
        for &n in &sizes {
            let o = Command::new(&exe)
                .args(["--one", &n.to_string(), "--concurrency", &k.to_string()])
                .args(["--store", store])
                .stderr(Stdio::inherit())
                .output()
                .context("running one size")?;
            let text = String::from_utf8_lossy(&o.stdout);
            let Some(v) = text
                .lines()
                .last()
                .and_then(|l| serde_json::from_str::<Value>(l).ok())
            else {
                bail!("the run with {n} locks on {store} failed: {text}");
            };
            let f = |k: &str| v[k].as_f64().unwrap_or(f64::NAN);
            let name = if store == "sqlite" {
                "sqlite"
            } else {
                "postgres"
            };
            println!(
                "{:<10} {:>5} {:>9.2} {:>9.2} {:>9.2} {:>10.2} {:>6} {:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>9.1}",
                name,
                n,
                f("t1_s"),
                f("rollout_s"),
                f("expected_s"),
                f("ratio"),
                format!("{}/{}", v["updated"], n.saturating_sub(1)),
                f("pair_s"),
                f("rss_base_kib") / 1024.0,
                f("rss_paired_kib") / 1024.0,
                f("rss_peak_kib") / 1024.0,
                f("kib_per_lock"),
            );
            rows.push(v);
        }
    }
    println!(
        "disk per simulated lock: {}",
        rows.iter()
            .map(|v| format!(
                "{:.0} KiB (N={})",
                v["disk_per_lock_bytes"].as_f64().unwrap_or(0.0) / 1024.0,
                v["n"]
            ))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!("{}", serde_json::to_string(&rows)?);
    Ok(())
}

/// A fresh PostgreSQL database for one run, beside the one `url` names
/// (`psql` makes it); `url` itself when that fails.
fn fresh_db(url: &str, name: &str) -> String {
    let made = Command::new("psql")
        .args([url, "-q", "-c", &format!("DROP DATABASE IF EXISTS {name}")])
        .status()
        .is_ok_and(|s| s.success())
        && Command::new("psql")
            .args([url, "-q", "-c", &format!("CREATE DATABASE {name}")])
            .status()
            .is_ok_and(|s| s.success());
    if !made {
        eprintln!("hub_fleet: could not make database {name}; using {url} as it is");
        return url.to_owned();
    }
    // Replace the path's database name (postgresql://user@/DB?host=…).
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let (auth_host, tail) = rest.split_once('/').unwrap_or((rest, ""));
            let query = tail
                .split_once('?')
                .map_or(String::new(), |(_, q)| format!("?{q}"));
            format!("{scheme}://{auth_host}/{name}{query}")
        }
        None => url.to_owned(),
    }
}

fn rss() -> (u64, u64) {
    fleet::rss_kib(std::process::id()).unwrap_or((0, 0))
}

/// One size: N locks, one rollout; returns the figures as JSON.
fn one(n: usize, k: usize, store_arg: &str) -> Result<Value> {
    fleet::raise_fd_limit(4 * n as u64 + 256)?;
    let label = if store_arg == "sqlite" {
        "sqlite"
    } else {
        "postgres"
    };
    let work = PathBuf::from("target")
        .join("hub-fleet")
        .join(format!("{label}-{n}"));
    if work.exists() {
        std::fs::remove_dir_all(&work)?;
    }
    std::fs::create_dir_all(&work)?;
    let work = work.canonicalize()?;
    let vendor = work.join("vendor");
    let r = keyway::hub::demo::vendor(&mut std::io::sink(), &vendor)?;

    // The locks, in their own process.
    let mut locks_proc = Command::new(std::env::current_exe()?)
        .arg("--locks-process")
        .arg(&vendor)
        .arg(work.join("locks"))
        .arg(n.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()?;
    let mut doors = Vec::with_capacity(n);
    let mut ready = Value::Null;
    for line in std::io::BufReader::new(locks_proc.stdout.take().context("locks' stdout")?).lines()
    {
        let v: Value = serde_json::from_str(&line?)?;
        if v.get("ready").is_some() {
            ready = v;
            break;
        }
        doors.push(v);
    }
    if doors.len() != n {
        bail!("the locks process started {} of {n} locks", doors.len());
    }

    // The hub.
    let store: Arc<dyn Store> = if store_arg == "sqlite" {
        Arc::new(SqliteStore::open(work.join("hub.sqlite")).map_err(|e| anyhow!("{e}"))?)
    } else {
        let url = fresh_db(store_arg, &format!("keyway_fleet_{n}"));
        Arc::new(PgStore::connect(&url).map_err(|e| anyhow!("{e}"))?)
    };
    let identity = HubIdentity::load_or_create(&work.join("hub")).map_err(|e| anyhow!("{e}"))?;
    let hub = Arc::new(Hub::new(
        store,
        // A loaded machine (N locks and the hub on the same cores) answers
        // slower than a lock alone: 2 s a try, as h-link suggests.
        Arc::new(UdpConnector::new(identity).with_retry(Duration::from_secs(2), 5)),
        Arc::new(SystemClock),
        HubConfig {
            concurrency: k,
            ..HubConfig::default()
        },
    ));
    hub.put_model(&ModelAnchors {
        class: "deadbolt-2".into(),
        vendor_domain: "locks.example".into(),
        trust_pems: vec![std::fs::read_to_string(&r.root_pub)?],
        threshold: 1,
    })?;
    let incoming = [&r.factory, &r.fix, &r.delta]
        .iter()
        .map(|p| -> Result<Incoming> {
            Ok(Incoming {
                target: format!(
                    "deadbolt-2/{}",
                    p.file_name().unwrap_or_default().to_string_lossy()
                ),
                bytes: std::fs::read(p)?,
                origin: ReleaseOrigin::Bundle {
                    path: vendor.display().to_string(),
                },
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let ingested = hub.ingest(incoming)?;
    if ingested.imported.len() != 3 {
        bail!(
            "the hub took {} of 3 releases: {:?}",
            ingested.imported.len(),
            ingested.refused
        );
    }
    let (rss_base, _) = rss();

    // Add and pair every lock (4 at a time: pairing is the lock's PBKDF2).
    let t = Instant::now();
    let next = std::sync::atomic::AtomicUsize::new(0);
    let ids = std::sync::Mutex::new(vec![0i64; n]);
    std::thread::scope(|s| -> Result<()> {
        let jobs: Vec<_> = (0..4)
            .map(|_| {
                s.spawn(|| -> Result<()> {
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(d) = doors.get(i) else { return Ok(()) };
                        let lock = hub.add_lock(&NewLock {
                            name: d["name"].as_str().unwrap_or("").into(),
                            address: d["address"].as_str().unwrap_or("").into(),
                            class: "deadbolt-2".into(),
                        })?;
                        let control = d["control"].as_str().unwrap_or("").parse()?;
                        fleet::press_button(control, 120)?;
                        hub.pair(lock.id, d["setup_code"].as_str().unwrap_or(""))
                            .map_err(|e| anyhow!("pairing {}: {e}", d["name"]))?;
                        ids.lock().map_err(|_| anyhow!("poisoned"))?[i] = lock.id;
                    }
                })
            })
            .collect();
        for j in jobs {
            j.join()
                .map_err(|_| anyhow!("a pairing thread panicked"))??;
        }
        Ok(())
    })?;
    let pair_s = t.elapsed().as_secs_f64();
    let ids = ids.into_inner().map_err(|_| anyhow!("poisoned"))?;
    let (rss_paired, _) = rss();

    // The owner's consent on each lock.
    let mut release = None;
    for &id in &ids {
        let offer = hub
            .updates(id)?
            .into_iter()
            .next()
            .ok_or_else(|| anyhow!("lock {id} has no update"))?;
        hub.consent(id, offer.release, Decision::Accept, ConsentSource::Owner)?;
        release = Some(offer.release);
    }
    let release = release.ok_or_else(|| anyhow!("no locks"))?;

    // One lock alone, then the rest in one wave, K at a time.
    let t = Instant::now();
    let one = hub.create_rollout(release, 1, 100, Some(&ids[..1]))?;
    let one = hub.run_rollout(one.id)?;
    let t1 = t.elapsed().as_secs_f64();
    if one.locks.first().map(|l| &l.1) != Some(&RolloutOutcome::Updated) {
        bail!("the one-lock rollout did not update it: {:?}", one.locks);
    }
    let rest = &ids[1..];
    let t = Instant::now();
    let mut updated = 0;
    let mut failed = Vec::new();
    if !rest.is_empty() {
        let ro = hub.create_rollout(release, rest.len() as u32, 100, Some(rest))?;
        let ro = hub.run_rollout(ro.id)?;
        if !matches!(ro.state, RolloutState::Done) {
            eprintln!("hub_fleet: the rollout ended {:?}", ro.state);
        }
        for (id, o) in &ro.locks {
            match o {
                RolloutOutcome::Updated => updated += 1,
                other => failed.push(format!("{id}: {other:?}")),
            }
        }
    }
    let rollout_s = t.elapsed().as_secs_f64();
    let (rss_end, rss_peak) = rss();
    if !failed.is_empty() {
        eprintln!(
            "hub_fleet: {} locks not updated, e.g. {}",
            failed.len(),
            failed
                .iter()
                .take(3)
                .cloned()
                .collect::<Vec<_>>()
                .join("; ")
        );
    }
    let expected = t1 * rest.len() as f64 / k as f64;
    let disk = ready["disk_bytes"].as_f64().unwrap_or(0.0);
    drop(locks_proc.stdin.take());
    let _ = locks_proc.wait();
    let _ = std::io::stdout().flush();
    Ok(json!({
        "store": label,
        "n": n,
        "k": k,
        "t1_s": t1,
        "rollout_s": rollout_s,
        "expected_s": expected,
        "ratio": if expected > 0.0 { rollout_s / expected } else { f64::NAN },
        "updated": updated,
        "pair_s": pair_s,
        "provision_s": ready["provision_s"],
        "rss_base_kib": rss_base,
        "rss_paired_kib": rss_paired,
        "rss_end_kib": rss_end,
        "rss_peak_kib": rss_peak,
        "kib_per_lock": (rss_paired.saturating_sub(rss_base)) as f64 / n as f64,
        "disk_per_lock_bytes": disk / n as f64,
    }))
}
