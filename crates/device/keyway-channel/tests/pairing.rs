//! Pairing with the setup code: the right code pairs, a wrong one is a
//! typed refusal that the lock's guard rate-limits, and a recorded pairing
//! gives an eavesdropper nothing to test code guesses against.

mod util;

use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsPoint};
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::IsIdentity;
use keyway_channel::pairing::{PAKE2_LEN, PAKE3_LEN, PAKE4_LEN};
use keyway_channel::pake25519;
use keyway_channel::{ClientPairing, CodeError, Error, GuardConfig, PairingGuard, SetupCode};
use util::{CODE, Pair, kid};

const WRONG: u32 = 20_231_108;

#[test]
fn pair_with_right_code_swaps_both_long_term_keys() {
    let mut p = Pair::new(1);
    let (owner, lock) = p.pair(CODE, "Alice's phone").unwrap();
    assert_eq!(owner.public_key, p.client.owner.verifying_key().to_bytes());
    assert_eq!(owner.name(), "Alice's phone");
    assert_eq!(owner.key_id(), kid(&p.client.owner));
    assert_eq!(
        lock.device_public_key,
        p.lock.device.verifying_key().to_bytes()
    );
    assert_eq!(p.lock.guard.failures(), 0);
}

#[test]
fn wrong_code_is_refused_with_typed_error_at_the_client() {
    let mut p = Pair::new(2);
    // The client checks confirmV first: a lock with another code's verifier
    // is caught there, and no Pake3 (so no owner key) is ever sent.
    assert_eq!(p.pair(WRONG, "Mallory").err(), Some(Error::WrongCode));
    assert!(p.lock.owners.is_empty());
    assert_eq!(
        p.lock.guard.failures(),
        1,
        "the attempt is charged at Pake1"
    );
}

#[test]
fn wrong_code_forged_pake3_is_refused_by_the_lock() {
    // An attacker that ignores confirmV and sends a made-up confirmP.
    let mut p = Pair::new(3);
    let code = SetupCode::new(WRONG).unwrap();
    let (_client, pake1) =
        ClientPairing::start(&code, &p.lock.verifier.params(), &mut p.rng).unwrap();
    let mut pake2 = [0u8; PAKE2_LEN];
    p.lock_pake1(&pake1, &mut pake2).unwrap();
    let pake3 = [0x41u8; PAKE3_LEN];
    let mut pake4 = [0u8; PAKE4_LEN];
    let r = p.lock_pake3(&pake3, &mut pake4);
    assert_eq!(r.err(), Some(Error::WrongCode));
    // The run is over: a second Pake3 is out of order, not another guess.
    let r = p.lock_pake3(&pake3, &mut pake4);
    assert_eq!(r.err(), Some(Error::UnexpectedMessage));
    assert_eq!(p.lock.guard.failures(), 1);
}

#[test]
fn wrong_code_guessing_backoff_grows_then_locks_out_until_window_reopens() {
    let mut p = Pair::new(4);
    let mut waits = Vec::new();
    for attempt in 1..=10u32 {
        let r = p.pair(WRONG + attempt, "Mallory");
        assert_eq!(r.err(), Some(Error::WrongCode), "attempt {attempt}");
        match p.lock.guard.check(p.lock.now_ms) {
            Ok(()) => waits.push(0),
            Err(Error::Backoff { retry_in_ms }) => {
                waits.push(retry_in_ms);
                // Trying before the wait is over is refused without work.
                assert_eq!(
                    p.pair(CODE, "Alice").err(),
                    Some(Error::Backoff { retry_in_ms })
                );
                p.advance(retry_in_ms);
            }
            Err(Error::LockedOut) => {
                waits.push(u64::MAX);
            }
            Err(e) => panic!("{e:?}"),
        }
    }
    assert_eq!(
        waits,
        [
            0,
            0,
            1_000,
            2_000,
            4_000,
            8_000,
            16_000,
            32_000,
            64_000,
            u64::MAX
        ],
        "three free attempts, then doubling waits, then lockout after 10"
    );
    // Locked out: even the right code, even an hour later.
    p.advance(3_600_000);
    assert_eq!(p.pair(CODE, "Alice").err(), Some(Error::LockedOut));
    // A person re-opens the presence window: the right code pairs again.
    p.lock.guard.reopen();
    assert!(p.pair(CODE, "Alice").is_ok());
    assert_eq!(p.lock.guard.failures(), 0);
}

#[test]
fn abandoned_pake1_offline_guess_check_is_charged() {
    // An active attacker who sends Pake1 built from a guess can check that
    // guess offline against confirmV and never send Pake3. Every Pake1 the
    // lock answers is therefore charged.
    let mut p = Pair::new(5);
    let mut refused_at = None;
    for i in 0..12u32 {
        let code = SetupCode::new(WRONG + i).unwrap();
        let (_c, pake1) =
            ClientPairing::start(&code, &p.lock.verifier.params(), &mut p.rng).unwrap();
        let mut pake2 = [0u8; PAKE2_LEN];
        let r = p.lock_pake1(&pake1, &mut pake2);
        if let Err(e) = r {
            refused_at = Some((i, e));
            break;
        }
    }
    assert_eq!(refused_at, Some((3, Error::Backoff { retry_in_ms: 1_000 })));
}

