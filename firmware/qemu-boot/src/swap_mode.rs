//! The swap-mode scenario (the crate documentation's second list):
//! `swap::boot` with `VerifiedSlot` on its own RAM flash, the update
//! staged, swapped in, swapped back, staged again, cut off by a power cut
//! mid-swap and resumed. Apart from `main.rs`, which holds the harness and
//! the direct A/B scenario.

use super::*;

/// The swap bootloader (`swap::boot`): reopen the journal, decide with the
/// real VerifiedSlot, swap or swap back as the journal says. Returns the
/// decision and the state it left, or the error (a power cut).
fn swap_bootloader(
    flash: &mut SwapFlash,
    d: &Device,
) -> Result<(Decision, PersistentState), swap::SwapError<FlashError>> {
    let mut journal = reopen(flash, d);
    let state = *journal.state();
    let mut head = [0u8; HEAD_BUF_LEN];
    let mut check =
        VerifiedSlot::<256>::new(&d.layout, &d.anchors, &d.identity, &state, None, &mut head);
    let decision =
        swap::boot::<_, _, { swap::DEFAULT_BUF }>(&mut journal, flash, &d.layout, &mut check)?;
    Ok((decision, *journal.state()))
}

/// [`swap_bootloader`] that must not fail.
fn swap_boot(flash: &mut SwapFlash, d: &Device) -> (Decision, PersistentState) {
    must("swap boot", swap_bootloader(flash, d))
}

