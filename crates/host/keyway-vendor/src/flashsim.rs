//! `keyway flash-sim`: runs a firmware update on a simulated NOR flash with
//! the lock's real installer, journal and bootloader (`keyway-device`), and
//! reports what it costs and whether power cuts can brick the lock.
//!
//! # What runs
//!
//! * **Flash**: [`keyway_sim::SimFlash`] with a preset geometry or a
//!   uniform custom one (`--page-size`, `--write-size`, `--erase-ms`,
//!   `--write-us`; missing values come from `--geometry`). The write and
//!   page sizes are const generics of the flash type, so the command
//!   instantiates a fixed set: write sizes 1, 2, 4, 8, 16, 32 bytes and
//!   page sizes 256 B to 256 KiB in powers of two.
//! * **Layout**: the journal in two of the smallest sectors (at the start
//!   of a uniform part; sectors 1–2 of a mixed part like the STM32F4), the
//!   two slots in the following run of the largest sectors, each sized to
//!   the image plus a manifest area of at least 4 KiB (plus one spare
//!   sector in the secondary in swap mode).
//! * **Images**: v1 (sequence 1) and v2 (sequence 2) of `--image-kib` KiB
//!   of seeded random bytes in real envelopes signed in memory with a fresh
//!   Ed25519 key; the bootloader's check is the real
//!   [`VerifiedSlot`](keyway_device::verified::VerifiedSlot).
//! * **Measured update**: from the factory state (v1 installed and
//!   confirmed in slot 0), the counters are reset, then: the application
//!   downloads v2 (`Installer`), reboots, the bootloader starts its trial
//!   (direct: `boot::boot`; swap: `swap::boot`, which swaps), and v2
//!   confirms (`boot::confirm`).
//!
//! # `modeled_seconds`
//!
//! The flash busy time of the *install*, from the simulator's time model
//! (erase and program times; reads, CPU and radio are not counted):
//!
//! * direct mode: the whole flash work of the update — the download into
//!   the inactive slot, the bootloader's trial record and the confirm — as
//!   nothing else is needed to activate it;
//! * swap mode: the bootloader's swap (with its journal records); the
//!   download's staging into the secondary is reported separately as
//!   `download_seconds`, because MCUboot's swap costs exclude it too.
//!
//! `erases_per_sector_max` is counted over the sectors of the two slots in
//! the same phase (the journal's pages are counted in `erases_total`);
//! MCUboot swap-scratch's includes its scratch sector, which is erased once
//! per image sector. `bytes_written` is every byte programmed in the phase,
//! journal records included.
//!
//! `physical_minimum_seconds` is writing the image once (erase its sectors
//! once, program its bytes once) and `ratio_to_minimum` is
//! `modeled_seconds / physical_minimum_seconds`. The MCUboot figures are
//! computed, not simulated: see [`cost`].
//!
//! # Power cuts
//!
//! `exhaustive`: for every flash operation of the whole update, three cuts
//! (before it; during it with a prefix-torn write or partial erase; during
//! it with a subset-torn write or random erase). `random:N`: N scenarios of
//! 1–3 cuts at seeded random operations, each later one usually landing in
//! the recovery from the one before. After a cut the lock powers on and
//! does what a real one does: reopen the journal, run the bootloader,
//! confirm a trial, resume (or restart) the download while v1 runs, until
//! v2 runs confirmed. A scenario is a *brick* if the bootloader ever finds
//! no verified slot, a booted slot holds anything but exactly v1 or v2 or
//! does not verify, the anti-rollback floor goes down, v1 runs again after
//! v2's confirm returned `Ok`, the device code fails on a powered flash,
//! or v2 is not running confirmed after 40 power cycles.

pub mod cost;
pub mod runner;

use std::io::{IsTerminal as _, Write};

use anyhow::{Result, anyhow, bail};
use keyway_device::install::Mode;
use keyway_sim::Geometry;
use serde_json::json;

use cost::{Cost, Part};
use runner::{Cuts, Outcome, Phase, Spec};

/// Write sizes the command instantiates.
pub const WRITE_SIZES: [usize; 6] = [1, 2, 4, 8, 16, 32];
/// Page sizes the command instantiates: 256 B to 256 KiB, powers of two.
pub const PAGE_SIZES: [u32; 11] = [
    256, 512, 1024, 2048, 4096, 8192, 16384, 32768, 65536, 131072, 262144,
];

