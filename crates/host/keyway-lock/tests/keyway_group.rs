//! The Keyway SMP group (64) through the sans-IO server: each command and
//! each refusal (the reason names the condition), owner authentication
//! and its attacks (replay, a signature moved to another command or body,
//! an unpaired key, an expired nonce), the update policy (no forced
//! update, consent, postponed then installed), the chunked audit-log
//! export, and factory reset -> re-pair -> update, all offline.

mod common;

use ciborium::Value;
use common::{Map, rc, sign, t};
use keyway::encode::{Cve, EnvelopeBuilder, Severity};
use keyway::keys::{Algorithm, SigningKey};
use keyway_audit::Ed25519Signer;
use keyway_device::journal::TrialState;
use keyway_lock::device::{self, Lock, Trust};
use keyway_lock::owners::{NONCE_LIFE_MS, auth_message};
use keyway_lock::server::Server;
use keyway_lock::smp::{self, HEADER_LEN, Op};
use sha2::{Digest, Sha256};

const KEYWAY: u16 = 64;

struct Fixture {
    vendor: SigningKey,
    trust: Trust,
    device: SigningKey,
}

/// Release options.
#[derive(Default)]
struct Rel {
    cves: Vec<Severity>,
    min_battery_mwh: Option<u64>,
}

impl Fixture {
    fn new() -> Self {
        let (vendor, trust) = common::vendor();
        Fixture {
            trust,
            vendor,
            device: SigningKey::generate(Algorithm::Ed25519).unwrap(),
        }
    }

    fn release(&self, version: &str, sequence: u64, r: Rel) -> Vec<u8> {
        let payload: Vec<u8> = (0..6000)
            .map(|i| (i * 5 + sequence as usize) as u8)
            .collect();
        let more = EnvelopeBuilder {
            notes: Some(format!("Release {version}: fixes the keypad timing leak.")),
            cves: r
                .cves
                .iter()
                .enumerate()
                .map(|(i, s)| Cve {
                    id: format!("CVE-2024-{:05}", 10_000 + i),
                    severity: *s,
                })
                .collect(),
            min_battery_mwh: r.min_battery_mwh,
            ..Default::default()
        };
        sign(&self.vendor, version, sequence, payload, more)
    }

    /// A lock with 1.0.0 (sequence 1) confirmed in slot 0 and an audit log.
    fn server(&self) -> Server {
        let mut lock = Lock::new(device::blank_flash(), self.trust.clone(), None).unwrap();
        let SigningKey::Ed25519(k) = &self.device else {
            unreachable!()
        };
        lock.attach_audit(Ed25519Signer::from_seed(k.to_bytes()).unwrap(), 0)
            .unwrap();
        lock.factory(&self.release("1.0.0", 1, Rel::default()))
            .unwrap();
        let mut s = Server::new(lock);
        s.set_nonce_seed([9; 32]);
        s
    }
}

fn frame(op: Op, group: u16, id: u8, body: &Map) -> Vec<u8> {
    smp::encode_request(op, group, id, 7, body.clone())
}

fn call(s: &mut Server, op: Op, group: u16, id: u8, body: &Map, now: u64) -> Map {
    let r = s.handle(&frame(op, group, id, body), now);
    smp::decode_body(&r[HEADER_LEN..]).unwrap()
}

fn read(s: &mut Server, id: u8, now: u64) -> Map {
    call(s, Op::Read, KEYWAY, id, &Vec::new(), now)
}

fn rsn(m: &Map) -> String {
    smp::get_text(m, "rsn").unwrap().unwrap_or("").to_owned()
}

/// Asserts a top-level refusal with `code` whose reason contains `why`.
fn refused(m: &Map, code: u64, why: &str) {
    assert_eq!(rc(m), Some(code), "{m:?}");
    assert!(rsn(m).contains(why), "{:?} lacks {why:?}", rsn(m));
}

struct Owner {
    key: SigningKey,
    public: [u8; 32],
}

impl Owner {
    fn new() -> Self {
        let key = SigningKey::generate(Algorithm::Ed25519).unwrap();
        let public = key.raw_public_key_bytes().try_into().unwrap();
        Owner { key, public }
    }

    /// `body` with an `auth` signed over `group`/`id` with `nonce`.
    fn sign(&self, group: u16, id: u8, nonce: &[u8], body: &Map) -> Map {
        let mut cbor = Vec::new();
        ciborium::into_writer(&Value::Map(body.clone()), &mut cbor).unwrap();
        let nonce: [u8; 16] = nonce.try_into().unwrap();
        let sig = self.key.sign(&auth_message(group, id, &nonce, &cbor));
        let mut b = body.clone();
        b.push((
            t("auth"),
            Value::Map(vec![
                (t("key"), Value::Bytes(self.public.to_vec())),
                (t("nonce"), Value::Bytes(nonce.to_vec())),
                (t("sig"), Value::Bytes(sig)),
            ]),
        ));
        b
    }

    /// `consent` with `accept`, signed at `now`: the answer.
    fn consent(&self, s: &mut Server, accept: bool, now: u64) -> Map {
        let body = self.signed(s, 5, &vec![(t("accept"), Value::Bool(accept))], now);
        call(s, Op::Write, KEYWAY, 5, &body, now)
    }

    /// A challenge, then a read of `group`/`id` with `body`, signed: the
    /// answer.
    fn read(&self, s: &mut Server, group: u16, id: u8, body: &Map, now: u64) -> Map {
        let n = nonce(s, now);
        let b = self.sign(group, id, &n, body);
        call(s, Op::Read, group, id, &b, now)
    }

    /// A challenge, then `body` signed for `id` in the Keyway group.
    fn signed(&self, s: &mut Server, id: u8, body: &Map, now: u64) -> Map {
        let n = nonce(s, now);
        self.sign(KEYWAY, id, &n, body)
    }
}

