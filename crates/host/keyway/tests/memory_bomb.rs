//! Issue 12, "a memory bomb": `keyway patch --flash-sim` given a 206-byte
//! patch whose header declares a 4 GiB output used 5.3 GB of RAM before it
//! failed, because the simulated flash was sized from the header. Each
//! test here runs the `keyway` binary as a child on such a patch and
//! measures the child's peak resident set (`wait4`'s `ru_maxrss`): it must
//! stay under 100 MB and the error must say what was refused.

use std::io::Read as _;
use std::path::Path;
use std::process::{Command, Stdio};

use sha2::{Digest as _, Sha256};

const BIN: &str = env!("CARGO_BIN_EXE_keyway");
/// The bound on any input (issue 12, "thin shells").
const LIMIT_KB: i64 = 100 * 1000;

/// A 206-byte patch for `old` whose header (keyway-delta's 80 bytes:
/// magic, version, base size and SHA-256 that match `old`) declares an
/// output of `out_size` bytes, followed by 126 bytes of body.
fn bomb(old: &[u8], out_size: u32) -> Vec<u8> {
    let header = keyway_delta::PatchHeader {
        base_size: u32::try_from(old.len()).unwrap(),
        out_size,
        base_digest: Sha256::digest(old).into(),
        out_digest: [0x42; 32],
    };
    let mut p = header.to_bytes().to_vec();
    // The range coder's stream starts with a 0 byte; then noise.
    p.push(0);
    p.extend((1..126u32).map(|i| (i.wrapping_mul(37) ^ 0x5a) as u8));
    assert_eq!(p.len(), 206);
    p
}

/// The child's address-space limit: a regression that sizes a buffer
/// from the header again fails to allocate (and the test fails on its
/// message) instead of taking gigabytes of this shared machine's RAM.
const AS_LIMIT: u64 = 1 << 30;

/// Runs `keyway ARGS` (its address space limited to [`AS_LIMIT`]);
/// returns (exit code, stderr, peak RSS in KB).
// The child is reaped by `wait4` (for its rusage), not `Child::wait`.
#[allow(clippy::zombie_processes)]
fn run_measured(args: &[&std::ffi::OsStr]) -> (i32, String, i64) {
    use std::os::unix::process::CommandExt as _;
    let mut cmd = Command::new(BIN);
    // SAFETY: setrlimit is async-signal-safe; nothing else runs between
    // fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            let lim = libc::rlimit {
                rlim_cur: AS_LIMIT,
                rlim_max: AS_LIMIT,
            };
            if libc::setrlimit(libc::RLIMIT_AS, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    // The program's own footprint: no backtrace capture or printing.
    let mut child = cmd
        .env_remove("RUST_BACKTRACE")
        .env_remove("RUST_LIB_BACKTRACE")
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    let pid = i32::try_from(child.id()).unwrap();
    let mut status = 0;
    // SAFETY: a zeroed rusage is a valid value; wait4 reaps our own child
    // (std's Child is not waited on afterwards).
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(r, pid, "wait4");
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        -1
    };
    // Linux reports ru_maxrss in kilobytes.
    (code, err, usage.ru_maxrss)
}

fn old_image(dir: &Path) -> (std::path::PathBuf, Vec<u8>) {
    let old: Vec<u8> = (0..4096u32).map(|i| (i * 13 % 251) as u8).collect();
    let p = dir.join("old.bin");
    std::fs::write(&p, &old).unwrap();
    (p, old)
}

