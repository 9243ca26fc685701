//! `keyway diff` / `keyway patch`: round trips on synthetic pairs, the real
//! firmware pairs (when `../shared/data/firmware` exists) against the size
//! targets, the lock's flash path, and the CLI.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use keyway_vendor::delta;
use proptest::prelude::*;

fn rng(seed: u64) -> impl FnMut() -> u64 {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    }
}

/// A firmware-like image: code-ish bytes with 4-byte little-endian
/// pointers into itself every 16 bytes.
fn firmware(len: usize, seed: u64) -> Vec<u8> {
    let mut r = rng(seed);
    let mut v: Vec<u8> = (0..len).map(|_| (r() % 40) as u8).collect();
    for at in (0..len.saturating_sub(4)).step_by(16) {
        let target = 0x0800_0000u32 + (r() as u32 % len as u32);
        v[at..at + 4].copy_from_slice(&target.to_le_bytes());
    }
    v
}

/// What a rebuild does: code inserted in the middle (so every later
/// pointer moves), a function removed, a few bytes edited.
fn rebuild(old: &[u8], seed: u64) -> Vec<u8> {
    let mut r = rng(seed);
    let mut new = old.to_vec();
    let cut = old.len() / 2;
    let inserted: Vec<u8> = (0..700).map(|_| r() as u8).collect();
    new.splice(cut..cut, inserted);
    new.drain(old.len() / 5..old.len() / 5 + 300);
    for at in (0..new.len().saturating_sub(4)).step_by(16) {
        let p = u32::from_le_bytes(new[at..at + 4].try_into().unwrap());
        if (0x0800_0000..0x0900_0000).contains(&p) && p - 0x0800_0000 > cut as u32 {
            new[at..at + 4].copy_from_slice(&(p + 400).to_le_bytes());
        }
    }
    for _ in 0..20 {
        let at = r() as usize % new.len();
        new[at] ^= 0x5A;
    }
    new
}

#[test]
fn firmware_like_rebuild_round_trips_and_is_small() {
    let old = firmware(200_000, 1);
    let new = rebuild(&old, 2);
    let patch = delta::diff(&old, &new).unwrap();
    println!(
        "synthetic rebuild: {} -> {} bytes, patch {} bytes",
        old.len(),
        new.len(),
        patch.len()
    );
    assert!(
        patch.len() < new.len() / 10,
        "patch {} bytes for a {}-byte image",
        patch.len(),
        new.len()
    );
    assert_eq!(delta::apply(&old, &patch, 244).unwrap(), new);
    assert_eq!(delta::apply(&old, &patch, 1).unwrap(), new);
    let flash = delta::apply_on_flash(&old, &patch, 244).unwrap();
    assert_eq!(flash.image, new);
    // 50 sectors of 4 KiB erased in 85 ms each, ~200 KB programmed at 41 µs per word.
    assert!(
        flash.seconds > 4.0 && flash.seconds < 8.0,
        "{}",
        flash.seconds
    );
}

#[test]
fn identical_and_empty_images_round_trip() {
    let old = firmware(10_000, 3);
    for (a, b) in [
        (&old[..], &old[..]),
        (&[][..], &old[..]),
        (&old[..], &[][..]),
        (&[][..], &[][..]),
    ] {
        let patch = delta::diff(a, b).unwrap();
        assert_eq!(delta::apply(a, &patch, 100).unwrap(), b);
    }
    let same = delta::diff(&old, &old).unwrap();
    assert!(same.len() < 200, "identical images: {} bytes", same.len());
}

#[test]
fn patch_for_another_base_is_refused_before_writing() {
    let old = firmware(20_000, 4);
    let new = rebuild(&old, 5);
    let patch = delta::diff(&old, &new).unwrap();
    let mut other = old.clone();
    other[100] ^= 1;
    let e = delta::apply(&other, &patch, 244).unwrap_err();
    assert!(format!("{e:#}").contains("wrong base: SHA-256"), "{e:#}");
    let e = delta::apply(&old[1..], &patch, 244).unwrap_err();
    assert!(
        format!("{e:#}").contains("wrong base: patch is for a 20000-byte image"),
        "{e:#}"
    );
}