fn nonce(s: &mut Server, now: u64) -> Vec<u8> {
    let m = read(s, 7, now);
    assert_eq!(smp::get_u64(&m, "expires_s").unwrap(), Some(60));
    smp::get_bytes(&m, "nonce").unwrap().unwrap().to_vec()
}

/// Pairs `o` with the window open at `now`, then closes the window.
fn pair(s: &mut Server, o: &Owner, now: u64) {
    s.open_presence(now, 30_000);
    let m = call(
        s,
        Op::Write,
        KEYWAY,
        8,
        &vec![
            (t("key"), Value::Bytes(o.public.to_vec())),
            (t("name"), t("owner")),
        ],
        now,
    );
    let id = smp::get_bytes(&m, "key_id").unwrap().unwrap().to_vec();
    assert_eq!(id, Sha256::digest(o.public)[..8].to_vec(), "{m:?}");
    s.close_presence();
}

/// The upload chunk of `env` at `at`, 1,000 bytes at most; the first one
/// carries `len` and `sha`, and the owner's `auth` if `owner` is given.
fn chunk(s: &mut Server, env: &[u8], at: usize, owner: Option<&Owner>, now: u64) -> Map {
    let end = (at + 1000).min(env.len());
    let mut body = vec![
        (t("off"), Value::from(at as u64)),
        (t("data"), Value::Bytes(env[at..end].to_vec())),
    ];
    if at == 0 {
        body.push((t("len"), Value::from(env.len() as u64)));
        body.push((t("sha"), Value::Bytes(Sha256::digest(env).to_vec())));
        if let Some(o) = owner {
            let n = nonce(s, now);
            body = o.sign(1, 1, &n, &body);
        }
    }
    body
}

/// Uploads `env` in 1,000-byte chunks; `auth` signs the first chunk.
fn upload(s: &mut Server, env: &[u8], owner: Option<&Owner>, now: u64) -> Map {
    let mut at = 0usize;
    loop {
        let body = chunk(s, env, at, owner, now);
        let m = call(s, Op::Write, 1, 1, &body, now);
        match smp::get_u64(&m, "off").unwrap() {
            Some(o) if (o as usize) < env.len() => at = o as usize,
            _ => return m,
        }
    }
}

/// A fixture, its lock, and an owner paired at time 0 (the window closed
/// again).
fn with_owner() -> (Fixture, Server, Owner) {
    let f = Fixture::new();
    let mut s = f.server();
    let o = Owner::new();
    pair(&mut s, &o, 0);
    (f, s, o)
}

/// The lock's status as it shows it in-process (over SMP it is for
/// owners only).
fn status(s: &mut Server, now: u64) -> Map {
    s.status_report(now)
}

fn update_state(s: &mut Server, now: u64) -> Option<(String, Option<String>)> {
    let st = status(s, now);
    let u = smp::get(&st, "update")?.as_map()?.clone();
    Some((
        smp::get_text(&u, "state").unwrap()?.to_owned(),
        smp::get_text(&u, "reason").unwrap().map(str::to_owned),
    ))
}

fn running_version(s: &mut Server) -> String {
    let slot = s.lock().running().unwrap();
    s.lock().version(slot).unwrap()
}

#[test]
fn status_presence_challenge_report_the_lock_to_its_owner() {
    let (f, mut s, o) = with_owner();
    let st = o.read(&mut s, KEYWAY, 0, &Vec::new(), 0);
    assert_eq!(smp::get_text(&st, "bolt").unwrap(), Some("locked"));
    assert_eq!(smp::get_text(&st, "door").unwrap(), Some("closed"));
    assert_eq!(smp::get_text(&st, "model").unwrap(), Some("deadbolt-2"));
    assert_eq!(smp::get_text(&st, "version").unwrap(), Some("1.0.0"));
    assert_eq!(smp::get_u64(&st, "battery_mv").unwrap(), Some(3600));
    assert_eq!(smp::get_u64(&st, "battery_mwh").unwrap(), Some(18_720));
    assert_eq!(smp::get_u64(&st, "owners").unwrap(), Some(1));
    assert_eq!(smp::get_u64(&st, "presence_s").unwrap(), Some(0));
    assert_eq!(
        smp::get_bytes(&st, "device_key").unwrap(),
        Some(&f.device.raw_public_key_bytes()[..])
    );
    assert!(smp::get(&st, "update").is_none());
    // The OS group's info names the model as the hardware platform.
    let m = o.read(&mut s, 0, 7, &vec![(t("format"), t("i"))], 0);
    assert_eq!(
        smp::get_text(&m, "output").unwrap(),
        Some("keyway-sim/deadbolt-2")
    );
    let p = o.read(&mut s, KEYWAY, 3, &Vec::new(), 0);
    assert_eq!(smp::get_bool(&p, "open").unwrap(), Some(false));
    s.open_presence(1_000, 30_000);
    let p = read(&mut s, 3, 11_000);
    assert_eq!(smp::get_bool(&p, "open").unwrap(), Some(true));
    assert_eq!(smp::get_u64(&p, "remaining_s").unwrap(), Some(20));
    // Two challenges differ.
    assert_ne!(nonce(&mut s, 0), nonce(&mut s, 0));
    // Nothing pending: notes and consent answer NOENT.
    refused(
        &o.read(&mut s, KEYWAY, 4, &Vec::new(), 0),
        5,
        "nothing pending",
    );
    // An unknown command names the group.
    refused(&read(&mut s, 99, 0), 8, "Keyway group command 99");
}

