//! `keyway diff` and `keyway patch`: delta patches between firmware images.
//!
//! The diff is bsdiff's method on a suffix array of the old image
//! (divsufsort): scan the new image for long matches in the old one, extend
//! each match forwards and backwards while at least half the bytes still
//! agree (so changed pointers inside otherwise equal code stay in one
//! `add` with non-zero diff bytes), and emit what no match covers as
//! `extra` bytes. The ops are coded by `keyway_delta::encode`, the same
//! model the lock decodes with; [`apply`] runs the lock's
//! [`keyway_delta::Patcher`], with its fixed RAM.
//!
//! A patch is untrusted input and its header declares the sizes. Nothing
//! here sizes a buffer from the header: [`check_sizes`] refuses a base or
//! a declared output over [`MAX_IMAGE`] before anything is allocated (the
//! flash simulation must allocate its whole flash up front, so it needs a
//! cap), and [`apply`]'s output grows only as the decoder produces bytes.
//! With the cap, `keyway patch --flash-sim` stays under 100 MB on any
//! patch (issue 12: a 206-byte patch declaring 4 GiB once took 5.3 GB).

use anyhow::{Context, Result, bail};
use keyway_delta::{HEADER_LEN, Op, PatchHeader, Patcher, SliceBase};
use sha2::{Digest, Sha256};

/// Bytes a new match must win over the current alignment before the diff
/// starts a new op for it. bsdiff uses 8; with the range-coded ops 4
/// measured best (BENCHMARKS.md, "Delta updates").
pub const MIN_GAIN: usize = 4;

/// The largest image (base or declared output) [`apply`] and
/// [`apply_on_flash`] take: 8 MiB, eight times the nRF52840's whole
/// flash, and small enough that the flash simulation (1.5 bytes of host
/// RAM per simulated byte, both slots) stays far under 100 MB.
pub const MAX_IMAGE: u32 = 8 << 20;

/// The largest patch file `keyway patch` reads: a patch of incompressible
/// new bytes is a little larger than the image it makes.
pub const MAX_PATCH: u64 = 2 * MAX_IMAGE as u64;

/// Refuses a base of `base_len` bytes or a header that declares an output
/// over [`MAX_IMAGE`], naming the size; nothing is allocated before this.
pub fn check_sizes(base_len: usize, header: &PatchHeader) -> Result<()> {
    let mib = MAX_IMAGE >> 20;
    if base_len > MAX_IMAGE as usize {
        bail!("the old image is {base_len} bytes; patches apply to images of at most {mib} MiB");
    }
    if header.out_size > MAX_IMAGE {
        bail!(
            "the patch header declares a {}-byte output; patches make images of at most {mib} MiB \
             (refused before anything was allocated)",
            header.out_size
        );
    }
    Ok(())
}

