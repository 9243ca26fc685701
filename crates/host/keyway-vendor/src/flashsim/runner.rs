//! Drives the real installer, journal and bootloader of `keyway-device`
//! over a [`SimFlash`]: the measured update, and the power-cut scenarios.

use std::time::Duration;

use anyhow::{Context as _, Result, anyhow, bail};
use keyway_device::boot::{self, Boot, Confirmation, SelfTest};
use keyway_device::install::{self, Arm, Installer, Mode, SlotLayout, Target};
use keyway_device::journal::{Config, Journal, PersistentState, TrialState};
use keyway_device::verified::{HEAD_BUF_LEN, VerifiedSlot};
use keyway_sim::{Cut, CutPoint, Geometry, PowerCut, SimFlash, Stats};
use keyway_suit::{DeviceIdentity, PublicKey, TrustAnchors};
use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::{Rng, SeedableRng};

use crate::encode::{EnvelopeBuilder, ReleaseVersion, class_uuid, vendor_uuid};
use crate::keys::{Algorithm, SigningKey};

mod cycle;
use cycle::{Mark, Track, factory, update};

const VENDOR: &str = "locks.example";
const CLASS: &str = "flash-sim";
const PASS: SelfTest = SelfTest::PASS;
/// The installer's write buffer (divides every page size the command
/// accepts, a multiple of every write size).
const BUF: usize = 256;
/// Payload chunks as they arrive over the transport.
const CHUNK: usize = 1024;
/// Power-on cycles a scenario may take before it counts as stuck.
const MAX_CYCLES: u32 = 40;

/// The power cuts to sweep.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cuts {
    /// Every op of the update, three cut kinds each.
    Exhaustive,
    /// This many scenarios of 1–3 nested cuts at random ops.
    Random(u64),
}

/// What the runner is asked.
#[derive(Clone, Debug)]
pub struct Spec {
    /// The part.
    pub geometry: Geometry,
    /// The image length in bytes.
    pub image_len: usize,
    /// Direct or swap.
    pub mode: Mode,
    /// The sweep, if any.
    pub cuts: Option<Cuts>,
    /// The seed of payloads and random cuts.
    pub seed: u64,
    /// Show a progress bar on stderr.
    pub progress: bool,
}

/// The flash work of one phase of the update.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Phase {
    /// The most erases of one sector of the slots in this phase.
    pub erases_per_sector_max: u32,
    /// Sector erases in this phase (all sectors, the journal's included).
    pub erases_total: u64,
    /// Bytes programmed.
    pub bytes_written: u64,
    /// Modeled busy time in seconds.
    pub seconds: f64,
}

/// Where things were put on the part.
#[derive(Clone, Debug)]
pub struct Placement {
    /// The layout handed to the device code.
    pub layout: SlotLayout,
    /// The slot sector size.
    pub slot_sector: u32,
    /// The erase time of one slot sector.
    pub slot_sector_erase: Duration,
}

/// The result of a run.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// Where things were put.
    pub placement: Placement,
    /// Download (direct: into the inactive slot; swap: staging into the
    /// secondary).
    pub download: Phase,
    /// The bootloader's run that activates the update (direct: the trial
    /// record; swap: the swap).
    pub boot: Phase,
    /// The application's confirm.
    pub confirm: Phase,
    /// The install as `modeled_seconds` defines it (see the module docs of
    /// `flashsim`).
    pub install: Phase,
    /// Flash operations of the whole update.
    pub ops: u64,
    /// Power-cut scenarios run.
    pub scenarios: u64,
    /// Scenarios that bricked the lock.
    pub bricks: u64,
    /// Cuts that fired in all scenarios (a planned cut past the end of a
    /// scenario's operations does not).
    pub cuts_fired: u64,
    /// The first few bricks, described.
    pub failures: Vec<String>,
}

/// A signed release: envelope, payload and where the payload starts.
struct Release {
    env: Vec<u8>,
    payload_at: usize,
    sequence: u64,
}

impl Release {
    fn payload(&self) -> &[u8] {
        self.env.get(self.payload_at..).unwrap_or(&[])
    }
    fn head(&self) -> &[u8] {
        self.env.get(..self.payload_at).unwrap_or(&[])
    }
}

