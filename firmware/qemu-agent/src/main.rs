//! On-target run of keyway-agent's dispatch (Cortex-M4, QEMU mps2-an386).
//!
//! The agent (the lock) and an owner's client run in this one firmware, in
//! memory, exchanging SMP frames as they would over the radio: the button
//! opens the presence window; the client pairs with the setup code
//! (PAKE_START read, PAKE_START, PAKE_FINISH), opens a session
//! (SESSION_START, SESSION_FINISH), and sends sealed requests: unlock,
//! consent, owners. Every `Agent::handle` call is measured: SysTick ticks
//! (instructions under `qemu -icount shift=0`, calibrated on target) and
//! the stack high-water mark of the call (keyway-board's painter). The
//! client's steps run unmeasured.
//!
//! Builds: the default (both roles, run), `lock-only` (the agent alone on
//! opaque frames: linked, for its code size) and `baseline` (neither).

#![no_std]
#![no_main]
#![cfg_attr(
    any(feature = "baseline", feature = "lock-only"),
    allow(dead_code, unused_imports)
)]

use keyway_board::meter;
#[allow(dead_code)]
use keyway_board::ram_flash;
#[allow(dead_code)]
use keyway_board::stack;
use meter::{calibrate, timed};

use cortex_m_rt::entry;
use cortex_m_semihosting::hprintln;
use keyway_agent::agent::{AGENT_RAM_4_SLOTS, Agent, Config, Event, Pending, Press};
use keyway_agent::limits::PeerId;
use keyway_agent::store;
use keyway_agent::testing::{TestLock, now};
use keyway_board::fail;
use keyway_channel::SigningKey as KeyPair;
use keyway_channel::{ClientHandshake, ClientPairing, ClientSession, SetupCode, StoredVerifier};
use keyway_smp::header::split_response;
use keyway_smp::keyway_group::{self, Bolt};
use keyway_smp::{Answer, MAX_BODY, MAX_FRAME, Op, Request, Response, Version};
use ram_flash::RamFlash;
use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::SeedableRng;

/// Stack budget for one agent call: `KEYWAY_AGENT_STACK_BUDGET` or 16 KiB.
const STACK_BUDGET: usize = keyway_board::budget!("KEYWAY_AGENT_STACK_BUDGET", 16 * 1024);

const SLOTS: usize = 4;
const CODE: u32 = 20_231_107;
const REGION: store::Config = store::Config::new(0, 2);
type Flash = RamFlash<8192>;

/// The lock's hardware, in memory (bolt locked, door closed, nothing
/// pending); every command the agent passes on is answered with an empty
/// map.
type Lock = TestLock<()>;

#[entry]
fn main() -> ! {
    let mut syst = meter::systick().unwrap_or_else(|| fail("peripherals"));
    hprintln!(
        "agent RAM: Agent<RamFlash, {}> {} B without its flash handle",
        SLOTS,
        AGENT_RAM_4_SLOTS
    );
    #[cfg(not(any(feature = "baseline", feature = "lock-only")))]
    run(&mut syst);
    #[cfg(feature = "lock-only")]
    lock_only();
    #[cfg(feature = "baseline")]
    {
        let mut flash = Flash::new();
        let mut lock = Lock::default();
        let _ = core::hint::black_box(&mut flash);
        let _ = keyway_agent::agent::Device::drive_bolt(
            &mut lock,
            core::hint::black_box(Bolt::Unlocked),
        );
        let ((), _) = stack::measure(|| ());
    }
    calibrate(&mut syst);
    hprintln!("PASS");
    keyway_board::exit(true)
}

/// The agent alone, on frames it cannot tell from real ones: everything
/// `handle` can reach is linked (for the code size), nothing is proven.
#[cfg(feature = "lock-only")]
fn lock_only() {
    let mut agent: Agent<Flash, SLOTS> = match Agent::new(
        Flash::new(),
        REGION,
        KeyPair::from_bytes(&[0xd0; 32]),
        Config::default(),
        0,
    ) {
        Ok(a) => a,
        Err(_) => fail("agent"),
    };
    let mut rng = ChaCha20Rng::seed_from_u64(core::hint::black_box(1));
    let mut lock = Lock::default();
    let _ = agent.button(0, core::hint::black_box(Press::Short));
    let frame = core::hint::black_box([0u8; 64]);
    let mut out = [0u8; MAX_FRAME];
    let o = agent.handle(PeerId(1), now(1), &mut rng, &mut lock, &frame, &mut out);
    hprintln!("lock-only: {} B answer", o.len);
}

