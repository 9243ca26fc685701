//! The owner's client against the real lock agent (`keyway-agent`) in
//! memory: pairing by setup code, sessions, sealed owner commands, and the
//! attacks of issue 12 played by a man in the middle on the link (altered,
//! forged, replayed answers; held-back and replayed requests; an impostor
//! lock). Each attack test asserts what the client reports and what the
//! lock did.

mod common;
#[path = "session/harness.rs"]
mod harness;

use harness::*;
use keyway::device::DeviceError;
use keyway_agent::agent::{Event, Pending};
use keyway_agent::limits::PeerId;
use keyway_channel::SetupCode;
use keyway_smp::Refusal;
use keyway_smp::keyway_group::Bolt;

const OWNER: PeerId = PeerId(1);
const OTHER: PeerId = PeerId(2);

fn code(s: &str) -> SetupCode {
    SetupCode::parse(s).unwrap()
}

#[test]
fn pair_with_right_code_then_every_owner_command_runs_sealed() {
    let lock = Lock::new(0xd0, 1);
    let mut c = in_window(&lock, OWNER, 0xa1);
    let r = c.pair_with_code(&code(CODE), "Alice").unwrap();
    {
        let l = lock.borrow();
        assert_eq!(r.device_key, l.agent.device_public_key());
        assert_eq!(r.key_id, owner_kid(0xa1));
        assert_eq!(r.owners, 1);
        assert_eq!(l.agent.state().owner_count(), 1);
        assert!(!l.agent.window_open(l.ms()), "pairing closes the window");
    }
    let mut c = c.with_paired_lock(r.device_key).unwrap();
    // Every request the client sends from now on is a sealed record or
    // the handshake's: a tap checks it.
    let sent_plain = std::rc::Rc::new(std::cell::Cell::new(0u32));
    let count = sent_plain.clone();
    c_tap(&mut c, move |lock, peer, frame| {
        let h = keyway_smp::Header::decode(frame).unwrap();
        let handshake = h.group == keyway_smp::group::KEYWAY && matches!(h.id, 13 | 14);
        if !(is_sealed(frame) || handshake) {
            count.set(count.get() + 1);
        }
        Some(lock.deliver(peer, frame))
    });

    let s = c.status().unwrap();
    assert!(keyway_vendor::smp::get(&s, "bolt").is_some());
    let u = c.unlock().unwrap();
    assert_eq!(
        keyway_vendor::smp::get_text(&u, "bolt").unwrap(),
        Some("unlocked")
    );
    assert_eq!(lock.borrow().device.hw.bolt, Bolt::Unlocked);
    let l = c.lock().unwrap();
    assert_eq!(
        keyway_vendor::smp::get_text(&l, "bolt").unwrap(),
        Some("locked")
    );
    assert_eq!(lock.borrow().device.hw.bolt, Bolt::Locked);

    // Consent to a pending update, after its notes.
    lock.borrow_mut().device.hw.pending = Some(Pending {
        digest: [0x22; 32],
        sequence: 7,
        notes_offered: false,
    });
    c.notes().unwrap();
    c.consent(true).unwrap();
    assert!(lock.borrow().agent.state().consent().is_some());

    // A second owner pairs; the first lists and removes it, then itself.
    let mut bob = in_window(&lock, OTHER, 0xb2);
    bob.pair_with_code(&code(CODE), "Bob").unwrap();
    let owners = c.owners().unwrap();
    assert_eq!(
        owners.iter().map(|o| o.key_id).collect::<Vec<_>>(),
        vec![owner_kid(0xa1), owner_kid(0xb2)]
    );
    assert_eq!(owners[1].name, "Bob");
    assert_eq!(c.unpair(owner_kid(0xb2)).unwrap(), 1);
    assert_eq!(c.unpair(owner_kid(0xa1)).unwrap(), 0);

    let me = owner_kid(0xa1);
    let events = lock.borrow().events.clone();
    for want in [
        Event::Unlocked { by: me },
        Event::Locked { by: me },
        Event::Consent {
            accept: true,
            by: me,
        },
        Event::OwnerRemoved {
            key_id: owner_kid(0xb2),
            by: me,
        },
        Event::OwnerRemoved { key_id: me, by: me },
    ] {
        assert!(events.contains(&want), "{want:?} not in {events:?}");
    }
    assert_eq!(sent_plain.get(), 0, "an owner command went in the clear");
    let counts = c.channel_counts();
    assert_eq!(counts.handshakes, 1);
    assert_eq!(counts.sealed, 8);
}

