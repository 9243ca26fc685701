//! A/B envelopes at the lock (issue 13, "the lock chooses by its own
//! inactive slot"). An A/B manifest, as in draft-ietf-suit-manifest's
//! example 3, has one component whose digest, size and URI are chosen by a
//! `suit-directive-try-each` over `suit-condition-component-slot`: one
//! alternative per slot. A lock writes an update into its inactive slot, so
//! it must verify (and install) the alternative for that slot, not for the
//! one it runs from: `DeviceCore::update_trust()` gives the upload (server.rs),
//! its resume and `DeviceCore::install_envelope` an identity whose slot is the
//! inactive one.
//!
//! Why these tests fail if `update_trust` used the running slot:
//! - the upload test sends an envelope that carries only the image of the
//!   slot it goes into (`#slot1` from a lock running slot 0, `#slot0` from
//!   one running slot 1; integrated payloads lie outside the signature, so
//!   a distributor may ship just one). Verified for the running slot, the
//!   manifest takes the other alternative, which names the image the
//!   envelope lacks: the upload is refused (`PayloadMissing`) and
//!   `match: true` never comes;
//! - the `install_envelope` test carries both images. Verified for the
//!   running slot, the lock would write the running slot's image into the
//!   inactive slot (it verifies against that alternative's digest), and the
//!   slot's bytes would not be the alternative for it.
//!
//! Checked by hand: with `update_trust` returning the running slot, both
//! tests fail (the upload is refused, rc 22; slot 1 holds slot 0's image).
//!
//! Finding (fixed with these tests): the lock's image list and
//! `DeviceCore::image_digest` inspected a slot's head without its slot, so for
//! slot 1 of an A/B release they took slot 0's alternative: the listed
//! hash was not the uploaded envelope's (a client's test-by-hash found no
//! image, rc 3) and the image digest was the other slot's. They now
//! inspect the head for the slot that holds it
//! (`ab_upload_is_verified_for_the_inactive_slot_from_either_slot` fails
//! without that).

mod common;

use common::{CLASS, First, Map, Shell, VENDOR};
use keyway_lock::device;
use keyway_lock::server::Server;
use keyway_lock::smp::{self, Op};
use keyway_vendor::encode::{AbRelease, sha256};
use keyway_vendor::keys::SigningKey;

/// The images of one A/B release, per slot.
struct Release {
    sequence: u64,
    slot0: Vec<u8>,
    slot1: Vec<u8>,
}

impl Release {
    fn new(sequence: u64) -> Self {
        let image = |salt: u8, len: usize| -> Vec<u8> {
            (0..len)
                .map(|n| (n as u8).wrapping_mul(31).wrapping_add(salt))
                .collect()
        };
        // Different sizes too, so size and digest both tell them apart.
        Release {
            sequence,
            slot0: image(sequence as u8, 3_000),
            slot1: image(0x80 | sequence as u8, 3_100),
        }
    }

    fn image(&self, slot: u8) -> &[u8] {
        if slot == 0 { &self.slot0 } else { &self.slot1 }
    }

    /// The signed A/B envelope ([`AbRelease`], for [`VENDOR`]/[`CLASS`]).
    /// `carry`: the slots whose image the envelope integrates, in this
    /// order (the image a lock installs must be the last member: the head
    /// before it is what the slot stores and the boot re-verifies, which
    /// for slot 0 next to slot 1 is out of deterministic order; the
    /// verifier accepts that, FORMAT.md).
    fn envelope(&self, key: &SigningKey, carry: &[u8]) -> Vec<u8> {
        AbRelease {
            vendor_domain: VENDOR,
            class_name: CLASS,
            sequence: self.sequence,
            images: [&self.slot0, &self.slot1],
        }
        .envelope(std::slice::from_ref(key), carry)
    }
}

