//! The demo's lock installs the release it accepted: swap mode (images
//! linked to one address) on a simulated nRF52840 flash, with the real
//! installer, journal, swap bootloader and `VerifiedSlot` of
//! `keyway-device`, and a power cut in the middle of the swap.

use std::io::Write;

use anyhow::{Context as _, Result, anyhow, bail};
use keyway_device::boot::{self, Boot, Confirmation, Decision, Reason, RevertCause, SelfTest};
use keyway_device::install::{Installer, Mode, SlotLayout};
use keyway_device::journal::{Journal, PersistentState, SwapPhase, TrialState};
use keyway_device::manifest_area::HEADER_LEN;
use keyway_device::swap;
use keyway_device::verified::{HEAD_BUF_LEN, SlotError, SlotInfo, VerifiedSlot};
use keyway_sim::{Cut, CutPoint, EraseTear, PowerCut, SimFlash, Stats, WriteTear};
use keyway_suit::{DeviceIdentity, KeySet, TrustAnchors};

use super::{LINK_CHUNK, Score};

/// The nRF52840: 1 MiB of 4 KiB pages, 4-byte writes.
type Flash = SimFlash<4, 4096>;
/// The installer's and the bootloader's copy buffer.
const BUF: usize = 256;
const PASS: SelfTest = SelfTest {
    motor: true,
    sensors: true,
    comms: true,
};

/// A signed release as the lock receives it.
pub struct Release {
    /// Its version, for the printout.
    pub version: String,
    /// The whole envelope.
    pub envelope: Vec<u8>,
    payload_at: usize,
    payload_len: usize,
}

impl Release {
    /// Splits `envelope` into its head and its integrated payload.
    pub fn new(version: &str, envelope: Vec<u8>) -> Result<Self> {
        let ip = keyway_suit::inspect_envelope(&envelope)
            .map_err(|e| anyhow!("release {version}: {}", keyway::describe::describe(&e)))?
            .integrated
            .with_context(|| format!("release {version} does not carry its image"))?;
        let (payload_at, payload_len) = (ip.offset, ip.len as usize);
        Ok(Release {
            version: version.to_owned(),
            envelope,
            payload_at,
            payload_len,
        })
    }

    /// The image's length in bytes.
    pub fn image_len(&self) -> usize {
        self.payload_len
    }

    fn head(&self) -> &[u8] {
        &self.envelope[..self.payload_at]
    }

    fn payload(&self) -> &[u8] {
        &self.envelope[self.payload_at..self.payload_at + self.payload_len]
    }
}

/// The lock: its slot layout and what its bootloader trusts.
pub struct Lock<'a> {
    layout: SlotLayout,
    anchors: &'a TrustAnchors,
    identity: &'a DeviceIdentity,
    /// The key set the lock stored when it accepted the release.
    keyset: Option<KeySet>,
    /// Geometry indices of the slots' sectors.
    slot_sectors: Vec<usize>,
}

/// What the install left for the attack on the flash.
pub struct Installed {
    /// The scorecard lines "power cut during the install" and "self-test, confirm".
    pub scores: Vec<Score>,
    /// The lock's flash with 2.x staged, before the bootloader ran.
    pub staged: Flash,
}

impl<'a> Lock<'a> {
    /// A lock laid out for images of up to `image_len` bytes.
    pub fn new(
        anchors: &'a TrustAnchors,
        identity: &'a DeviceIdentity,
        keyset: Option<KeySet>,
        image_len: usize,
    ) -> Result<Self> {
        let geometry = Flash::nrf52840().geometry().clone();
        let layout = keyway::flashsim::runner::place(&geometry, image_len, Mode::Swap)?.layout;
        layout
            .validate::<Flash>(geometry.capacity() as usize)
            .map_err(|e| anyhow!("the lock's slot layout is refused: {e:?}"))?;
        let slot_sectors = geometry
            .sectors()
            .iter()
            .filter(|s| {
                layout
                    .slots
                    .iter()
                    .any(|r| r.start <= s.start && s.end() <= r.end)
            })
            .map(|s| s.index)
            .collect();
        Ok(Lock {
            layout,
            anchors,
            identity,
            keyset,
            slot_sectors,
        })
    }

