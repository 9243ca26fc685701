//! The in-memory pair against the real lock core: the owner's client gets
//! the lock's answers with no socket, silence costs fake time, not wall
//! time, and the control line reaches the lock's buttons.

use std::time::Instant;

use keyway::device::{DeviceError, Transport as _, TransportError};
use keyway_testkit::pair::{FACTORY_LEN, Lab};
use keyway_testkit::release::payload;
use sha2::{Digest as _, Sha256};

#[test]
fn the_client_reads_the_factory_image_from_the_lock_in_memory() {
    let lab = Lab::new(1);
    let pair = lab.pair(false);
    let mut client = pair.client();
    let images = client.image_state().unwrap();
    let want = Sha256::digest(payload(FACTORY_LEN, 1)).to_vec();
    let active = images.iter().find(|i| i.active).expect("an active slot");
    assert_eq!(active.version, "1.0.0", "{images:?}");
    assert!(active.confirmed, "{images:?}");
    assert_eq!(active.hash.len(), 32);
    assert_ne!(
        active.hash, want,
        "the slot hash is the image's, not the payload's"
    );
}

#[test]
fn a_lock_that_does_not_answer_costs_fake_time_not_wall_time() {
    let lab = Lab::new(1);
    let pair = lab.pair(false);
    // A frame shorter than an SMP header: the lock drops it unanswered.
    let mut t = pair.transport().with_retry(2000, 3);
    let wall = Instant::now();
    let before = pair.now();
    let e = t.exchange(&[1, 2, 3], 0).unwrap_err();
    assert!(
        matches!(
            e,
            TransportError::NoAnswer {
                tries: 3,
                timeout_ms: 2000,
                ..
            }
        ),
        "{e:?}"
    );
    assert_eq!(
        pair.now() - before,
        6000,
        "three timeouts on the fake clock"
    );
    assert_eq!(t.stats().resends, 2);
    assert!(wall.elapsed().as_secs() < 2, "no real waiting");
}

#[test]
fn the_control_line_presses_the_button_and_opens_the_window_until_it_times_out() {
    let lab = Lab::new(1);
    let pair = lab.pair(false);
    let a = pair.control(r#"{"cmd":"presence"}"#);
    assert!(a.contains("\"presence_open\":true"), "{a}");
    let now = pair.now();
    assert!(pair.with_lock(|l| l.server().presence_open(now)));
    // The window closes on the lock's clock, which only the test moves.
    pair.advance(10 * 60 * 1000);
    let now = pair.now();
    assert!(!pair.with_lock(|l| l.server().presence_open(now)));
}

#[test]
fn a_tampered_answer_is_an_error_not_a_panic() {
    let lab = Lab::new(1);
    let pair = lab.pair(false);
    let t = pair.transport().with_tamper(|a| a.truncate(a.len() / 2));
    let mut client = keyway::device::Client::new(t);
    let r = client.image_state();
    assert!(matches!(r, Err(DeviceError::Malformed { .. })), "{r:?}");
}