/// What `keyway flash-sim` was asked.
#[derive(Clone, Debug)]
pub struct SimRequest {
    /// A preset name.
    pub geometry: String,
    /// Custom uniform page size.
    pub page_size: Option<u32>,
    /// Custom write size.
    pub write_size: Option<usize>,
    /// Custom page erase time.
    pub erase_ms: Option<f64>,
    /// Custom program time per write unit.
    pub write_us: Option<f64>,
    /// Image size in KiB.
    pub image_kib: u32,
    /// Direct or swap.
    pub mode: Mode,
    /// `exhaustive` or `random:N`.
    pub power_cuts: Option<String>,
    /// Seed.
    pub seed: u64,
    /// One JSON object instead of the table.
    pub json: bool,
}

/// Parses `--power-cuts`.
pub fn parse_cuts(s: &str) -> Result<Cuts> {
    if s == "exhaustive" {
        return Ok(Cuts::Exhaustive);
    }
    if let Some(n) = s.strip_prefix("random:") {
        let n: u64 = n
            .parse()
            .map_err(|_| anyhow!("--power-cuts random:N: N must be a whole number, got {n:?}"))?;
        if n == 0 {
            bail!("--power-cuts random:N: N must be at least 1");
        }
        return Ok(Cuts::Random(n));
    }
    bail!("--power-cuts: expected exhaustive or random:N, got {s:?}")
}

/// The geometry the request describes.
pub fn geometry(r: &SimRequest, image_len: u64) -> Result<Geometry> {
    let preset = Geometry::preset(&r.geometry).ok_or_else(|| {
        anyhow!(
            "unknown geometry {:?}: expected one of {}",
            r.geometry,
            Geometry::PRESETS.join(", ")
        )
    })?;
    let custom = r.page_size.is_some()
        || r.write_size.is_some()
        || r.erase_ms.is_some()
        || r.write_us.is_some();
    if !custom {
        return Ok(preset);
    }
    let page = r.page_size.unwrap_or(preset.min_sector_size());
    let write = r.write_size.unwrap_or(preset.write_size());
    if !PAGE_SIZES.contains(&page) {
        bail!(
            "--page-size {page}: this build simulates page sizes {} bytes",
            list(&PAGE_SIZES)
        );
    }
    if !WRITE_SIZES.contains(&write) {
        bail!(
            "--write-size {write}: this build simulates write sizes {} bytes",
            list(&WRITE_SIZES)
        );
    }
    let first = preset.sectors().first().map(|s| s.erase_time);
    let erase_ms = r
        .erase_ms
        .unwrap_or_else(|| first.map_or(0.0, |d| d.as_secs_f64() * 1e3));
    let write_us = r
        .write_us
        .unwrap_or(preset.program_time().as_secs_f64() * 1e6);
    // Room for the journal and two slots with spares, at least 1 MiB.
    let needed = 2 * (image_len / u64::from(page) + 4096 / u64::from(page) + 3) + 2;
    let pages = needed.max((1 << 20) / u64::from(page));
    let pages = u32::try_from(pages).map_err(|_| anyhow!("--image-kib: image too large"))?;
    Geometry::custom(page, pages, write, erase_ms, write_us)
        .map_err(|e| anyhow!("custom geometry refused: {e}"))
}

/// `4 KiB`, or `512 B` below a KiB.
fn size(bytes: u32) -> String {
    if bytes >= 1024 && bytes.is_multiple_of(1024) {
        format!("{} KiB", bytes / 1024)
    } else {
        format!("{bytes} B")
    }
}

fn list<T: ToString>(v: &[T]) -> String {
    v.iter().map(T::to_string).collect::<Vec<_>>().join(", ")
}