    fn journal(&self, flash: &mut Flash) -> Result<Journal<Flash>> {
        Journal::open(flash, self.layout.journal)
            .map_err(|e| anyhow!("the lock's journal does not open: {e:?}"))
    }

    /// The bootloader: `swap::boot` with the real re-verification.
    fn boot(
        &self,
        flash: &mut Flash,
        journal: &mut Journal<Flash>,
    ) -> std::result::Result<Decision, swap::Error<keyway_sim::Error>> {
        let state = *journal.state();
        let mut head = [0u8; HEAD_BUF_LEN];
        let mut check = VerifiedSlot::<256>::new(
            &self.layout,
            self.anchors,
            self.identity,
            &state,
            self.keyset.clone(),
            &mut head,
        );
        swap::boot::<_, _, BUF>(journal, flash, &self.layout, &mut check)
    }

    /// Re-verifies `slot` as the bootloader does.
    fn verify(
        &self,
        flash: &mut Flash,
        state: &PersistentState,
        slot: u8,
    ) -> std::result::Result<SlotInfo, SlotError> {
        let mut head = [0u8; HEAD_BUF_LEN];
        VerifiedSlot::<256>::new(
            &self.layout,
            self.anchors,
            self.identity,
            state,
            self.keyset.clone(),
            &mut head,
        )
        .check(flash, slot)
    }

    /// Whether the primary holds exactly `r`: its image and its signed head.
    fn holds(&self, flash: &Flash, r: &Release) -> bool {
        let Some(place) = self.layout.place::<Flash>(0) else {
            return false;
        };
        let Some(area) = place.manifest else {
            return false;
        };
        let bytes = flash.as_bytes();
        let at = place.image.start as usize;
        let head_at = area.start as usize + HEADER_LEN;
        bytes.get(at..at + r.payload().len()) == Some(r.payload())
            && bytes.get(head_at..head_at + r.head().len()) == Some(r.head())
    }

    /// Image sectors of the primary that already hold `r`'s bytes.
    fn sectors_of(&self, flash: &Flash, r: &Release) -> (usize, usize) {
        let Some(place) = self.layout.place::<Flash>(0) else {
            return (0, 0);
        };
        let bytes = flash.as_bytes();
        let at = place.image.start as usize;
        let chunks = r.payload().chunks(4096);
        let total = chunks.len();
        let same = chunks
            .enumerate()
            .filter(|(i, c)| bytes.get(at + i * 4096..at + i * 4096 + c.len()) == Some(*c))
            .count();
        (same, total)
    }

    /// The most erases of one slot sector since the stats were reset.
    fn erases_max(&self, stats: &Stats) -> u32 {
        self.slot_sectors
            .iter()
            .map(|&i| stats.sector_erases.get(i).copied().unwrap_or(0))
            .max()
            .unwrap_or(0)
    }

    /// The factory state: `old` in the primary, confirmed, floor at its
    /// sequence number, no key set recorded yet.
    fn factory(&self, old: &Release, sequence: u64) -> Result<Flash> {
        let mut flash = Flash::nrf52840();
        let direct = SlotLayout {
            mode: Mode::Direct,
            ..self.layout.clone()
        };
        let f = |what: &str, e: &dyn std::fmt::Display| anyhow!("factory {what}: {e}");
        let mut journal = self.journal(&mut flash)?;
        // A journal that names slot 1 active, so that the installer writes slot 0.
        journal
            .commit(
                &mut flash,
                &PersistentState {
                    active_slot: 1,
                    ..PersistentState::default()
                },
            )
            .map_err(|e| f("journal", &e))?;
        let checked = keyway_suit::inspect_envelope(&old.envelope)
            .map_err(|e| anyhow!("release {}: {e:?}", old.version))?;
        let exp = checked
            .payload
            .context("the factory release has no image")?;
        let mut inst = Installer::<_, BUF>::begin_with_manifest(
            &mut flash,
            &mut journal,
            &direct,
            &exp,
            checked.manifest_digest,
            old.head(),
        )
        .map_err(|e| f("programming", &e))?;
        for c in old.payload().chunks(4096) {
            inst.push(&mut flash, &mut journal, c)
                .map_err(|e| f("programming", &e))?;
        }
        let slot = inst
            .finish(&mut flash, &mut journal)
            .map_err(|e| f("programming", &e))?;
        if slot != 0 {
            bail!("factory programming wrote slot {slot}, not the primary");
        }
        let state = PersistentState {
            floor: Some(sequence),
            active_slot: 0,
            trial: TrialState::Confirmed,
            ..PersistentState::default()
        };
        journal
            .commit(&mut flash, &state)
            .map_err(|e| f("journal", &e))?;
        match self.verify(&mut flash, &state, 0) {
            Ok(i) if i.sequence == sequence && self.holds(&flash, old) => Ok(flash),
            other => bail!(
                "the factory image {} does not verify in the primary: {other:?}",
                old.version
            ),
        }
    }

