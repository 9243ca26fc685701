//! The hub's sync of a TUF repository with 1,000 releases, over HTTP on
//! loopback: time and bytes of a first sync and of an incremental refresh
//! after one new release, beside downloading everything again — measured
//! side by side in one run.
//!
//! ```text
//! cargo run --release -p keyway-tuf --example sync_bench [-- RELEASES PAYLOAD_KIB]
//! ```
//!
//! Defaults: 1,000 releases of 64 KiB firmware each (real signed SUIT
//! envelopes, as `keyway sign` makes them, published with
//! `keyway_tuf::RepoWriter`). Four measurements, each with a fresh TUF
//! session over the same served repository:
//!
//! 1. first sync, metadata only: a new hub refreshes and lists all
//!    releases with their summaries (the `custom` field) — what the owner
//!    sees without downloading any envelope;
//! 2. first full sync: the same plus every envelope;
//! 3. incremental: one more release is published; the synced hub refreshes
//!    (timestamp, snapshot, targets) and downloads the one new envelope;
//! 4. everything again: a client without TUF's incremental metadata
//!    downloads all metadata and every envelope.
//!
//! The ratio is (3) against (4).

use std::io::{BufRead as _, BufReader, Write as _};
use std::net::TcpListener;
use std::path::PathBuf;
use std::time::Instant;

use keyway_tuf::{Expiries, Mirror, RepoWriter, Source};
use keyway_vendor::encode::{EnvelopeBuilder, ReleaseVersion};
use keyway_vendor::keys::{Algorithm, SigningKey};

fn serve(root: PathBuf) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    let base = format!("http://{}", listener.local_addr().expect("address"));
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let _ = stream.set_nodelay(true);
            let root = root.clone();
            std::thread::spawn(move || {
                let Ok(clone) = stream.try_clone() else {
                    return;
                };
                let mut r = BufReader::new(clone);
                loop {
                    let mut line = String::new();
                    if r.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    loop {
                        let mut h = String::new();
                        if r.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
                            break;
                        }
                    }
                    let path = line.split(' ').nth(1).unwrap_or("/").to_owned();
                    // One write per response (no Nagle/delayed-ACK stalls).
                    let response = match std::fs::read(root.join(path.trim_start_matches('/'))) {
                        Ok(b) => {
                            let mut r =
                                format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", b.len())
                                    .into_bytes();
                            r.extend_from_slice(&b);
                            r
                        }
                        Err(_) => b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n".to_vec(),
                    };
                    let ok = stream.write_all(&response);
                    if ok.is_err() {
                        return;
                    }
                }
            });
        }
    });
    base
}

fn envelope(key: &SigningKey, seq: u64, payload_kib: usize) -> Vec<u8> {
    let mut payload = vec![0u8; payload_kib * 1024];
    let mut x = seq.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    for b in payload.iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
    EnvelopeBuilder {
        sequence: seq,
        version: ReleaseVersion::new(1, seq / 100, seq % 100),
        vendor_domain: "locks.example".into(),
        class_name: "deadbolt".into(),
        notes: Some(format!("Release {seq}.")),
        payload,
        keys: vec![key.clone()],
        ..Default::default()
    }
    .build()
    .expect("a valid envelope")
    .envelope
}

struct Run {
    secs: f64,
    files: u64,
    bytes: u64,
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let releases: u64 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(1000);
    let payload_kib: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(64);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("temp dir");
    let repo = dir.path().join("repo");
    let now = keyway_tuf::jiff::Timestamp::now();
    let key = SigningKey::generate(Algorithm::Ed25519).expect("key");

    let t = Instant::now();
    let mut w =
        RepoWriter::init(&repo, &dir.path().join("keys"), Expiries::default(), now).expect("init");
    let batch: Vec<(String, Vec<u8>)> = (1..=releases)
        .map(|s| (format!("r{s}.suit"), envelope(&key, s, payload_kib)))
        .collect();
    w.add_envelopes(&batch, now).expect("publish");
    let envelope_bytes: u64 = batch.iter().map(|(_, b)| b.len() as u64).sum();
    drop(batch);
    println!(
        "repository: {releases} releases of {payload_kib} KiB firmware ({} MB of envelopes), \
         published in {:.2} s",
        envelope_bytes / 1_000_000,
        t.elapsed().as_secs_f64()
    );
    let base = serve(repo.clone());
    let root = w.first_root().expect("root");

    let sync = |hub: &std::path::Path, download: Download, expect: u64| -> Run {
        let m = Mirror::open(hub).expect("mirror");
        let t = Instant::now();
        let mut s = m.session(Source::http(&base)).expect("session");
        rt.block_on(s.refresh(now)).expect("refresh");
        let listed = s.targets().expect("targets");
        assert_eq!(listed.len() as u64, expect);
        let names: Vec<String> = match download {
            Download::None => vec![],
            Download::All => listed.iter().map(|t| t.name.clone()).collect(),
            Download::Only(n) => vec![n],
        };
        for n in &names {
            rt.block_on(s.download(n, now)).expect("download");
        }
        let (files, bytes) = s.transferred();
        Run {
            secs: t.elapsed().as_secs_f64(),
            files,
            bytes,
        }
    };

    // 1 and 2: a new hub.
    let hub1 = dir.path().join("hub1");
    Mirror::init(&hub1, &root).expect("init mirror");
    let meta_only = sync(&hub1, Download::None, releases);
    let hub2 = dir.path().join("hub2");
    Mirror::init(&hub2, &root).expect("init mirror");
    let first_full = sync(&hub2, Download::All, releases);

    // 3: one new release; the synced hub (hub2) refreshes and fetches it.
    let new_name = format!("r{}.suit", releases + 1);
    w.add_envelopes(
        &[(new_name.clone(), envelope(&key, releases + 1, payload_kib))],
        now,
    )
    .expect("publish one more");
    let incremental = sync(
        &hub2,
        Download::Only(format!("deadbolt/{new_name}")),
        releases + 1,
    );

    // 4: everything again, with no cache (a fresh hub each time).
    let hub3 = dir.path().join("hub3");
    Mirror::init(&hub3, &root).expect("init mirror");
    let everything = sync(&hub3, Download::All, releases + 1);

    let row = |name: &str, r: &Run| {
        println!(
            "{name:<44} {:>9.3} s {:>7} files {:>13} bytes",
            r.secs, r.files, r.bytes
        );
    };
    row("first sync, metadata only (list releases)", &meta_only);
    row("first full sync (metadata + every envelope)", &first_full);
    row("incremental: refresh + the one new release", &incremental);
    row("everything again (metadata + every envelope)", &everything);
    println!(
        "incremental / everything: bytes {:.5} ({:.0}x fewer), time {:.4} ({:.0}x faster)",
        incremental.bytes as f64 / everything.bytes as f64,
        everything.bytes as f64 / incremental.bytes as f64,
        incremental.secs / everything.secs,
        everything.secs / incremental.secs
    );
    println!(
        "first sync metadata only / everything: bytes {:.4}",
        meta_only.bytes as f64 / everything.bytes as f64
    );
}

#[derive(Clone)]
enum Download {
    None,
    All,
    Only(String),
}