#[test]
fn lock_unlock_need_an_owner_the_window_alone_never_unlocks() {
    let f = Fixture::new();
    let mut s = f.server();
    let m = call(&mut s, Op::Write, KEYWAY, 2, &Vec::new(), 0);
    refused(&m, 11, "unlock needs an owner's signed request");
    s.open_presence(0, 10_000);
    let m = call(&mut s, Op::Write, KEYWAY, 2, &Vec::new(), 1);
    refused(&m, 11, "the presence window is not enough");
    let m = call(&mut s, Op::Write, KEYWAY, 1, &Vec::new(), 2);
    refused(&m, 11, "lock needs an owner's signed request");
    assert_eq!(s.latch().bolt(), keyway_lock::lock::Bolt::Locked);
    // Pairing needs the window.
    s.close_presence();
    let o = Owner::new();
    let body = vec![(t("key"), Value::Bytes(o.public.to_vec()))];
    refused(
        &call(&mut s, Op::Write, KEYWAY, 8, &body, 3),
        11,
        "pairing needs the presence window",
    );
    let body = vec![(t("key"), Value::Bytes(vec![1; 31]))];
    s.open_presence(3, 1000);
    refused(
        &call(&mut s, Op::Write, KEYWAY, 8, &body, 4),
        3,
        "\"key\" has 31 bytes",
    );
    pair(&mut s, &o, 5);
    let body = o.signed(&mut s, 2, &Vec::new(), 10);
    let m = call(&mut s, Op::Write, KEYWAY, 2, &body, 11);
    assert_eq!(
        smp::get_text(&m, "bolt").unwrap(),
        Some("unlocked"),
        "{m:?}"
    );
    assert_eq!(s.owners().owners().len(), 1);
    assert!(s.take_owners_changed(), "pairing is stored");
}

/// CVE-2022-46480 (a captured BLE unlock replayed): the lock refuses the
/// same signed request the second time, because its nonce was spent.
#[test]
fn replayed_owner_unlock_is_refused() {
    let (_, mut s, o) = with_owner();
    let captured = o.signed(&mut s, 2, &Vec::new(), 100);
    let m = call(&mut s, Op::Write, KEYWAY, 2, &captured, 200);
    assert_eq!(smp::get_text(&m, "bolt").unwrap(), Some("unlocked"));
    call(&mut s, Op::Write, KEYWAY, 1, &Vec::new(), 300); // refused: no auth
    s.latch_mut().0.owner(true, 300);
    // The attacker replays the captured frame.
    let m = call(&mut s, Op::Write, KEYWAY, 2, &captured, 400);
    refused(&m, 11, "was not issued or was already used");
    assert_eq!(s.latch().bolt(), keyway_lock::lock::Bolt::Locked);
}

#[test]
fn signature_moved_to_another_command_or_body_is_refused() {
    let (_, mut s, o) = with_owner();
    // Signed for "lock" (1), sent as "unlock" (2).
    let body = o.signed(&mut s, 1, &Vec::new(), 10);
    refused(
        &call(&mut s, Op::Write, KEYWAY, 2, &body, 11),
        11,
        "signature does not verify",
    );
    // Signed for settings {auto_install_cve: false}, sent with true.
    let signed = o.signed(
        &mut s,
        10,
        &vec![(t("auto_install_cve"), Value::Bool(false))],
        12,
    );
    let mut moved = signed.clone();
    moved[0].1 = Value::Bool(true);
    refused(
        &call(&mut s, Op::Write, KEYWAY, 10, &moved, 13),
        11,
        "signature does not verify",
    );
    assert!(!s.owners().settings().auto_install_cve);
    assert_eq!(s.latch().bolt(), keyway_lock::lock::Bolt::Locked);
}

#[test]
fn unpaired_key_and_expired_nonce_are_refused() {
    let (_, mut s, o) = with_owner();
    let stranger = Owner::new();
    let body = stranger.signed(&mut s, 2, &Vec::new(), 10);
    refused(
        &call(&mut s, Op::Write, KEYWAY, 2, &body, 11),
        11,
        "is not an owner of this lock",
    );
    let body = o.signed(&mut s, 2, &Vec::new(), 20);
    refused(
        &call(&mut s, Op::Write, KEYWAY, 2, &body, 20 + NONCE_LIFE_MS),
        11,
        "the nonce expired",
    );
    // A malformed auth is EINVAL, naming the field.
    let mut body = o.signed(&mut s, 2, &Vec::new(), 30);
    if let Value::Map(a) = &mut body[0].1 {
        a[2].1 = Value::Bytes(vec![0; 63]);
    }
    refused(
        &call(&mut s, Op::Write, KEYWAY, 2, &body, 31),
        3,
        "auth.sig has 63 bytes, 64 expected",
    );
    assert_eq!(s.latch().bolt(), keyway_lock::lock::Bolt::Locked);
}

/// The "no forced update": an upload completes, the lock resets
/// and loses power, and the old image still runs; the new one is not
/// armed, and it is still offered after the restart.
#[test]
fn no_forced_update_after_upload_reset_and_power_cut() {
    let f = Fixture::new();
    let mut s = f.server();
    s.open_presence(0, 60_000);
    let env = f.release("2.0.0", 2, Rel::default());
    let m = upload(&mut s, &env, None, 1);
    assert_eq!(smp::get_bool(&m, "match").unwrap(), Some(true), "{m:?}");
    assert_eq!(s.lock().state().trial, TrialState::Confirmed);
    assert_eq!(
        update_state(&mut s, 2),
        Some(("awaiting-consent".into(), None))
    );
    // The person leaves; an SMP reset without the window is refused (and
    // would be no consent).
    s.close_presence();
    refused(
        &call(&mut s, Op::Write, 0, 5, &Vec::new(), 3),
        11,
        "reset (without an owner's \"auth\") needs the presence window",
    );
    assert!(s.poll_reset().is_none());
    assert_eq!(running_version(&mut s), "1.0.0");
    // A power cut at the next flash operation (the audit log's write).
    s.lock_mut().plan_power_cut(0, 1);
    let _ = s.lock_mut().commit_audit(4);
    assert!(s.lost_power());
    s.poll_reset().unwrap().unwrap();
    assert_eq!(running_version(&mut s), "1.0.0");
    assert_eq!(s.lock().state().trial, TrialState::Confirmed);
    assert_eq!(s.lock().state().floor, Some(1));
    // Still offered after the restart, not armed.
    assert_eq!(s.pending().map(|p| p.sequence), Some(2));
    // A test boot without the window is refused, naming it.
    let hash = Sha256::digest(&env).to_vec();
    let m = call(
        &mut s,
        Op::Write,
        1,
        0,
        &vec![(t("hash"), Value::Bytes(hash))],
        5,
    );
    refused(&m, 11, "needs the presence window");
    assert_eq!(s.lock().state().trial, TrialState::Confirmed);
}