    /// The application stages `new` into the secondary, streaming its
    /// payload in link-sized chunks.
    fn stage(&self, flash: &mut Flash, new: &Release) -> Result<()> {
        let mut journal = self.journal(flash)?;
        let f =
            |what: &str, e: &dyn std::fmt::Display| anyhow!("staging {}: {what}: {e}", new.version);
        let checked = keyway_suit::inspect_envelope(&new.envelope)
            .map_err(|e| anyhow!("release {}: {e:?}", new.version))?;
        let exp = checked.payload.context("the release has no image")?;
        let mut inst = Installer::<_, BUF>::begin_with_manifest(
            flash,
            &mut journal,
            &self.layout,
            &exp,
            checked.manifest_digest,
            new.head(),
        )
        .map_err(|e| f("begin", &e))?;
        for c in new.payload().chunks(LINK_CHUNK) {
            inst.push(flash, &mut journal, c)
                .map_err(|e| f("push", &e))?;
        }
        let slot = inst
            .finish(flash, &mut journal)
            .map_err(|e| f("finish", &e))?;
        let s = journal.state();
        if slot != 1
            || s.trial != (TrialState::Pending { slot: 1 })
            || s.swap.map(|p| p.phase) != Some(SwapPhase::Staged)
        {
            bail!(
                "staging {} did not leave it pending in the secondary: slot {slot}, {s:?}",
                new.version
            );
        }
        Ok(())
    }

