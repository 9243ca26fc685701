//! The lock's SMP side over the real device core, each frame through the
//! lock agent as `keyway-lock` runs it (`common::Shell`): gating, the
//! upload state machine, refusals with their codes, a reset into the
//! trial and the confirm, and hostile frames.

mod common;

use ciborium::Value;
use common::{
    First, Map, Shell, answer, consent_and_reset, consent_by_test, frame, listed, rc, sign, t,
    upload_body,
};
use keyway_device::journal::TrialState;
use keyway_lock::device::{self, Trust};
use keyway_lock::server::Server;
use keyway_lock::smp::{self, HEADER_LEN, Header, Op};
use keyway_vendor::encode::EnvelopeBuilder;
use keyway_vendor::keys::{Algorithm, SigningKey};
use sha2::{Digest, Sha256};

struct Fixture {
    key: SigningKey,
    trust: Trust,
}

impl Fixture {
    fn new() -> Self {
        let (key, trust) = common::vendor();
        Fixture { key, trust }
    }

    fn release(&self, key: &SigningKey, version: &str, sequence: u64, len: usize) -> Vec<u8> {
        sign(
            key,
            version,
            sequence,
            image(len, sequence),
            EnvelopeBuilder::default(),
        )
    }

    /// A lock with 1.0.0 (sequence 1, [`factory_image`]) confirmed in
    /// slot 0, serving through the lock agent.
    fn server(&self) -> Shell {
        let lock = common::factory_core(&self.key, self.trust.clone(), factory_image());
        Shell::new(Server::new(lock))
    }

    /// [`Fixture::server`] with the presence window held open.
    fn open_server(&self) -> Shell {
        let mut s = self.server();
        s.set_presence_always_open(true);
        s
    }
}

/// The payload of [`Fixture::release`]: `len` bytes for `sequence`.
fn image(len: usize, sequence: u64) -> Vec<u8> {
    (0..len)
        .map(|i| (i * 7 + sequence as usize) as u8)
        .collect()
}

/// The factory image of [`Fixture::server`] (1.0.0, sequence 1).
fn factory_image() -> Vec<u8> {
    image(9000, 1)
}

fn group_err(m: &Map) -> Option<(u64, u64)> {
    let e = smp::get(m, "err")?.as_map()?;
    Some((
        smp::get_u64(e, "group").ok()??,
        smp::get_u64(e, "rc").ok()??,
    ))
}

fn off(m: &Map) -> Option<u64> {
    smp::get_u64(m, "off").unwrap()
}

/// An upload request (SMPv2).
fn chunk(env: &[u8], at: usize, n: usize, first: bool, sha: Option<[u8; 32]>) -> Vec<u8> {
    let first = first.then_some(First { image: true, sha });
    frame(Op::Write, 1, 1, 1, 9, upload_body(env, at, n, first))
}

/// `req` with its body changed by `change` (the header's length follows).
fn rewrite(req: &[u8], change: impl FnOnce(&mut Map)) -> Vec<u8> {
    let mut h = Header::decode(req).unwrap();
    let mut m = smp::decode_body(&req[HEADER_LEN..]).unwrap();
    change(&mut m);
    let mut data = Vec::new();
    ciborium::into_writer(&Value::Map(m), &mut data).unwrap();
    h.len = data.len() as u16;
    let mut out = h.encode().to_vec();
    out.extend_from_slice(&data);
    out
}

fn sha(b: &[u8]) -> [u8; 32] {
    Sha256::digest(b).into()
}

/// Uploads `env` in `n`-byte chunks following the server's offsets;
/// returns the last response.
fn upload(server: &mut Shell, env: &[u8], n: usize) -> Map {
    upload_as(server, env, n, 1, env.len())
}

/// [`upload`] in SMP version bits `version`, declaring `len`.
fn upload_as(server: &mut Shell, env: &[u8], n: usize, version: u8, len: usize) -> Map {
    let mut at = 0usize;
    let mut first = true;
    loop {
        let mut req = chunk(env, at, n, first, (len == env.len()).then(|| sha(env)));
        if first && len != env.len() {
            req = rewrite(&req, |m| {
                for (k, v) in m {
                    if *k == t("len") {
                        *v = Value::from(len as u64);
                    }
                }
            });
        }
        req[0] = (version << 3) | Op::Write as u8;
        let (_, m) = answer(server, &req);
        first = false;
        match off(&m) {
            Some(o) if (o as usize) < env.len() => at = o as usize,
            _ => return m,
        }
    }
}

