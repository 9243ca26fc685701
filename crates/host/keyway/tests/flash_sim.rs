//! `keyway flash-sim` end to end: the built binary on small images with
//! exhaustive power cuts (no bricks), the 300 KiB nRF52840 figures against
//! the targets, and bad input refused with a clear error.

mod common;

use std::process::{Command, Output};

use serde_json::Value;

/// `keyway flash-sim` with the words of `args`.
fn keyway(args: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_keyway"))
        .arg("flash-sim")
        .args(args.split_whitespace())
        .output()
        .expect("run keyway")
}

/// `keyway flash-sim ARGS --json`, which must succeed: its report.
fn json(args: &str) -> Value {
    let out = keyway(&format!("{args} --json"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "flash-sim {args:?} failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("not one JSON object ({e}): {stdout}"))
}

fn f(v: &Value, key: &str) -> f64 {
    v[key]
        .as_f64()
        .unwrap_or_else(|| panic!("no number {key} in {v}"))
}

fn u(v: &Value, key: &str) -> u64 {
    v[key]
        .as_u64()
        .unwrap_or_else(|| panic!("no integer {key} in {v}"))
}

fn swept(geometry: &str, kib: &str, mode: &str, cuts: &str) {
    let v = json(&format!(
        "--geometry {geometry} --image-kib {kib} --mode {mode} --power-cuts {cuts}"
    ));
    let (scenarios, bricks) = (u(&v, "scenarios"), u(&v, "bricks"));
    println!(
        "flash-sim {geometry}, {kib} KiB, {mode}, {cuts}: {} ops, {scenarios} scenarios, {} cuts fired, \
         {bricks} bricks",
        u(&v, "ops"),
        u(&v, "cuts_fired")
    );
    assert!(scenarios > 0);
    assert!(u(&v, "cuts_fired") >= scenarios);
    assert_eq!(bricks, 0, "{}", v["failures"]);
}

/// One test per row: the sweep [`swept`] runs (geometry, image KiB, mode,
/// power cuts).
macro_rules! sweeps {
    ($($name:ident: $geometry:literal, $kib:literal, $mode:literal, $cuts:literal;)*) => {$(
        #[test]
        fn $name() {
            swept($geometry, $kib, $mode, $cuts);
        }
    )*};
}

sweeps! {
    exhaustive_cuts_nrf52840_16_kib_no_bricks: "nrf52840", "16", "direct", "exhaustive";
    exhaustive_cuts_nrf52840_16_kib_swap_no_bricks: "nrf52840", "16", "swap", "exhaustive";
    random_nested_cuts_small_pages_swap_no_bricks: "small-pages", "8", "swap", "random:300";
    exhaustive_cuts_small_pages_16_kib_no_bricks: "small-pages", "16", "direct", "exhaustive";
    random_nested_cuts_ecc32_no_bricks: "ecc32", "8", "direct", "random:200";
}

#[test]
fn nrf52840_300_kib_direct_is_near_the_physical_minimum() {
    let v = json("--geometry nrf52840 --image-kib 300 --mode direct");
    let ratio = f(&v, "ratio_to_minimum");
    println!(
        "nrf52840 300 KiB direct: modeled {:.3} s, physical minimum {:.3} s, ratio {ratio:.4}",
        f(&v, "modeled_seconds"),
        f(&v, "physical_minimum_seconds")
    );
    assert!(ratio <= 1.05, "ratio {ratio} above 1.05");
    assert_eq!(u(&v, "erases_per_sector_max"), 1);
    assert!(u(&v, "bytes_written") >= 300 * 1024);
    for algo in ["mcuboot_swap_move", "mcuboot_swap_scratch"] {
        let m = &v[algo];
        for key in [
            "erases_per_sector_max",
            "bytes_written",
            "modeled_seconds",
            "ratio_to_minimum",
        ] {
            assert!(m[key].is_number(), "{algo}.{key} missing in {v}");
        }
    }
    assert!(u(&v["mcuboot_swap_move"], "erases_per_sector_max") >= 2);
    assert_eq!(u(&v["mcuboot_swap_scratch"], "erases_per_sector_max"), 75);
    assert_eq!(u(&v, "scenarios"), 0);
}

#[test]
fn nrf52840_300_kib_swap_is_within_the_target() {
    let v = json("--geometry nrf52840 --image-kib 300 --mode swap");
    let ratio = f(&v, "ratio_to_minimum");
    println!(
        "nrf52840 300 KiB swap: modeled {:.3} s (download {:.3} s apart), physical minimum \
         {:.3} s, ratio {ratio:.4}; mcuboot swap-move {:.4}, swap-scratch {:.4}",
        f(&v, "modeled_seconds"),
        f(&v, "download_seconds"),
        f(&v, "physical_minimum_seconds"),
        f(&v["mcuboot_swap_move"], "ratio_to_minimum"),
        f(&v["mcuboot_swap_scratch"], "ratio_to_minimum"),
    );
    assert!(ratio <= 2.1, "swap ratio {ratio} above 2.1");
    assert_eq!(u(&v, "erases_per_sector_max"), 1);
    assert!(ratio < f(&v["mcuboot_swap_move"], "ratio_to_minimum"));
}

#[test]
fn human_output_is_a_table_with_the_definition() {
    let out = keyway("--geometry small-pages --image-kib 4");
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    common::assert_contains_all(
        &text,
        &[
            "keyway direct",
            "physical minimum",
            "mcuboot swap-move",
            "mcuboot swap-scratch",
            "modeled = flash busy time of the install",
        ],
    );
}

#[test]
fn custom_geometry_runs() {
    let v = json("--page-size 2048 --write-size 8 --erase-ms 20 --write-us 30 --image-kib 40");
    assert_eq!(u(&v, "slot_sector_bytes"), 2048);
    // 20 sectors × 20 ms + 5120 units × 30 µs.
    assert!((f(&v, "physical_minimum_seconds") - (0.4 + 0.1536)).abs() < 1e-9);
    // The 4 KiB manifest area takes two more page erases (22 vs 20).
    let ratio = f(&v, "ratio_to_minimum");
    assert!(ratio > 1.0 && ratio < 1.2, "ratio {ratio}");
}

fn refused(args: &str, want: &str) {
    let out = keyway(args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{args:?} was accepted");
    assert!(stderr.contains(want), "{args:?}: {want:?} not in {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn bad_input_is_refused_clearly() {
    for (args, want) in [
        (
            "--geometry esp32 --image-kib 16",
            "unknown geometry \"esp32\"",
        ),
        (
            "--geometry nrf52840 --image-kib 600",
            "does not fit geometry nrf52840",
        ),
        (
            "--geometry stm32f4 --image-kib 300",
            "does not fit geometry stm32f4",
        ),
        ("--page-size 3000 --image-kib 16", "--page-size 3000"),
        ("--page-size 128 --image-kib 16", "256, 512"),
        ("--write-size 3 --image-kib 16", "--write-size 3"),
        ("--erase-ms=-1 --image-kib 16", "custom geometry refused"),
        (
            "--image-kib 16 --power-cuts sometimes",
            "expected exhaustive or random:N",
        ),
        ("--image-kib 16 --power-cuts random:x", "random:N"),
        ("--image-kib 0", "--image-kib must be at least 1"),
    ] {
        refused(args, want);
    }
}