fn sha256(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

/// The longest prefix of `needle` found in `old`, as (position, length),
/// by binary search over the suffix array `sa`.
fn longest_match(sa: &[i32], old: &[u8], needle: &[u8]) -> (usize, usize) {
    if sa.is_empty() || needle.is_empty() {
        return (0, 0);
    }
    let common = |p: usize| {
        old[p..]
            .iter()
            .zip(needle)
            .take_while(|(a, b)| a == b)
            .count()
    };
    // First suffix not below the needle; the longest match is it or the one before.
    let idx = sa.partition_point(|&p| &old[p as usize..] < needle);
    let mut best = (0, 0);
    for i in [idx.wrapping_sub(1), idx] {
        if let Some(&p) = sa.get(i) {
            let l = common(p as usize);
            if l > best.1 {
                best = (p as usize, l);
            }
        }
    }
    best
}

/// One run of the new image: `add` bytes against the old image at
/// `old_start`, then `extra` new bytes.
#[derive(Clone, Copy, Debug)]
struct Segment {
    old_start: usize,
    add: usize,
    extra: usize,
}

fn agree(old: &[u8], new: &[u8], o: isize, n: usize) -> bool {
    o >= 0 && (o as usize) < old.len() && old[o as usize] == new[n]
}

/// The segments that turn `old` into `new` (bsdiff's scan).
fn segments(old: &[u8], new: &[u8], min_gain: usize) -> Vec<Segment> {
    let mut sa = vec![0i32; old.len()];
    divsufsort::sort_in_place(old, &mut sa);
    let mut out = Vec::new();
    let (mut scan, mut len, mut pos) = (0usize, 0usize, 0usize);
    let (mut last_scan, mut last_pos, mut last_offset) = (0usize, 0usize, 0isize);
    while scan < new.len() {
        let mut old_score = 0usize;
        scan += len;
        let mut scsc = scan;
        while scan < new.len() {
            (pos, len) = longest_match(&sa, old, &new[scan..]);
            while scsc < scan + len {
                if agree(old, new, scsc as isize + last_offset, scsc) {
                    old_score += 1;
                }
                scsc += 1;
            }
            if (len == old_score && len != 0) || len > old_score + min_gain {
                break;
            }
            if agree(old, new, scan as isize + last_offset, scan) {
                old_score = old_score.saturating_sub(1);
            }
            scan += 1;
        }
        if len == old_score && scan != new.len() {
            continue;
        }
        // Extend the previous match forwards while at least half agrees.
        let (mut s, mut best, mut len_f) = (0isize, 0isize, 0usize);
        let mut i = 0;
        while last_scan + i < scan && last_pos + i < old.len() {
            if old[last_pos + i] == new[last_scan + i] {
                s += 1;
            }
            i += 1;
            if s * 2 - i as isize > best * 2 - len_f as isize {
                best = s;
                len_f = i;
            }
        }
        // Extend the new match backwards likewise.
        let mut len_b = 0usize;
        if scan < new.len() {
            let (mut s, mut best) = (0isize, 0isize);
            let mut i = 1;
            while scan >= last_scan + i && pos >= i {
                if old[pos - i] == new[scan - i] {
                    s += 1;
                }
                if s * 2 - i as isize > best * 2 - len_b as isize {
                    best = s;
                    len_b = i;
                }
                i += 1;
            }
        }
        // Where they overlap, split at the point that keeps most agreement.
        if last_scan + len_f > scan - len_b {
            let overlap = (last_scan + len_f) - (scan - len_b);
            let (mut s, mut best, mut len_s) = (0isize, 0isize, 0usize);
            for i in 0..overlap {
                if new[last_scan + len_f - overlap + i] == old[last_pos + len_f - overlap + i] {
                    s += 1;
                }
                if new[scan - len_b + i] == old[pos - len_b + i] {
                    s -= 1;
                }
                if s > best {
                    best = s;
                    len_s = i + 1;
                }
            }
            len_f = len_f + len_s - overlap;
            len_b -= len_s;
        }
        out.push(Segment {
            old_start: last_pos,
            add: len_f,
            extra: (scan - len_b) - (last_scan + len_f),
        });
        last_scan = scan - len_b;
        last_pos = pos - len_b;
        last_offset = pos as isize - scan as isize;
    }
    out
}

/// The ops that turn `old` into `new`.
pub fn ops(old: &[u8], new: &[u8]) -> Vec<Op> {
    ops_with(old, new, MIN_GAIN)
}

/// [`ops`] with another `min_gain`.
pub fn ops_with(old: &[u8], new: &[u8], min_gain: usize) -> Vec<Op> {
    let mut ops = Vec::new();
    let mut cursor = 0i64;
    for s in segments(old, new, min_gain) {
        if s.add == 0 && s.extra == 0 {
            continue;
        }
        let seek = if s.add == 0 {
            0
        } else {
            s.old_start as i64 - cursor
        };
        cursor += seek + s.add as i64;
        ops.push(Op {
            seek,
            add: s.add as u32,
            extra: s.extra as u32,
        });
    }
    ops
}

/// Makes a patch (header and body) that turns `old` into `new`.
pub fn diff(old: &[u8], new: &[u8]) -> Result<Vec<u8>> {
    encode(old, new, &ops(old, new))
}

/// Encodes `ops` as a patch.
pub fn encode(old: &[u8], new: &[u8], ops: &[Op]) -> Result<Vec<u8>> {
    let header = PatchHeader {
        base_size: u32::try_from(old.len()).context("old image over 4 GiB")?,
        out_size: u32::try_from(new.len()).context("new image over 4 GiB")?,
        base_digest: sha256(old),
        out_digest: sha256(new),
    };
    let mut patch = header.to_bytes().to_vec();
    keyway_delta::encode::encode_body(old, new, ops, |b| patch.push(b))
        .map_err(|e| anyhow::anyhow!("diff produced invalid ops: {e:?}"))?;
    Ok(patch)
}

/// Applies `patch` to `old` with the lock's decoder, feeding the patch in
/// `chunk`-byte pieces; checks the output's size and SHA-256.
pub fn apply(old: &[u8], patch: &[u8], chunk: usize) -> Result<Vec<u8>> {
    let header = PatchHeader::parse(patch).map_err(|e| anyhow::anyhow!("{e}"))?;
    check_sizes(old.len(), &header)?;
    let base_size = u32::try_from(old.len()).context("old image over 4 GiB")?;
    let mut p =
        Patcher::new(&header, base_size, &sha256(old)).map_err(|e| anyhow::anyhow!("{e}"))?;
    // Grows as the decoder produces bytes (at most the declared size,
    // which `check_sizes` bounded): never sized from the header.
    let mut new = Vec::new();
    let mut out = |c: &[u8]| -> Result<(), core::convert::Infallible> {
        new.extend_from_slice(c);
        Ok(())
    };
    let mut base = SliceBase(old);
    for c in patch[HEADER_LEN..].chunks(chunk.max(1)) {
        p.feed(c, &mut base, &mut out).map_err(describe)?;
    }
    p.finish(&mut base, &mut out).map_err(describe)?;
    if sha256(&new) != header.out_digest {
        bail!("patched image's SHA-256 differs from the patch header's");
    }
    Ok(new)
}

fn describe<B: core::fmt::Debug, O: core::fmt::Debug>(
    e: keyway_delta::Error<B, O>,
) -> anyhow::Error {
    match e {
        keyway_delta::Error::Patch(p) => anyhow::anyhow!("patch refused: {p}"),
        keyway_delta::Error::Base(b) => anyhow::anyhow!("reading the old image failed: {b:?}"),
        keyway_delta::Error::Output(o) => anyhow::anyhow!("writing the new image failed: {o:?}"),
    }
}

/// A flash of `sectors` 4 KiB sectors with the nRF52840's rules and timing
/// (85 ms per erase, 41 µs per 4-byte word), as large as the images need.
fn nrf52840_timing(sectors: u32) -> Result<keyway_sim::Geometry> {
    keyway_sim::Geometry::nrf52840_timing(sectors).map_err(|e| anyhow::anyhow!("geometry: {e:?}"))
}

/// What applying a patch on the simulated flash cost.
#[derive(Clone, Debug)]
pub struct FlashApply {
    /// The new image as the installer wrote it into the inactive slot.
    pub image: Vec<u8>,
    /// Modeled flash busy time (erases and writes) of the install.
    pub seconds: f64,
    /// Sector erases.
    pub erases: u64,
    /// Bytes programmed (image and journal).
    pub bytes_written: u64,
}

/// Applies `patch` on the lock's path: the base in slot 0 of a simulated
/// flash with the nRF52840's timing (4 KiB sectors erased in 85 ms, 4-byte
/// words programmed in 41 µs; as many sectors as the two images need, which
/// may be more than the real part's 1 MiB), read by the [`Patcher`] from
/// the flash while its output streams through the lock's `Installer` into
/// slot 1, the patch fed in `chunk`-byte pieces. The installer checks the
/// output's size and SHA-256 against the patch header.
pub fn apply_on_flash(old: &[u8], patch: &[u8], chunk: usize) -> Result<FlashApply> {
    use std::cell::RefCell;

    use keyway_device::install::{Installer, Mode, SlotLayout};
    use keyway_device::journal::{self, Journal, PersistentState};
    use keyway_sim::SimFlash;

    const SECTOR: u32 = 4096;
    let header = PatchHeader::parse(patch).map_err(|e| anyhow::anyhow!("{e}"))?;
    // The flash is allocated whole, for both slots: sizes first.
    check_sizes(old.len(), &header)?;
    let base_size = u32::try_from(old.len()).context("old image over 4 GiB")?;
    let sectors = |len: u32| len.div_ceil(SECTOR).max(1);
    let (n0, n1) = (sectors(base_size), sectors(header.out_size));
    let journal_sectors = 2;
    let geometry = nrf52840_timing(journal_sectors + n0 + n1)?;
    let mut flash =
        SimFlash::<4, 4096>::new(geometry).map_err(|e| anyhow::anyhow!("flash: {e:?}"))?;
    let s0 = journal_sectors * SECTOR;
    let s1 = s0 + n0 * SECTOR;
    let layout = SlotLayout {
        slots: [s0..s1, s1..s1 + n1 * SECTOR],
        journal: journal::Config {
            offset: 0,
            sectors: journal_sectors,
            slot_size: None,
            erased: 0xFF,
        },
        manifest_sectors: 0,
        sector_size: None,
        mode: Mode::Direct,
    };
    let f = |what: &'static str| move |e: &dyn std::fmt::Debug| anyhow::anyhow!("{what}: {e:?}");
    // The factory state: the base in slot 0, active.
    flash.erase(s0, s1).map_err(|e| f("erase slot 0")(&e))?;
    // Whole words from `old` itself, the last one padded (no second copy).
    let whole = old.len() - old.len() % 4;
    flash
        .write(s0, &old[..whole])
        .map_err(|e| f("write slot 0")(&e))?;
    if whole < old.len() {
        let mut last = [0xFF; 4];
        last[..old.len() - whole].copy_from_slice(&old[whole..]);
        flash
            .write(s0 + whole as u32, &last)
            .map_err(|e| f("write slot 0")(&e))?;
    }
    let mut journal = Journal::open(&mut flash, layout.journal).map_err(|e| f("journal")(&e))?;
    journal
        .commit(&mut flash, &PersistentState::default())
        .map_err(|e| f("journal")(&e))?;
    flash.reset_stats();

    let expectation = keyway_suit::ImageExpectation {
        digest: &header.out_digest,
        size: Some(u64::from(header.out_size)),
        uri: None,
    };
    let mut installer =
        Installer::<_, 256>::begin(&mut flash, &mut journal, &layout, &expectation, [0; 32])
            .map_err(|e| f("installer")(&e))?;
    let mut p =
        Patcher::new(&header, base_size, &sha256(old)).map_err(|e| anyhow::anyhow!("{e}"))?;
    let flash = RefCell::new(flash);
    let journal = RefCell::new(journal);

    struct Slot0<'a>(&'a RefCell<SimFlash<4, 4096>>, u32);
    impl keyway_delta::BaseReader for Slot0<'_> {
        type Error = keyway_sim::Error;
        fn read(&mut self, offset: u32, buf: &mut [u8]) -> Result<(), Self::Error> {
            self.0.borrow_mut().read(self.1 + offset, buf)
        }
    }
    let mut base = Slot0(&flash, s0);
    let mut out = |c: &[u8]| installer.push(&mut flash.borrow_mut(), &mut journal.borrow_mut(), c);
    for c in patch[HEADER_LEN..].chunks(chunk.max(1)) {
        p.feed(c, &mut base, &mut out).map_err(describe)?;
    }
    p.finish(&mut base, &mut out).map_err(describe)?;
    let mut flash = flash.into_inner();
    let mut journal = journal.into_inner();
    let slot = installer
        .finish(&mut flash, &mut journal)
        .map_err(|e| f("installer finish (size and SHA-256)")(&e))?;
    if slot != 1 {
        bail!("installed into slot {slot}, expected 1");
    }
    let stats = flash.stats().clone();
    let start = s1 as usize;
    let image = flash.as_bytes()[start..start + header.out_size as usize].to_vec();
    Ok(FlashApply {
        image,
        seconds: stats.modeled_time.as_secs_f64(),
        erases: stats.sector_erases.iter().map(|&e| u64::from(e)).sum(),
        bytes_written: stats.bytes_written,
    })
}

