//! The dependency rule of issue 12 (item 4): the owner's client
//! (`src/device`) and `keyway audit` (`src/audit`) reach a lock only
//! through the protocol (`keyway-smp`, the channel's client side) and the
//! control socket's JSON. Only the demo side (`src/demo.rs`, `src/lab.rs`)
//! and tests link the simulated lock, `keyway-lock`.
//!
//! The crate cannot hide `keyway-lock` from those modules (the demo in
//! the same crate needs it), so these tests read their sources and fail
//! on any path into it. They also check the conventions the audit shares
//! with the simulated lock (the bad-image marker, the default PIN) still
//! agree, since neither side may import the other's.

use std::path::{Path, PathBuf};

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Every `.rs` file under `dir`, recursively.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for e in entries {
        let p = e.expect("a directory entry").path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The lines of the `.rs` files under `src/<module>` that mention any of
/// `needles`, as `path:line: text`.
fn mentions(module: &str, needles: &[&str]) -> (usize, Vec<String>) {
    let mut files = Vec::new();
    rust_files(&src().join(module), &mut files);
    let mut hits = Vec::new();
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        for (i, line) in text.lines().enumerate() {
            if needles.iter().any(|n| line.contains(n)) {
                hits.push(format!("{}:{}: {}", f.display(), i + 1, line.trim()));
            }
        }
    }
    (files.len(), hits)
}

#[test]
fn audit_and_device_do_not_link_the_simulated_lock() {
    for module in ["audit", "device"] {
        let (n, hits) = mentions(module, &["keyway_lock"]);
        println!("src/{module}: {n} files scanned");
        assert!(n > 0, "src/{module} has no Rust files: was it moved?");
        assert!(
            hits.is_empty(),
            "src/{module} must reach a lock through SMP and the control socket only, \
             not the simulated lock's crate (start one in src/lab.rs instead):\n{}",
            hits.join("\n")
        );
    }
}

#[test]
fn the_hubs_lock_link_does_not_link_the_simulated_lock() {
    // The hub reaches its locks as any owner does, through SMP; the demo
    // house (src/hub, h-house's files) may start simulated locks, the link
    // may not know where its lock came from.
    let f = src().join("hub").join("link.rs");
    let text = std::fs::read_to_string(&f).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
    let hits: Vec<String> = text
        .lines()
        .enumerate()
        .filter(|(_, l)| l.contains("keyway_lock") || l.contains("crate::lab"))
        .map(|(i, l)| format!("{}:{}: {}", f.display(), i + 1, l.trim()))
        .collect();
    assert!(
        hits.is_empty(),
        "src/hub/link.rs must reach a lock through SMP only:\n{}",
        hits.join("\n")
    );
}

#[test]
fn audit_does_not_depend_on_the_lab() {
    // The lab starts a simulated lock and hands the audit a `udp:` target;
    // the audit must not know where its lock came from.
    let (n, hits) = mentions("audit", &["crate::lab", "lab::"]);
    println!("src/audit: {n} files scanned");
    assert!(
        hits.is_empty(),
        "src/audit uses the lab:\n{}",
        hits.join("\n")
    );
}

#[test]
fn bad_image_marker_agrees_with_the_simulated_lock() {
    use keyway::audit::releases;
    assert_eq!(
        releases::SELF_TEST_FAIL_MARKER,
        keyway_lock::profile::SELF_TEST_FAIL_MARKER
    );
    assert_eq!(
        releases::SELF_TEST_FAIL_AT,
        keyway_lock::profile::SELF_TEST_FAIL_AT
    );
    // And an audit image carrying it is one the simulated lock fails.
    let bad = releases::image(7, 4096, Some(releases::SELF_TEST_FAIL_MARKER));
    assert!(keyway_lock::profile::fails_self_test(&bad));
    assert!(!keyway_lock::profile::fails_self_test(&releases::image(
        7, 4096, None
    )));
}

#[test]
fn default_pin_agrees_with_the_simulated_lock() {
    assert_eq!(keyway::audit::DEFAULT_PIN, keyway_lock::lock::DEFAULT_PIN);
}
