//! Code size of keyway-smp on a Cortex-M4 (QEMU mps2-an386).
//!
//! The firmware decodes one request frame of every kind Keyway serves and
//! answers it with every answer and refusal form (the lock's side), then
//! decodes those answers (the client's side). The inputs pass through
//! `black_box`, so nothing is folded at compile time. The `baseline`
//! feature leaves every keyway-smp call out: the difference of the two
//! builds' `.text` + `.rodata` is the crate's code. It runs under QEMU and
//! exits through semihosting (success when every frame round-tripped).

#![no_std]
#![no_main]
#![cfg_attr(feature = "baseline", allow(dead_code, unused_imports))]

use core::hint::black_box;

// Links the single-core critical section semihosting needs.
use cortex_m as _;

use cortex_m_rt::{ExceptionFrame, entry, exception};
use cortex_m_semihosting::{debug, hprintln};

#[cfg(not(feature = "baseline"))]
use keyway_smp::{
    ErrorRsp, MAX_BODY, MAX_FRAME, Op, Refusal, Request, Response, Version, answer_frame, header,
    img, keyway_group, os,
};

/// Request frames: echo, upload (first chunk, with auth), settings with
/// auth, status, log, pair (smpclient's and keyway-smp's bytes).
#[cfg(not(feature = "baseline"))]
fn requests(buf: &mut [u8], i: usize) -> usize {
    let auth = keyway_smp::auth::Auth {
        key: [1; 32],
        nonce: [2; 16],
        sig: [3; 64],
    };
    let sha = [7u8; 32];
    let req = match i {
        0 => Request::Echo(os::Echo { d: "hello" }),
        1 => Request::Upload(img::Upload {
            off: 0,
            data: &[0x55; 64],
            len: Some(70_000),
            sha: Some(&sha),
            image: Some(0),
            upgrade: None,
            auth: Some(auth),
            kw: true,
        }),
        2 => Request::Settings(keyway_group::SettingsReq {
            auto_install_cve: Some(true),
            install_needs_unlocked: None,
            auth: Some(auth),
        }),
        3 => Request::Status(keyway_group::Signed::default()),
        4 => Request::Log(keyway_group::Log {
            off: 1024,
            auth: None,
        }),
        _ => Request::Pair(keyway_group::Pair {
            key: [4; 32],
            name: Some("alice"),
        }),
    };
    req.frame(buf, Version::V2, i as u8).unwrap_or(0)
}

/// The lock's side: decode, then answer (a success or a refusal).
#[cfg(not(feature = "baseline"))]
fn serve(frame: &[u8], out: &mut [u8]) -> Option<usize> {
    let (h, body) = header::split_request(frame, MAX_BODY).ok()?;
    let req = Request::decode(h.op, h.group, h.id, body).ok()?;
    let status = keyway_group::Status {
        bolt: keyway_group::Bolt::Locked,
        door: keyway_group::Door::Closed,
        battery_mv: 5800,
        battery_mwh: 9000,
        tamper: false,
        lockout_s: 0,
        model: "deadbolt-2",
        version: "1.4.0",
        slot: Some(0),
        image: Some([3; 32]),
        trial: false,
        presence_s: 0,
        owners: 1,
        update: None,
        settings: keyway_group::Settings {
            auto_install_cve: false,
            install_needs_unlocked: true,
        },
        device_key: None,
    };
    let rsp = match req {
        Request::Echo(e) => Response::Echo(os::EchoRsp { r: e.d }),
        Request::Upload(u) => {
            let refusal = ErrorRsp {
                rc: None,
                group: Some((1, 22)),
                rsn: None,
                refusal: Some(Refusal::DeltaWrongBase {
                    base_image_sha256: [9; 32],
                    running_image_sha256: Some([3; 32]),
                }),
            };
            if black_box(u.off) == 0 {
                return answer_frame(out, &h, |w| refusal.encode(w)).ok();
            }
            Response::Upload(img::UploadRsp {
                off: u.off + u.data.len() as u64,
                matched: None,
            })
        }
        Request::Settings(s) => Response::Settings(keyway_group::SettingsRsp {
            settings: keyway_group::Settings {
                auto_install_cve: s.auto_install_cve.unwrap_or(false),
                install_needs_unlocked: s.install_needs_unlocked.unwrap_or(true),
            },
        }),
        Request::Log(l) => Response::Log(keyway_group::LogRsp {
            off: l.off,
            len: 5000,
            data: &[0x5A; 64],
        }),
        Request::Pair(p) => Response::Pair(keyway_group::PairRsp {
            owners: 2,
            key_id: [p.key[0]; 8],
        }),
        _ => Response::Status(status),
    };
    answer_frame(out, &h, |w| rsp.encode(w)).ok()
}

/// The client's side: split the answer and decode it.
#[cfg(not(any(feature = "baseline", feature = "lock-only")))]
fn read_answer(frame: &[u8], op: Op) -> bool {
    use keyway_smp::Answer;
    let Ok((h, body)) = header::split_response(frame, MAX_BODY) else {
        return false;
    };
    match Response::decode(op, h.group, h.id, body) {
        Ok(Answer::Ok(_)) => true,
        Ok(Answer::Err(e)) => e.refusal.is_some(),
        Err(_) => false,
    }
}

#[entry]
fn main() -> ! {
    #[cfg(not(feature = "baseline"))]
    {
        let mut req = [0u8; MAX_FRAME];
        let mut rsp = [0u8; MAX_FRAME];
        let mut ok = 0;
        for i in 0..6 {
            let n = requests(&mut req, black_box(i));
            let frame = black_box(&req[..n]);
            let op = if frame[0] & 7 == 2 {
                Op::Write
            } else {
                Op::Read
            };
            #[cfg(not(feature = "lock-only"))]
            let good =
                serve(frame, &mut rsp).is_some_and(|m| read_answer(black_box(&rsp[..m]), op));
            #[cfg(feature = "lock-only")]
            let good = {
                let _ = op;
                serve(frame, &mut rsp).is_some()
            };
            ok += usize::from(good);
        }
        hprintln!("keyway-smp: {} of 6 frames served and answered", ok);
        debug::exit(if ok == 6 {
            debug::EXIT_SUCCESS
        } else {
            debug::EXIT_FAILURE
        });
    }
    #[cfg(feature = "baseline")]
    {
        hprintln!("keyway-smp: baseline {}", black_box(6));
        debug::exit(debug::EXIT_SUCCESS);
    }
    loop {}
}

#[exception]
unsafe fn HardFault(_frame: &ExceptionFrame) -> ! {
    debug::exit(debug::EXIT_FAILURE);
    loop {}
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    debug::exit(debug::EXIT_FAILURE);
    loop {}
}
