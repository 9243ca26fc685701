//! The end-to-end update-time model: a full image against a delta, signed,
//! verified, installed on the nRF52840 flash model and booted, with the
//! transfer over a link of a given rate (BLE in BENCHMARKS.md).

use anyhow::{Context, Result, bail};

use super::apply::nrf52840_timing;

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
    use keyway_device::install::{Arm, Installer, Mode, SlotLayout, Target};
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
            version: crate::encode::ReleaseVersion::new(1, 0, sequence),
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
            Target::new(&layout, &exp, v.manifest_digest),
            &env[..offset],
        )
        .map_err(|e| err("install")(&e))?;
        for c in env[offset..].chunks(244) {
            inst.push(flash, j, c).map_err(|e| err("install")(&e))?;
        }
        inst.finish(flash, j, Arm::Now)
            .map_err(|e| err("install")(&e))
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
    let pass = SelfTest::PASS;
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
                Target::new(
                    &layout,
                    v.payload.as_ref().context("no payload")?,
                    v.manifest_digest,
                ),
                &binding,
                Some(&env[..ip.offset]),
            )
            .map_err(|e| anyhow::anyhow!("delta install: {e}"))?;
            for c in env[ip.offset..].chunks(244) {
                d.push(&mut flash, &mut j, c)
                    .map_err(|e| anyhow::anyhow!("delta install: {e}"))?;
            }
            d.finish(&mut flash, &mut j, Arm::Now)
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