/// The `len` bytes at the start of `slot`'s image area.
fn slot_image(flash: &device::Flash, slot: u8, len: usize) -> Vec<u8> {
    let place = device::layout().place::<device::Flash>(slot).unwrap();
    device::read(flash, place.image.start as usize, len)
        .unwrap()
        .to_vec()
}

fn frame(op: Op, group: u16, id: u8, body: Map) -> Vec<u8> {
    common::request(op, group, id, 3, body)
}

fn answer(s: &mut Shell, f: &[u8]) -> Map {
    common::answer(s, f).1
}

/// Uploads `env` over SMP (image group, 700-byte chunks, following the
/// lock's offsets); the last answer.
fn upload(s: &mut Shell, env: &[u8]) -> Map {
    common::upload_by(env, 700, First::image(env), |body| {
        answer(s, &frame(Op::Write, 1, 1, body))
    })
}

/// The image list (SMP image state read).
fn images(s: &mut Shell) -> Vec<Map> {
    common::images_in(&answer(s, &frame(Op::Read, 1, 0, vec![])))
}

#[test]
fn ab_upload_is_verified_for_the_inactive_slot_from_either_slot() {
    let (key, trust) = common::vendor();
    let lock = common::factory_core(&key, trust, vec![0x11; 5_000]);
    let mut s = Shell::new(Server::new(lock));
    s.set_presence_always_open(true);

    // Running slot 0: the update goes into slot 1, so the envelope that
    // carries only slot 1's image verifies and that image is written.
    // Then running slot 1: the next one goes into slot 0.
    for (running, target, sequence) in [(0u8, 1u8, 2u64), (1, 0, 3)] {
        assert_eq!(s.core().state().active_slot, running);
        let r = Release::new(sequence);
        let env = r.envelope(&key, &[target]);
        let m = upload(&mut s, &env);
        assert_eq!(
            smp::get_bool(&m, "match").unwrap(),
            Some(true),
            "running slot {running}: the upload of slot {target}'s alternative was refused: {m:?}"
        );
        assert_eq!(
            slot_image(s.core().flash(), target, r.image(target).len()),
            r.image(target),
            "slot {target} holds its own alternative's image"
        );
        // The lock lists it under the SHA-256 of the uploaded file (what a
        // client tests and confirms by), and names its image's digest.
        let listed = images(&mut s);
        assert!(
            common::listed(&listed, &sha256(&env)).is_some(),
            "slot {target}'s image is listed by the hash of its envelope: {listed:?}"
        );
        assert_eq!(s.core().image_digest(target), Some(sha256(r.image(target))));
        // The bootloader verifies it for the slot it is in, and it runs.
        common::consent_and_reset(&mut s, &env, target, sequence);
    }
}

#[test]
fn ab_install_with_both_images_writes_the_inactive_slots_alternative() {
    let (key, trust) = common::vendor();
    let mut lock = common::factory_core(&key, trust, vec![0x22; 5_000]);
    for (running, target, sequence) in [(0u8, 1u8, 2u64), (1, 0, 3)] {
        assert_eq!(lock.running(), Some(running));
        let r = Release::new(sequence);
        // Both images, the target slot's last (see `Release::envelope`).
        let order = [1 - target, target];
        let env = r.envelope(&key, &order);
        let slot = lock
            .install_envelope(&env)
            .unwrap_or_else(|e| panic!("running slot {running}: refused: {}", e.reason));
        assert_eq!(slot, target);
        let written = slot_image(lock.flash(), target, r.image(target).len());
        assert_eq!(
            written,
            r.image(target),
            "running slot {running}: slot {target} must hold its own alternative's image"
        );
        // Armed by install_envelope: the trial boot verifies the slot with
        // its own alternative, the self-test confirms it.
        let boot = lock.power_on().unwrap();
        assert!(boot.app.contains("confirmed"), "{}", boot.app);
        assert_eq!(lock.running(), Some(target));
        assert_eq!(lock.state().floor, Some(sequence));
    }
}