/// Battery low, then raised; bolt locked, then unlocked: the consented
/// update waits with the reason, and the lock installs by itself in
/// `tick` as soon as both hold.
#[test]
fn postponed_then_installed_when_battery_and_bolt_allow() {
    let f = Fixture::new();
    let mut s = f.server();
    s.open_presence(0, 600_000);
    let env = f.release(
        "2.0.0",
        2,
        Rel {
            min_battery_mwh: Some(9_000),
            ..Rel::default()
        },
    );
    upload(&mut s, &env, None, 1);
    // deadbolt-2: 3200 mV is 6,240 mWh.
    s.latch_mut().0.battery(3200, 2);
    // A standard tool's test boot: a clear error, and the consent is kept.
    let hash = Sha256::digest(&env).to_vec();
    let m = call(
        &mut s,
        Op::Write,
        1,
        0,
        &vec![(t("hash"), Value::Bytes(hash))],
        3,
    );
    refused(
        &m,
        6,
        "postponed: the battery holds 6240 mWh, the update needs 9000 mWh",
    );
    let (state, reason) = update_state(&mut s, 4).unwrap();
    assert_eq!(state, "postponed");
    assert!(reason.unwrap().contains("battery"));
    s.tick(5);
    assert!(s.poll_reset().is_none(), "nothing installs yet");
    // Battery raised: now the bolt is the reason.
    s.latch_mut().0.battery(3600, 6);
    s.tick(7);
    assert!(s.poll_reset().is_none());
    let (_, reason) = update_state(&mut s, 8).unwrap();
    assert_eq!(
        reason.as_deref(),
        Some("postponed: the bolt is locked; unlock the door to install")
    );
    // The door is unlocked (keypad): the next tick installs and resets.
    let (latch, _) = s.latch_mut();
    latch.keypad(keyway_lock::lock::DEFAULT_PIN, 9);
    s.tick(10);
    let boot = s.poll_reset().expect("the lock reset itself").unwrap();
    assert!(boot.app.contains("confirmed"), "{}", boot.app);
    assert_eq!(running_version(&mut s), "2.0.0");
    assert_eq!(s.lock().state().floor, Some(2));
    assert!(s.pending().is_none());
}

#[test]
fn owner_uploads_reads_notes_consents_or_refuses_without_presence() {
    let (f, mut s, o) = with_owner();
    let env = f.release("2.0.0", 2, Rel::default());
    // No window, no auth: refused.
    refused(
        &upload(&mut s, &env, None, 10),
        11,
        "no presence window open",
    );
    // The owner's auth in the first chunk: the rest of the upload follows.
    let m = upload(&mut s, &env, Some(&o), 20);
    assert_eq!(smp::get_bool(&m, "match").unwrap(), Some(true), "{m:?}");
    // Consent before the notes were offered.
    refused(
        &o.consent(&mut s, true, 30),
        6,
        "release notes were not offered",
    );
    let n = o.read(&mut s, KEYWAY, 4, &Vec::new(), 32);
    assert_eq!(smp::get_text(&n, "version").unwrap(), Some("2.0.0"));
    assert!(
        smp::get_text(&n, "notes")
            .unwrap()
            .unwrap()
            .contains("keypad timing")
    );
    assert_eq!(
        smp::get_text(&n, "state").unwrap(),
        Some("awaiting-consent")
    );
    // Accepted with the bolt locked: postponed, in the answer.
    let m = o.consent(&mut s, true, 33);
    let u = m.clone();
    assert_eq!(smp::get_text(&u, "state").unwrap(), Some("postponed"));
    // The owner unlocks: installed.
    let body = o.signed(&mut s, 2, &Vec::new(), 35);
    call(&mut s, Op::Write, KEYWAY, 2, &body, 36);
    s.tick(37);
    s.poll_reset().unwrap().unwrap();
    assert_eq!(running_version(&mut s), "2.0.0");

    // The next one is refused: erased, not offered again.
    let env3 = f.release("3.0.0", 3, Rel::default());
    upload(&mut s, &env3, Some(&o), 40);
    o.read(&mut s, KEYWAY, 4, &Vec::new(), 41);
    let m = o.consent(&mut s, false, 42);
    let u = m.clone();
    assert_eq!(smp::get_text(&u, "state").unwrap(), Some("refused"));
    assert!(s.pending().is_none());
    s.tick(44);
    assert!(s.poll_reset().is_none());
    assert!(
        s.lock_mut().view(0).is_none(),
        "the refused image is erased"
    );
}

