//! `keyway verify` and `keyway inspect` as a vendor or reviewer runs them:
//! exit status, the one-line summary, and the check named on refusal.

use std::path::{Path, PathBuf};
use std::process::Output;

mod common;

use common::keyway;

fn tmpdir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("keyway-verify-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn ok(o: Output) -> String {
    assert!(o.status.success(), "{}", text(&o));
    text(&o)
}

fn refused(o: Output, check: &str) -> String {
    let t = text(&o);
    assert_eq!(o.status.code(), Some(1), "{t}");
    assert!(
        t.contains(&format!("{check} check failed")),
        "expected the {check} check to fail: {t}"
    );
    t
}

/// keys, a release, and the verify arguments for a lock of that model.
fn setup(dir: &Path) {
    ok(keyway(dir, &["keygen", "root"]));
    ok(keyway(dir, &["keygen", "mallory", "--alg", "p256"]));
    std::fs::write(dir.join("fw.bin"), vec![0x5a; 100_000]).unwrap();
    std::fs::write(dir.join("notes.md"), "# 1.0.1\n\nFixes things.\n").unwrap();
    for (key, seq, out) in [
        ("root.key", "4", "good.suit"),
        ("mallory.key", "4", "mallory.suit"),
    ] {
        ok(sign(
            dir,
            "1.0.1",
            seq,
            key,
            out,
            &["--cve", "CVE-2024-0001:critical"],
        ));
    }
}

/// `keyway sign` of `fw.bin` with `notes.md` as `version`/`sequence` for
/// locks.example / deadbolt-2, signed by `key` into `out`; `extra` adds
/// options.
fn sign(dir: &Path, version: &str, sequence: &str, key: &str, out: &str, extra: &[&str]) -> Output {
    let mut args = vec![
        "sign",
        "--firmware",
        "fw.bin",
        "--version",
        version,
        "--sequence",
        sequence,
        "--vendor-domain",
        "locks.example",
        "--class",
        "deadbolt-2",
        "--notes",
        "notes.md",
        "--key",
        key,
        "-o",
        out,
    ];
    args.extend_from_slice(extra);
    keyway(dir, &args)
}

const LOCK: [&str; 6] = [
    "--trust",
    "root.pub",
    "--vendor-domain",
    "locks.example",
    "--class",
    "deadbolt-2",
];

fn verify<'a>(dir: &Path, file: &'a str, extra: &[&'a str]) -> Output {
    let mut args = vec!["verify", file];
    args.extend_from_slice(&LOCK);
    args.extend_from_slice(extra);
    keyway(dir, &args)
}

#[test]
fn verify_prints_a_one_line_summary() {
    let dir = tmpdir("summary");
    setup(&dir);
    let out = ok(verify(&dir, "good.suit", &["--floor", "3"]));
    assert_eq!(out.lines().count(), 1, "{out}");
    common::assert_contains_all(
        &out,
        &[
            "OK good.suit",
            "sequence 4",
            "version 1.0.1",
            "payload 100000 bytes",
            "verified",
            "1 signature(s)",
            "signed by root keys",
            "CVE-2024-0001 critical",
            "owner consent (priority -2)",
        ],
    );
}

#[test]
fn verify_names_the_failed_check() {
    let dir = tmpdir("refusals");
    setup(&dir);
    refused(verify(&dir, "mallory.suit", &[]), "signatures");
    refused(
        verify(&dir, "good.suit", &["--floor", "4"]),
        "anti-rollback",
    );
    let mut args = vec![
        "verify",
        "good.suit",
        "--trust",
        "root.pub",
        "--vendor-domain",
        "other.example",
    ];
    args.extend_from_slice(&["--class", "deadbolt-2"]);
    refused(keyway(&dir, &args), "compatibility");

    let good = std::fs::read(dir.join("good.suit")).unwrap();
    let mut bad = good.clone();
    let n = bad.len();
    bad[n - 10] ^= 1;
    std::fs::write(dir.join("tampered.suit"), &bad).unwrap();
    refused(verify(&dir, "tampered.suit", &[]), "payload");
    std::fs::write(dir.join("truncated.suit"), &good[..n - 10]).unwrap();
    let t = refused(verify(&dir, "truncated.suit", &[]), "payload");
    assert!(t.contains("99990 of 100000"), "{t}");
    let mut longer = good.clone();
    longer.extend_from_slice(b"trailing");
    std::fs::write(dir.join("longer.suit"), &longer).unwrap();
    refused(verify(&dir, "longer.suit", &[]), "decoding");
    std::fs::write(dir.join("garbage.suit"), b"\xff\x00 not cbor at all").unwrap();
    refused(verify(&dir, "garbage.suit", &[]), "decoding");
    std::fs::write(dir.join("empty.suit"), b"").unwrap();
    refused(verify(&dir, "empty.suit", &[]), "decoding");
}