/// Calls `runner::run::<W, E>` for the geometry's write size and smallest
/// sector size, from the fixed set.
macro_rules! by_page {
    ($w:literal, $e:expr, $spec:expr) => {
        match $e {
            256 => runner::run::<$w, 256>($spec),
            512 => runner::run::<$w, 512>($spec),
            1024 => runner::run::<$w, 1024>($spec),
            2048 => runner::run::<$w, 2048>($spec),
            4096 => runner::run::<$w, 4096>($spec),
            8192 => runner::run::<$w, 8192>($spec),
            16384 => runner::run::<$w, 16384>($spec),
            32768 => runner::run::<$w, 32768>($spec),
            65536 => runner::run::<$w, 65536>($spec),
            131072 => runner::run::<$w, 131072>($spec),
            262144 => runner::run::<$w, 262144>($spec),
            other => Err(anyhow!(
                "page size {other}: this build simulates page sizes {} bytes",
                list(&PAGE_SIZES)
            )),
        }
    };
}

fn dispatch(spec: &Spec) -> Result<Outcome> {
    let e = spec.geometry.min_sector_size();
    match spec.geometry.write_size() {
        1 => by_page!(1, e, spec),
        2 => by_page!(2, e, spec),
        4 => by_page!(4, e, spec),
        8 => by_page!(8, e, spec),
        16 => by_page!(16, e, spec),
        32 => by_page!(32, e, spec),
        other => Err(anyhow!(
            "write size {other}: this build simulates write sizes {} bytes",
            list(&WRITE_SIZES)
        )),
    }
}

/// Runs `keyway flash-sim`: prints the report to `out`; fails (after
/// printing) when a scenario bricked the lock.
pub fn run(r: &SimRequest, out: &mut dyn Write) -> Result<()> {
    if r.image_kib == 0 {
        bail!("--image-kib must be at least 1");
    }
    let image_len = u64::from(r.image_kib) * 1024;
    let cuts = r.power_cuts.as_deref().map(parse_cuts).transpose()?;
    let geometry = geometry(r, image_len)?;
    let spec = Spec {
        geometry,
        image_len: usize::try_from(image_len)?,
        mode: r.mode,
        cuts,
        seed: r.seed,
        progress: cuts.is_some() && std::io::stderr().is_terminal(),
    };
    let outcome = dispatch(&spec)?;
    let report = Report::new(&spec, &outcome);
    if r.json {
        writeln!(out, "{}", report.json(&spec, &outcome))?;
    } else {
        report.human(&spec, &outcome, out)?;
    }
    if outcome.bricks > 0 {
        bail!(
            "{} of {} power-cut scenarios bricked the lock",
            outcome.bricks,
            outcome.scenarios
        );
    }
    Ok(())
}

/// The figures printed.
struct Report {
    minimum: Cost,
    swap_move: Cost,
    swap_scratch: Cost,
}

fn mode_name(m: Mode) -> &'static str {
    match m {
        Mode::Direct => "direct",
        Mode::Swap => "swap",
    }
}

impl Report {
    fn new(spec: &Spec, o: &Outcome) -> Self {
        let part = Part {
            sector_size: o.placement.slot_sector,
            write_size: spec.geometry.write_size() as u32,
            erase_s: o.placement.slot_sector_erase.as_secs_f64(),
            program_s: spec.geometry.program_time().as_secs_f64(),
        };
        let len = spec.image_len as u64;
        Report {
            minimum: cost::physical_minimum(&part, len),
            swap_move: cost::swap_move(&part, len),
            swap_scratch: cost::swap_scratch(&part, len),
        }
    }

    fn ratio(&self, seconds: f64) -> f64 {
        if self.minimum.seconds > 0.0 {
            seconds / self.minimum.seconds
        } else {
            0.0
        }
    }

    fn cost_json(&self, c: &Cost) -> serde_json::Value {
        json!({
            "erases_per_sector_max": c.erases_per_sector_max,
            "erases_total": c.erases_total,
            "bytes_written": c.bytes_written,
            "modeled_seconds": c.seconds,
            "ratio_to_minimum": self.ratio(c.seconds),
        })
    }

    fn phase_json(p: &Phase) -> serde_json::Value {
        json!({
            "erases_per_sector_max": p.erases_per_sector_max,
            "erases_total": p.erases_total,
            "bytes_written": p.bytes_written,
            "modeled_seconds": p.seconds,
        })
    }