/// Swap mode on a second RAM flash (`d.layout` is [`swap_layout`]): the
/// factory image in the primary, an update staged one sector into the
/// secondary, swapped in (one erase per moved sector per slot) and tried,
/// a failed self-test swapped back, the update staged again, its swap cut
/// off halfway by a power cut and resumed after the reset, confirmed.
pub(crate) fn swap_scenario(flash: &mut SwapFlash, d: &Device, c: &mut Checks) {
    // 1. Factory: v1 into the primary through the installer with a Direct
    //    view of the same layout (the journal says slot 1 is active, so
    //    slot 0 is the target), then provisioned: active 0, confirmed,
    //    floor 1.
    let direct = Device {
        anchors: d.anchors.clone(),
        identity: d.identity,
        layout: SlotLayout {
            mode: Mode::Direct,
            ..swap_layout()
        },
    };
    let (slot, seq) = factory(flash, d, &direct, "swap factory: journal");
    let (dec, s) = swap_boot(flash, d);
    c.check(
        "swap factory",
        provisioned(slot, seq, &s) && plain_boot(&dec, 0),
        format_args!(
            "v1 (seq {}) in the primary (slot {}); journal: active {}, {:?}, floor {:?}; \
             swap::boot: {:?} ({:?})",
            seq, slot, s.active_slot, s.trial, s.floor, dec.boot, dec.reason
        ),
    );

    // 2. Stage v2: the real installer with the swap layout writes it one
    //    sector into the secondary.
    let (slot, seq) = install(flash, d, V2);
    let s = *reopen(flash, d).state();
    let moved = staged_moved(&s);
    c.check(
        "swap stage",
        slot == 1 && seq == 2 && s.trial == TrialState::Pending { slot: 1 } && moved.is_some(),
        format_args!(
            "seq {} staged in slot {} (image at +{:#x}, after the spare and manifest sectors); \
             journal {:?}, swap {:?}",
            seq,
            slot,
            d.layout
                .place::<SwapFlash>(1)
                .map_or(0, |p| p.image.start - SWAP_SECONDARY),
            s.trial,
            s.swap.map(|p| p.phase)
        ),
    );
    let moved = moved.unwrap_or(0);

    // 3. Boot: the swap, then the trial of the primary, which now holds v2.
    //    Every moved sector is erased once in each slot.
    flash.take_sector_erases();
    let (e0, w0) = flash.ops();
    let (dec, s) = swap_boot(flash, d);
    let (e1, w1) = flash.ops();
    let swap_ops = (e1 - e0) + (w1 - w0);
    let erases = flash.take_sector_erases();
    let (journal_e, rest) = erases.split_at(JOURNAL_SECTORS as usize);
    let (primary_e, rest) = rest.split_at((SLOT_LEN / SECTOR as u32) as usize);
    let secondary_e = &rest[..(SWAP_SECONDARY_LEN / SECTOR as u32) as usize];
    let once = |e: &[u16]| {
        e.iter().all(|n| *n <= 1) && e.iter().map(|n| u32::from(*n)).sum::<u32>() == moved
    };
    let info = verify_slot(flash, d, 0);
    c.check(
        "swap",
        trial_of(&dec, &s, &info, 0, 2) && once(primary_e) && once(secondary_e),
        format_args!(
            "{:?} ({:?}); primary verified: seq {:?}; {} sectors moved, erases per sector: \
             primary {:?}, secondary {:?}, journal {:?} ({} erases, {} writes)",
            dec.boot,
            dec.reason,
            info.map(|i| i.sequence),
            moved,
            primary_e,
            secondary_e,
            journal_e,
            e1 - e0,
            w1 - w0
        ),
    );

    // 4. The self-test fails; the next boot swaps v1 back.
    let mut journal = reopen(flash, d);
    let r = boot::confirm(&mut journal, flash, MOTOR_FAILS, confirmation(2));
    c.check(
        "swap self-test fails",
        matches!(r, Err(ConfirmError::SelfTestFailed { slot: 0, .. })),
        format_args!("{}", Shown(&r)),
    );
    let (dec, s) = swap_boot(flash, d);
    let info = verify_slot(flash, d, 0);
    c.check(
        "swap back",
        revert_of(&dec, &s, 0)
            && matches!(info, Ok(i) if i.sequence == 1)
            && s.swap.is_none()
            && s.floor == Some(1),
        format_args!(
            "{:?} ({:?}); primary verified: seq {:?}; journal: swap {:?}, floor {:?}",
            dec.boot,
            dec.reason,
            info.map(|i| i.sequence),
            s.swap,
            s.floor
        ),
    );

    // 5. Stage v2 again; the power fails halfway through its swap.
    let (slot, _) = install(flash, d, V2);
    let cut = swap_ops / 2;
    flash.cut_after(cut);
    let r = swap_bootloader(flash, d);
    flash.power_on();
    let s = *reopen(flash, d).state();
    c.check(
        "swap power cut",
        slot == 1
            && matches!(
                r,
                Err(swap::SwapError::Flash {
                    error: FlashError::PowerCut { .. },
                    ..
                } | swap::SwapError::Journal(journal::JournalError::Flash {
                    error: FlashError::PowerCut { .. },
                    ..
                }))
            )
            && matches!(
                s.swap.map(|p| p.phase),
                Some(SwapPhase::Swapping { step, .. }) if step > 0
            ),
        format_args!(
            "v2 staged again; cut after {} of {} flash ops: {}; journal swap {:?}",
            cut,
            swap_ops,
            Shown(&r.map(|(dec, _)| dec.boot)),
            s.swap.map(|p| p.phase)
        ),
    );

    // 6. The reset: swap::boot resumes the swap where the journal says and
    //    boots v2 on trial.
    let (dec, s) = swap_boot(flash, d);
    let info = verify_slot(flash, d, 0);
    c.check(
        "swap resumed",
        trial_of(&dec, &s, &info, 0, 2) && s.swap.map(|p| p.phase) == Some(SwapPhase::Swapped),
        format_args!(
            "{:?} ({:?}); primary verified: seq {:?}; journal swap {:?}",
            dec.boot,
            dec.reason,
            info.map(|i| i.sequence),
            s.swap.map(|p| p.phase)
        ),
    );

    // 7. The self-test passes: confirm (floor 2); the next boot is plain.
    confirm_v2(c, flash, d, "swap confirm", 0, "primary");
    let (dec, _) = swap_boot(flash, d);
    check_plain_boot(c, "swap boot v2", &dec, 0);
}

/// The sectors a staged swap moves (manifest area + image), from the
/// journal's `Staged` record.
fn staged_moved(s: &PersistentState) -> Option<u32> {
    match s.swap {
        Some(SwapProgress {
            image_sectors,
            phase: SwapPhase::Staged,
        }) => Some(swap_layout().manifest_sectors + image_sectors),
        _ => None,
    }
}