/// Mutations of a base: the edits a new build makes.
#[derive(Clone, Debug)]
enum Edit {
    Insert(usize, Vec<u8>),
    Delete(usize, usize),
    Move(usize, usize, usize),
    Bytes(usize, u8),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (any::<usize>(), prop::collection::vec(any::<u8>(), 1..200))
            .prop_map(|(a, v)| Edit::Insert(a, v)),
        (any::<usize>(), 1usize..300).prop_map(|(a, n)| Edit::Delete(a, n)),
        (any::<usize>(), 1usize..500, any::<usize>()).prop_map(|(a, n, b)| Edit::Move(a, n, b)),
        (any::<usize>(), any::<u8>()).prop_map(|(a, x)| Edit::Bytes(a, x)),
    ]
}

fn mutate(base: &[u8], edits: &[Edit]) -> Vec<u8> {
    let mut v = base.to_vec();
    for e in edits {
        let at = |a: usize, v: &Vec<u8>| if v.is_empty() { 0 } else { a % (v.len() + 1) };
        match e {
            Edit::Insert(a, bytes) => {
                let a = at(*a, &v);
                v.splice(a..a, bytes.iter().copied());
            }
            Edit::Delete(a, n) => {
                let a = at(*a, &v);
                let end = (a + n).min(v.len());
                v.drain(a..end);
            }
            Edit::Move(a, n, b) => {
                let a = at(*a, &v);
                let end = (a + n).min(v.len());
                let block: Vec<u8> = v.drain(a..end).collect();
                let b = at(*b, &v);
                v.splice(b..b, block);
            }
            Edit::Bytes(a, x) => {
                if !v.is_empty() {
                    let a = *a % v.len();
                    v[a] = v[a].wrapping_add(*x | 1);
                }
            }
        }
    }
    v
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn mutated_images_round_trip(
        seed in any::<u64>(),
        len in 0usize..6000,
        random in any::<bool>(),
        edits in prop::collection::vec(edit(), 0..12),
        chunk in 1usize..600,
    ) {
        let base = if random {
            let mut r = rng(seed);
            (0..len).map(|_| r() as u8).collect()
        } else {
            firmware(len, seed)
        };
        let new = mutate(&base, &edits);
        let patch = delta::diff(&base, &new).unwrap();
        prop_assert_eq!(delta::apply(&base, &patch, chunk).unwrap(), new);
    }
}

/// The real pairs of the issue, with detools' sizes and Keyway's targets.
const PAIRS: [(&str, &str, &str, usize); 3] = [
    ("micropython-esp8266", "v1.9.4.bin", "v1.10.bin", 80_000),
    ("pyboard-v11", "v1.10.bin", "1f5d945af-dirty.bin", 42_000),
    ("synthesizer-m4", "1.bin", "2.bin", 1_600),
];

fn firmware_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../../shared/data/firmware")
}

#[test]
fn real_firmware_pairs_meet_the_size_targets() {
    let dir = firmware_dir();
    if !dir.is_dir() {
        println!(
            "SKIP: {} not found; the real-pair size check needs it",
            dir.display()
        );
        return;
    }
    for (name, a, b, target) in PAIRS {
        let old = std::fs::read(dir.join(name).join(a)).unwrap();
        let new = std::fs::read(dir.join(name).join(b)).unwrap();
        let patch = delta::diff(&old, &new).unwrap();
        println!("{name}: {} bytes (target {target})", patch.len());
        assert!(
            patch.len() <= target,
            "{name}: {} bytes > target {target}",
            patch.len()
        );
        assert_eq!(delta::apply(&old, &patch, 244).unwrap(), new, "{name}");
        assert_eq!(
            delta::apply_on_flash(&old, &patch, 244).unwrap().image,
            new,
            "{name}"
        );
    }
}

fn tmpdir() -> PathBuf {
    common::fresh_dir("delta")
}

/// A fresh folder holding `old.bin` and `new.bin`, a firmware-like pair.
fn pair_in_tmpdir(seed: u64) -> (PathBuf, Vec<u8>, Vec<u8>) {
    let dir = tmpdir();
    let old = firmware(30_000, seed);
    let new = rebuild(&old, seed + 1);
    std::fs::write(dir.join("old.bin"), &old).unwrap();
    std::fs::write(dir.join("new.bin"), &new).unwrap();
    (dir, old, new)
}