fn images(server: &mut Shell) -> Vec<Map> {
    let (_, m) = answer(server, &frame(Op::Read, 1, 1, 0, 1, vec![]));
    common::images_in(&m)
}

fn flag(m: &Map, k: &str) -> bool {
    smp::get_bool(m, k).unwrap().unwrap_or(false)
}

#[test]
fn upload_without_presence_is_access_denied_at_the_top_level() {
    let f = Fixture::new();
    let mut s = f.server();
    let env = f.release(&f.key, "2.0.0", 2, 10_000);
    for version in [0, 1] {
        let mut req = chunk(&env, 0, 512, true, Some(sha(&env)));
        req[0] = (version << 3) | Op::Write as u8;
        let (h, m) = answer(&mut s, &req);
        assert_eq!((h.op, h.seq), (Op::WriteRsp, 9));
        assert_eq!(rc(&m), Some(11), "{m:?}");
        assert!(group_err(&m).is_none());
    }
    let (_, m) = answer(&mut s, &frame(Op::Write, 1, 1, 5, 1, vec![]));
    assert_eq!(rc(&m), Some(11), "erase is gated too");
    // Nothing was written: no download recorded.
    assert_eq!(s.core().state().download, None);
    // The window opens and closes with time.
    s.open_presence(1_000, 500);
    assert!(s.presence_open(1_499) && !s.presence_open(1_500));
}

#[test]
fn full_update_out_of_order_resume_reset_trial_confirm() {
    let f = Fixture::new();
    let mut s = f.open_server();
    let env = f.release(&f.key, "2.1.0", 2, 20_000);
    let h = sha(&env);
    // First chunk (the head is buffered until it can be verified).
    let (_, m) = answer(&mut s, &chunk(&env, 0, 1000, true, Some(h)));
    assert_eq!(off(&m), Some(1000));
    // Out of order: the server names the offset it expects.
    let (_, m) = answer(&mut s, &chunk(&env, 3000, 1000, false, None));
    assert_eq!(off(&m), Some(1000));
    let mut at = 1000;
    while at < 9000 {
        let (_, m) = answer(&mut s, &chunk(&env, at, 1000, false, None));
        at = off(&m).unwrap() as usize;
    }
    assert_eq!(at, 9000);
    assert_eq!(
        images(&mut s).len(),
        1,
        "the slot being written is not listed"
    );
    // The client restarts: off 0 with the same len and sha resumes.
    let (_, m) = answer(&mut s, &chunk(&env, 0, 1000, true, Some(h)));
    assert_eq!(off(&m), Some(9000));
    let mut last = Map::new();
    while at < env.len() {
        let (_, m) = answer(&mut s, &chunk(&env, at, 1000, false, None));
        at = off(&m).unwrap() as usize;
        last = m;
    }
    assert_eq!(smp::get_bool(&last, "match").unwrap(), Some(true));
    // Complete and verified, but not armed without consent.
    assert_eq!(s.core().state().trial, TrialState::Confirmed);
    let imgs = images(&mut s);
    let new =
        listed(&imgs, &h).expect("the uploaded image is listed by the SHA-256 of its envelope");
    assert!(!flag(new, "pending") && !flag(new, "active") && flag(new, "bootable"));
    assert_eq!(smp::get_text(new, "version").unwrap(), Some("2.1.0"));
    // Reset: responds first, then boots the new image on trial; the
    // self-test passes and it confirms.
    consent_and_reset(&mut s, &env, 1, 2);
    let imgs = images(&mut s);
    let new = imgs
        .iter()
        .find(|m| smp::get_u64(m, "slot").unwrap() == Some(1))
        .unwrap();
    assert!(flag(new, "active") && flag(new, "confirmed") && !flag(new, "pending"));
}