/// One way of updating a lock from `old` to `new`, end to end.
#[derive(Clone, Debug)]
pub struct UpdateTime {
    /// The signed envelope sent.
    pub envelope: Vec<u8>,
    /// Its size.
    pub envelope_bytes: usize,
    /// Transfer time at the link's rate.
    pub transfer_s: f64,
    /// Modeled flash time of the install (manifest area, image, journal).
    pub install_s: f64,
    /// Modeled flash time of the reboot into the new image (the bootloader's
    /// trial commit).
    pub reboot_s: f64,
}

impl UpdateTime {
    /// Transfer, install and reboot.
    pub fn total_s(&self) -> f64 {
        self.transfer_s + self.install_s + self.reboot_s
    }
}

/// End-to-end update time from `old` to `new` on the nRF52840 flash model
/// over a link of `link_bytes_per_s`, for the full image and for the delta
/// (returned in that order). Both are signed (a throwaway key), verified
/// by `keyway_suit::verify_envelope`, installed through the lock's path
/// (`Installer::begin_with_manifest`, or `DeltaInstaller` reading the base
/// from the active slot) into the inactive slot of a flash with the
/// nRF52840's timing (as many 4 KiB sectors as the images need), and
/// booted on trial by `boot::boot` with the real `VerifiedSlot`, which
/// must pick the new image. The model counts flash busy time (erases and
/// programs) and the transfer; not CPU time (SHA-256, signature checks,
/// decoding), nor the SMP framing overhead (equal in proportion for both).
pub fn update_times(old: &[u8], new: &[u8], link_bytes_per_s: u64) -> Result<[UpdateTime; 2]> {
    use crate::encode::{EnvelopeBuilder, class_uuid, vendor_uuid};
    use crate::keys::{Algorithm, SigningKey};
    use keyway_device::boot::{self, Boot, Confirmation, SelfTest};
    use keyway_device::delta::DeltaInstaller;
    use keyway_device::install::{Installer, Mode, SlotLayout};
    use keyway_device::journal::{self, Journal};
    use keyway_device::verified::{HEAD_BUF_LEN, VerifiedSlot};
    use keyway_sim::SimFlash;

    const SECTOR: u32 = 4096;
    type Flash = SimFlash<4, 4096>;
    let err = |what: &'static str| move |e: &dyn std::fmt::Debug| anyhow::anyhow!("{what}: {e:?}");
    let key = SigningKey::generate(Algorithm::Ed25519).map_err(|e| anyhow::anyhow!("{e}"))?;
    let anchors = keyway_suit::TrustAnchors::new(
        &[
            keyway_suit::PublicKey::from_raw(&key.raw_public_key_bytes())
                .map_err(|e| err("key")(&e))?,
        ],
        1,
    )
    .map_err(|e| err("anchors")(&e))?;
    let vendor = vendor_uuid("locks.example");
    let identity = keyway_suit::DeviceIdentity::new(vendor, class_uuid(&vendor, "deadbolt"));
    let envelope = |sequence: u64, payload: &[u8], from: Option<&[u8]>| {
        EnvelopeBuilder {
            sequence,
            version: crate::encode::Version::new(1, 0, sequence),
            vendor_domain: "locks.example".into(),
            class_name: "deadbolt".into(),
            notes: Some("release".into()),
            payload: payload.to_vec(),
            delta_from: from.map(<[u8]>::to_vec),
            keys: vec![key.clone()],
            ..Default::default()
        }
        .build()
        .map(|b| b.envelope)
        .map_err(|e| anyhow::anyhow!("{e}"))
    };

    let image_sectors = (old.len().max(new.len()) as u32).div_ceil(SECTOR) + 1;
    let geometry = nrf52840_timing(2 + 2 * image_sectors)?;
    let s0 = 2 * SECTOR;
    let s1 = s0 + image_sectors * SECTOR;
    let layout = SlotLayout {
        slots: [s0..s1, s1..s1 + image_sectors * SECTOR],
        journal: journal::Config::new(0, 2),
        manifest_sectors: 1,
        sector_size: None,
        mode: Mode::Direct,
    };
    let boot_into = |flash: &mut Flash, j: &mut Journal<Flash>| -> Result<u8> {
        let state = *j.state();
        let mut buf = [0u8; HEAD_BUF_LEN];
        let mut check =
            VerifiedSlot::<256>::new(&layout, &anchors, &identity, &state, None, &mut buf);
        match boot::boot(j, flash, &mut check)
            .map_err(|e| err("boot")(&e))?
            .boot
        {
            Boot::Slot(s) => Ok(s),
            other => bail!("the bootloader did not boot a slot: {other:?}"),
        }
    };
    let full_install = |flash: &mut Flash, j: &mut Journal<Flash>, env: &[u8], floor| {
        let v = keyway_suit::verify_envelope(
            env,
            &anchors,
            &identity,
            &keyway_suit::DeviceState::new(floor),
        )
        .map_err(|e| err("verify")(&e))?;
        let exp = v.payload.context("no payload")?;
        let offset = v.integrated.context("no integrated payload")?.offset;
        let mut inst = Installer::<_, 256>::begin_with_manifest(
            flash,
            j,
            &layout,
            &exp,
            v.manifest_digest,
            &env[..offset],
        )
        .map_err(|e| err("install")(&e))?;
        for c in env[offset..].chunks(244) {
            inst.push(flash, j, c).map_err(|e| err("install")(&e))?;
        }
        inst.finish(flash, j).map_err(|e| err("install")(&e))
    };

    // The lock runs `old`, confirmed, in slot 0.
    let mut factory = Flash::new(geometry).map_err(|e| err("flash")(&e))?;
    let mut j = Journal::open(&mut factory, layout.journal).map_err(|e| err("journal")(&e))?;
    j.commit(
        &mut factory,
        &journal::PersistentState {
            active_slot: 1,
            ..Default::default()
        },
    )
    .map_err(|e| err("journal")(&e))?;
    full_install(&mut factory, &mut j, &envelope(1, old, None)?, 0)?;
    if boot_into(&mut factory, &mut j)? != 0 {
        bail!("the factory image did not boot");
    }
    let pass = SelfTest {
        motor: true,
        sensors: true,
        comms: true,
    };
    let conf = Confirmation {
        sequence: 1,
        keyset_version: 0,
    };
    boot::confirm(&mut j, &mut factory, pass, conf).map_err(|e| err("confirm")(&e))?;

    let mut out = Vec::new();
    for delta in [false, true] {
        let env = envelope(2, new, delta.then_some(old))?;
        let mut flash = factory.clone();
        flash.reset_stats();
        let mut j = Journal::open(&mut flash, layout.journal).map_err(|e| err("journal")(&e))?;
        if delta {
            let v = keyway_suit::verify_envelope(
                &env,
                &anchors,
                &identity,
                &keyway_suit::DeviceState::new(1),
            )
            .map_err(|e| err("verify")(&e))?;
            let ip = v.integrated.context("no integrated payload")?;
            let binding = v.delta.context("no delta binding")?;
            let mut d = DeltaInstaller::<_, 256>::begin(
                &mut flash,
                &mut j,
                &layout,
                &binding,
                v.payload.as_ref().context("no payload")?,
                v.manifest_digest,
                Some(&env[..ip.offset]),
            )
            .map_err(|e| anyhow::anyhow!("delta install: {e}"))?;
            for c in env[ip.offset..].chunks(244) {
                d.push(&mut flash, &mut j, c)
                    .map_err(|e| anyhow::anyhow!("delta install: {e}"))?;
            }
            d.finish(&mut flash, &mut j)
                .map_err(|e| anyhow::anyhow!("delta install: {e}"))?;
        } else {
            full_install(&mut flash, &mut j, &env, 1)?;
        }
        let install_s = flash.stats().modeled_time.as_secs_f64();
        if boot_into(&mut flash, &mut j)? != 1 {
            bail!("the new image did not boot");
        }
        let r = &layout.slots[1];
        if flash.as_bytes()[r.start as usize..r.start as usize + new.len()] != *new {
            bail!("the installed image differs from the new one");
        }
        out.push(UpdateTime {
            envelope: env.clone(),
            envelope_bytes: env.len(),
            transfer_s: env.len() as f64 / link_bytes_per_s.max(1) as f64,
            install_s,
            reboot_s: flash.stats().modeled_time.as_secs_f64() - install_s,
        });
    }
    let [full, delta]: [UpdateTime; 2] = out
        .try_into()
        .map_err(|_| anyhow::anyhow!("the update-time model ran other than twice (full, delta)"))?;
    Ok([full, delta])
}

