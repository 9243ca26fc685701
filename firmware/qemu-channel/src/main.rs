//! On-target run of keyway-channel (Cortex-M4, QEMU mps2-an386).
//!
//! Both roles run in this one firmware, in memory, as the lock and the
//! owner's client would over the radio: a full pairing with the setup code
//! (SPAKE2+ Params, Pake1..Pake4), a session handshake (msg1..msg4) and one
//! sealed request with its sealed response. Every step of the **lock's**
//! side is measured twice at once: SysTick ticks (instructions under
//! `qemu -icount shift=0`, calibrated on target with a loop of known
//! length) and the stack high-water mark of the call (painted by
//! keyway-board's `stack::measure`). The client's steps run unmeasured (on a
//! real client they run on a phone or PC).
//!
//! Exits through semihosting: success only if every step succeeded, the
//! keys each side learnt are the other's, the response carries the
//! request's answer, a wrong code is refused, and the deepest lock call
//! stayed within the stack budget.

#![no_std]
#![no_main]
#![cfg_attr(feature = "baseline", allow(dead_code, unused_imports, unused_macros))]
#![cfg_attr(feature = "lock-only", allow(unused_imports))]

use keyway_board::meter;
#[allow(dead_code)]
mod scenario;
#[allow(dead_code)]
use keyway_board::stack;
use meter::{calibrate, timed};

use cortex_m_rt::entry;
use cortex_m_semihosting::{debug, hprintln};
use keyway_board::fail;
use keyway_channel::SigningKey as KeyPair;
use keyway_channel::handshake::{MSG1_LEN, MSG2_LEN, MSG3_LEN};
use keyway_channel::pairing::{PAKE1_LEN, PAKE2_LEN, PAKE3_LEN, PAKE4_LEN, PARAMS_LEN};
use keyway_channel::record::{MSG4_LEN, REQUEST_OVERHEAD, RESPONSE_OVERHEAD};
use keyway_channel::{
    ClientHandshake, ClientPairing, Error, GuardConfig, LockPairing, PairingGuard, ResponseStatus,
    SessionTable, SetupCode, StoredVerifier, TableConfig,
};
use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::SeedableRng;
use scenario::*;

/// Stack budget for one lock call: `KEYWAY_CHANNEL_STACK_BUDGET` or 12 KiB.
const STACK_BUDGET: usize = keyway_board::budget!("KEYWAY_CHANNEL_STACK_BUDGET", 12 * 1024);

const SLOTS: usize = 4;

/// The run as build.rs recorded it on the host with the same seeds: the
/// lock must produce the same bytes here (and, in the full build, the
/// client too).
mod recorded {
    include!(concat!(env!("OUT_DIR"), "/recorded.rs"));
}

/// Fails unless `got` is the recorded `want`.
fn same(got: &[u8], want: &[u8], what: &str) {
    if got != want {
        hprintln!("FAIL: {} differs from the host's recording", what);
        debug::exit(debug::EXIT_FAILURE);
        loop {
            core::hint::spin_loop();
        }
    }
}

fn check<T>(r: Result<T, Error>, what: &str) -> T {
    match r {
        Ok(v) => v,
        Err(e) => {
            hprintln!("FAIL: {}: {}", what, e);
            debug::exit(debug::EXIT_FAILURE);
            loop {
                core::hint::spin_loop();
            }
        }
    }
}

/// The client's next message `$msg`, bound as a reference to its bytes in
/// both builds: in the full build made by `$make` (bound, with whatever
/// else it returns, by `$pat`) and checked against the host's recording
/// `$rec`; in the lock-only build `$rec` itself.
macro_rules! client_msg {
    (let $pat:pat = $make:expr => $msg:ident == $rec:expr, $what:literal) => {
        #[cfg(not(feature = "lock-only"))]
        let $pat = $make;
        #[cfg(not(feature = "lock-only"))]
        let $msg = &$msg;
        #[cfg(not(feature = "lock-only"))]
        same($msg, $rec, $what);
        #[cfg(feature = "lock-only")]
        let $msg = $rec;
    };
}

/// Measures one lock step: its ticks and its stack; prints one line.
fn lock_step<R>(
    syst: &mut cortex_m::peripheral::SYST,
    name: &str,
    deepest: &mut usize,
    f: impl FnOnce() -> R,
) -> R {
    let ((r, ticks), usage) = stack::measure(|| timed(syst, f));
    hprintln!(
        "lock step {}: {} ticks, stack {} bytes",
        name,
        ticks,
        usage.call
    );
    *deepest = (*deepest).max(usage.call);
    r
}