fn patch_bomb(flash_sim: bool) {
    let t = tempfile::tempdir().unwrap();
    let (old_path, old) = old_image(t.path());
    let patch = t.path().join("bomb.kwdp");
    // 4 GiB less 1 MiB: the largest output whose simulated flash (slot 0,
    // slot 1, the journal) still has a 32-bit size.
    let declared: u32 = 0xFFF0_0000;
    std::fs::write(&patch, bomb(&old, declared)).unwrap();
    let out = t.path().join("new.bin");
    let mut args: Vec<&std::ffi::OsStr> = vec![
        "patch".as_ref(),
        old_path.as_os_str(),
        patch.as_os_str(),
        "-o".as_ref(),
        out.as_os_str(),
    ];
    if flash_sim {
        args.push("--flash-sim".as_ref());
    }
    let (code, err, kb) = run_measured(&args);
    println!(
        "keyway patch{} on a 206-byte patch declaring 4 GiB: exit {code}, peak RSS {:.1} MB: {}",
        if flash_sim { " --flash-sim" } else { "" },
        kb as f64 / 1000.0,
        err.trim()
    );
    assert!(
        kb < LIMIT_KB,
        "peak RSS {kb} kB is over 100 MB (stderr: {err})"
    );
    assert_ne!(code, 0, "the patch must be refused");
    assert!(
        !err.contains("memory allocation"),
        "sized a buffer from the header: {err}"
    );
    assert!(
        err.contains(&declared.to_string()),
        "names the declared size: {err}"
    );
    assert!(err.contains("MiB"), "names the limit: {err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(!out.exists(), "no output on a refused patch");
}

#[test]
fn patch_flash_sim_memory_bomb_stays_under_100_mb() {
    patch_bomb(true);
}

#[test]
fn patch_memory_bomb_stays_under_100_mb() {
    patch_bomb(false);
}

/// The worst case the cap lets through: an old image of [`MAX_IMAGE`]
/// bytes and a valid patch that makes another of [`MAX_IMAGE`] bytes,
/// applied on the simulated flash end to end. Prints the peak RSS (the
/// figure for SECURITY.md) and asserts it is under 100 MB.
#[test]
fn patch_flash_sim_at_the_size_cap_stays_under_100_mb() {
    use keyway_vendor::delta::MAX_IMAGE;
    let t = tempfile::tempdir().unwrap();
    // A noisy old image (the audit's deterministic one).
    let old = keyway::audit::releases::image(7, MAX_IMAGE as usize, None);
    // The new image: the old one with every byte plus one (one op, `add`
    // of the whole image with diff bytes of 1), written symbol by symbol.
    let new_digest: [u8; 32] = {
        let mut h = Sha256::new();
        for c in old.chunks(1 << 16) {
            h.update(c.iter().map(|b| b.wrapping_add(1)).collect::<Vec<_>>());
        }
        h.finalize().into()
    };
    let header = keyway_delta::PatchHeader {
        base_size: MAX_IMAGE,
        out_size: MAX_IMAGE,
        base_digest: Sha256::digest(&old).into(),
        out_digest: new_digest,
    };
    let mut patch = header.to_bytes().to_vec();
    {
        let mut w = keyway_delta::encode::Writer::new(|b| patch.push(b));
        w.seek(0);
        w.add_len(MAX_IMAGE);
        for &b in &old {
            w.diff(b, b.wrapping_add(1));
        }
        w.extra_len(0);
        w.finish();
    }
    let old_path = t.path().join("old.bin");
    std::fs::write(&old_path, &old).unwrap();
    drop(old);
    let patch_path = t.path().join("max.kwdp");
    std::fs::write(&patch_path, &patch).unwrap();
    let out = t.path().join("new.bin");
    let (code, err, kb) = run_measured(&[
        "patch".as_ref(),
        old_path.as_os_str(),
        patch_path.as_os_str(),
        "-o".as_ref(),
        out.as_os_str(),
        "--flash-sim".as_ref(),
    ]);
    println!(
        "keyway patch --flash-sim, {} MiB old image, {}-byte patch making {} MiB: exit {code}, peak RSS {:.1} MB",
        MAX_IMAGE >> 20,
        patch.len(),
        MAX_IMAGE >> 20,
        kb as f64 / 1000.0
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        Sha256::digest(std::fs::read(&out).unwrap()).as_slice(),
        new_digest
    );
    assert!(kb < LIMIT_KB, "peak RSS {kb} kB is over 100 MB");
}