#[test]
fn guard_restored_after_restart_keeps_the_wait() {
    let g = PairingGuard::restore(GuardConfig::default(), 5, 100);
    assert_eq!(g.check(100), Err(Error::Backoff { retry_in_ms: 4_000 }));
    assert_eq!(g.check(4_100), Ok(()));
    let g = PairingGuard::restore(GuardConfig::default(), 10, 100);
    assert_eq!(g.check(10_000_000), Err(Error::LockedOut));
}

fn point(bytes: &[u8]) -> EdwardsPoint {
    CompressedEdwardsY(bytes.try_into().unwrap())
        .decompress()
        .unwrap()
}

#[test]
fn recorded_pairing_transcript_gives_eavesdropper_no_guess_check() {
    // What an eavesdropper records: Params, Pake1..Pake4. Its keyed values
    // are confirmV/confirmP (HMAC under keys from K_main = H(TT), and TT
    // holds Z and V) and the two AEADs (keys from K_shared, same origin).
    // With a guess the eavesdropper gets w0 and w1 and can unmask the
    // shares, X - w0*M and Y - w0*N; but Z = y*(X - w0*M) = x*(Y - w0*N)
    // needs x or y (CDH), so nothing in the transcript is checkable. This
    // test checks the part that can be checked: every guess, the right one
    // included, unmasks both shares to ordinary points; no guess is
    // rejected by the transcript alone, so the right one does not stand out.
    let mut p = Pair::new(6);
    let t = p.pair_transcript(CODE, "Alice").unwrap();
    let (m, n) = (point(&pake25519::M), point(&pake25519::N));
    let x_share = point(&t.pake1);
    let y_share = point(&t.pake2[..32]);
    let salt: [u8; 16] = t.params[1..17].try_into().unwrap();
    let iterations = u32::from_le_bytes(t.params[17..21].try_into().unwrap());
    let mut guesses = 0;
    for guess in [
        CODE, WRONG, 1, 31_415_926, 27_182_818, 99_999_998, 12_345_679,
    ] {
        let v = keyway_channel::StoredVerifier::derive(
            &SetupCode::new(guess).unwrap(),
            &salt,
            iterations,
        );
        let w0 = Scalar::from_canonical_bytes(v.to_bytes()[..32].try_into().unwrap()).unwrap();
        let ux = x_share - m * w0;
        let uy = y_share - n * w0;
        assert!(!ux.mul_by_cofactor().is_identity());
        assert!(!uy.mul_by_cofactor().is_identity());
        guesses += 1;
    }
    // The shares are not the code: a second pairing with the same code has
    // different shares (fresh x, y), so recordings do not even link.
    let mut q = Pair::new(7);
    let t2 = q.pair_transcript(CODE, "Alice").unwrap();
    assert_ne!(t.pake1, t2.pake1);
    assert_ne!(t.pake2, t2.pake2);
    // And the sealed owner key is not readable in the recording.
    assert!(
        !t.pake3
            .windows(32)
            .any(|w| w == p.client.owner.verifying_key().to_bytes())
    );
    assert!(
        !t.pake4
            .windows(32)
            .any(|w| w == p.lock.device.verifying_key().to_bytes())
    );
    println!("{guesses} guesses tried against the transcript, none rejected");
}

#[test]
fn setup_code_rules_follow_matter() {
    for trivial in [
        0,
        11_111_111,
        22_222_222,
        33_333_333,
        44_444_444,
        55_555_555,
        66_666_666,
        77_777_777,
        88_888_888,
        99_999_999,
        12_345_678,
        87_654_321,
        100_000_000,
    ] {
        assert_eq!(SetupCode::new(trivial), Err(CodeError::Trivial(trivial)));
    }
    assert_eq!(SetupCode::parse("2023-1107").unwrap().value(), CODE);
    assert_eq!(SetupCode::parse("20231107").unwrap().value(), CODE);
    assert_eq!(SetupCode::parse("2023 1107").unwrap().value(), CODE);
    assert_eq!(SetupCode::parse("00000001").unwrap().digits(), *b"00000001");
    for bad in [
        "",
        "1234567",
        "123456789",
        "12-345678",
        "1234-567a",
        "１２３４５６７８",
    ] {
        assert_eq!(
            SetupCode::parse(bad),
            Err(CodeError::NotEightDigits),
            "{bad}"
        );
    }
    assert_eq!(
        SetupCode::parse("1111-1111"),
        Err(CodeError::Trivial(11_111_111))
    );
    assert_eq!(SetupCode::new(CODE).unwrap().to_string(), "2023-1107");
    assert_eq!(
        format!("{:?}", SetupCode::new(CODE).unwrap()),
        "SetupCode(..)"
    );
    let mut rng =
        <rand_chacha::ChaCha20Rng as rand_chacha::rand_core::SeedableRng>::seed_from_u64(9);
    for _ in 0..1000 {
        let c = SetupCode::generate(&mut rng);
        assert_eq!(SetupCode::new(c.value()), Ok(c));
    }
}

