//! `keyway publish` and `keyway tuf-client` end to end: a vendor signs and
//! publishes, rotates the root, and the client (tuf-conformance's CLI)
//! initialises from root 1, refreshes over HTTP and downloads a verified
//! envelope; a tampered target on the server is refused with exit failure.

use std::io::{BufRead as _, BufReader, Write as _};
use std::net::TcpListener;
use std::path::{Path, PathBuf};

mod common;

use common::run_in_process as run;

/// Serves `root` over HTTP on loopback (one request per connection).
/// `keyway publish --repo REPO --keys KEYS MORE` in-process.
fn publish(repo: &str, keys: &str, more: &[&str]) -> (bool, String) {
    let mut args = vec!["publish", "--repo", repo, "--keys", keys];
    args.extend_from_slice(more);
    run(&args)
}

fn serve(root: PathBuf) -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", l.local_addr().unwrap());
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            let mut r = BufReader::new(s.try_clone().unwrap());
            let mut line = String::new();
            let _ = r.read_line(&mut line);
            loop {
                let mut h = String::new();
                if r.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
                    break;
                }
            }
            let path = line
                .split(' ')
                .nth(1)
                .unwrap_or("/")
                .trim_start_matches('/');
            let resp = match std::fs::read(root.join(path)) {
                Ok(b) => {
                    let mut v = format!(
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                        b.len()
                    )
                    .into_bytes();
                    v.extend_from_slice(&b);
                    v
                }
                Err(_) => {
                    b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                        .to_vec()
                }
            };
            let _ = s.write_all(&resp);
        }
    });
    base
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

#[test]
fn publish_then_tuf_client_downloads_a_verified_envelope() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (repo, keys) = (d.join("repo"), d.join("keys"));
    std::fs::write(d.join("fw.bin"), vec![0x5a; 3000]).unwrap();
    std::fs::write(d.join("notes.md"), "Fixes the latch.").unwrap();
    let (ok, text) = run(&["keygen", p(&d.join("vendor"))]);
    assert!(ok, "{text}");
    let env = d.join("r1.suit");
    let (ok, text) = run(&[
        "sign",
        "--firmware",
        p(&d.join("fw.bin")),
        "--version",
        "1.0.0",
        "--sequence",
        "1",
        "--vendor-domain",
        "locks.example",
        "--class",
        "deadbolt",
        "--notes",
        p(&d.join("notes.md")),
        "--cve",
        "CVE-2026-0001:critical",
        "--key",
        p(&d.join("vendor.key")),
        "-o",
        p(&env),
    ]);
    assert!(ok, "{text}");
    let (ok, text) = publish(p(&repo), p(&keys), &["--init", p(&env)]);
    assert!(ok, "{text}");
    assert!(text.contains("CVE-2026-0001 (critical)"), "{text}");
    // Publishing again with the same bytes is a no-op; rotation works.
    let (ok, text) = publish(p(&repo), p(&keys), &["--rotate-root", p(&env)]);
    assert!(ok, "{text}");
    assert!(text.contains("unchanged deadbolt/r1.suit"), "{text}");
    assert!(text.contains("root 2"), "{text}");

    let base = serve(repo.clone());
    let md = d.join("md");
    let tgt = d.join("tgt");
    let (ok, text) = run(&[
        "tuf-client",
        "--metadata-dir",
        p(&md),
        "init",
        p(&repo.join("metadata/1.root.json")),
    ]);
    assert!(ok, "{text}");
    let murl = format!("{base}/metadata");
    let turl = format!("{base}/targets");
    let download = [
        "tuf-client",
        "--metadata-dir",
        p(&md),
        "--metadata-url",
        &murl,
        "--target-name",
        "deadbolt/r1.suit",
        "--target-base-url",
        &turl,
        "--target-dir",
        p(&tgt),
        "download",
    ];
    let (ok, text) = run(&download);
    assert!(ok, "{text}");
    assert_eq!(
        std::fs::read(tgt.join("deadbolt%2Fr1.suit")).unwrap(),
        std::fs::read(&env).unwrap()
    );
    // The client followed the rotation and keeps only non-versioned names.
    assert_eq!(
        keyway_testkit::files::names(&md),
        [
            "root.json",
            "snapshot.json",
            "targets.json",
            "timestamp.json"
        ]
    );
    let root: serde_json::Value =
        serde_json::from_slice(&std::fs::read(md.join("root.json")).unwrap()).unwrap();
    assert_eq!(root["signed"]["version"], 2);

    // A tampered envelope on the server (same length, one byte flipped) is
    // refused: the cached copy is removed so the client must fetch.
    std::fs::remove_file(tgt.join("deadbolt%2Fr1.suit")).unwrap();
    let served = std::fs::read_dir(repo.join("targets/deadbolt"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let mut b = std::fs::read(&served).unwrap();
    b[50] ^= 1;
    std::fs::write(&served, b).unwrap();
    let (ok, text) = run(&download);
    assert!(!ok, "a tampered target must be refused: {text}");
    assert!(text.contains("do not match"), "{text}");
    assert!(!tgt.join("deadbolt%2Fr1.suit").exists());
}

#[test]
fn publish_bundle_is_a_complete_offline_repository() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (repo, keys, stick) = (d.join("repo"), d.join("keys"), d.join("stick"));
    let (ok, text) = publish(
        p(&repo),
        p(&keys),
        &["--init", "--rotate-root", "--bundle", p(&stick)],
    );
    assert!(ok, "{text}");
    for f in [
        "metadata/1.root.json",
        "metadata/2.root.json",
        "metadata/timestamp.json",
    ] {
        assert!(stick.join(f).exists(), "{f} missing from the bundle");
    }
    // Opening with the wrong keys directory is refused with a sentence.
    let other = d.join("other-keys");
    let (ok, _) = publish(p(&d.join("repo2")), p(&other), &["--init"]);
    assert!(ok);
    let (ok, text) = publish(p(&repo), p(&other), &["--refresh-timestamp"]);
    assert!(!ok);
    assert!(
        text.contains("is not the one the repository's root"),
        "{text}"
    );
}