#[test]
fn auto_install_cve_consents_for_a_high_severity_fix_only() {
    let (f, mut s, o) = with_owner();
    let body = o.signed(
        &mut s,
        10,
        &vec![
            (t("auto_install_cve"), Value::Bool(true)),
            (t("install_needs_unlocked"), Value::Bool(false)),
        ],
        1,
    );
    let m = call(&mut s, Op::Write, KEYWAY, 10, &body, 2);
    let set = smp::get(&m, "settings").unwrap().as_map().unwrap().clone();
    assert_eq!(smp::get_bool(&set, "auto_install_cve").unwrap(), Some(true));
    // A medium fix waits for consent.
    let medium = f.release(
        "2.0.0",
        2,
        Rel {
            cves: vec![Severity::Medium],
            ..Rel::default()
        },
    );
    upload(&mut s, &medium, Some(&o), 3);
    s.tick(4);
    assert!(s.poll_reset().is_none());
    assert_eq!(update_state(&mut s, 5).unwrap().0, "awaiting-consent");
    // A critical fix installs by itself (the bolt may stay locked).
    let critical = f.release(
        "2.1.0",
        3,
        Rel {
            cves: vec![Severity::Low, Severity::Critical],
            ..Rel::default()
        },
    );
    let body = o.signed(&mut s, 5, &vec![(t("accept"), Value::Bool(false))], 6);
    o.read(&mut s, KEYWAY, 4, &Vec::new(), 6);
    call(&mut s, Op::Write, KEYWAY, 5, &body, 6);
    let m = upload(&mut s, &critical, Some(&o), 7);
    assert_eq!(smp::get_bool(&m, "match").unwrap(), Some(true), "{m:?}");
    s.poll_reset().expect("installed at once").unwrap();
    assert_eq!(running_version(&mut s), "2.1.0");
}

#[test]
fn log_is_exported_in_chunks_that_verify() {
    let (f, mut s, o) = with_owner();
    let off5 = vec![(t("off"), Value::from(5u8))];
    refused(
        &call(&mut s, Op::Read, KEYWAY, 6, &off5, 0),
        11,
        "log export needs an owner's signed request",
    );
    refused(
        &o.read(&mut s, KEYWAY, 6, &off5, 0),
        6,
        "ask for off 0 first",
    );
    // Enough records for several chunks.
    for i in 0..24 {
        s.open_presence(i, 1000);
    }
    let mut file = Vec::new();
    let mut total = None;
    loop {
        let body = vec![(t("off"), Value::from(file.len() as u64))];
        // The owner signs the first chunk; the rest belong to its export.
        let m = if file.is_empty() {
            o.read(&mut s, KEYWAY, 6, &body, 1)
        } else {
            call(&mut s, Op::Read, KEYWAY, 6, &body, 1)
        };
        let len = smp::get_u64(&m, "len").unwrap().unwrap();
        assert_eq!(*total.get_or_insert(len), len, "the file stays the same");
        let data = smp::get_bytes(&m, "data").unwrap().unwrap();
        assert!(data.len() <= 1024);
        file.extend_from_slice(data);
        if data.is_empty() || file.len() as u64 == len {
            break;
        }
    }
    assert!(file.len() > 1024, "several chunks: {}", file.len());
    let report = keyway::log::verify(&file, &f.device.public_key());
    assert!(report.intact(), "{:?}", report.findings);
    refused(
        &call(
            &mut s,
            Op::Read,
            KEYWAY,
            6,
            &vec![(t("off"), Value::from(file.len() as u64 + 1))],
            2,
        ),
        3,
        "past the export file's end",
    );
}

/// Offline: factory reset (window + long press), the old owner is gone,
/// a new owner pairs and updates the lock with no network.
#[test]
fn factory_reset_then_re_pair_then_update() {
    let f = Fixture::new();
    let mut s = f.server();
    let old = Owner::new();
    pair(&mut s, &old, 0);
    s.take_owners_changed();
    s.latch_mut().0.set_pin("9999");
    // Without the window; then without the long press.
    refused(
        &call(&mut s, Op::Write, KEYWAY, 9, &Vec::new(), 1),
        11,
        "needs the presence window",
    );
    s.long_press(2);
    s.open_presence(3, 60_000);
    refused(
        &call(&mut s, Op::Write, KEYWAY, 9, &Vec::new(), 4),
        11,
        "needs the long press",
    );
    s.long_press(5);
    let m = call(&mut s, Op::Write, KEYWAY, 9, &Vec::new(), 6);
    assert_eq!(smp::get_u64(&m, "owners").unwrap(), Some(0), "{m:?}");
    assert!(s.take_owners_changed());
    assert_eq!(s.latch().config().pin, keyway_lock::lock::DEFAULT_PIN);
    assert_eq!(running_version(&mut s), "1.0.0", "firmware kept");
    s.close_presence();
    let body = old.signed(&mut s, 2, &Vec::new(), 7);
    refused(
        &call(&mut s, Op::Write, KEYWAY, 2, &body, 8),
        11,
        "is not an owner of this lock",
    );
    // A new owner pairs at the door, then updates remotely.
    let new = Owner::new();
    pair(&mut s, &new, 10);
    let env = f.release("2.0.0", 2, Rel::default());
    upload(&mut s, &env, Some(&new), 11);
    new.read(&mut s, KEYWAY, 4, &Vec::new(), 12);
    let body = new.signed(&mut s, 2, &Vec::new(), 13);
    call(&mut s, Op::Write, KEYWAY, 2, &body, 13);
    new.consent(&mut s, true, 14);
    s.poll_reset().unwrap().unwrap();
    assert_eq!(running_version(&mut s), "2.0.0");
    // The reset is in the audit log.
    let file = s.lock_mut().export_audit(20).unwrap();
    let kinds: Vec<_> = keyway::log::parse(&file)
        .into_iter()
        .filter_map(|i| match i.what {
            keyway::log::ItemKind::Record { record, .. } => match record.body {
                keyway_audit::Body::Event(e) => Some(e),
                _ => None,
            },
            _ => None,
        })
        .collect();
    assert!(
        kinds.contains(&keyway_audit::Event::FactoryReset),
        "{kinds:?}"
    );
    assert_eq!(
        kinds
            .iter()
            .filter(|e| matches!(e, keyway_audit::Event::OwnerPaired { .. }))
            .count(),
        2
    );
}