#[test]
fn rollback_is_refused_with_current_version_is_newer() {
    let f = Fixture::new();
    let mut s = f.open_server();
    // Sequence 1 is the floor: not above it.
    let env = f.release(&f.key, "0.9.0", 1, 10_000);
    s.take_log();
    let m = upload(&mut s, &env, 1500);
    assert_eq!(group_err(&m), Some((1, 27)), "{m:?}");
    // SMPv1: the legacy rc (the agent's answers carry codes: its `rsn` is
    // the code in words); the reason is in the lock's log.
    let m = upload_as(&mut s, &env, 1500, 0, env.len());
    assert_eq!(rc(&m), Some(3), "{m:?}");
    let why = smp::get_text(&m, "rsn").unwrap().unwrap_or_default();
    assert!(!why.contains("anti-rollback"), "{why}");
    let log = s.take_log();
    assert_eq!(
        log.iter()
            .filter(|l| l.contains("rc 27") && l.contains("anti-rollback"))
            .count(),
        2,
        "the lock's log names the reason of both refusals: {log:?}"
    );
    assert!(s.upload().is_none());
    assert_eq!(s.core().state().download, None, "nothing written");
}

#[test]
fn wrong_signer_wrong_sha_overrun_and_wrong_len_are_refused() {
    let f = Fixture::new();
    let mut s = f.open_server();
    let stranger = SigningKey::generate(Algorithm::Ed25519).unwrap();
    let m = upload(&mut s, &f.release(&stranger, "2.0.0", 2, 8000), 1000);
    assert_eq!(group_err(&m), Some((1, 22)), "{m:?}");

    // A wrong sha is caught when the last byte arrives; nothing is pending.
    let env = f.release(&f.key, "2.0.0", 2, 8000);
    let mut at = 0;
    let mut m = Map::new();
    let mut first = true;
    while at < env.len() {
        (_, m) = answer(&mut s, &chunk(&env, at, 1000, first, Some([7; 32])));
        first = false;
        match off(&m) {
            Some(o) => at = o as usize,
            None => break,
        }
    }
    assert_eq!(group_err(&m), Some((1, 24)), "{m:?}");
    assert_ne!(s.core().state().trial, TrialState::Pending { slot: 1 });

    // Data past the declared length.
    let mut req = vec![
        (t("off"), Value::from(0u8)),
        (t("data"), Value::Bytes(vec![0; 100])),
        (t("len"), Value::from(50u8)),
    ];
    let (_, m) = answer(&mut s, &frame(Op::Write, 1, 1, 1, 3, req.clone()));
    assert_eq!(group_err(&m), Some((1, 31)), "{m:?}");
    // A len that is not the envelope's.
    let m = upload_as(&mut s, &env, 1500, 1, env.len() + 10);
    assert_eq!(group_err(&m), Some((1, 21)), "{m:?}");
    // No len with off 0.
    req.truncate(2);
    let (_, m) = answer(&mut s, &frame(Op::Write, 1, 1, 1, 3, req));
    assert_eq!(rc(&m), Some(3), "{m:?}");
}

#[test]
fn test_by_hash_then_reset_then_confirm_by_request() {
    let f = Fixture::new();
    let mut s = f.open_server();
    let env = f.release(&f.key, "3.0.0", 3, 5000);
    let m = upload(&mut s, &env, 1500);
    assert_eq!(off(&m), Some(env.len() as u64));
    let h = sha(&env);
    // Test by hash: the consent; then again: already pending, stays pending.
    consent_by_test(&mut s, &env);
    let req = vec![
        (t("hash"), Value::Bytes(h.to_vec())),
        (t("confirm"), Value::Bool(false)),
    ];
    let (_, m) = answer(&mut s, &frame(Op::Write, 1, 1, 0, 4, req));
    assert!(smp::get(&m, "images").is_some(), "{m:?}");
    // An unknown hash.
    let req = vec![(t("hash"), Value::Bytes(vec![1; 32]))];
    let (_, m) = answer(&mut s, &frame(Op::Write, 1, 1, 0, 4, req));
    assert_eq!(group_err(&m), Some((1, 3)), "{m:?}");
    // With a failing self-test the trial is not confirmed and reverts.
    s.core_mut().self_test.motor = false;
    answer(&mut s, &frame(Op::Write, 1, 0, 5, 5, vec![]));
    let b = s.poll_reset().unwrap().unwrap();
    assert!(b.app.contains("self-test failed"), "{}", b.app);
    answer(&mut s, &frame(Op::Write, 1, 0, 5, 6, vec![]));
    s.poll_reset().unwrap().unwrap();
    assert_eq!(s.core().running(), Some(0), "reverted to 1.0.0");
    assert_eq!(s.core().state().floor, Some(1));
}