/// The vendor's keys and the device's fixed identity, with the releases.
struct Ctx {
    layout: SlotLayout,
    anchors: TrustAnchors,
    identity: DeviceIdentity,
    v1: Release,
    v2: Release,
    image_len: usize,
    /// Geometry sector indices of both slots.
    slot_sectors: Vec<usize>,
}

fn release(key: &SigningKey, sequence: u64, payload: Vec<u8>) -> Result<Release> {
    let env = EnvelopeBuilder {
        sequence,
        version: ReleaseVersion::new(1, sequence, 0),
        vendor_domain: VENDOR.into(),
        class_name: CLASS.into(),
        payload,
        keys: vec![key.clone()],
        ..Default::default()
    }
    .build()
    .context("flash-sim: signing the test image")?
    .envelope;
    let payload_at = keyway_suit::inspect_envelope(&env)
        .map_err(|e| anyhow!("flash-sim: the signed test image does not decode: {e:?}"))?
        .integrated
        .map(|p| p.offset)
        .ok_or_else(|| anyhow!("flash-sim: the test envelope has no integrated payload"))?;
    Ok(Release {
        env,
        payload_at,
        sequence,
    })
}

/// Lays out the journal and the two slots on `geometry` for an image of
/// `image_len` bytes (see the `flashsim` module docs).
pub fn place(geometry: &Geometry, image_len: usize, mode: Mode) -> Result<Placement> {
    let sectors = geometry.sectors();
    let min = geometry.min_sector_size();
    let slot_sector = sectors.iter().map(|s| s.size).max().unwrap_or(0);
    if slot_sector == 0 {
        bail!("flash-sim: geometry {} has no sectors", geometry.name());
    }
    let uniform = geometry.is_uniform();
    // The journal: two smallest sectors (on a mixed part, sectors 1–2,
    // leaving sector 0 to the bootloader).
    let journal_offset = if uniform { 0 } else { sectors[1].start };
    let journal_first = if uniform { 0 } else { 1 };
    if sectors.len() < journal_first + 2 || sectors[journal_first + 1].size != min {
        bail!(
            "flash-sim: geometry {} has no two small sectors for the journal",
            geometry.name()
        );
    }
    let journal = Config::new(journal_offset, 2).with_erased_value(geometry.erased_value());
    // Slots: in the run of slot-sized sectors after the journal.
    let first = sectors
        .iter()
        .position(|s| s.index >= journal_first + 2 && s.size == slot_sector)
        .ok_or_else(|| {
            anyhow!(
                "flash-sim: geometry {} has no room for slots",
                geometry.name()
            )
        })?;
    let run = sectors[first..]
        .iter()
        .take_while(|s| s.size == slot_sector)
        .count() as u64;
    let manifest = keyway_device::manifest_area::MANIFEST_AREA_MIN.div_ceil(slot_sector);
    let n = (image_len as u64).div_ceil(u64::from(slot_sector)).max(1);
    let primary = n + u64::from(manifest);
    let secondary = primary + u64::from(mode == Mode::Swap);
    if primary + secondary > run {
        bail!(
            "flash-sim: an image of {} KiB does not fit geometry {}: {} mode needs {} + {} \
             sectors of {} KiB for the two slots (image, manifest area{}), the part has {} after the journal",
            image_len / 1024,
            geometry.name(),
            if mode == Mode::Swap { "swap" } else { "direct" },
            primary,
            secondary,
            slot_sector / 1024,
            if mode == Mode::Swap { ", spare" } else { "" },
            run
        );
    }
    let s0 = sectors[first].start;
    let s1 = s0 + (primary as u32) * slot_sector;
    let s2 = s1 + (secondary as u32) * slot_sector;
    Ok(Placement {
        layout: SlotLayout {
            slots: [s0..s1, s1..s2],
            journal,
            manifest_sectors: manifest,
            sector_size: Some(slot_sector),
            mode,
        },
        slot_sector,
        slot_sector_erase: sectors[first].erase_time,
    })
}