/// `smpmgr upgrade` uploads and resets: with the window open the reset is
/// the consent. With the bolt locked it is refused with the reason (rc 6,
/// no reset) and the consent kept; unlocking installs it.
#[test]
fn reset_after_upload_with_presence_is_consent_postponed_then_installed() {
    let f = Fixture::new();
    let mut s = f.server();
    s.open_presence(0, 60_000);
    let env = f.release("2.0.0", 2, Rel::default());
    upload(&mut s, &env, None, 1);
    let m = call(&mut s, Op::Write, 0, 5, &Vec::new(), 2);
    refused(
        &m,
        6,
        "postponed: the bolt is locked; unlock the door to install",
    );
    assert!(s.poll_reset().is_none(), "no reset while postponed");
    assert_eq!(update_state(&mut s, 3).unwrap().0, "postponed");
    s.latch_mut().0.owner(false, 4);
    s.tick(5);
    s.poll_reset().expect("installed by itself").unwrap();
    assert_eq!(running_version(&mut s), "2.0.0");
    // The next release with the bolt unlocked: the reset installs it.
    s.open_presence(10, 60_000);
    let env = f.release("3.0.0", 3, Rel::default());
    upload(&mut s, &env, None, 11);
    s.latch_mut().0.owner(false, 12);
    let m = call(&mut s, Op::Write, 0, 5, &Vec::new(), 13);
    assert!(m.is_empty(), "{m:?}");
    s.poll_reset().unwrap().unwrap();
    assert_eq!(running_version(&mut s), "3.0.0");
}

/// Consent is given to one update, not to a sequence number or a slot:
/// the owner consents to A (postponed: the bolt is locked), then B, another
/// envelope with the same sequence number, replaces A in the slot before
/// the install. Unlocking must not install B: B awaits its own consent, and
/// its notes must be offered again first.
#[test]
fn consent_for_one_update_carried_over_to_a_replacement_is_refused() {
    let (f, mut s, o) = with_owner();
    let a = f.release("2.0.0", 2, Rel::default());
    let b = f.release(
        "2.0.0",
        2,
        Rel {
            cves: vec![Severity::Low],
            ..Rel::default()
        },
    );
    assert_ne!(a, b);
    upload(&mut s, &a, Some(&o), 10);
    o.read(&mut s, KEYWAY, 4, &Vec::new(), 11);
    let m = o.consent(&mut s, true, 12);
    assert_eq!(smp::get_text(&m, "state").unwrap(), Some("postponed"));
    // B replaces A in the slot.
    let m = upload(&mut s, &b, Some(&o), 20);
    assert_eq!(smp::get_bool(&m, "match").unwrap(), Some(true), "{m:?}");
    assert_eq!(
        s.pending().map(|p| p.hash.to_vec()),
        Some(Sha256::digest(&b).to_vec())
    );
    assert_eq!(update_state(&mut s, 21).unwrap().0, "awaiting-consent");
    // Unlocked: A's consent does not install B.
    let body = o.signed(&mut s, 2, &Vec::new(), 22);
    call(&mut s, Op::Write, KEYWAY, 2, &body, 23);
    s.tick(24);
    assert!(s.poll_reset().is_none(), "B installed on A's consent");
    assert_eq!(running_version(&mut s), "1.0.0");
    // B's notes were not offered: consenting to B is refused until they are.
    refused(
        &o.consent(&mut s, true, 25),
        6,
        "release notes were not offered",
    );
}

/// An erase the lock refuses (the running slot) changes nothing: the
/// pending update and the consent given to it stay, and it still installs.
#[test]
fn refused_erase_of_the_running_slot_keeps_the_pending_update_and_its_consent() {
    let (f, mut s, o) = with_owner();
    let env = f.release("2.0.0", 2, Rel::default());
    upload(&mut s, &env, Some(&o), 10);
    o.read(&mut s, KEYWAY, 4, &Vec::new(), 11);
    o.consent(&mut s, true, 12);
    let running = s.lock().running().unwrap();
    // Signed for the image group's erase (group 1, command 5).
    let n = nonce(&mut s, 14);
    let body = o.sign(
        1,
        5,
        &n,
        &vec![(t("slot"), Value::from(u64::from(running)))],
    );
    let m = call(&mut s, Op::Write, 1, 5, &body, 15);
    let err = smp::get(&m, "err").and_then(Value::as_map).cloned();
    assert!(err.is_some() || rc(&m).is_some(), "not refused: {m:?}");
    assert!(
        s.pending().is_some(),
        "the refused erase dropped the update"
    );
    assert_eq!(update_state(&mut s, 16).unwrap().0, "postponed");
    let body = o.signed(&mut s, 2, &Vec::new(), 17);
    call(&mut s, Op::Write, KEYWAY, 2, &body, 18);
    s.tick(19);
    s.poll_reset()
        .expect("installed on the kept consent")
        .unwrap();
    assert_eq!(running_version(&mut s), "2.0.0");
}

