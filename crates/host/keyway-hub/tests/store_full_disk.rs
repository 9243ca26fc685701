//! Issue 14 §7, "a full disk while importing": the SQLite store on a
//! size-limited tmpfs fills up while releases are put (an import from a
//! USB stick writes release after release). The put that does not fit
//! fails with `StoreError::Full`, nothing already kept is lost or damaged,
//! the store reopens, and once space is freed the next put works.
//!
//! The tmpfs needs a mount namespace: the test re-runs itself under
//! `unshare -rm` (a user and mount namespace; plain `unshare -m` as root
//! when user namespaces are off), mounts a 6 MiB tmpfs there, and runs the
//! scenario inside. Where neither works (no `unshare`, no namespaces in
//! this container) it says SKIPPED and why.

mod common;

use std::process::Command;

use common::*;
use keyway_hub::model::*;
use keyway_hub::store::{SqliteStore, Store, StoreError};

const INNER_ENV: &str = "KEYWAY_FULL_DISK_DIR";
const TMPFS_SIZE: &str = "6m";
const FILLER: usize = 1 << 20;
const ENVELOPE: usize = 100 * 1024;

fn inner(dir: &std::path::Path) {
    // Something else on the disk that can be deleted later.
    let filler = dir.join("filler");
    std::fs::write(&filler, vec![0x5a; FILLER]).unwrap();
    let path = dir.join("hub.sqlite");
    let s = SqliteStore::open(&path).unwrap();
    let lock = s.add_lock(&new_lock(1)).unwrap();
    s.save_lock(&lock_record(lock, 3)).unwrap();

    // Import releases until the disk is full.
    // (and a consent for each: whichever write meets the full disk).
    let mut kept = 0u64;
    let mut consents = 0u64;
    let full = loop {
        let n = kept + 1;
        match s.put_release(&release(n, "c", n, ENVELOPE)) {
            Ok(true) => kept = n,
            Ok(false) => panic!("release {n} was new"),
            Err(e) => break e,
        }
        let c = Consent {
            lock,
            release: dg(n),
            decision: Decision::Accept,
            source: ConsentSource::AutoCritical,
            at: n as i64,
        };
        match s.put_consent(&c) {
            Ok(()) => consents = n,
            Err(e) => break e,
        }
        assert!(n < 1000, "a {TMPFS_SIZE} disk never filled");
    };
    println!("the disk filled after {kept} releases of {ENVELOPE} bytes: {full}");
    assert!(
        matches!(full, StoreError::Full(_)),
        "a full disk is StoreError::Full, not {full:?}"
    );
    assert!(kept >= 3, "some releases fit before the disk filled");
    let msg = full.to_string();
    assert!(msg.contains("full") && msg.contains("free space"), "{msg}");

    let check = |s: &dyn Store, upto: u64| {
        for n in 1..=upto {
            assert_eq!(
                s.release(&dg(n)).unwrap(),
                Some(release(n, "c", n, ENVELOPE)),
                "release {n}"
            );
        }
        assert_eq!(s.release(&dg(upto + 1)).unwrap(), None, "nothing half-kept");
        assert_eq!(s.releases(None).unwrap().len() as u64, upto);
        assert_eq!(s.consents(lock).unwrap().len() as u64, consents);
        assert_eq!(s.lock(lock).unwrap(), Some(lock_record(lock, 3)));
    };
    // Everything before is intact, in this process and after a reopen
    // (the disk still full).
    check(&s, kept);
    drop(s);
    let s = SqliteStore::open(&path).unwrap();
    check(&s, kept);
    let raw = rusqlite::Connection::open(&path).unwrap();
    let ok: String = raw
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(ok, "ok");
    drop(raw);

    // Free space: the next release goes in.
    std::fs::remove_file(&filler).unwrap();
    let n = kept + 1;
    assert!(s.put_release(&release(n, "c", n, ENVELOPE)).unwrap());
    check(&s, n);
    println!("after freeing {FILLER} bytes, release {n} was kept");
}

#[test]
fn sqlite_full_disk_while_importing_is_full_and_loses_nothing() {
    if let Ok(dir) = std::env::var(INNER_ENV) {
        inner(std::path::Path::new(&dir));
        return;
    }
    let mnt = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let script = format!(
        "mount -t tmpfs -o size={TMPFS_SIZE} keyway-full \"${INNER_ENV}\" || exit 77; exec \"$0\" \"$@\""
    );
    let mut tried = Vec::new();
    for flags in ["-rm", "-m"] {
        let out = Command::new("unshare")
            .args([flags, "sh", "-c", &script])
            .arg(&exe)
            .args([
                "--exact",
                "sqlite_full_disk_while_importing_is_full_and_loses_nothing",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(INNER_ENV, mnt.path())
            .output();
        match out {
            Err(e) => tried.push(format!("unshare: {e}")),
            Ok(o) if o.status.code() == Some(77) || (!o.status.success() && !ran(&o)) => tried
                .push(format!(
                    "unshare {flags}: {}",
                    String::from_utf8_lossy(&o.stderr).trim()
                )),
            Ok(o) => {
                print!("{}", String::from_utf8_lossy(&o.stdout));
                assert!(
                    o.status.success(),
                    "the full-disk scenario failed inside unshare {flags}:\n{}\n{}",
                    String::from_utf8_lossy(&o.stdout),
                    String::from_utf8_lossy(&o.stderr)
                );
                return;
            }
        }
    }
    eprintln!(
        "SKIPPED sqlite_full_disk_while_importing_is_full_and_loses_nothing: no mount namespace \
         for a size-limited tmpfs here ({})",
        tried.join("; ")
    );
}

/// Whether the test binary ran inside the namespace (its own output).
fn ran(o: &std::process::Output) -> bool {
    String::from_utf8_lossy(&o.stdout).contains("running 1 test")
}