#[test]
fn os_group_echo_params_info_and_unknown_commands() {
    let f = Fixture::new();
    let mut s = f.server();
    let (h, m) = answer(
        &mut s,
        &frame(Op::Write, 1, 0, 0, 77, vec![(t("d"), t("hello"))]),
    );
    assert_eq!((h.op, h.seq, h.version), (Op::WriteRsp, 77, 1));
    assert_eq!(smp::get_text(&m, "r").unwrap(), Some("hello"));
    let (_, m) = answer(&mut s, &frame(Op::Read, 1, 0, 6, 1, vec![]));
    assert_eq!(
        smp::get_u64(&m, "buf_size").unwrap(),
        Some(smp::MAX_FRAME as u64)
    );
    // OS info is for the person at the lock (or an owner).
    let (_, m) = answer(
        &mut s,
        &frame(Op::Read, 1, 0, 7, 1, vec![(t("format"), t("snrm"))]),
    );
    assert_eq!(rc(&m), Some(11), "{m:?}");
    s.open_presence(0, 60_000);
    let (_, m) = answer(
        &mut s,
        &frame(Op::Read, 1, 0, 7, 1, vec![(t("format"), t("snrm"))]),
    );
    assert_eq!(
        smp::get_text(&m, "output").unwrap(),
        Some("Keyway keyway-lock 1.0.0 nrf52840-sim")
    );
    let (_, m) = answer(
        &mut s,
        &frame(Op::Read, 1, 0, 7, 1, vec![(t("format"), t("q"))]),
    );
    assert_eq!(group_err(&m), Some((0, 2)));
    let (_, m) = answer(&mut s, &frame(Op::Read, 1, 9, 0, 1, vec![]));
    assert_eq!(rc(&m), Some(8));
}

/// Hostile frames through the agent: a frame with no header to answer
/// to, or a response (a reflected answer could loop between two locks),
/// gets no answer at all; every request the agent can answer gets an
/// error with its header.
#[test]
fn hostile_frames_get_error_responses() {
    let f = Fixture::new();
    let mut s = f.server();
    // Too short for a header, or a response: dropped, unanswered.
    assert!(s.handle(&[1, 2, 3], 0).is_empty());
    assert!(s.handle(&[], 0).is_empty());
    for op in [Op::ReadRsp, Op::WriteRsp] {
        assert!(s.handle(&frame(op, 1, 0, 0, 9, vec![]), 0).is_empty());
        assert!(
            s.handle(&frame(op, 1, 1, 1, 9, vec![(t("off"), Value::from(0))]), 0)
                .is_empty()
        );
    }
    // Oversized.
    let mut big = frame(Op::Write, 1, 1, 1, 5, vec![]);
    big[2..4].copy_from_slice(&4000u16.to_be_bytes());
    big.resize(8 + 4000, 0);
    let (h, m) = answer(&mut s, &big);
    assert_eq!((h.seq, rc(&m)), (5, Some(7)));
    // Garbage CBOR, truncated body, reserved version.
    let mut g = Header::decode(&frame(Op::Write, 1, 0, 0, 6, vec![])).unwrap();
    g.len = 3;
    let mut bad = g.encode().to_vec();
    bad.extend_from_slice(&[0xFF, 0xFF, 0xFF]);
    assert_eq!(rc(&answer(&mut s, &bad).1), Some(3));
    bad.truncate(9);
    assert_eq!(rc(&answer(&mut s, &bad).1), Some(3));
    let mut v3 = frame(Op::Read, 1, 0, 6, 1, vec![]);
    v3[0] = (3 << 3) | Op::Read as u8;
    assert_eq!(rc(&answer(&mut s, &v3).1), Some(13));
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
    #[test]
    fn any_frame_gets_a_well_formed_answer(
        group in 0u16..3, id in 0u8..8, op in 0u8..4,
        body in proptest::collection::vec(proptest::num::u8::ANY, 0..200),
    ) {
        let f = Fixture::new();
        let mut s = f.open_server();
        let h = Header { op: match op { 0 => Op::Read, 1 => Op::ReadRsp, 2 => Op::Write, _ => Op::WriteRsp },
            version: 1, flags: 0, len: body.len() as u16, group, seq: 3, id };
        let mut fr = h.encode().to_vec();
        fr.extend_from_slice(&body);
        let r = s.handle(&fr, 0);
        // The agent never answers a response (a reflected answer could
        // loop between two locks); every request gets an answer.
        if matches!(h.op, Op::ReadRsp | Op::WriteRsp) {
            proptest::prop_assert!(r.is_empty());
            return Ok(());
        }
        let rh = Header::decode(&r).unwrap();
        proptest::prop_assert_eq!(rh.seq, 3);
        proptest::prop_assert!(smp::decode_body(&r[HEADER_LEN..]).is_ok());
    }
}