/// Which of several envelopes of one release to send to a lock whose
/// running image has SHA-256 `running` (the Keyway group status's
/// `image`): a delta whose base is the running image, else a full image.
/// Returns the index into `envelopes` and the reason, for the owner. The
/// envelopes are only inspected here (structure and digests); the lock
/// verifies the one it receives.
pub fn choose(envelopes: &[&[u8]], running: &[u8; 32]) -> Result<(usize, String)> {
    let short = |d: &[u8]| crate::keys::hex(d.get(..4).unwrap_or(d));
    let mut full = None;
    let mut other_bases = Vec::new();
    for (i, env) in envelopes.iter().enumerate() {
        let e = keyway_suit::inspect_envelope(env).map_err(|e| {
            anyhow::anyhow!("envelope {}: {}", i + 1, crate::describe::describe(&e))
        })?;
        match e.delta {
            Some(d) if d.base_digest == running => {
                return Ok((
                    i,
                    format!(
                        "the delta ({} bytes): the lock runs its base {}…",
                        env.len(),
                        short(running)
                    ),
                ));
            }
            Some(d) => other_bases.push(format!("{}…", short(d.base_digest))),
            None if full.is_none() => full = Some(i),
            None => {}
        }
    }
    let Some(i) = full else {
        bail!(
            "no envelope fits: the lock runs {}…, the deltas apply to {}, and no full image was given",
            short(running),
            other_bases.join(", ")
        );
    };
    let why = if other_bases.is_empty() {
        "no delta was given".to_owned()
    } else {
        format!(
            "the lock runs {}…, the delta applies to {}",
            short(running),
            other_bases.join(", ")
        )
    };
    Ok((
        i,
        format!("the full image ({} bytes): {why}", envelopes[i].len()),
    ))
}