/// Installs `tap` on the client's link.
fn c_tap(
    c: &mut keyway::device::Client<Link>,
    tap: impl FnMut(&mut Lock, PeerId, &[u8]) -> Option<Vec<u8>> + 'static,
) {
    c.transport_mut().tap = Some(Box::new(tap));
}

/// Lets the client's transport send three times and loses the lock's
/// answer to the first frame `which` picks (the lock ran it). The number of
/// such frames sent so far.
fn lose_the_first_answer(
    c: &mut keyway::device::Client<Link>,
    which: fn(&[u8]) -> bool,
) -> std::rc::Rc<std::cell::Cell<u32>> {
    c.transport_mut().tries = 3;
    let sent = std::rc::Rc::new(std::cell::Cell::new(0u32));
    let n = sent.clone();
    c_tap(c, move |lock, peer, frame| {
        let a = lock.deliver(peer, frame);
        if which(frame) {
            n.set(n.get() + 1);
            if n.get() == 1 {
                return None;
            }
        }
        Some(a)
    });
    sent
}

/// Lets the client's transport send three times and makes the lock's
/// answer to the first frame `which` picks late: it is held back until the
/// transport has sent that frame again (the lock runs the resend too), and
/// arrives then in place of the resend's answer.
fn answer_the_first_late(c: &mut keyway::device::Client<Link>, which: fn(&[u8]) -> bool) {
    c.transport_mut().tries = 3;
    let mut held = None::<Vec<u8>>;
    c_tap(c, move |lock, peer, frame| {
        let a = lock.deliver(peer, frame);
        if !which(frame) {
            return Some(a);
        }
        match held.take() {
            // The resend reached the lock; the first answer arrives now.
            Some(first) => Some(first),
            None => {
                held = Some(a);
                None
            }
        }
    });
}

#[test]
fn wrong_setup_code_is_the_locks_typed_refusal_and_frees_the_run() {
    let lock = Lock::new(0xd0, 2);
    let mut mallory = in_window(&lock, OTHER, 0x66);
    let e = mallory.pair_with_code(&code(WRONG), "m").unwrap_err();
    assert_eq!(e.refusal(), Some(Refusal::BadSetupCode), "{e}");
    assert_eq!(e.refusal().map(|r| r.code()), Some(15));
    assert!(e.wrong_setup_code());
    assert_eq!(lock.borrow().agent.state().owner_count(), 0);
    // The run was ended: the owner pairs at once from another address.
    let mut c = client(&lock, OWNER, 0xa1);
    c.pair_with_code(&code(CODE), "Alice").unwrap();
    assert_eq!(lock.borrow().agent.state().owner_count(), 1);
}