/// The power fails in the middle of an owner's signed upload: the chunks
/// the client sends next find no upload in RAM. The lock answers `off` 0
/// (writing nothing), not "needs the presence window"; the owner's client
/// signs the first chunk again and the upload completes (resuming from the
/// journal when it recorded the download).
/// A stranger's chunk at the same moment gets the same `off` 0 and
/// changes nothing.
#[test]
fn owner_upload_cut_by_a_power_failure_restarts_signed_and_resumes() {
    let (f, mut s, o) = with_owner();
    let env = f.release("2.0.0", 2, Rel::default());
    s.cut_power_mid_upload(None);
    let mut at = 0usize;
    let mut cut_at = None;
    let mut signed_first_chunks = 0;
    for now in 10..200 {
        let end = (at + 1000).min(env.len());
        signed_first_chunks += usize::from(at == 0);
        let body = chunk(&mut s, &env, at, Some(&o), now);
        let m = call(&mut s, Op::Write, 1, 1, &body, now);
        if s.lost_power() {
            // No answer: the client resends its next chunk after the lock
            // is back.
            s.poll_reset().unwrap().unwrap();
            cut_at = Some(end);
            at = end;
            // A stranger's chunk: nothing held, nothing written.
            let stranger = vec![
                (t("off"), Value::from(end as u64)),
                (t("data"), Value::Bytes(vec![0xee; 100])),
            ];
            let m = call(&mut s, Op::Write, 1, 1, &stranger, now);
            assert_eq!(smp::get_u64(&m, "off").unwrap(), Some(0), "{m:?}");
            assert!(s.upload().is_none());
            continue;
        }
        assert_eq!(rc(&m), None, "refused after the cut: {m:?}");
        match smp::get_u64(&m, "off").unwrap() {
            Some(n) if (n as usize) < env.len() => at = n as usize,
            _ => {
                assert_eq!(smp::get_bool(&m, "match").unwrap(), Some(true), "{m:?}");
                break;
            }
        }
    }
    let cut_at = cut_at.expect("the power was cut");
    assert_eq!(signed_first_chunks, 2, "signed again once after the cut");
    assert!(cut_at > 0);
    assert_eq!(
        s.pending().map(|p| p.hash.to_vec()),
        Some(Sha256::digest(&env).to_vec())
    );
    println!(
        "power cut once the upload passed byte {cut_at}; completed after a second signed first chunk"
    );
}

/// An owner begins a signed upload; the lock is factory reset (the owner
/// is forgotten) before it ends. The chunks that follow carried only that
/// owner's authority: without the presence window they must not complete
/// an update the lock would then offer.
#[test]
fn upload_begun_by_a_forgotten_owner_cannot_continue_after_a_factory_reset() {
    let (f, mut s, o) = with_owner();
    let env = f.release("2.0.0", 2, Rel::default());
    let first = chunk(&mut s, &env, 0, Some(&o), 10);
    let m = call(&mut s, Op::Write, 1, 1, &first, 10);
    assert_eq!(smp::get_u64(&m, "off").unwrap(), Some(1000), "{m:?}");
    s.open_presence(11, 60_000);
    s.long_press(12);
    let m = call(&mut s, Op::Write, KEYWAY, 9, &Vec::new(), 13);
    assert_eq!(smp::get_u64(&m, "owners").unwrap(), Some(0), "{m:?}");
    s.close_presence();
    assert!(
        s.upload().is_none(),
        "the owner's upload outlived the owner"
    );
    // The rest of the chunks: sent back to off 0, where auth is needed.
    let rest = chunk(&mut s, &env, 1000, None, 14);
    let m = call(&mut s, Op::Write, 1, 1, &rest, 14);
    assert_eq!(smp::get_u64(&m, "off").unwrap(), Some(0), "{m:?}");
    let refusal = upload(&mut s, &env, None, 15);
    refused(&refusal, 11, "no presence window open");
    assert!(s.pending().is_none());
}

fn audit_events(s: &mut Server) -> Vec<keyway_audit::Event> {
    let file = s.lock_mut().export_audit(20).unwrap();
    keyway::log::parse(&file)
        .into_iter()
        .filter_map(|i| match i.what {
            keyway::log::ItemKind::Record { record, .. } => match record.body {
                keyway_audit::Body::Event(e) => Some(e),
                _ => None,
            },
            _ => None,
        })
        .collect()
}

fn key_ids(m: &Map) -> Vec<(Vec<u8>, String, Option<u64>)> {
    let Some(Value::Array(list)) = smp::get(m, "owners") else {
        panic!("no owners list: {m:?}")
    };
    list.iter()
        .map(|e| {
            let e = e.as_map().unwrap();
            (
                smp::get_bytes(e, "key_id").unwrap().unwrap().to_vec(),
                smp::get_text(e, "name").unwrap().unwrap().to_owned(),
                smp::get_u64(e, "paired").unwrap(),
            )
        })
        .collect()
}

/// `owners` lists both owners (key id, name, the pairing time the shell's
/// clock gave); one owner's signed `unpair` removes the other: the answer
/// counts what is left, the audit log records `OwnerRemoved` with the key
/// id, the shell is told to store `owners.json`, an upload the removed
/// owner began is dropped, and the removed key's signed unlock is refused.
#[test]
fn owners_lists_and_an_owners_unpair_removes_logs_and_drops_the_others_upload() {
    let (f, mut s, ann) = with_owner();
    s.set_rtc(1_796_000_000);
    let bob = Owner::new();
    pair(&mut s, &bob, 1);
    s.take_owners_changed();
    let id = |o: &Owner| Sha256::digest(o.public)[..8].to_vec();

    let m = ann.read(&mut s, KEYWAY, 16, &Vec::new(), 2);
    assert_eq!(
        key_ids(&m),
        vec![
            (id(&ann), "owner".to_owned(), None),
            (id(&bob), "owner".to_owned(), Some(1_796_000_000)),
        ],
        "{m:?}"
    );
    // Bob begins a signed upload, then Ann removes Bob.
    let env = f.release("2.0.0", 2, Rel::default());
    let first = chunk(&mut s, &env, 0, Some(&bob), 3);
    let m = call(&mut s, Op::Write, 1, 1, &first, 3);
    assert_eq!(smp::get_u64(&m, "off").unwrap(), Some(1000), "{m:?}");
    let body = ann.signed(&mut s, 17, &vec![(t("key_id"), Value::Bytes(id(&bob)))], 4);
    let m = call(&mut s, Op::Write, KEYWAY, 17, &body, 4);
    assert_eq!(smp::get_u64(&m, "owners").unwrap(), Some(1), "{m:?}");
    assert_eq!(smp::get_bytes(&m, "key_id").unwrap(), Some(&id(&bob)[..]));
    assert!(s.take_owners_changed(), "owners.json must be written");
    assert!(
        s.upload().is_none(),
        "the removed owner's upload outlived it"
    );
    assert_eq!(s.owners().owners().len(), 1);
    assert_eq!(s.owners().owners()[0].key, ann.public);
    let removed: Vec<_> = audit_events(&mut s)
        .into_iter()
        .filter_map(|e| match e {
            keyway_audit::Event::OwnerRemoved { owner } => Some(owner.to_vec()),
            _ => None,
        })
        .collect();
    assert_eq!(removed, vec![id(&bob)]);
    // Bob's key is refused like any unpaired key.
    let body = bob.signed(&mut s, 2, &Vec::new(), 5);
    refused(
        &call(&mut s, Op::Write, KEYWAY, 2, &body, 5),
        11,
        "is not an owner of this lock",
    );
    let m = ann.read(&mut s, KEYWAY, 16, &Vec::new(), 6);
    assert_eq!(key_ids(&m).len(), 1, "{m:?}");
}