/// Runs the measured update and, if asked, the power-cut sweep, on a
/// `SimFlash<W, E>` (the caller dispatched the geometry's sizes).
pub fn run<const W: usize, const E: usize>(spec: &Spec) -> Result<Outcome> {
    let placement = place(&spec.geometry, spec.image_len, spec.mode)?;
    let mut flash = SimFlash::<W, E>::new(spec.geometry.clone()).map_err(|e| {
        anyhow!(
            "flash-sim: geometry {} does not fit a flash with {W}-byte writes and {E}-byte \
             pages: {e}",
            spec.geometry.name()
        )
    })?;
    placement
        .layout
        .validate::<SimFlash<W, E>>(spec.geometry.capacity() as usize)
        .map_err(|e| anyhow!("flash-sim: layout refused: {e:?}"))?;

    let key = SigningKey::generate(Algorithm::Ed25519).context("flash-sim: key generation")?;
    let public = PublicKey::from_raw(&key.raw_public_key_bytes())
        .map_err(|e| anyhow!("flash-sim: public key: {e:?}"))?;
    let anchors = TrustAnchors::new(&[public], 1).map_err(|e| anyhow!("trust anchors: {e:?}"))?;
    let v = vendor_uuid(VENDOR);
    let mut rng = ChaCha8Rng::seed_from_u64(spec.seed);
    let mut data = |len: usize| {
        let mut b = vec![0u8; len];
        rng.fill_bytes(&mut b);
        b
    };
    let slot_sectors = spec
        .geometry
        .sectors()
        .iter()
        .filter(|s| {
            placement
                .layout
                .slots
                .iter()
                .any(|r| r.start <= s.start && s.end() <= r.end)
        })
        .map(|s| s.index)
        .collect();
    let ctx = Ctx {
        layout: placement.layout.clone(),
        anchors,
        identity: DeviceIdentity::new(v, class_uuid(&v, CLASS)),
        v1: release(&key, 1, data(spec.image_len))?,
        v2: release(&key, 2, data(spec.image_len))?,
        image_len: spec.image_len,
        slot_sectors,
    };

    factory(&mut flash, &ctx)?;
    flash.reset_stats();
    let factory_image = flash.clone();

    // The measured update, without cuts.
    let start = flash.ops();
    let mut track = Track::default();
    match update(&mut flash, &ctx, &mut track) {
        Ok(()) => {}
        Err(e) => bail!("flash-sim: the update without power cuts failed: {e}"),
    }
    let ops = flash.ops() - start;
    let marks = &track.marks;
    let find = |what: Mark, after: usize| marks.iter().skip(after).position(|(m, _)| *m == what);
    let dl = find(Mark::Downloaded, 0).ok_or_else(|| anyhow!("flash-sim: no download ran"))?;
    let bt = find(Mark::Booted, dl)
        .map(|i| i + dl)
        .ok_or_else(|| anyhow!("no boot"))?;
    let cf = find(Mark::Confirmed, bt)
        .map(|i| i + bt)
        .ok_or_else(|| anyhow!("no confirm"))?;
    let zero = Stats {
        sector_erases: vec![0; spec.geometry.sectors().len()],
        ..Stats::default()
    };
    let before_dl = marks[..dl].last().map_or(&zero, |(_, s)| s);
    let download = phase(&ctx, before_dl, &marks[dl].1);
    let boot = phase(&ctx, &marks[dl].1, &marks[bt].1);
    let confirm = phase(&ctx, &marks[bt].1, &marks[cf].1);
    let install = match spec.mode {
        Mode::Direct => phase(&ctx, before_dl, &marks[cf].1),
        Mode::Swap => boot,
    };

    let mut outcome = Outcome {
        placement,
        download,
        boot,
        confirm,
        install,
        ops,
        scenarios: 0,
        bricks: 0,
        cuts_fired: 0,
        failures: Vec::new(),
    };
    if let Some(cuts) = spec.cuts {
        sweep(&factory_image, &ctx, cuts, ops, spec, &mut outcome);
    }
    Ok(outcome)
}

/// Plans for the sweep.
fn plans(cuts: Cuts, base: u64, ops: u64, seed: u64) -> Vec<PowerCut> {
    match cuts {
        Cuts::Exhaustive => (0..ops)
            .flat_map(|i| {
                CutPoint::three_ways(base + i)
                    .into_iter()
                    .enumerate()
                    .map(move |(k, c)| PowerCut::new(seed ^ (i * 3 + k as u64)).then(c))
            })
            .collect(),
        Cuts::Random(n) => {
            let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5EED_C075);
            let span = ops.max(1);
            (0..n)
                .map(|i| {
                    let mut plan = PowerCut::new(seed.wrapping_add(i));
                    let count = 1 + rng.next_u64() % 3;
                    let mut at = base + rng.next_u64() % span;
                    for _ in 0..count {
                        let kind = (rng.next_u64() % 3) as usize;
                        plan = plan.then(CutPoint::three_ways(at)[kind]);
                        // The next cut lands later: usually in the recovery.
                        at += 1 + rng.next_u64() % span;
                    }
                    plan
                })
                .collect()
        }
    }
}