#[test]
fn altered_or_forged_answer_makes_the_command_fail() {
    let lock = Lock::new(0xd0, 3);
    let mut c = paired(&lock, OWNER, 0xa1);
    c.status().unwrap();
    // Record a genuine sealed answer (to a status) for the replay below.
    let recorded = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
    let keep = recorded.clone();
    c_tap(&mut c, move |lock, peer, frame| {
        let a = lock.deliver(peer, frame);
        *keep.borrow_mut() = a.clone();
        Some(a)
    });
    c.status().unwrap();
    let old_answer = recorded.borrow().clone();

    // 1. A byte of the sealed answer flipped (the lock did unlock).
    c_tap(&mut c, |lock, peer, frame| {
        let mut a = lock.deliver(peer, frame);
        let n = a.len();
        a[n - 20] ^= 1;
        Some(a)
    });
    let e = c.unlock().unwrap_err();
    assert_eq!(e.channel(), Some(keyway_channel::Error::Forged), "{e}");
    assert_eq!(lock.borrow().device.hw.bolt, Bolt::Unlocked);

    // 2. The lock request swallowed and a plain "bolt locked" answered
    //    (the CVE-2022-32509 class): an error, the bolt stays unlocked.
    c_tap(&mut c, |_lock, _peer, frame| {
        let h = keyway_smp::Header::decode(frame).unwrap();
        let st = keyway_smp::keyway_group::Status {
            bolt: Bolt::Locked,
            ..status_template()
        };
        let mut out = vec![0u8; 512];
        let n = keyway_smp::header::frame(&mut out, h.response(), |w| {
            keyway_smp::Response::Status(st).encode(w)
        })
        .unwrap();
        out.truncate(n);
        Some(out)
    });
    let e = c.lock().unwrap_err();
    assert!(matches!(e, DeviceError::Malformed { .. }), "{e}");
    assert_eq!(lock.borrow().device.hw.bolt, Bolt::Unlocked);

    // 3. An earlier genuine sealed answer replayed in place of the answer
    //    to a lock: it does not open as the answer to this request.
    c_tap(&mut c, move |_lock, _peer, frame| {
        let h = keyway_smp::Header::decode(frame).unwrap();
        let mut a = old_answer.clone();
        a[6] = h.seq;
        Some(a)
    });
    let e = c.lock().unwrap_err();
    assert_eq!(e.channel(), Some(keyway_channel::Error::Forged), "{e}");
    assert_eq!(lock.borrow().device.hw.bolt, Bolt::Unlocked);
}

fn status_template() -> keyway_smp::keyway_group::Status<'static> {
    keyway_smp::keyway_group::Status {
        model: "KW-1",
        version: "1.4.0",
        slot: Some(0),
        image: None,
        trial: false,
        bolt: Bolt::Locked,
        door: keyway_smp::keyway_group::Door::Closed,
        battery_mv: 5_900,
        battery_mwh: 9_000,
        tamper: false,
        lockout_s: 0,
        presence_s: 0,
        owners: 1,
        update: None,
        settings: keyway_smp::keyway_group::Settings {
            auto_install_cve: false,
            install_needs_unlocked: false,
        },
        device_key: None,
    }
}

#[test]
fn held_back_request_is_refused_as_stale_and_never_reported_as_success() {
    let lock = Lock::new(0xd0, 4);
    let mut c = paired(&lock, OWNER, 0xa1);
    c.status().unwrap();
    // The attacker holds the sealed unlock for 20 s, then plays it; it
    // swallows the client's resend.
    let held = std::rc::Rc::new(std::cell::Cell::new(0u32));
    let n = held.clone();
    c_tap(&mut c, move |lock, peer, frame| {
        if !is_sealed(frame) {
            return Some(lock.deliver(peer, frame));
        }
        n.set(n.get() + 1);
        if n.get() == 1 {
            lock.advance(20_000);
            let a = lock.deliver(peer, frame);
            assert_eq!(lock.device.hw.bolt_moves, 0, "a held-back unlock ran");
            Some(a)
        } else {
            None
        }
    });
    let e = c.unlock().unwrap_err();
    assert!(matches!(e, DeviceError::Transport { .. }), "{e}");
    assert_eq!(
        held.get(),
        2,
        "the client resent once after the stale answer"
    );
    assert_eq!(lock.borrow().device.hw.bolt, Bolt::Locked);
    assert_eq!(lock.borrow().device.hw.bolt_moves, 0);
    assert_eq!(c.channel_counts().stale_resends, 1);

    // Held back again, but the resend goes through: it runs once, and
    // the client reports the resend's answer.
    let n = std::rc::Rc::new(std::cell::Cell::new(0u32));
    let m = n.clone();
    c_tap(&mut c, move |lock, peer, frame| {
        if is_sealed(frame) {
            m.set(m.get() + 1);
            if m.get() == 1 {
                lock.advance(20_000);
            }
        }
        Some(lock.deliver(peer, frame))
    });
    c.unlock().unwrap();
    assert_eq!(lock.borrow().device.hw.bolt_moves, 1);
    assert_eq!(c.channel_counts().stale_resends, 2);
}

