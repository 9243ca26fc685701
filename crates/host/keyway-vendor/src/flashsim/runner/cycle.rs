//! The lock's life across power cycles: the factory state, then power-on
//! cycles (bootloader, then application: confirm a trial, download v2)
//! until v2 runs confirmed, with the checks that tell a brick from a
//! recovery (the floor never goes down, the running image verifies).

use super::*;

impl Ctx {
    /// The bootloader's check of a slot under `layout`, with the vendor's
    /// anchors and the device identity (no stored key set).
    fn verified_slot<'a>(
        &'a self,
        layout: &'a SlotLayout,
        state: &PersistentState,
        head: &'a mut [u8],
    ) -> VerifiedSlot<'a, 256> {
        VerifiedSlot::new(layout, &self.anchors, &self.identity, state, None, head)
    }
}

/// The factory state: v1 installed, booted and confirmed in slot 0 (by
/// the real installer, from a journal that names slot 1 active so that
/// slot 0 is the inactive one).
pub(super) fn factory<const W: usize, const E: usize>(
    flash: &mut SimFlash<W, E>,
    ctx: &Ctx,
) -> Result<()> {
    let direct = SlotLayout {
        mode: Mode::Direct,
        ..ctx.layout.clone()
    };
    let f = |what: &str, e: &dyn std::fmt::Debug| anyhow!("flash-sim: factory {what}: {e:?}");
    let mut journal = Journal::open(flash, ctx.layout.journal).map_err(|e| f("journal", &e))?;
    let start = PersistentState {
        active_slot: 1,
        ..PersistentState::default()
    };
    journal.commit(flash, &start).map_err(|e| f("commit", &e))?;
    let checked = keyway_suit::inspect_envelope(&ctx.v1.env).map_err(|e| f("envelope", &e))?;
    let exp = checked.payload.ok_or_else(|| anyhow!("no payload"))?;
    let mut inst = Installer::<_, BUF>::begin_with_manifest(
        flash,
        &mut journal,
        Target::new(&direct, &exp, checked.manifest_digest),
        ctx.v1.head(),
    )
    .map_err(|e| f("install", &e))?;
    for chunk in ctx.v1.payload().chunks(CHUNK) {
        inst.push(flash, &mut journal, chunk)
            .map_err(|e| f("install", &e))?;
    }
    let slot = inst
        .finish(flash, &mut journal, Arm::Now)
        .map_err(|e| f("install", &e))?;
    let state = *journal.state();
    let mut head = [0u8; HEAD_BUF_LEN];
    let mut check = ctx.verified_slot(&direct, &state, &mut head);
    let d = boot::boot(&mut journal, flash, &mut check).map_err(|e| f("boot", &e))?;
    if d.boot != Boot::Slot(0) || slot != 0 {
        bail!("flash-sim: factory image did not boot from slot 0: {d:?}");
    }
    let conf = Confirmation {
        sequence: ctx.v1.sequence,
        keyset_version: 0,
    };
    boot::confirm(&mut journal, flash, PASS, conf).map_err(|e| f("confirm", &e))?;
    Ok(())
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Mark {
    Booted,
    Downloaded,
    Confirmed,
}

/// What a scenario remembers across power cycles (the checks' memory, not
/// the device's).
#[derive(Default)]
pub(super) struct Track {
    floor: Option<u64>,
    confirmed: bool,
    pub(super) marks: Vec<(Mark, Stats)>,
}

/// Why a power-on cycle stopped.
enum Stop {
    /// The power failed.
    Cut,
    /// A check failed, or the device code failed on a powered flash.
    Fail(String),
}

/// Maps a device error: a power cut if the flash lost power, else a failure.
fn stop<const W: usize, const E: usize, D: std::fmt::Debug>(
    flash: &SimFlash<W, E>,
    what: &str,
) -> impl FnOnce(D) -> Stop {
    let powered = flash.is_powered();
    let what = what.to_owned();
    move |e| {
        if powered {
            Stop::Fail(format!("{what}: {e:?}"))
        } else {
            Stop::Cut
        }
    }
}

/// Power cycles until the lock runs v2 confirmed, as a real lock would:
/// bootloader, then the application (confirm a trial; download v2 while
/// v1 runs). Err: a brick, described.
pub(super) fn update<const W: usize, const E: usize>(
    flash: &mut SimFlash<W, E>,
    ctx: &Ctx,
    track: &mut Track,
) -> std::result::Result<(), String> {
    for _ in 0..MAX_CYCLES {
        if !flash.is_powered() {
            flash.power_on();
        }
        match cycle(flash, ctx, track) {
            Ok(true) => return Ok(()),
            Ok(false) | Err(Stop::Cut) => {}
            Err(Stop::Fail(m)) => return Err(m),
        }
    }
    Err(format!(
        "no v2 confirmed after {MAX_CYCLES} power cycles (state {:?})",
        Journal::open(flash, ctx.layout.journal).map(|j| *j.state())
    ))
}

/// Which release the image of `slot` is: 1, 2, or neither (a mix).
fn identify<const W: usize, const E: usize>(
    flash: &mut SimFlash<W, E>,
    ctx: &Ctx,
    slot: u8,
) -> std::result::Result<u64, Stop> {
    let place = ctx
        .layout
        .place::<SimFlash<W, E>>(slot)
        .ok_or_else(|| Stop::Fail(format!("slot {slot} has no place")))?;
    let mut bytes = vec![0u8; ctx.image_len];
    flash
        .read(place.image.start, &mut bytes)
        .map_err(|e| Stop::Fail(format!("reading slot {slot}: {e:?}")))?;
    if bytes == ctx.v1.payload() {
        Ok(ctx.v1.sequence)
    } else if bytes == ctx.v2.payload() {
        Ok(ctx.v2.sequence)
    } else {
        Err(Stop::Fail(format!(
            "booted slot {slot} holds neither v1 nor v2"
        )))
    }
}

/// One power-on: returns whether the lock now runs v2 confirmed.
fn cycle<const W: usize, const E: usize>(
    flash: &mut SimFlash<W, E>,
    ctx: &Ctx,
    track: &mut Track,
) -> std::result::Result<bool, Stop> {
    let mut journal =
        Journal::open(flash, ctx.layout.journal).map_err(stop(flash, "opening the journal"))?;
    let floor = journal.state().floor;
    if floor < track.floor {
        return Err(Stop::Fail(format!(
            "the floor went down from {:?} to {floor:?}",
            track.floor
        )));
    }
    track.floor = floor;

    // The bootloader.
    let state = *journal.state();
    let decision = {
        let mut head = [0u8; HEAD_BUF_LEN];
        let mut check = ctx.verified_slot(&ctx.layout, &state, &mut head);
        match ctx.layout.mode {
            Mode::Direct => {
                boot::boot(&mut journal, flash, &mut check).map_err(stop(flash, "bootloader"))?
            }
            Mode::Swap => {
                keyway_device::swap::boot::<_, _, BUF>(&mut journal, flash, &ctx.layout, &mut check)
                    .map_err(stop(flash, "swap bootloader"))?
            }
        }
    };
    track.marks.push((Mark::Booted, flash.stats().clone()));
    let slot = match decision.boot {
        Boot::Slot(s) => s,
        Boot::Recovery => {
            return Err(Stop::Fail(format!(
                "the bootloader found no verified slot (recovery): {decision:?}"
            )));
        }
    };

    // The application, running from `slot`.
    let running = identify(flash, ctx, slot)?;
    let state = *journal.state();
    {
        let mut head = [0u8; HEAD_BUF_LEN];
        let mut check = ctx.verified_slot(&ctx.layout, &state, &mut head);
        match check.check(flash, slot) {
            Ok(info) if info.sequence == running => {}
            other => {
                return Err(Stop::Fail(format!(
                    "booted slot {slot} (v{running}) does not verify: {other:?}"
                )));
            }
        }
    }
    if track.confirmed && running != ctx.v2.sequence {
        return Err(Stop::Fail(
            "a confirmed update was lost: v1 runs again".to_owned(),
        ));
    }
    if let TrialState::Trial { slot: t, .. } = state.trial
        && t == slot
    {
        let conf = Confirmation {
            sequence: running,
            keyset_version: 0,
        };
        boot::confirm(&mut journal, flash, PASS, conf).map_err(stop(flash, "confirm"))?;
        track.marks.push((Mark::Confirmed, flash.stats().clone()));
        if running == ctx.v2.sequence {
            track.confirmed = true;
            return Ok(true);
        }
    }
    let state = *journal.state();
    if running == ctx.v2.sequence && state.floor == Some(ctx.v2.sequence) {
        return Ok(true);
    }
    download(flash, &mut journal, ctx)?;
    track.marks.push((Mark::Downloaded, flash.stats().clone()));
    Ok(false)
}

/// The application's download of v2: resume the recorded one, or begin.
fn download<const W: usize, const E: usize>(
    flash: &mut SimFlash<W, E>,
    journal: &mut Journal<SimFlash<W, E>>,
    ctx: &Ctx,
) -> std::result::Result<(), Stop> {
    let checked = keyway_suit::inspect_envelope(&ctx.v2.env)
        .map_err(|e| Stop::Fail(format!("v2 envelope: {e:?}")))?;
    let exp = checked
        .payload
        .ok_or_else(|| Stop::Fail("v2 has no payload".into()))?;
    let digest = checked.manifest_digest;
    let resumed =
        match Installer::<_, BUF>::resume(flash, journal, Target::new(&ctx.layout, &exp, digest)) {
            Ok(i) => Some(i),
            Err(
                install::InstallError::NoDownload
                | install::InstallError::OtherManifest { .. }
                | install::InstallError::OtherSlot { .. }
                | install::InstallError::BadOffset { .. },
            ) => None,
            Err(e) => return Err(stop(flash, "resuming the download")(e)),
        };
    let mut inst = match resumed {
        Some(i) => i,
        None => Installer::<_, BUF>::begin_with_manifest(
            flash,
            journal,
            Target::new(&ctx.layout, &exp, digest),
            ctx.v2.head(),
        )
        .map_err(stop(flash, "beginning the download"))?,
    };
    let from = usize::try_from(inst.offset()).unwrap_or(usize::MAX);
    let rest = ctx.v2.payload().get(from..).unwrap_or(&[]);
    for chunk in rest.chunks(CHUNK) {
        inst.push(flash, journal, chunk)
            .map_err(stop(flash, "downloading"))?;
    }
    inst.finish(flash, journal, Arm::Now)
        .map_err(stop(flash, "finishing the download"))?;
    Ok(())
}