/// Runs the `keyway` command in `dir`.
fn keyway_in(dir: &Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_keyway"))
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn cli_diff_and_patch() {
    let (dir, _old, new) = pair_in_tmpdir(6);
    let run = |args: &[&str]| keyway_in(&dir, args);
    let o = run(&["diff", "old.bin", "new.bin", "-o", "p.kwd"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let said = String::from_utf8_lossy(&o.stdout);
    let size = std::fs::metadata(dir.join("p.kwd")).unwrap().len();
    assert!(
        said.contains(&format!("{size} bytes")) && said.contains("x smaller"),
        "{said}"
    );
    let o = run(&["patch", "old.bin", "p.kwd", "-o", "out.bin"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(std::fs::read(dir.join("out.bin")).unwrap(), new);
    let o = run(&["patch", "--flash-sim", "old.bin", "p.kwd", "-o", "out2.bin"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).contains("modeled flash time"));
    assert_eq!(std::fs::read(dir.join("out2.bin")).unwrap(), new);
    // The wrong base: refused, naming why, and no output file.
    let o = run(&["patch", "new.bin", "p.kwd", "-o", "bad.bin"]);
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("wrong base"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(!dir.join("bad.bin").exists());
    std::fs::remove_dir_all(&dir).ok();
}

/// `keyway sign --delta-from`: the envelope carries the patch, `verify`
/// checks it and names both bindings, `inspect` shows them.
#[test]
fn cli_sign_delta_from_verify_and_inspect() {
    let (dir, old, new) = pair_in_tmpdir(8);
    std::fs::write(dir.join("NOTES.md"), "# 1.4.0\n").unwrap();
    let run = |args: &[&str]| keyway_in(&dir, args);
    let o = run(&["keygen", "v"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let sign = |extra: &[&str], out: &str| {
        let mut args = vec![
            "sign",
            "--firmware",
            "new.bin",
            "--delta-from",
            "old.bin",
            "--version",
            "1.4.0",
            "--sequence",
            "6",
            "--vendor-domain",
            "locks.example",
            "--class",
            "deadbolt",
            "--notes",
            "NOTES.md",
            "--key",
            "v.key",
            "-o",
            out,
        ];
        args.extend_from_slice(extra);
        run(&args)
    };
    let o = sign(&[], "d.suit");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let said = String::from_utf8_lossy(&o.stdout);
    let hex = |d: &[u8]| d.iter().map(|b| format!("{b:02x}")).collect::<String>();
    let sha = |b: &[u8]| hex(&<sha2::Sha256 as sha2::Digest>::digest(b));
    assert!(
        said.contains("delta: patch") && said.contains(&sha(&old)),
        "{said}"
    );
    let env = std::fs::read(dir.join("d.suit")).unwrap();
    assert!(env.len() < new.len() / 4, "envelope {} bytes", env.len());

    let o = run(&["verify", "d.suit", "--trust", "v.pub"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let said = String::from_utf8_lossy(&o.stdout);
    assert!(
        said.contains("patch")
            && said.contains(&format!("applies to the image sha256 {}", &sha(&old)[..16]))
            && said.contains(&format!("produces sha256 {}", &sha(&new)[..16])),
        "{said}"
    );
    let o = run(&["inspect", "d.suit"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let said = String::from_utf8_lossy(&o.stdout);
    assert!(
        said.contains(&format!(
            "installed image sha256 {} size {}",
            sha(&old),
            old.len()
        )) && said.contains(&format!(
            "produces the image sha256 {} size {}",
            sha(&new),
            new.len()
        )),
        "{said}"
    );
    // --detached and --delta-from do not combine.
    let o = sign(&["--detached"], "x.suit");
    assert!(!o.status.success());
    std::fs::remove_dir_all(&dir).ok();
}

/// The end-to-end model installs both envelopes through the lock's code
/// (the full image with `Installer`, the delta with `DeltaInstaller`) and
/// boots the new image; the delta sends fewer bytes and flashes the same.
#[test]
fn update_time_full_against_delta() {
    let old = firmware(40_000, 10);
    let new = rebuild(&old, 11);
    let [full, delta] = keyway_vendor::delta::update_times(&old, &new, 10_000).unwrap();
    assert!(full.envelope_bytes > new.len(), "{full:?}");
    assert!(delta.envelope_bytes * 4 < full.envelope_bytes, "{delta:?}");
    assert!((full.transfer_s - full.envelope_bytes as f64 / 10_000.0).abs() < 1e-9);
    // Same image, same sectors: the install costs the same flash time.
    assert!(
        (full.install_s - delta.install_s).abs() < 0.01,
        "{full:?} {delta:?}"
    );
    assert!(full.install_s > 0.0 && delta.reboot_s > 0.0);
    assert!(delta.total_s() < full.total_s());
}

/// `keyway_vendor::delta::choose` (for `keyway device update`): the delta when
/// the lock runs its base, else the full image, saying why.
#[test]
fn choose_the_delta_only_for_its_base() {
    let key =
        keyway_vendor::keys::SigningKey::generate(keyway_vendor::keys::Algorithm::Ed25519).unwrap();
    let old = firmware(20_000, 12);
    let new = rebuild(&old, 13);
    let build = |from: Option<Vec<u8>>| {
        keyway_vendor::encode::EnvelopeBuilder {
            sequence: 2,
            version: "1.1.0".parse().unwrap(),
            vendor_domain: "locks.example".into(),
            class_name: "deadbolt".into(),
            payload: new.clone(),
            delta_from: from,
            keys: vec![key.clone()],
            ..Default::default()
        }
        .build()
        .unwrap()
        .envelope
    };
    let (full, delta) = (build(None), build(Some(old.clone())));
    let sha = |b: &[u8]| -> [u8; 32] { <sha2::Sha256 as sha2::Digest>::digest(b).into() };
    let both: [&[u8]; 2] = [&full, &delta];
    let (old_sha, new_sha) = (sha(&old), sha(&new));
    assert_eq!(
        delta::choose(&both, &old_sha).unwrap(),
        delta::Choice::Delta {
            index: 1,
            bytes: delta.len(),
            running: old_sha
        }
    );
    let full_choice = delta::choose(&both, &new_sha).unwrap();
    assert_eq!(
        full_choice,
        delta::Choice::Full {
            index: 0,
            bytes: full.len(),
            running: new_sha,
            delta_bases: vec![old_sha]
        }
    );
    assert!(
        full_choice.to_string().contains("the delta applies to"),
        "{full_choice}"
    );
    assert_eq!(
        delta::choose(&[&delta], &new_sha).unwrap_err(),
        delta::ChooseError::NoFit {
            running: new_sha,
            delta_bases: vec![old_sha]
        }
    );
    assert_eq!(
        delta::choose(&[&full[..10]], &new_sha).unwrap_err(),
        delta::ChooseError::Envelope {
            number: 1,
            error: keyway_suit::inspect_envelope(&full[..10]).unwrap_err()
        }
    );
}

/// `keyway diff --update-time`: both paths through the modeled BLE link
/// (an owner's sealed upload, with MCUmgr's reassembly), the delta with
/// fewer frames and a smaller total.
#[test]
fn cli_diff_update_time_over_the_modeled_ble_link() {
    let (dir, _old, _new) = pair_in_tmpdir(14);
    let o = keyway_in(
        &dir,
        &[
            "diff",
            "old.bin",
            "new.bin",
            "-o",
            "p.kwd",
            "--update-time",
            "10000",
        ],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let said = String::from_utf8_lossy(&o.stdout);
    let frames = |name: &str| -> u64 {
        let line = said
            .lines()
            .find(|l| l.trim_start().starts_with(name))
            .unwrap();
        let before = line.split(" frames").next().unwrap();
        before.rsplit(' ').next().unwrap().parse().unwrap()
    };
    // The owner's sealed upload: the session's 2 handshake frames, then
    // frames up to the lock's 2,056-byte buffer (at most 1,976 data bytes
    // a sealed frame) for the 30,000-byte image's envelope.
    assert!(said.contains("an owner's sealed upload"), "{said}");
    assert!(frames("full image") >= 2 + 30_000 / 1_976, "{said}");
    assert!(frames("delta") < frames("full image"), "{said}");
    assert!(said.contains("delta / full: 0."), "{said}");
    std::fs::remove_dir_all(&dir).ok();
}