    /// Factory state, staging, the swap with a power cut half way, resume,
    /// self-test and confirm. Prints what happens; returns the two
    /// scorecard lines and the staged flash for the attack.
    pub fn install(
        &self,
        old: (&Release, u64),
        new: (&Release, u64),
        out: &mut dyn Write,
    ) -> Result<Installed> {
        let (old, old_seq) = old;
        let (new, new_seq) = new;
        let l = &self.layout;
        let sectors = |r: &core::ops::Range<u32>| (r.end - r.start) / 4096;
        let mut flash = self.factory(old, old_seq)?;
        writeln!(
            out,
            "  nRF52840 flash (4 KiB pages), swap mode: journal at {:#x}, primary {:#07x}..{:#07x} ({} pages), secondary {:#07x}..{:#07x} ({} pages)",
            l.journal.offset,
            l.slots[0].start,
            l.slots[0].end,
            sectors(&l.slots[0]),
            l.slots[1].start,
            l.slots[1].end,
            sectors(&l.slots[1]),
        )?;
        writeln!(
            out,
            "  factory state: {} (sequence {old_seq}) in the primary, confirmed, floor {old_seq}",
            old.version
        )?;

        flash.reset_stats();
        self.stage(&mut flash, new)?;
        writeln!(
            out,
            "  the app stages {} into the secondary: {} chunks of {LINK_CHUNK} bytes, {:.3} s of flash time; journal: pending in slot 1, staged",
            new.version,
            new.payload().len().div_ceil(LINK_CHUNK),
            flash.modeled_time().as_secs_f64()
        )?;
        let staged = flash.clone();

        // How many flash operations the swap takes, on a copy.
        let mut dry = flash.clone();
        dry.reset_stats();
        let dry_start = dry.ops();
        let mut j = self.journal(&mut dry)?;
        self.boot(&mut dry, &mut j)
            .map_err(|e| anyhow!("the swap without a power cut failed: {e}"))?;
        let swap_ops = dry.ops() - dry_start;
        let dry_erases = self.erases_max(dry.stats());
        let dry_seconds = dry.modeled_time().as_secs_f64();

        // Reboot into the bootloader; the power fails half way.
        flash.reset_stats();
        let start = flash.ops();
        let cut_at = start + swap_ops / 2;
        flash.set_power_cut(PowerCut::new(0x4B45_5957).then(CutPoint {
            op: cut_at,
            cut: Cut::During {
                write: WriteTear::Prefix,
                erase: EraseTear::Partial,
            },
        }));
        let mut j = self.journal(&mut flash)?;
        let interrupted = self.boot(&mut flash, &mut j);
        let cut = flash.cut_log().first().copied();
        let (new_sectors, image_sectors) = self.sectors_of(&flash, new);
        let mix = !self.holds(&flash, old) && !self.holds(&flash, new);
        let power_cut = match (&interrupted, cut) {
            (Err(_), Some(c)) if !flash.is_powered() => {
                writeln!(
                    out,
                    "  reboot: the bootloader verifies the staged image and swaps ({swap_ops} flash operations)"
                )?;
                writeln!(
                    out,
                    "  POWER FAILS during operation {} of {swap_ops} (a {:?} at {:#07x}): the primary holds {new_sectors} of {image_sectors} image pages of {}{}, nothing booted",
                    c.op - start + 1,
                    c.kind,
                    c.offset,
                    new.version,
                    if mix { ", a mix" } else { "" }
                )?;
                Ok(())
            }
            (Ok(d), _) => Err(format!(
                "the power cut never hit the swap: booted {:?} ({:?})",
                d.boot, d.reason
            )),
            (Err(e), _) => Err(format!("the bootloader failed on a powered flash: {e}")),
        };

        // Power returns.
        flash.power_on();
        let mut j = self.journal(&mut flash)?;
        let at_resume = j.state().swap;
        let resumed = self.boot(&mut flash, &mut j);
        let state = *j.state();
        let booted_new = self.holds(&flash, new);
        let info = self.verify(&mut flash, &state, 0);
        let erases = self.erases_max(flash.stats());
        let power_cut = power_cut.and_then(|()| match (&resumed, &info) {
            (
                Ok(Decision {
                    boot: Boot::Slot(0),
                    reason: Reason::StartTrial { slot: 0, .. },
                    ..
                }),
                Ok(i),
            ) if booted_new && i.sequence == new_seq => Ok(()),
            (Ok(d), _) if !booted_new => Err(format!(
                "after the resume the primary is not exactly {} ({d:?})",
                new.version
            )),
            (Ok(d), Ok(i)) => Err(format!(
                "after the resume: {:?} / {:?}, primary verifies as sequence {}",
                d.boot, d.reason, i.sequence
            )),
            (Ok(d), Err(e)) => Err(format!(
                "after the resume ({:?}) the primary does not verify: {e:?}",
                d.reason
            )),
            (Err(e), _) => Err(format!("the resumed swap failed: {e}")),
        });
        if let Ok(d) = &resumed {
            let step = match at_resume.map(|p| p.phase) {
                Some(SwapPhase::Swapping { step, saved }) => format!(
                    "at step {} of {} ({})",
                    step + 1,
                    image_sectors + l.manifest_sectors as usize,
                    if saved { "saved" } else { "not saved" }
                ),
                other => format!("from {other:?}"),
            };
            writeln!(
                out,
                "  power returns: the journal says where the swap stopped; the bootloader resumes it {step} and boots {:?}: {:?}",
                d.boot, d.reason
            )?;
        }
        writeln!(
            out,
            "  the swap: {:.3} s of modeled flash time with the cut and resume ({dry_seconds:.3} s without), {} B written; erases per slot sector max {erases} ({dry_erases} without the cut: the interrupted half step is redone)",
            flash.modeled_time().as_secs_f64(),
            flash.bytes_written(),
        )?;
        writeln!(
            out,
            "  never a mix: {}; the resumed swap booted it {}",
            if interrupted.is_err() {
                "nothing booted while the primary was half swapped"
            } else {
                "the interrupted run BOOTED"
            },
            if booted_new {
                format!("only once it held exactly {}", new.version)
            } else {
                format!("while it did NOT hold exactly {}", new.version)
            }
        )?;
        let power_cut = Score {
            name: "power cut during the install",
            pass: power_cut.is_ok(),
            evidence: match power_cut {
                Ok(()) => format!(
                    "cut at operation {} of {swap_ops}; resumed, {} verified in the primary, on trial",
                    cut.map_or(0, |c| c.op - start + 1),
                    new.version
                ),
                Err(e) => e,
            },
        };

        // The application on trial: self-test, confirm.
        let confirmed = match (&resumed, &info) {
            (Ok(_), Ok(i)) => {
                let conf = Confirmation {
                    sequence: i.sequence,
                    keyset_version: i.keyset_version,
                };
                boot::confirm(&mut j, &mut flash, PASS, conf)
                    .map_err(|e| format!("confirm refused: {e:?}"))
                    .and_then(|_| {
                        // What the journal kept, read back from the flash.
                        let s = *self.journal(&mut flash).map_err(|e| e.to_string())?.state();
                        if s.floor == Some(new_seq)
                            && s.trial == TrialState::Confirmed
                            && s.active_slot == 0
                        {
                            Ok(s)
                        } else {
                            Err(format!("journal after confirm: {s:?}"))
                        }
                    })
            }
            _ => Err("nothing to confirm: the install failed".to_owned()),
        };
        if let Ok(s) = &confirmed {
            writeln!(
                out,
                "  {} on trial: self-test passes (motor, sensors, comms); confirmed, floor {old_seq} -> {}, key set v{}",
                new.version,
                s.floor.unwrap_or(0),
                s.keyset_version
            )?;
        }
        let confirm = Score {
            name: "self-test, confirm",
            pass: confirmed.is_ok(),
            evidence: match confirmed {
                Ok(s) => format!(
                    "journal: floor {}, {:?}, key set v{}",
                    s.floor.unwrap_or(0),
                    s.trial,
                    s.keyset_version
                ),
                Err(e) => e,
            },
        };
        Ok(Installed {
            scores: vec![power_cut, confirm],
            staged,
        })
    }