#[test]
fn replayed_request_is_not_executed_twice() {
    let lock = Lock::new(0xd0, 5);
    let mut c = paired(&lock, OWNER, 0xa1);
    let recorded = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
    let keep = recorded.clone();
    c_tap(&mut c, move |lock, peer, frame| {
        if is_sealed(frame) {
            *keep.borrow_mut() = frame.to_vec();
        }
        Some(lock.deliver(peer, frame))
    });
    c.unlock().unwrap();
    let unlock_record = recorded.borrow().clone();
    c.lock().unwrap();
    assert_eq!(lock.borrow().device.hw.bolt_moves, 2);
    // The recorded unlock, replayed from the owner's address and another.
    for peer in [OWNER, OTHER] {
        let a = lock.borrow_mut().deliver(peer, &unlock_record);
        let (_, body) = keyway_smp::header::split_response(&a, 4096).unwrap();
        let e = keyway_smp::ErrorRsp::decode(body).unwrap().unwrap();
        assert_eq!(e.refusal, Some(Refusal::RecordRefused));
    }
    assert_eq!(lock.borrow().device.hw.bolt, Bolt::Locked);
    assert_eq!(lock.borrow().device.hw.bolt_moves, 2);
    // The session still works.
    c.status().unwrap();
}

#[test]
fn impostor_lock_is_refused_by_the_client() {
    let real = Lock::new(0xd0, 6);
    let c = paired(&real, OWNER, 0xa1);
    let device_key = real.borrow().agent.device_public_key();
    drop(c);
    // Another lock (another device key) where the owner is paired too:
    // it would accept the owner, but it is not the lock paired above.
    let impostor = Lock::new(0xee, 7);
    let _ = paired(&impostor, OWNER, 0xa1);
    let mut c = client(&impostor, OWNER, 0xa1)
        .with_paired_lock(device_key)
        .unwrap();
    let sent = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
    let log = sent.clone();
    c_tap(&mut c, move |lock, peer, frame| {
        log.borrow_mut()
            .push(keyway_smp::Header::decode(frame).unwrap().id);
        Some(lock.deliver(peer, frame))
    });
    let e = c.unlock().unwrap_err();
    assert_eq!(
        e.channel(),
        Some(keyway_channel::Error::LockNotAuthenticated),
        "{e}"
    );
    assert_eq!(impostor.borrow().device.hw.bolt_moves, 0);
    // Only msg1 went: no owner proof, no request.
    assert_eq!(
        *sent.borrow(),
        vec![keyway_smp::keyway_group::cmd::SESSION_START]
    );
}

#[test]
fn lock_restart_unknown_session_opens_a_new_session_once() {
    let lock = Lock::new(0xd0, 8);
    let mut c = paired(&lock, OWNER, 0xa1);
    c.status().unwrap();
    lock.borrow_mut().restart();
    c.unlock().unwrap();
    assert_eq!(lock.borrow().device.hw.bolt, Bolt::Unlocked);
    let counts = c.channel_counts();
    assert_eq!((counts.handshakes, counts.session_restarts), (2, 1));
}

#[derive(clap::Parser)]
struct Cli {
    #[command(flatten)]
    device: keyway::device::cli::DeviceArgs,
}