#[test]
fn verify_checks_use_before_against_the_clock() {
    let dir = tmpdir("expiry");
    setup(&dir);
    ok(sign(
        &dir,
        "1.0.2",
        "5",
        "root.key",
        "old.suit",
        &["--use-before", "1000000000"],
    ));
    let t = refused(verify(&dir, "old.suit", &[]), "policy");
    assert!(t.contains("expired"), "{t}");
    ok(verify(&dir, "old.suit", &["--now", "999999999"]));
}

#[test]
fn verify_checks_a_detached_payload() {
    let dir = tmpdir("detached");
    setup(&dir);
    ok(sign(
        &dir,
        "1.0.1",
        "4",
        "root.key",
        "d.suit",
        &["--detached"],
    ));
    let out = ok(verify(&dir, "d.suit", &[]));
    assert!(out.contains("NOT checked"), "{out}");
    ok(verify(&dir, "d.suit", &["--payload", "fw.bin"]));
    std::fs::write(dir.join("other.bin"), vec![0x5b; 100_000]).unwrap();
    refused(
        verify(&dir, "d.suit", &["--payload", "other.bin"]),
        "payload",
    );
}

#[test]
fn verify_refuses_wrong_key_types_clearly() {
    let dir = tmpdir("keytypes");
    setup(&dir);
    let o = keyway(&dir, &["verify", "good.suit", "--trust", "root.key"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o).contains("root.key"), "{}", text(&o));
    std::fs::write(
        dir.join("junk.pub"),
        "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
    )
    .unwrap();
    let o = keyway(&dir, &["verify", "good.suit", "--trust", "junk.pub"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o).contains("junk.pub"), "{}", text(&o));
}

#[test]
fn inspect_shows_release_notes_cves_and_signers() {
    let dir = tmpdir("inspect");
    setup(&dir);
    let out = ok(keyway(&dir, &["inspect", "good.suit"]));
    common::assert_contains_all(
        &out,
        &[
            "UNVERIFIED",
            "sequence:        4",
            "version:         1.0.1",
            "Fixes things.",
            "CVE-2024-0001 (critical)",
            "COSE alg -8",
        ],
    );
    let json: serde_json::Value =
        serde_json::from_str(&ok(keyway(&dir, &["inspect", "good.suit", "--json"]))).unwrap();
    assert_eq!(json["sequence"], 4);
    assert_eq!(json["payload"]["size"], 100_000);
    assert_eq!(json["release_notes"]["cves"][0]["id"], "CVE-2024-0001");
    assert_eq!(json["conditions"]["owner_consent"], true);
    assert_eq!(json["verified"], false);
}

#[test]
fn verify_accepts_the_suit_drafts_examples() {
    let shared = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../../shared/data/suit");
    if !shared.join("example-public-key.pem").exists() {
        eprintln!("SKIP: {} is absent", shared.display());
        return;
    }
    for n in 0..4 {
        let f = format!("example{n}.suit");
        let out = ok(keyway(
            &shared,
            &["verify", &f, "--trust", "example-public-key.pem"],
        ));
        assert!(out.contains(&format!("sequence {n}")), "{out}");
        assert!(
            out.contains("payload NOT checked") || out.contains("payload"),
            "{out}"
        );
    }
}