#[entry]
fn main() -> ! {
    let mut syst = meter::systick().unwrap_or_else(|| fail("peripherals"));
    hprintln!(
        "message bytes: Params {} Pake1 {} Pake2 {} Pake3 {} Pake4 {} msg1 {} msg2 {} msg3 {} msg4 {} request {}+{} response {}+{}",
        PARAMS_LEN,
        PAKE1_LEN,
        PAKE2_LEN,
        PAKE3_LEN,
        PAKE4_LEN,
        MSG1_LEN,
        MSG2_LEN,
        MSG3_LEN,
        MSG4_LEN,
        REQUEST_OVERHEAD,
        REQUEST.len(),
        RESPONSE_OVERHEAD,
        REQUEST.len() + 3
    );

    #[cfg(not(feature = "baseline"))]
    {
        let full = cfg!(not(feature = "lock-only"));
        hprintln!(
            "build: {}",
            if full {
                "both roles (client live)"
            } else {
                "lock only (client replayed from the host's recording)"
            }
        );
        let mut lock_rng = ChaCha20Rng::seed_from_u64(LOCK_RNG_SEED);
        let device = KeyPair::from_bytes(&DEVICE_SEED);
        let verifier = check(
            StoredVerifier::from_bytes(recorded::VERIFIER),
            "stored verifier",
        );
        let mut guard = PairingGuard::new(GuardConfig::default());
        let mut deepest = 0usize;
        hprintln!(
            "lock state: LockPairing {} B, PairingGuard {} B, SessionTable<{}> {} B, StoredVerifier {} B",
            core::mem::size_of::<LockPairing>(),
            core::mem::size_of::<PairingGuard>(),
            SLOTS,
            core::mem::size_of::<SessionTable<SLOTS>>(),
            core::mem::size_of::<StoredVerifier>()
        );

        // --- The client (full build): live, from the same seeds. ---
        #[cfg(not(feature = "lock-only"))]
        let mut client_rng = ChaCha20Rng::seed_from_u64(CLIENT_RNG_SEED);
        #[cfg(not(feature = "lock-only"))]
        let owner = KeyPair::from_bytes(&OWNER_SEED);
        #[cfg(not(feature = "lock-only"))]
        let code = match SetupCode::new(CODE) {
            Ok(c) => c,
            Err(_) => fail("setup code"),
        };
        #[cfg(not(feature = "lock-only"))]
        {
            // Provisioning on target too: the same verifier as the host's.
            same(
                &StoredVerifier::derive(&code, &SALT, ITERATIONS).to_bytes(),
                recorded::VERIFIER,
                "verifier",
            );
            // A wrong code first (its own RNG): refused, typed.
            let mut rng = ChaCha20Rng::seed_from_u64(7);
            let wrong = match SetupCode::new(WRONG) {
                Ok(c) => c,
                Err(_) => fail("wrong code"),
            };
            let mut lock = LockPairing::new();
            let (mut client, pake1) = check(
                ClientPairing::start(&wrong, &verifier.params(), &mut rng),
                "client start (wrong code)",
            );
            let mut pake2 = [0u8; PAKE2_LEN];
            check(
                lock.pake1(&verifier, &mut guard, 0, &mut rng, &pake1, &mut pake2),
                "lock Pake1 (wrong code)",
            );
            let mut pake3 = [0u8; PAKE3_LEN];
            match client.pake2(&pake2, &owner.verifying_key().to_bytes(), NAME, &mut pake3) {
                Err(Error::WrongCode) => hprintln!("wrong code refused: {}", Error::WrongCode),
                _ => fail("a wrong code was not refused"),
            }
        }

        // --- Pairing with the right code. ---
        let mut lock_pairing = LockPairing::new();
        client_msg!(let (mut client, pake1) = check(
            ClientPairing::start(&code, &verifier.params(), &mut client_rng),
            "client start",
        ) => pake1 == recorded::PAKE1, "Pake1");
        let mut pake2 = [0u8; PAKE2_LEN];
        let r = lock_step(&mut syst, "pairing Pake1 -> Pake2", &mut deepest, || {
            lock_pairing.pake1(&verifier, &mut guard, 1, &mut lock_rng, pake1, &mut pake2)
        });
        check(r, "lock Pake1");
        same(&pake2, recorded::PAKE2, "Pake2");
        client_msg!(let pake3 = {
            let mut pake3 = [0u8; PAKE3_LEN];
            check(
                client.pake2(&pake2, &owner.verifying_key().to_bytes(), NAME, &mut pake3),
                "client Pake2",
            );
            pake3
        } => pake3 == recorded::PAKE3, "Pake3");
        let mut pake4 = [0u8; PAKE4_LEN];
        let new_owner = lock_step(&mut syst, "pairing Pake3 -> Pake4", &mut deepest, || {
            lock_pairing.pake3(
                &mut guard,
                pake3,
                &device.verifying_key().to_bytes(),
                &mut pake4,
            )
        });
        let new_owner = check(new_owner, "lock Pake3");
        same(&pake4, recorded::PAKE4, "Pake4");
        #[cfg(not(feature = "lock-only"))]
        {
            let paired = check(client.pake4(&pake4), "client Pake4");
            if new_owner.public_key != owner.verifying_key().to_bytes()
                || paired.device_public_key != device.verifying_key().to_bytes()
            {
                fail("the keys learnt at pairing are not the other side's");
            }
        }
        hprintln!("paired: owner \"{}\"", new_owner.name());

        // --- Session handshake. ---
        let mut table: SessionTable<SLOTS> = SessionTable::new(TableConfig::default());
        let now = LOCK_NOW_MS;
        client_msg!(let (hs, msg1) = ClientHandshake::start(&mut client_rng)
            => msg1 == recorded::MSG1, "msg1");
        let mut msg2 = [0u8; MSG2_LEN];
        let sid = lock_step(&mut syst, "handshake msg1 -> msg2", &mut deepest, || {
            table.handshake1(now, &mut lock_rng, &device, msg1, &mut msg2)
        });
        check(sid, "lock msg1");
        same(&msg2, recorded::MSG2, "msg2");
        client_msg!(let (mut session, msg3) = {
            let mut msg3 = [0u8; MSG3_LEN];
            let session = check(
                hs.msg2(&msg2, &device.verifying_key().to_bytes(), &owner, &mut msg3),
                "client msg2",
            );
            (session, msg3)
        } => msg3 == recorded::MSG3, "msg3");
        let owner_key = new_owner.public_key;
        let owner_id = new_owner.key_id();
        let mut msg4 = [0u8; MSG4_LEN];
        let r = lock_step(&mut syst, "handshake msg3 -> msg4", &mut deepest, || {
            table.handshake3(
                now,
                msg3,
                |kid| (*kid == owner_id).then_some(owner_key),
                &mut msg4,
            )
        });
        check(r, "lock msg3");
        same(&msg4, recorded::MSG4, "msg4");
        #[cfg(not(feature = "lock-only"))]
        check(session.open_response(0, &mut msg4), "client msg4");

        // --- One sealed request and its sealed response. ---
        let mut req = [0u8; 128];
        #[cfg(not(feature = "lock-only"))]
        let n = {
            let (_, n) = check(
                session.seal_request(CLIENT_NOW_MS, REQUEST, &mut req),
                "client request",
            );
            same(&req[..n], recorded::REQUEST, "request");
            n
        };
        #[cfg(feature = "lock-only")]
        let n = {
            req[..recorded::REQUEST.len()].copy_from_slice(recorded::REQUEST);
            recorded::REQUEST.len()
        };
        let mut resp = [0u8; 128];
        let r = lock_step(
            &mut syst,
            "request open + response seal",
            &mut deepest,
            || {
                let opened = table.open_request(now + 100, &mut req[..n])?;
                let mut answer = [0u8; 64];
                let body = &req[opened.payload.clone()];
                answer[..3].copy_from_slice(b"ok:");
                answer[3..3 + body.len()].copy_from_slice(body);
                table.seal_response(
                    now + 100,
                    opened.session,
                    opened.counter,
                    ResponseStatus::Ok,
                    &answer[..3 + body.len()],
                    &mut resp,
                )
            },
        );
        let m = check(r, "lock request");
        same(&resp[..m], recorded::RESPONSE, "response");
        #[cfg(not(feature = "lock-only"))]
        {
            let got = check(
                session.open_response(CLIENT_NOW_MS, &mut resp[..m]),
                "client response",
            );
            if &resp[got.payload.clone()][3..] != REQUEST || got.lock_time_ms != now + 100 {
                fail("the response does not answer the request");
            }
        }
        hprintln!(
            "request answered: {} B request, {} B response; every message as recorded on the host",
            n,
            m
        );

        hprintln!("deepest lock call: {} B (budget {})", deepest, STACK_BUDGET);
        if deepest > STACK_BUDGET {
            fail("stack over budget");
        }
    }
    #[cfg(feature = "baseline")]
    {
        let mut deepest = 0usize;
        let r = lock_step(&mut syst, "baseline", &mut deepest, || {
            core::hint::black_box(REQUEST.len())
        });
        hprintln!("baseline {} {}", r, deepest);
    }
    calibrate(&mut syst);
    hprintln!("PASS");
    debug::exit(debug::EXIT_SUCCESS);
    loop {
        core::hint::spin_loop();
    }
}