#[test]
fn client_refuses_params_with_absurd_iteration_counts() {
    let code = SetupCode::new(CODE).unwrap();
    let mut rng =
        <rand_chacha::ChaCha20Rng as rand_chacha::rand_core::SeedableRng>::seed_from_u64(9);
    let mut params = [0u8; 21];
    params[0] = keyway_channel::pairing::VERSION;
    params[17..].copy_from_slice(&u32::MAX.to_le_bytes());
    assert_eq!(
        ClientPairing::start(&code, &params, &mut rng).err(),
        Some(Error::Iterations(u32::MAX))
    );
    params[0] = 3;
    assert_eq!(
        ClientPairing::start(&code, &params, &mut rng).err(),
        Some(Error::Unsupported(3))
    );
}

/// Version 1 was SPAKE2+ on P-256 (65-byte shares). A version-1 lock's
/// `Params` get a typed refusal at a version-2 client, and a version-1
/// client's 65-byte `Pake1` a typed length refusal at a version-2 lock,
/// before any curve arithmetic, and without charging the guard.
#[test]
fn p256_peers_get_a_typed_refusal() {
    let code = SetupCode::new(CODE).unwrap();
    let mut p = Pair::new(8);
    let mut params = p.lock.verifier.params();
    assert_eq!(params[0], 2);
    params[0] = 1;
    assert_eq!(
        ClientPairing::start(&code, &params, &mut p.rng).err(),
        Some(Error::Unsupported(1))
    );
    let old_pake1 = [0x04u8; 65];
    let mut pake2 = [0u8; PAKE2_LEN];
    assert_eq!(
        p.lock_pake1(&old_pake1, &mut pake2),
        Err(Error::Length {
            expected: 32,
            actual: 65
        })
    );
    assert_eq!(p.lock.guard.failures(), 0);
}

#[test]
fn stored_verifier_round_trips_and_holds_no_code() {
    let code = SetupCode::new(CODE).unwrap();
    let v = keyway_channel::StoredVerifier::derive(&code, &[1; 16], 1000);
    let bytes = v.to_bytes();
    assert_eq!(
        keyway_channel::StoredVerifier::from_bytes(&bytes).unwrap(),
        v
    );
    assert!(!bytes.windows(8).any(|w| w == b"20231107"));
    assert_eq!(v.salt(), [1; 16]);
    assert_eq!(v.iterations(), 1000);
    // A different salt gives a different verifier for the same code.
    assert_ne!(
        keyway_channel::StoredVerifier::derive(&code, &[2; 16], 1000),
        v
    );
}

/// An owner key that is not a usable Ed25519 public key (here the identity
/// point, of small order: the key under which the forgery R = identity,
/// S = 0 satisfies the bare verification equation for every message) is
/// refused when the lock opens Pake3, and no owner is returned; likewise a
/// device key of small order at the client in Pake4. Before version 2 the
/// lock checked only the key's length.
#[test]
fn small_order_keys_are_refused_at_pairing() {
    let mut identity = [0u8; 32];
    identity[0] = 1;
    let code = SetupCode::new(CODE).unwrap();

    let mut p = Pair::new(9);
    let params = p.lock.verifier.params();
    let (mut client, pake1) = ClientPairing::start(&code, &params, &mut p.rng).unwrap();
    let mut pake2 = [0u8; PAKE2_LEN];
    p.lock_pake1(&pake1, &mut pake2).unwrap();
    let mut pake3 = [0u8; PAKE3_LEN];
    client.pake2(&pake2, &identity, "x", &mut pake3).unwrap();
    let mut pake4 = [0u8; PAKE4_LEN];
    assert_eq!(p.lock_pake3(&pake3, &mut pake4), Err(Error::BadKey));

    // The client's side: a lock that answers with a small-order device key.
    let mut q = Pair::new(10);
    let params = q.lock.verifier.params();
    let (mut client, pake1) = ClientPairing::start(&code, &params, &mut q.rng).unwrap();
    q.lock_pake1(&pake1, &mut pake2).unwrap();
    let owner = q.client.owner.verifying_key().to_bytes();
    client.pake2(&pake2, &owner, "x", &mut pake3).unwrap();
    q.lock
        .pairing
        .pake3(&mut q.lock.guard, &pake3, &identity, &mut pake4)
        .unwrap();
    assert_eq!(client.pake4(&pake4), Err(Error::BadKey));
}