/// `unpair` needs an owner's signed request: without `auth` it is refused
/// (rc 11) even with the presence window open, and a removed or stranger
/// key's signature is refused alike; nothing is removed.
#[test]
fn unpair_without_owner_auth_is_refused_even_with_the_window_open() {
    let (_, mut s, ann) = with_owner();
    let bob = Owner::new();
    pair(&mut s, &bob, 1);
    s.take_owners_changed();
    let target = vec![(
        t("key_id"),
        Value::Bytes(Sha256::digest(ann.public)[..8].to_vec()),
    )];
    for window in [false, true] {
        if window {
            s.open_presence(2, 60_000);
        }
        refused(
            &call(&mut s, Op::Write, KEYWAY, 17, &target, 3),
            11,
            "unpair needs an owner's signed request",
        );
    }
    let stranger = Owner::new();
    let body = stranger.signed(&mut s, 17, &target, 4);
    refused(
        &call(&mut s, Op::Write, KEYWAY, 17, &body, 4),
        11,
        "owner authentication failed",
    );
    // A signature over another key id does not carry over.
    let other = vec![(t("key_id"), Value::Bytes(vec![0; 8]))];
    let mut body = bob.signed(&mut s, 17, &other, 5);
    body[0] = target[0].clone();
    refused(
        &call(&mut s, Op::Write, KEYWAY, 17, &body, 5),
        11,
        "owner authentication failed",
    );
    assert_eq!(s.owners().owners().len(), 2);
    assert!(!s.take_owners_changed());
}

/// An unknown key id is refused with ENOENT and the typed refusal
/// `UnknownOwner` (`kw-rc` 16), nothing changed; a key id of another
/// length is EINVAL.
#[test]
fn unpair_of_an_unknown_key_id_gets_the_typed_refusal() {
    let (_, mut s, ann) = with_owner();
    s.take_owners_changed();
    let body = ann.signed(
        &mut s,
        17,
        &vec![(t("key_id"), Value::Bytes(vec![0xEE; 8]))],
        1,
    );
    let m = call(&mut s, Op::Write, KEYWAY, 17, &body, 1);
    refused(&m, 5, "no owner of this lock has key id eeeeeeeeeeeeeeee");
    assert_eq!(smp::get_u64(&m, "kw-rc").unwrap(), Some(16), "{m:?}");
    assert_eq!(s.owners().owners().len(), 1);
    assert!(!s.take_owners_changed());
    let body = ann.signed(
        &mut s,
        17,
        &vec![(t("key_id"), Value::Bytes(vec![0xEE; 7]))],
        2,
    );
    refused(
        &call(&mut s, Op::Write, KEYWAY, 17, &body, 2),
        3,
        "\"key_id\" has 7 bytes, 8 expected",
    );
}

/// Keyway-group requests with hostile, well-formed CBOR bodies: the known
/// keys with values of any type and length (an `auth` map whose fields are
/// too short, too long or not bytes, an `off` far past the export, a `key`
/// of any length, names of any length), with and without the presence
/// window. Every one gets an answer (a body or a named refusal), never a
/// panic, and nothing is paired or consented without the window or a
/// verified signature.
mod hostile_bodies {
    use super::*;
    use proptest::prelude::*;

    const KEYS: [&str; 10] = [
        "auth",
        "accept",
        "off",
        "key",
        "name",
        "auto_install_cve",
        "install_needs_unlocked",
        "nonce",
        "sig",
        "key_id",
    ];

    fn value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            any::<u64>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<bool>().prop_map(Value::Bool),
            proptest::collection::vec(any::<u8>(), 0..80).prop_map(Value::Bytes),
            "[a-z\\x00-\\x1f]{0,80}".prop_map(Value::Text),
            Just(Value::Null),
        ];
        leaf.prop_recursive(2, 12, 4, |inner| {
            proptest::collection::vec(
                (
                    proptest::sample::select(&KEYS[..]).prop_map(t),
                    inner.clone(),
                ),
                0..4,
            )
            .prop_map(Value::Map)
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        #[test]
        fn hostile_keyway_group_bodies_get_answers_not_panics(
            id in 0u8..18,
            write in any::<bool>(),
            presence in any::<bool>(),
            body in proptest::collection::vec(
                (proptest::sample::select(&KEYS[..]).prop_map(t), value()), 0..6),
        ) {
            let f = Fixture::new();
            let mut s = f.server();
            if presence {
                s.open_presence(0, 60_000);
            }
            let op = if write { Op::Write } else { Op::Read };
            // Bodies over the lock's 2,048 bytes are hostile input too.
            let frame = frame(op, KEYWAY, id, &body);
            let r = s.handle(&frame, 1);
            let answer = smp::decode_body(&r[HEADER_LEN..]);
            prop_assert!(answer.is_ok(), "{answer:?}");
            if let Some(code) = rc(&answer.unwrap()) {
                prop_assert!((1..=13).contains(&code));
            }
            if !presence {
                prop_assert_eq!(s.owners().owners().len(), 0, "paired without the window");
            }
        }
    }
}