fn args(v: &[&str]) -> keyway::device::cli::DeviceArgs {
    use clap::Parser as _;
    Cli::try_parse_from(std::iter::once("keyway").chain(v.iter().copied()))
        .unwrap()
        .device
}

/// `keyway device ARGS` against `lock` from `peer`, through `tap` if any:
/// (result, what it printed).
fn cli(lock: &Shared, peer: PeerId, a: &[&str], tap: Option<Tap>) -> (anyhow::Result<()>, String) {
    let mut link = Link::new(lock, peer);
    link.tap = tap;
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let r = keyway::device::cli::run_with(
        &args(a),
        keyway::device::Client::new(link),
        &mut out,
        &mut err,
    );
    (r, String::from_utf8(out).unwrap())
}

#[test]
fn cli_pairs_with_the_setup_code_records_the_lock_and_runs_owner_commands_sealed() {
    let dir = tempfile::tempdir().unwrap();
    let files = keyway_vendor::keys::keygen(
        dir.path().join("owner"),
        keyway_vendor::keys::Algorithm::Ed25519,
    )
    .unwrap();
    let key = files.private.to_str().unwrap().to_owned();
    let record = keyway::device::locks_path(&files.private);
    let kid: [u8; 8] = files.key_id[..8].try_into().unwrap();
    let lock = Lock::new(0xd0, 9);
    let t = "udp:127.0.0.1:7000";
    // `keyway device --target TARGET --owner-key KEY REST` as the owner.
    let owner = |target: &str, rest: &[&str], tap: Option<Tap>| {
        let mut a = vec!["--target", target, "--owner-key", &key];
        a.extend_from_slice(rest);
        cli(&lock, OWNER, &a, tap)
    };

    // A wrong code: refused, nothing recorded.
    lock.borrow_mut().press();
    let (r, _) = owner(t, &["pair", "--setup-code", WRONG], None);
    let e = r.unwrap_err();
    let typed = e.downcast_ref::<DeviceError>().expect("a DeviceError");
    assert_eq!(typed.refusal(), Some(Refusal::BadSetupCode), "{e:#}");
    assert!(!record.exists());

    let (r, out) = owner(t, &["pair", "--setup-code", CODE, "--name", "Alice"], None);
    r.unwrap();
    assert!(out.starts_with("paired "), "{out}");
    let file = keyway::device::PairedLocks::load(&record, kid).unwrap();
    assert_eq!(
        file.find(t).unwrap().device_key,
        lock.borrow().agent.device_public_key()
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&record).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    // With the record, unlock runs sealed without asking for it.
    let only_sealed: Tap = Box::new(|lock, peer, frame| {
        assert_sealed_or_handshake(frame);
        Some(lock.deliver(peer, frame))
    });
    let (r, out) = owner(t, &["unlock"], Some(only_sealed));
    r.unwrap();
    assert_eq!(out, "bolt unlocked\n");
    assert!(lock.borrow().events.contains(&Event::Unlocked { by: kid }));

    // A man in the middle alters the answer to `lock`: the command fails
    // and prints no bolt state, as text or as JSON.
    for json in [false, true] {
        let alter: Tap = Box::new(|lock, peer, frame| {
            let mut a = lock.deliver(peer, frame);
            if is_sealed(frame) {
                let n = a.len();
                a[n - 1] ^= 0x80;
            }
            Some(a)
        });
        let rest: &[&str] = if json { &["--json", "lock"] } else { &["lock"] };
        let (r, out) = owner(t, rest, Some(alter));
        let e = r.unwrap_err();
        assert!(!out.contains("bolt"), "{out}");
        assert_eq!(
            e.downcast_ref::<DeviceError>()
                .and_then(DeviceError::channel),
            Some(keyway_channel::Error::Forged),
            "{e:#}"
        );
    }

    // --session without a record for the target is refused up front.
    let (r, _) = owner("udp:10.0.0.9:1337", &["--session", "status"], None);
    assert!(r.is_err());
}