    /// The attack on the flash: one byte of the staged image flipped
    /// before the bootloader runs (on a copy of `staged`).
    pub fn tampered_image(&self, staged: &Flash, old: &Release, new: &Release) -> Result<Score> {
        let place = self
            .layout
            .place::<Flash>(1)
            .context("the secondary has no place")?;
        let mut bytes = staged.as_bytes().to_vec();
        let at = place.image.start as usize + new.payload().len() / 2;
        bytes[at] ^= 0x01;
        let mut flash = Flash::from_bytes(staged.geometry().clone(), bytes)
            .map_err(|e| anyhow!("copying the lock's flash: {e:?}"))?;
        let mut j = self.journal(&mut flash)?;
        flash.reset_stats();
        let d = self.boot(&mut flash, &mut j);
        let state = *j.state();
        let running_old = self.holds(&flash, old);
        let info = self.verify(&mut flash, &state, 0);
        let refused = Reason::Reverted {
            slot: 1,
            cause: RevertCause::Unverified,
        };
        let (pass, evidence) = match (&d, &info) {
            (Ok(d), Ok(i)) if d.boot == Boot::Slot(0) && d.reason == refused && running_old => (
                true,
                format!(
                    "byte {at:#07x} flipped: the bootloader refused to swap it in ({:?}), {} erases; {} (sequence {}) still boots",
                    d.reason,
                    flash.stats().erase_ops,
                    old.version,
                    i.sequence
                ),
            ),
            (Ok(d), _) => (
                false,
                format!(
                    "bootloader: {:?} / {:?}; primary holds {}; primary check: {}",
                    d.boot,
                    d.reason,
                    if running_old {
                        old.version.clone()
                    } else {
                        format!("not {}", old.version)
                    },
                    match &info {
                        Ok(i) => format!("verifies as sequence {}", i.sequence),
                        Err(e) => format!("{e:?}"),
                    }
                ),
            ),
            (Err(e), _) => (false, format!("the bootloader failed: {e}")),
        };
        Ok(Score {
            name: "tampered image in flash",
            pass,
            evidence,
        })
    }
}