    fn json(&self, spec: &Spec, o: &Outcome) -> serde_json::Value {
        let l = &o.placement.layout;
        json!({
            "geometry": spec.geometry.name(),
            "mode": mode_name(spec.mode),
            "image_bytes": spec.image_len,
            "slot_sector_bytes": o.placement.slot_sector,
            "slots": [[l.slots[0].start, l.slots[0].end], [l.slots[1].start, l.slots[1].end]],
            "journal": [l.journal.offset, l.journal.pages],
            "ops": o.ops,
            "scenarios": o.scenarios,
            "bricks": o.bricks,
            "cuts_fired": o.cuts_fired,
            "failures": o.failures,
            "erases_per_sector_max": o.install.erases_per_sector_max,
            "erases_total": o.install.erases_total,
            "bytes_written": o.install.bytes_written,
            "modeled_seconds": o.install.seconds,
            "download_seconds": o.download.seconds,
            "physical_minimum_seconds": self.minimum.seconds,
            "ratio_to_minimum": self.ratio(o.install.seconds),
            "phases": {
                "download": Self::phase_json(&o.download),
                "boot": Self::phase_json(&o.boot),
                "confirm": Self::phase_json(&o.confirm),
            },
            "physical_minimum": self.cost_json(&self.minimum),
            "mcuboot_swap_move": self.cost_json(&self.swap_move),
            "mcuboot_swap_scratch": self.cost_json(&self.swap_scratch),
            "seed": spec.seed,
        })
    }

    fn human(&self, spec: &Spec, o: &Outcome, out: &mut dyn Write) -> Result<()> {
        let g = &spec.geometry;
        writeln!(
            out,
            "flash-sim: {} ({} slot sectors, {}-byte writes), {} KiB image, {} mode",
            g.name(),
            size(o.placement.slot_sector),
            g.write_size(),
            spec.image_len / 1024,
            mode_name(spec.mode)
        )?;
        let what = match spec.mode {
            Mode::Direct => {
                "the whole update: download into the inactive slot, trial record, confirm"
            }
            Mode::Swap => "the bootloader's swap; the download's staging is reported apart",
        };
        writeln!(out, "modeled = flash busy time of the install ({what})")?;
        writeln!(out)?;
        let rows: [(String, u32, u64, f64); 4] = [
            (
                format!("keyway {}", mode_name(spec.mode)),
                o.install.erases_per_sector_max,
                o.install.bytes_written,
                o.install.seconds,
            ),
            (
                "physical minimum".into(),
                self.minimum.erases_per_sector_max,
                self.minimum.bytes_written,
                self.minimum.seconds,
            ),
            (
                "mcuboot swap-move".into(),
                self.swap_move.erases_per_sector_max,
                self.swap_move.bytes_written,
                self.swap_move.seconds,
            ),
            (
                "mcuboot swap-scratch".into(),
                self.swap_scratch.erases_per_sector_max,
                self.swap_scratch.bytes_written,
                self.swap_scratch.seconds,
            ),
        ];
        writeln!(
            out,
            "{:<22} {:>16} {:>14} {:>11} {:>8}",
            "", "erases/sector max", "bytes written", "modeled s", "ratio"
        )?;
        for (name, erases, bytes, secs) in rows {
            writeln!(
                out,
                "{name:<22} {erases:>16} {bytes:>14} {secs:>11.3} {:>8.4}",
                self.ratio(secs)
            )?;
        }
        writeln!(out)?;
        writeln!(
            out,
            "phases: download {:.3} s ({} B), bootloader {:.3} s ({} B), confirm {:.3} s ({} B); {} flash ops",
            o.download.seconds,
            o.download.bytes_written,
            o.boot.seconds,
            o.boot.bytes_written,
            o.confirm.seconds,
            o.confirm.bytes_written,
            o.ops
        )?;
        match spec.cuts {
            None => writeln!(
                out,
                "power cuts: none requested (--power-cuts exhaustive|random:N)"
            )?,
            Some(c) => {
                let kind = match c {
                    Cuts::Exhaustive => "exhaustive".to_owned(),
                    Cuts::Random(n) => format!("random:{n}, seed {}", spec.seed),
                };
                writeln!(
                    out,
                    "power cuts ({kind}): {} scenarios ({} cuts fired), {} bricks",
                    o.scenarios, o.cuts_fired, o.bricks
                )?;
                for f in &o.failures {
                    writeln!(out, "  brick: {f}")?;
                }
            }
        }
        Ok(())
    }
}