#[test]
fn control_socket_commands() {
    let f = Fixture::new();
    let mut s = f.server();
    let r = keyway_lock::control::handle_line(&mut s, r#"{"cmd":"presence","seconds":5}"#, 100);
    assert_eq!(r["ok"], true, "{r}");
    assert!(s.presence_open(5_099) && !s.presence_open(5_100));
    let r = keyway_lock::control::handle_line(&mut s, r#"{"cmd":"status"}"#, 200);
    assert_eq!(
        (r["running_slot"].as_u64(), r["presence_open"].as_bool()),
        (Some(0), Some(true))
    );
    let r = keyway_lock::control::handle_line(&mut s, r#"{"cmd":"presence-close"}"#, 300);
    assert_eq!(r["ok"], true);
    assert!(!s.presence_open(301));
    for (line, why) in [
        ("nope", "not JSON"),
        (r#"{"cmd":"fly"}"#, "unknown cmd"),
        ("{}", "missing"),
        (r#"{"cmd":"presence","seconds":99999}"#, "at most"),
    ] {
        let r = keyway_lock::control::handle_line(&mut s, line, 0);
        assert_eq!(r["ok"], false, "{line}");
        assert!(r["error"].as_str().unwrap().contains(why), "{line}: {r}");
    }
    assert!(!s.presence_open(302));
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(32))]
    /// Upload requests with any offsets, lengths and sizes, in any order:
    /// always a well-formed answer, and never a pending image that is not
    /// exactly the envelope.
    #[test]
    fn upload_requests_in_any_order(
        steps in proptest::collection::vec(
            (0u64..26_000, 0usize..1400, proptest::option::of(0u64..30_000), proptest::bool::ANY),
            1..16,
        ),
    ) {
        let f = Fixture::new();
        let mut s = f.open_server();
        let env = f.release(&f.key, "2.0.0", 2, 20_000);
        for (off, n, len, with_sha) in steps {
            let at = off as usize;
            let data = env.get(at..(at + n).min(env.len())).unwrap_or(&[]).to_vec();
            let mut m = vec![
                (t("off"), Value::from(off)),
                (t("data"), Value::Bytes(data)),
            ];
            if let Some(l) = len {
                m.push((t("len"), Value::from(l)));
            }
            if with_sha {
                m.push((t("sha"), Value::Bytes(sha(&env).to_vec())));
            }
            let r = s.handle(&frame(Op::Write, 1, 1, 1, 4, m), 0);
            let h = Header::decode(&r).unwrap();
            proptest::prop_assert_eq!(h.seq, 4);
            proptest::prop_assert!(smp::decode_body(&r[HEADER_LEN..]).is_ok());
        }
        if s.core().state().trial == (TrialState::Pending { slot: 1 }) {
            let v = s.core_mut().view(1).unwrap();
            proptest::prop_assert_eq!(v.hash, sha(&env));
        }
    }
}

#[test]
fn erase_and_confirm_rules() {
    let f = Fixture::new();
    let mut s = f.open_server();
    let erase = |slot: Option<u8>| {
        let body = slot.map_or_else(Vec::new, |n| vec![(t("slot"), Value::from(n))]);
        frame(Op::Write, 1, 1, 5, 8, body)
    };
    // The running slot is refused.
    let (_, m) = answer(&mut s, &erase(Some(0)));
    assert_eq!(group_err(&m), Some((1, 14)), "{m:?}");
    let (_, m) = answer(&mut s, &erase(Some(2)));
    assert_eq!(group_err(&m), Some((1, 14)), "{m:?}");
    // A pending image is refused; erasing needs it unmarked first.
    let env = f.release(&f.key, "2.0.0", 2, 7000);
    upload(&mut s, &env, 1400);
    consent_by_test(&mut s, &env);
    let (_, m) = answer(&mut s, &erase(None));
    assert_eq!(group_err(&m), Some((1, 28)), "{m:?}");
    // Confirming an image that does not run is refused; the running one is a no-op.
    let req = vec![
        (t("hash"), Value::Bytes(sha(&env).to_vec())),
        (t("confirm"), Value::Bool(true)),
    ];
    let (_, m) = answer(&mut s, &frame(Op::Write, 1, 1, 0, 8, req));
    assert_eq!(group_err(&m), Some((1, 32)), "{m:?}");
    let (_, m) = answer(
        &mut s,
        &frame(
            Op::Write,
            1,
            1,
            0,
            8,
            vec![(t("confirm"), Value::Bool(true))],
        ),
    );
    assert!(smp::get(&m, "images").is_some(), "{m:?}");
    // Boot it, confirm, then the old slot may be erased and disappears.
    answer(&mut s, &frame(Op::Write, 1, 0, 5, 8, vec![]));
    s.poll_reset().unwrap().unwrap();
    assert_eq!(images(&mut s).len(), 2);
    let (_, m) = answer(&mut s, &erase(None));
    assert!(m.is_empty(), "{m:?}");
    let left = images(&mut s);
    assert_eq!(left.len(), 1);
    assert_eq!(smp::get_u64(&left[0], "slot").unwrap(), Some(1));
}

/// The client's side of an update over a lock that may lose power: upload
/// (restarting from `off` 0 when the lock stops answering, as smpclient
/// would after a timeout), reset, and power-ons until it runs.
fn update_through_cuts(s: &mut Shell, env: &[u8]) -> Result<(), String> {
    let reboot = |s: &mut Shell| {
        for _ in 0..5 {
            if !s.lost_power() {
                return;
            }
            let _ = s.poll_reset();
        }
    };
    let mut at = 0usize;
    for _ in 0..400 {
        let r = s.handle(&chunk(env, at, 1400, at == 0, Some(sha(env))), 0);
        if s.lost_power() {
            reboot(s);
            s.set_presence_always_open(true);
            at = 0;
            continue;
        }
        let m = smp::decode_body(&r[HEADER_LEN..]).map_err(|e| e.to_string())?;
        match off(&m) {
            Some(o) if (o as usize) < env.len() => at = o as usize,
            Some(_) => {
                // Consent (a test boot, the bolt withdrawn) until it runs:
                // a cut while arming or booting leaves it to ask again.
                for _ in 0..5 {
                    s.set_presence_always_open(true);
                    s.mechanism_mut().0.owner(false, 0);
                    // The hash the lock lists for the new slot: the file's
                    // SHA-256, or for a delta after a restart, that of its
                    // head and produced image.
                    let hash = s.core_mut().view(1).map_or(sha(env), |v| v.hash);
                    let req = vec![(t("hash"), Value::Bytes(hash.to_vec()))];
                    s.handle(&frame(Op::Write, 1, 1, 0, 1, req), 0);
                    // A test in the window arms it; the reset boots it.
                    s.handle(&frame(Op::Write, 1, 0, 5, 2, Vec::new()), 0);
                    let _ = s.poll_reset();
                    reboot(s);
                    if s.core().running() == Some(1) {
                        return Ok(());
                    }
                }
                return Err("the update never ran".into());
            }
            None => return Err(format!("refused: {m:?}")),
        }
    }
    Err("no progress".into())
}

#[test]
fn a_power_cut_at_every_flash_operation_of_the_update() {
    let f = Fixture::new();
    let env = f.release(&f.key, "2.0.0", 2, 9_000);
    let scenarios = power_cut_sweep(&f, &env, |s| {
        s.core_mut().view(1).map(|v| v.hash) == Some(sha(&env))
    });
    println!(
        "SMP update power-cut sweep: {scenarios} scenarios (upload, consent, trial boot), 0 failures"
    );
}

#[test]
fn a_power_cut_at_every_flash_operation_of_a_delta_update() {
    let f = Fixture::new();
    let mut new = factory_image();
    new[100..110].copy_from_slice(b"keyway 1.1");
    let env = delta_release(&f, &new, None);
    let scenarios = power_cut_sweep(&f, &env, |s| slot_image(s, 1, new.len()) == new);
    println!(
        "SMP delta update power-cut sweep: {scenarios} scenarios (patch upload restarted after each cut, consent, trial boot), 0 failures"
    );
}

/// Cuts the power at every flash operation of the SMP update with `env`
/// (and one past the end): each time it must end running slot 1,
/// confirmed, with `installed` true. Returns the scenarios run.
fn power_cut_sweep(f: &Fixture, env: &[u8], installed: impl Fn(&mut Shell) -> bool) -> u64 {
    let lock = |s: &Server| s.core().flash().ops();
    // Dry run: how many flash operations the update takes.
    let mut s = f.open_server();
    let start = lock(&s);
    update_through_cuts(&mut s, env).unwrap();
    let ops = lock(&s) - start;
    assert!(ops > 10, "{ops} operations");
    let mut scenarios = 0;
    for n in 0..ops + 2 {
        scenarios += 1;
        let mut s = f.open_server();
        s.core_mut().plan_power_cut(n, n);
        let r = update_through_cuts(&mut s, env);
        let st = s.core().state();
        assert!(
            r.is_ok()
                && s.core().running() == Some(1)
                && st.trial == TrialState::Confirmed
                && st.floor == Some(2),
            "cut at operation {n} of {ops}: {r:?}, running {:?}, {st:?}",
            s.core().running()
        );
        assert!(installed(&mut s), "cut at operation {n}: the new image");
        let fired = s.core().flash().cut_log().len();
        assert_eq!(fired, usize::from(n < ops), "cut at operation {n} of {ops}");
    }
    scenarios
}

/// A delta release from the factory image (1.0.0, sequence 1) to `new`,
/// or from `base` when given.
fn delta_release(f: &Fixture, new: &[u8], base: Option<Vec<u8>>) -> Vec<u8> {
    sign(
        &f.key,
        "1.1.0",
        2,
        new.to_vec(),
        EnvelopeBuilder {
            delta_from: Some(base.unwrap_or_else(factory_image)),
            ..Default::default()
        },
    )
}

/// The image in `slot`'s image area, `len` bytes.
fn slot_image(s: &Server, slot: u8, len: usize) -> Vec<u8> {
    let place = device::layout().place::<device::Flash>(slot).unwrap();
    device::read(s.core().flash(), place.image.start as usize, len)
        .unwrap()
        .to_vec()
}

#[test]
fn delta_upload_test_reset_runs_the_new_image() {
    let f = Fixture::new();
    let mut s = f.open_server();
    // The Keyway group's status names the running image's SHA-256: the
    // base a client's delta must have.
    let st = s.status_report(0);
    let factory = factory_image();
    assert_eq!(
        smp::get_bytes(&st, "image").unwrap(),
        Some(&sha(&factory)[..]),
        "{st:?}"
    );
    let mut new = factory;
    new[4000..4010].copy_from_slice(b"keyway 1.1");
    new.extend_from_slice(&[0xA5; 300]);
    let env = delta_release(&f, &new, None);
    assert!(env.len() < 2000, "a delta envelope of {} bytes", env.len());
    let m = upload(&mut s, &env, 244);
    assert_eq!(smp::get_bool(&m, "match").unwrap(), Some(true), "{m:?}");
    // Listed by the SHA-256 of the uploaded envelope, verified, not armed.
    let imgs = images(&mut s);
    let up = listed(&imgs, &sha(&env))
        .expect("the delta upload is listed by the hash of the uploaded file");
    assert!(flag(up, "bootable") && !flag(up, "pending"), "{up:?}");
    assert_eq!(smp::get_text(up, "version").unwrap(), Some("1.1.0"));
    consent_and_reset(&mut s, &env, 1, 2);
    assert_eq!(slot_image(&s, 1, new.len()), new, "the produced image runs");
}

#[test]
fn delta_for_another_base_is_refused_at_the_head_before_writing() {
    let f = Fixture::new();
    let mut s = f.open_server();
    let other: Vec<u8> = (0..9000usize).map(|i| (i * 13 + 5) as u8).collect();
    let env = delta_release(&f, &other[..8000], Some(other.clone()));
    let flash_before = s.core().flash().as_bytes().to_vec();
    s.take_log();
    // SMPv1: the legacy rc alone (the agent's answers carry codes).
    let m = upload_as(&mut s, &env, 244, 0, env.len());
    assert_eq!(rc(&m), Some(3), "{m:?}");
    // SMPv2: the image group's code; asked for (`"kw": true`, as the
    // owner's client does), Keyway's typed refusal names both images.
    let m = upload(&mut s, &env, 244);
    assert_eq!(group_err(&m), Some((1, 22)), "{m:?}");
    // One chunk that holds the whole head: the chunk the lock refuses.
    let first = rewrite(&chunk(&env, 0, 1400, true, Some(sha(&env))), |m| {
        m.push((t("kw"), Value::Bool(true)));
    });
    let r = s.handle(&first, 0);
    let e = keyway_smp::ErrorRsp::decode(&r[HEADER_LEN..])
        .unwrap()
        .expect("refused");
    assert_eq!(
        e.refusal,
        Some(keyway_smp::Refusal::DeltaWrongBase {
            base_image_sha256: sha(&other),
            running_image_sha256: Some(sha(&slot_image(&s, 0, 9000))),
        }),
        "{e:?}"
    );
    let runs = keyway_vendor::keys::hex(&sha(&slot_image(&s, 0, 9000))[..4]);
    let base = keyway_vendor::keys::hex(&sha(&other)[..4]);
    let log = s.take_log();
    assert!(
        log.iter().any(
            |l| l.contains(&format!("this delta applies to image {base}…"))
                && l.contains(&format!("the lock runs {runs}… (v1.0.0)"))
                && l.ends_with("send the full image")
        ),
        "the lock's log names the reason: {log:?}"
    );
    assert_eq!(s.core().state().download, None, "no download recorded");
    assert!(
        s.core().flash().as_bytes() == &flash_before[..],
        "nothing was written"
    );
    // The full image of the same release installs.
    let full = f.release(&f.key, "1.1.0", 2, 8000);
    let m = upload(&mut s, &full, 1000);
    assert_eq!(smp::get_bool(&m, "match").unwrap(), Some(true), "{m:?}");
}

/// Issue 12: "a delta's base image is hashed three times per upload" (the
/// server's head check, `DeviceCore::begin_download`'s same check again, and
/// `DeltaInstaller::begin`). The upload may read the running image once
/// to prove it is the base, plus what the patch copies from it (here the
/// whole base), and then the new slot once: the lock verifies what it
/// wrote as its bootloader will (`VerifiedSlot`, a read-back that catches
/// a bad write). The bound is those three and a page for the manifest
/// areas; three hashes of the base (before the fix) read 45,473 bytes.
#[test]
fn a_delta_upload_reads_its_base_once_to_check_it() {
    let f = Fixture::new();
    let mut s = f.open_server();
    let factory = factory_image();
    let mut new = factory.clone();
    new[4000..4010].copy_from_slice(b"keyway 1.1");
    let env = delta_release(&f, &new, None);
    let before = s.core().flash().bytes_read();
    let m = upload(&mut s, &env, 244);
    assert_eq!(smp::get_bool(&m, "match").unwrap(), Some(true), "{m:?}");
    let read = s.core().flash().bytes_read() - before;
    let base = factory.len() as u64;
    println!(
        "delta upload: {read} bytes read from flash for a {base}-byte base ({:.2}x)",
        read as f64 / base as f64
    );
    assert!(
        read <= 2 * base + new.len() as u64 + 4096,
        "the upload read {read} bytes of flash for a {base}-byte base: the base is hashed more than once"
    );
}

/// Issue 12: "the envelope head is parsed about five times" per upload.
/// An upload needs one verification of its head when it begins, and, when
/// it completes, the bootloader's check of the written slot and one
/// reading of the stored head for the pending update's notes: three.
#[test]
fn an_upload_parses_its_envelope_head_at_most_three_times() {
    let f = Fixture::new();
    let mut s = f.open_server();
    let env = f.release(&f.key, "2.0.0", 2, 9000);
    let before = keyway_lock::suit::head_parses();
    let m = upload(&mut s, &env, 244);
    assert_eq!(smp::get_bool(&m, "match").unwrap(), Some(true), "{m:?}");
    let parses = keyway_lock::suit::head_parses() - before;
    println!("a full upload parsed its envelope head {parses} times");
    assert!(s.pending().is_some(), "the upload is pending");
    assert!(
        parses <= 3,
        "the upload parsed its envelope head {parses} times (at most 3: verify at the head, the slot check and the notes at the end)"
    );
}