#[test]
fn upload_and_log_export_run_sealed_within_the_mtu() {
    let lock = Lock::new(0xd0, 10);
    let mut c = paired(&lock, OWNER, 0xa1);
    let longest = std::rc::Rc::new(std::cell::Cell::new(0usize));
    let seen = longest.clone();
    c_tap(&mut c, move |lock, peer, frame| {
        assert_sealed_or_handshake(frame);
        seen.set(seen.get().max(frame.len()));
        Some(lock.deliver(peer, frame))
    });
    let file: Vec<u8> = (0..20_000u32).map(|i| (i * 13 + 5) as u8).collect();
    let report = c.upload(&file, &mut |_, _| {}).unwrap();
    assert_eq!(lock.borrow().device.shell.uploaded, file);
    assert!(
        longest.get() <= keyway::device::UDP_MTU,
        "a frame of {} bytes",
        longest.get()
    );
    // The chunks fill the MTU less the record's and the outer frame's
    // overhead (within a few bytes of CBOR heads).
    assert!(report.chunk > 1300, "chunks of {} bytes", report.chunk);
    let log = c.log_export(&mut |_, _| {}).unwrap();
    assert_eq!(log, lock.borrow().device.shell.log);
}

#[test]
fn factory_reset_goes_in_the_clear_with_the_window_and_long_press() {
    let lock = Lock::new(0xd0, 11);
    let mut c = paired(&lock, OWNER, 0xa1);
    c.status().unwrap();
    // Sealed it would count as the owner's, which is not the person at
    // the lock: the client sends it in the clear.
    let e = c.factory_reset().unwrap_err();
    assert_eq!(e.refusal(), Some(Refusal::NoPresenceWindow), "{e}");
    lock.borrow_mut().press();
    lock.borrow_mut().long_press();
    c.factory_reset().unwrap();
    assert_eq!(lock.borrow().agent.state().owner_count(), 0);
    assert!(lock.borrow().events.contains(&Event::FactoryReset));
}

#[test]
fn forged_unknown_session_costs_at_most_one_resend_and_fails() {
    // The attacker lets each sealed request reach the lock but answers it
    // with a plain "unknown session" refusal (it cannot forge a sealed
    // answer). The client opens one new session, sends once more, then
    // reports the failure; it never reports success, and the lock ran the
    // (idempotent) command at most twice.
    let lock = Lock::new(0xd0, 12);
    let mut c = paired(&lock, OWNER, 0xa1);
    c.status().unwrap();
    c_tap(&mut c, |lock, peer, frame| {
        let a = lock.deliver(peer, frame);
        if !is_sealed(frame) {
            return Some(a);
        }
        let h = keyway_smp::Header::decode(frame).unwrap();
        let mut out = vec![0u8; 256];
        let n = keyway_smp::header::frame(&mut out, h.response(), |w| {
            keyway_smp::ErrorRsp {
                rc: Some(keyway_smp::MgmtErr::NoEnt as u64),
                rsn: None,
                group: None,
                refusal: Some(Refusal::UnknownSession),
            }
            .encode(w)
        })
        .unwrap();
        out.truncate(n);
        Some(out)
    });
    let e = c.unlock().unwrap_err();
    assert_eq!(e.refusal(), Some(Refusal::UnknownSession), "{e}");
    assert_eq!(c.channel_counts().session_restarts, 1);
    assert!(lock.borrow().device.hw.bolt_moves <= 2);
}