fn describe(plan: &PowerCut) -> String {
    let cuts: Vec<String> = plan
        .pending()
        .map(|c| match c.cut {
            Cut::Before => format!("before op {}", c.op),
            Cut::During { write, erase } => {
                format!("during op {} ({write:?} write / {erase:?} erase)", c.op)
            }
        })
        .collect();
    format!("seed {}, cut {}", plan.seed(), cuts.join(", then "))
}

fn sweep<const W: usize, const E: usize>(
    factory: &SimFlash<W, E>,
    ctx: &Ctx,
    cuts: Cuts,
    ops: u64,
    spec: &Spec,
    outcome: &mut Outcome,
) {
    let plans = plans(cuts, factory.ops(), ops, spec.seed);
    let bar = if spec.progress {
        let bar = indicatif::ProgressBar::with_draw_target(
            Some(plans.len() as u64),
            indicatif::ProgressDrawTarget::stderr(),
        );
        Some(bar)
    } else {
        None
    };
    for plan in plans {
        let what = describe(&plan);
        let mut flash = factory.clone();
        flash.set_power_cut(plan);
        let mut track = Track::default();
        if let Err(e) = update(&mut flash, ctx, &mut track) {
            outcome.bricks += 1;
            if outcome.failures.len() < 10 {
                outcome.failures.push(format!("{what}: {e}"));
            }
        }
        outcome.scenarios += 1;
        outcome.cuts_fired += flash.cut_log().len() as u64;
        if let Some(bar) = &bar {
            bar.inc(1);
        }
    }
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
}

/// Difference of the counters between two marks.
fn phase(ctx: &Ctx, from: &Stats, to: &Stats) -> Phase {
    let erases = |s: &Stats, i: usize| s.sector_erases.get(i).copied().unwrap_or(0);
    let n = to.sector_erases.len();
    let diff: Vec<u32> = (0..n).map(|i| erases(to, i) - erases(from, i)).collect();
    Phase {
        erases_per_sector_max: ctx
            .slot_sectors
            .iter()
            .map(|&i| diff.get(i).copied().unwrap_or(0))
            .max()
            .unwrap_or(0),
        erases_total: diff.iter().map(|&d| u64::from(d)).sum(),
        bytes_written: to.bytes_written - from.bytes_written,
        seconds: (to.modeled_time - from.modeled_time).as_secs_f64(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stm32f4_journal_in_sectors_1_2_and_slots_in_128_kib_sectors() {
        let p = place(&Geometry::stm32f4(), 200 * 1024, Mode::Swap).unwrap();
        assert_eq!(p.layout.journal.offset, 0x4000);
        assert_eq!(p.layout.journal.pages, 2);
        assert_eq!(p.slot_sector, 128 * 1024);
        assert_eq!(p.slot_sector_erase, Duration::from_secs(1));
        // 2 image sectors + 1 manifest sector; the secondary has a spare.
        assert_eq!(p.layout.slots, [0x2_0000..0x8_0000, 0x8_0000..0x10_0000]);
        assert_eq!(p.layout.manifest_sectors, 1);
        assert_eq!(p.layout.sector_size, Some(128 * 1024));
    }

    #[test]
    fn small_pages_manifest_area_spans_4_kib() {
        let p = place(&Geometry::small_pages(), 10 * 1024, Mode::Direct).unwrap();
        assert_eq!(p.layout.manifest_sectors, 8);
        assert_eq!(p.layout.journal.offset, 0);
        // Journal in pages 0-1, then 20 + 8 pages per slot.
        assert_eq!(p.layout.slots, [1024..15360, 15360..29696]);
    }

    #[test]
    fn too_large_an_image_is_refused_by_name() {
        let e = place(&Geometry::nrf52840(), 600 * 1024, Mode::Direct).unwrap_err();
        assert!(
            e.to_string().contains("does not fit geometry nrf52840"),
            "{e}"
        );
    }
}