/// What the client reads from an answer frame.
fn answer<'a>(frame: &'a [u8], what: &str) -> Response<'a> {
    let (h, body) = match split_response(frame, MAX_BODY) {
        Ok(v) => v,
        Err(_) => fail(what),
    };
    let op = if h.op == Op::ReadRsp {
        Op::Read
    } else {
        Op::Write
    };
    match Response::decode(op, h.group, h.id, body) {
        Ok(Answer::Ok(r)) => r,
        _ => fail(what),
    }
}

#[cfg(not(any(feature = "baseline", feature = "lock-only")))]
fn run(syst: &mut cortex_m::peripheral::SYST) {
    let mut agent: Agent<Flash, SLOTS> = match Agent::new(
        Flash::new(),
        REGION,
        KeyPair::from_bytes(&[0xd0; 32]),
        Config::default(),
        1_000,
    ) {
        Ok(a) => a,
        Err(_) => fail("agent"),
    };
    let code = match SetupCode::new(CODE) {
        Ok(c) => c,
        Err(_) => fail("code"),
    };
    // Provisioning (the fewest iterations a client accepts, to keep the
    // run short; the lock's work does not depend on them).
    let v = StoredVerifier::derive(&code, &[7; 16], keyway_channel::pairing::MIN_ITERATIONS);
    if agent.provision(&v).is_err() {
        fail("provision");
    }
    let mut lock = Lock::default();
    let mut lock_rng = ChaCha20Rng::seed_from_u64(1);
    let mut client_rng = ChaCha20Rng::seed_from_u64(2);
    let owner = KeyPair::from_bytes(&[0x0a; 32]);
    let peer = PeerId(1);
    let mut t = 1_000u64;
    let mut deepest = 0usize;
    let mut seq = 0u8;
    let mut frame = [0u8; MAX_FRAME];
    let mut out = [0u8; MAX_FRAME];

    if agent.button(t, Press::Short).is_err() {
        fail("button");
    }

    // One measured call of the agent: the request `req` from the owner's
    // client; returns the answer's length in `out`.
    macro_rules! step {
        ($name:expr, $req:expr) => {{
            seq = seq.wrapping_add(1);
            t += 50;
            let n = match ($req).frame(&mut frame, Version::V2, seq) {
                Ok(n) => n,
                Err(_) => fail("frame"),
            };
            let ((o, ticks), usage) = stack::measure(|| {
                timed(syst, || {
                    agent.handle(
                        peer,
                        now(t),
                        &mut lock_rng,
                        &mut lock,
                        &frame[..n],
                        &mut out,
                    )
                })
            });
            hprintln!(
                "agent call {}: {} ticks, stack {} bytes, request {} B, answer {} B",
                $name,
                ticks,
                usage.call,
                n,
                o.len
            );
            deepest = deepest.max(usage.call);
            (o, o.len)
        }};
    }

    // --- Pairing with the setup code, in the window. ---
    let (_, m) = step!("pairing params", Request::PakeParams);
    let params = match answer(&out[..m], "params") {
        Response::PakeParams(p) => {
            let mut b = [0u8; keyway_channel::pairing::PARAMS_LEN];
            if p.msg.len() != b.len() {
                fail("params length");
            }
            b.copy_from_slice(p.msg);
            b
        }
        _ => fail("params"),
    };
    let (mut cp, pake1) = match ClientPairing::start(&code, &params, &mut client_rng) {
        Ok(v) => v,
        Err(_) => fail("client start"),
    };
    let (_, m) = step!(
        "pairing Pake1 -> Pake2",
        Request::PakeStart(keyway_group::PakeStart { msg: &pake1 })
    );
    // The transport's resend of the same Pake1 (its answer was lost or
    // late): the same Pake2, not a new run and no guess charged.
    let mut first = [0u8; 192];
    first[..m].copy_from_slice(&out[..m]);
    let (o, m2) = step!(
        "pairing Pake1 resent",
        Request::PakeStart(keyway_group::PakeStart { msg: &pake1 })
    );
    if m2 != m || out[8..m] != first[8..m] || o.event != Event::None {
        fail("a resent Pake1 got another answer");
    }
    let mut pake3 = [0u8; keyway_channel::pairing::PAKE3_LEN];
    match answer(&out[..m], "pake2") {
        Response::PakeStart(p) => {
            if cp
                .pake2(
                    p.msg,
                    &owner.verifying_key().to_bytes(),
                    "Alice",
                    &mut pake3,
                )
                .is_err()
            {
                fail("client pake2");
            }
        }
        _ => fail("pake2"),
    }
    let (o, m) = step!(
        "pairing Pake3 -> Pake4",
        Request::PakeFinish(keyway_group::PakeFinish { msg: &pake3 })
    );
    let device_key = match answer(&out[..m], "pake4") {
        Response::PakeFinish(p) => match cp.pake4(p.msg) {
            Ok(l) => l.device_public_key,
            Err(_) => fail("client pake4"),
        },
        _ => fail("pake4"),
    };
    if !matches!(o.event, Event::OwnerPaired { .. }) || agent.state().owner_count() != 1 {
        fail("owner not paired");
    }
    hprintln!("paired: 1 owner, window closed: {}", !agent.window_open(t));

    // --- Session. ---
    let (hs, msg1) = ClientHandshake::start(&mut client_rng);
    let (_, m) = step!(
        "session msg1 -> msg2",
        Request::SessionStart(keyway_group::SessionStart { msg: &msg1 })
    );
    // The same msg1 resent: the same msg2, the handshake kept.
    first[..m].copy_from_slice(&out[..m]);
    let (_, m2) = step!(
        "session msg1 resent",
        Request::SessionStart(keyway_group::SessionStart { msg: &msg1 })
    );
    if m2 != m || out[8..m] != first[8..m] {
        fail("a resent msg1 got another answer");
    }
    let mut msg3 = [0u8; keyway_channel::handshake::MSG3_LEN];
    let mut session: ClientSession = match answer(&out[..m], "msg2") {
        Response::SessionStart(s) => match hs.msg2(s.msg, &device_key, &owner, &mut msg3) {
            Ok(s) => s,
            Err(_) => fail("client msg2"),
        },
        _ => fail("msg2"),
    };
    let (_, m) = step!(
        "session msg3 -> msg4",
        Request::SessionFinish(keyway_group::SessionFinish { msg: &msg3 })
    );
    let mut msg4 = [0u8; keyway_channel::record::MSG4_LEN];
    match answer(&out[..m], "msg4") {
        Response::SessionFinish(s) if s.msg.len() == msg4.len() => msg4.copy_from_slice(s.msg),
        _ => fail("msg4"),
    }
    if session.open_response(t, &mut msg4).is_err() {
        fail("client msg4");
    }

    // --- Sealed requests. ---
    lock.hw.pending = Some(Pending {
        digest: [0x5e; 32],
        sequence: 7,
        notes_offered: true,
    });
    let requests: [(&str, Request<'_>); 3] = [
        (
            "sealed unlock",
            Request::Unlock(keyway_group::Signed::default()),
        ),
        (
            "sealed consent",
            Request::Consent(keyway_group::Consent {
                accept: true,
                auth: None,
            }),
        ),
        (
            "sealed owners",
            Request::Owners(keyway_group::Signed::default()),
        ),
    ];
    let mut inner = [0u8; MAX_FRAME];
    let mut rec = [0u8; MAX_FRAME];
    for (name, req) in requests.iter() {
        seq = seq.wrapping_add(1);
        let n = match req.frame(&mut inner, Version::V2, seq) {
            Ok(n) => n,
            Err(_) => fail("inner frame"),
        };
        let r = match session.seal_request(t, &inner[..n], &mut rec) {
            Ok((_, r)) => r,
            Err(_) => fail("seal"),
        };
        let (_, m) = step!(
            *name,
            Request::Sealed(keyway_group::Sealed { msg: &rec[..r] })
        );
        let mut back = [0u8; MAX_FRAME];
        let k = match answer(&out[..m], name) {
            Response::Sealed(s) if s.msg.len() <= back.len() => {
                back[..s.msg.len()].copy_from_slice(s.msg);
                s.msg.len()
            }
            _ => fail(name),
        };
        let got = match session.open_response(t, &mut back[..k]) {
            Ok(g) => g,
            Err(_) => fail("client open"),
        };
        let _ = answer(&back[got.payload.clone()], name);
    }
    if lock.hw.bolt != Bolt::Unlocked || agent.state().consent().is_none() {
        fail("unlock or consent did not take");
    }
    hprintln!("sealed: unlocked, consent stored, owners listed");
    hprintln!(
        "deepest agent call: {} B (budget {})",
        deepest,
        STACK_BUDGET
    );
    if deepest > STACK_BUDGET {
        fail("stack over budget");
    }
}