#[test]
fn the_keyway_binary_pairs_by_code_and_unlocks_sealed_over_udp() {
    use common::BIN;
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("owner");
    let o = std::process::Command::new(BIN)
        .arg("keygen")
        .arg(&base)
        .output()
        .unwrap();
    assert!(o.status.success());
    let key = format!("{}.key", base.display());
    let lock = UdpLock::start(0xd0);
    let target = format!("udp:{}", lock.addr);
    let run = |args: &[&str]| common::device_cli(&target, &["--owner-key", &key], args);
    let (ok, out, err) = run(&["pair", "--setup-code", CODE, "--name", "Alice"]);
    assert!(ok, "{out}{err}");
    assert!(dir.path().join("owner.locks.json").exists());
    // Each run is a new process, a new UDP port and a new session.
    let (ok, out, err) = run(&["unlock"]);
    assert!(ok, "{out}{err}");
    assert_eq!(out, "bolt unlocked\n");
    let (ok, out, err) = run(&["--json", "owners"]);
    assert!(ok, "{out}{err}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["owners"][0]["name"], "Alice");
    assert_eq!(v["owners"][0]["this_key"], true);
    let device = lock.stop();
    assert_eq!(device.hw.bolt, Bolt::Unlocked);
}

#[test]
fn sealed_upload_carries_at_least_nine_tenths_of_the_plain_data_per_frame() {
    // Side by side, one file, the UDP MTU: the plain upload of a person
    // at the lock (window open, no key) and the owner's sealed upload.
    let file: Vec<u8> = (0..60_000u32).map(|i| (i * 29 + 1) as u8).collect();
    let lock = Lock::new(0xd0, 13);
    lock.borrow_mut().press();
    // A plain peer gets 10 requests a second: the link takes 100 ms a frame.
    let mut link = Link::new(&lock, OTHER);
    link.tap = Some(Box::new(|lock, peer, frame| {
        lock.advance(100);
        Some(lock.deliver(peer, frame))
    }));
    let mut plain = keyway::device::Client::new(link);
    let p = plain.upload(&file, &mut |_, _| {}).unwrap();
    assert_eq!(lock.borrow().device.shell.uploaded, file);
    let mut c = paired(&lock, OWNER, 0xa1);
    // Past the agent's upload idle time: the owner's first chunk may
    // replace the upload the window peer left.
    lock.borrow().advance(31_000);
    let s = c.upload(&file, &mut |_, _| {}).unwrap();
    assert_eq!(lock.borrow().device.shell.uploaded, file);
    let ratio = s.chunk as f64 / p.chunk as f64;
    println!(
        "upload of {} bytes at MTU {}: plain {} requests of <= {} data bytes, sealed {} requests of <= {} ({ratio:.3}x data per frame)",
        file.len(),
        keyway::device::UDP_MTU,
        p.requests,
        p.chunk,
        s.requests,
        s.chunk
    );
    assert!(ratio >= 0.9, "{ratio}");
}

#[test]
fn lost_answer_and_the_transports_resend_of_the_same_record_end_in_the_real_outcome() {
    // UDP: the sealed unlock reaches the lock, its answer is lost; the
    // transport sends the same datagram again, which the lock refuses as
    // a replay (not run). The client then sends the unlock anew with a
    // new counter and reports the lock's real answer.
    let lock = Lock::new(0xd0, 14);
    let mut c = paired(&lock, OWNER, 0xa1);
    c.status().unwrap();
    let n = lose_the_first_answer(&mut c, is_sealed);
    let u = c.unlock().unwrap();
    assert_eq!(
        keyway_vendor::smp::get_text(&u, "bolt").unwrap(),
        Some("unlocked")
    );
    assert_eq!(n.get(), 3, "first copy, its replay, the new record");
    let l = lock.borrow();
    assert_eq!(l.device.hw.bolt, Bolt::Unlocked);
    assert_eq!(
        l.device.hw.bolt_moves, 2,
        "the first copy and the new record ran"
    );
    assert_eq!(c.channel_counts().record_resends, 1);
}

/// Whether `frame` is a `Pake1` (Keyway group, write of id 11).
fn is_pake1(frame: &[u8]) -> bool {
    keyway_smp::Header::decode(frame).is_ok_and(|h| {
        h.op == keyway_smp::Op::Write
            && h.group == keyway_smp::group::KEYWAY
            && h.id == keyway_smp::keyway_group::cmd::PAKE_START
    })
}

fn pairing_attempts(lock: &Shared) -> Vec<Event> {
    lock.borrow()
        .events
        .iter()
        .filter(|e| matches!(e, Event::PairingAttempt { .. }))
        .copied()
        .collect()
}

#[test]
fn a_lost_pake2_is_recovered_by_the_transports_resend_and_costs_one_guess() {
    // UDP loses the lock's Pake2; the transport sends the same Pake1
    // again after its timeout. The lock answers it with the Pake2 it
    // already sent: one attempt charged, and the owner pairs.
    let lock = Lock::new(0xd0, 21);
    let mut c = in_window(&lock, OWNER, 0xa1);
    let sent = lose_the_first_answer(&mut c, is_pake1);
    let r = c.pair_with_code(&code(CODE), "Alice").unwrap();
    assert_eq!(r.owners, 1);
    assert_eq!(sent.get(), 2, "the Pake1 and its resend");
    assert_eq!(
        pairing_attempts(&lock),
        [Event::PairingAttempt { failures: 1 }],
        "the resend was charged as a second guess"
    );
    assert_eq!(keyway::device::Transport::stats(c.transport()).resends, 1);
}

#[test]
fn a_late_pake2_after_the_transports_resend_still_pairs() {
    // The lock's Pake2 is only late: the transport has sent the Pake1
    // again when the first answer arrives, and the client takes the
    // first one. Had the resend restarted the lock's run, that Pake2
    // would belong to a run that is gone and the right code would fail.
    let lock = Lock::new(0xd0, 22);
    let mut c = in_window(&lock, OWNER, 0xa1);
    answer_the_first_late(&mut c, is_pake1);
    let r = c.pair_with_code(&code(CODE), "Alice").unwrap();
    assert_eq!(r.owners, 1);
    assert_eq!(lock.borrow().agent.state().owner_count(), 1);
    assert_eq!(pairing_attempts(&lock).len(), 1);
}

/// The same class as the late `Pake2`, for the session handshake: the
/// lock's `msg2` arrives after the transport's timeout (a Cortex-M4 at
/// 64 MHz takes 0.43 s for msg1 -> msg2, 0.53 s on the modeled BLE link;
/// the client waits 500 ms by default) and the transport has sent `msg1`
/// again. Had the lock replaced the handshake with a new one, the
/// client's `msg3` (made from the first `msg2`) would be refused
/// `UnknownSession` and the command would fail.
#[test]
fn a_late_msg2_after_the_transports_resend_still_opens_the_session() {
    let lock = Lock::new(0xd0, 23);
    let mut c = paired(&lock, OWNER, 0xa1);
    answer_the_first_late(&mut c, |frame| {
        keyway_smp::Header::decode(frame).is_ok_and(|h| {
            h.op == keyway_smp::Op::Write
                && h.group == keyway_smp::group::KEYWAY
                && h.id == keyway_smp::keyway_group::cmd::SESSION_START
        })
    });
    c.unlock().unwrap();
    assert_eq!(c.channel_counts().handshakes, 1);
}

/// The MCUmgr parameters a client on a fragmenting link (BLE) sizes its
/// frames by: anyone reads them in the clear, an owner in its session,
/// and both see the lock's whole buffer (a frame of header and body).
#[test]
fn the_client_reads_the_locks_buffer_size_plain_and_sealed() {
    let lock = Lock::new(0xd2, 3);
    let mut stranger = keyway::device::Client::new(Link::new(&lock, OTHER));
    let p = stranger.params().unwrap();
    assert_eq!(p.buf_size, keyway_smp::MAX_FRAME as u64);
    assert!(p.buf_count >= 1);
    let mut owner = paired(&lock, OWNER, 0xa3);
    let before = owner.channel_counts().sealed;
    assert_eq!(owner.params().unwrap(), p);
    assert_eq!(
        owner.channel_counts().sealed,
        before + 1,
        "read in the session"
    );
}
