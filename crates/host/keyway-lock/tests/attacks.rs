//! Issue 12's protocol findings against the sans-IO server, each a named
//! test that failed before its fix: the key-membership oracle, the nonce
//! flood, chunk injection and the download record it froze, open resets
//! (consent in RAM, audit-log eviction), the authority matrix, and a
//! stranger's downgrade of a pending release. Peers are transport source
//! addresses ([`Peer`]); the clock is fake.

mod common;

use ciborium::Value;
use common::{Map, rc, sign, t};
use keyway::encode::EnvelopeBuilder;
use keyway::keys::{Algorithm, SigningKey};
use keyway_audit::Ed25519Signer;
use keyway_lock::device::{self, Lock, Trust};
use keyway_lock::owners::{Owners, auth_message};
use keyway_lock::peers::Peer;
use keyway_lock::server::Server;
use keyway_lock::smp::{self, HEADER_LEN, Op};
use sha2::{Digest, Sha256};

const KEYWAY: u16 = 64;
const IMAGE: u16 = 1;
const OS: u16 = 0;

fn peer(n: u8) -> Peer {
    let mut p = [0u8; 18];
    p[..16].copy_from_slice(
        &std::net::Ipv4Addr::new(127, 0, 0, 1)
            .to_ipv6_mapped()
            .octets(),
    );
    p[16..].copy_from_slice(&(40_000 + u16::from(n)).to_be_bytes());
    Peer(p)
}

/// The owner's phone.
fn owner_peer() -> Peer {
    peer(1)
}
/// Someone in radio range.
fn stranger_peer() -> Peer {
    peer(66)
}

struct Fixture {
    vendor: SigningKey,
    trust: Trust,
    device: SigningKey,
}

impl Fixture {
    fn new() -> Self {
        let (vendor, trust) = common::vendor();
        Fixture {
            vendor,
            trust,
            device: SigningKey::generate(Algorithm::Ed25519).unwrap(),
        }
    }

    fn release(&self, version: &str, sequence: u64) -> Vec<u8> {
        let payload: Vec<u8> = (0..6000)
            .map(|i| (i * 7 + sequence as usize) as u8)
            .collect();
        let more = EnvelopeBuilder {
            notes: Some(format!("Release {version}.")),
            ..Default::default()
        };
        sign(&self.vendor, version, sequence, payload, more)
    }

    fn signer(&self) -> Ed25519Signer {
        let SigningKey::Ed25519(k) = &self.device else {
            unreachable!()
        };
        Ed25519Signer::from_seed(k.to_bytes()).unwrap()
    }

    /// A lock with 1.0.0 (sequence 1) confirmed in slot 0 and an audit log.
    fn server(&self) -> Server {
        let mut lock = Lock::new(device::blank_flash(), self.trust.clone(), None).unwrap();
        lock.attach_audit(self.signer(), 0).unwrap();
        lock.factory(&self.release("1.0.0", 1)).unwrap();
        let mut s = Server::new(lock);
        s.set_nonce_seed([9; 32]);
        s
    }

    /// The lock restarted from what its files held: the flash and
    /// `owners.json` (a power cut, then power-on).
    fn restart(&self, s: &Server) -> Server {
        let flash = device::flash_from_bytes(s.lock().flash().as_bytes().to_vec()).unwrap();
        let owners = Owners::from_json(&s.owners().to_json()).unwrap();
        let mut lock = Lock::new(flash, self.trust.clone(), None).unwrap();
        lock.attach_audit(self.signer(), s.lock().boot_count().unwrap_or(0))
            .unwrap();
        lock.power_on().unwrap();
        lock.commit_audit(0).unwrap();
        let mut s = Server::new(lock);
        s.set_nonce_seed([10; 32]);
        s.set_owners(owners);
        s
    }
}

fn call(s: &mut Server, from: Peer, op: Op, group: u16, id: u8, body: &Map, now: u64) -> Map {
    let f = smp::encode_request(op, group, id, 7, body.clone());
    let r = s.handle_from(&f, from, now);
    smp::decode_body(&r[HEADER_LEN..]).unwrap()
}

fn rsn(m: &Map) -> String {
    smp::get_text(m, "rsn").unwrap().unwrap_or("").to_owned()
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

    /// A challenge from `from`, then `body` signed for `group`/`id`.
    fn signed(&self, s: &mut Server, from: Peer, group: u16, id: u8, body: &Map, now: u64) -> Map {
        let n = nonce(s, from, now).expect("a challenge");
        self.sign(group, id, &n, body)
    }

    /// Challenge and signed request from `from` at `now`: the answer.
    #[allow(clippy::too_many_arguments)] // a request's every part, spelled out
    fn call(
        &self,
        s: &mut Server,
        from: Peer,
        op: Op,
        group: u16,
        id: u8,
        body: &Map,
        now: u64,
    ) -> Map {
        let b = self.signed(s, from, group, id, body, now);
        call(s, from, op, group, id, &b, now)
    }
}

fn nonce(s: &mut Server, from: Peer, now: u64) -> Option<Vec<u8>> {
    let m = call(s, from, Op::Read, KEYWAY, 7, &Vec::new(), now);
    smp::get_bytes(&m, "nonce").unwrap().map(<[u8]>::to_vec)
}

/// Pairs `o` with the window open at `now`, then closes it.
fn pair(s: &mut Server, o: &Owner, now: u64) {
    s.open_presence(now, 30_000);
    let m = call(
        s,
        owner_peer(),
        Op::Write,
        KEYWAY,
        8,
        &vec![(t("key"), Value::Bytes(o.public.to_vec()))],
        now,
    );
    assert!(smp::get_bytes(&m, "key_id").unwrap().is_some(), "{m:?}");
    s.close_presence();
}

fn with_owner() -> (Fixture, Server, Owner) {
    let f = Fixture::new();
    let mut s = f.server();
    let o = Owner::new();
    pair(&mut s, &o, 0);
    (f, s, o)
}

/// The upload chunk of `env` at `at` (1,000 bytes at most); the first
/// carries `len` and `sha`, signed by `owner` if given.
fn chunk(
    s: &mut Server,
    from: Peer,
    env: &[u8],
    at: usize,
    owner: Option<&Owner>,
    now: u64,
) -> Map {
    let end = (at + 1000).min(env.len());
    let mut body = vec![
        (t("off"), Value::from(at as u64)),
        (t("data"), Value::Bytes(env[at..end].to_vec())),
    ];
    if at == 0 {
        body.push((t("len"), Value::from(env.len() as u64)));
        body.push((t("sha"), Value::Bytes(Sha256::digest(env).to_vec())));
        if let Some(o) = owner {
            body = o.signed(s, from, IMAGE, 1, &body, now);
        }
    }
    body
}

/// Uploads `env` from `from`; `owner` signs the first chunk.
fn upload(s: &mut Server, from: Peer, env: &[u8], owner: Option<&Owner>, now: u64) -> Map {
    let mut at = 0usize;
    for _ in 0..100 {
        let body = chunk(s, from, env, at, owner, now);
        let m = call(s, from, Op::Write, IMAGE, 1, &body, now);
        match smp::get_u64(&m, "off").unwrap() {
            Some(o) if (o as usize) < env.len() && rc(&m).is_none() => at = o as usize,
            _ => return m,
        }
    }
    panic!("the upload does not progress");
}

fn matched(m: &Map) -> bool {
    smp::get_bool(m, "match").unwrap() == Some(true)
}

/// The owner's `status`, signed.
fn status(s: &mut Server, o: &Owner, now: u64) -> Map {
    o.call(s, owner_peer(), Op::Read, KEYWAY, 0, &Vec::new(), now)
}

fn update_state(s: &mut Server, o: &Owner, now: u64) -> Option<String> {
    let st = status(s, o, now);
    let u = smp::get(&st, "update")?.as_map()?.clone();
    smp::get_text(&u, "state").unwrap().map(str::to_owned)
}

fn running_version(s: &Server) -> String {
    let slot = s.lock().running().unwrap();
    s.lock().version(slot).unwrap()
}

/// Runs what the shell runs after a request: the audit events are
/// written, then a reset the request asked for.
fn settle(s: &mut Server) -> bool {
    s.lock_mut().commit_audit(0).unwrap();
    let reset = s.poll_reset().is_some();
    s.lock_mut().commit_audit(0).unwrap();
    reset
}

// ---------------------------------------------------------------- 1

/// An oracle: a paired key with a bad signature and an unpaired key with a
/// good one must get the same answer, byte for byte, so nobody can test
/// whether a key belongs to the lock.
#[test]
fn unpaired_key_and_bad_signature_get_the_same_refusal() {
    let (_, mut s, o) = with_owner();
    let stranger = Owner::new();
    // The owner's key, a signature made for another command.
    let mut forged = o.signed(&mut s, owner_peer(), KEYWAY, 1, &Vec::new(), 10);
    let paired = call(&mut s, owner_peer(), Op::Write, KEYWAY, 2, &forged, 10);
    // A stranger's key, a good signature.
    let unpaired = stranger.call(&mut s, owner_peer(), Op::Write, KEYWAY, 2, &Vec::new(), 11);
    assert_eq!(rc(&paired), Some(11), "{paired:?}");
    assert_eq!(paired, unpaired, "the two refusals tell the keys apart");
    // Nor does a key that is not a curve point stand out.
    if let Value::Map(a) = &mut forged[0].1 {
        a[0].1 = Value::Bytes(vec![0xff; 32]);
        a[1].1 = Value::Bytes(nonce(&mut s, owner_peer(), 12).unwrap());
    }
    let bogus = call(&mut s, owner_peer(), Op::Write, KEYWAY, 2, &forged, 12);
    assert_eq!(paired, bogus);
    assert_eq!(s.latch().bolt(), keyway_lock::lock::Bolt::Locked);
}

// ---------------------------------------------------------------- 2

/// The nonce flood: one peer asks for a challenge every 5 ms (200 a
/// second) while the owner, from another peer, takes a challenge and
/// sends a signed command 100 ms later, 50 times. At least 9 in 10 of the
/// owner's commands succeed, and the flood is rate-limited.
#[test]
fn owner_commands_succeed_while_another_peer_floods_challenges() {
    let (_, mut s, o) = with_owner();
    let (mut now, mut ok, mut flood_refused, mut flood_sent) = (1_000u64, 0, 0, 0);
    let rounds = 50;
    for round in 0..rounds {
        let got = nonce(&mut s, owner_peer(), now);
        for _ in 0..20 {
            now += 5;
            flood_sent += 1;
            let m = call(
                &mut s,
                stranger_peer(),
                Op::Read,
                KEYWAY,
                7,
                &Vec::new(),
                now,
            );
            if rc(&m).is_some() {
                flood_refused += 1;
            }
        }
        let Some(n) = got else { continue };
        let id = if round % 2 == 0 { 2 } else { 1 };
        let body = o.sign(KEYWAY, id, &n, &Vec::new());
        let m = call(&mut s, owner_peer(), Op::Write, KEYWAY, id, &body, now);
        if rc(&m).is_none() {
            ok += 1;
        }
    }
    println!(
        "{rounds} owner commands during a flood of {flood_sent} challenges at 200/s: {ok} succeeded, {flood_refused} flood requests refused"
    );
    assert!(
        ok * 10 >= rounds * 9,
        "only {ok} of {rounds} owner commands succeeded"
    );
    assert!(flood_refused > 0, "the flooding peer was never limited");
}

// ---------------------------------------------------------------- 3

/// Chunk injection: a stranger sends a chunk at the offset the lock
/// reveals, into an upload an owner signed (window closed) and into one a
/// person at the lock began (window open). It is refused, the upload is
/// untouched, and the owner's upload completes and verifies.
#[test]
fn injected_chunk_is_refused_and_leaves_the_upload_untouched() {
    for window in [false, true] {
        let (f, mut s, o) = with_owner();
        let env = f.release("2.0.0", 2);
        if window {
            s.open_presence(5, 600_000);
        }
        let owner = (!window).then_some(&o);
        let first = chunk(&mut s, owner_peer(), &env, 0, owner, 10);
        let m = call(&mut s, owner_peer(), Op::Write, IMAGE, 1, &first, 10);
        assert_eq!(smp::get_u64(&m, "off").unwrap(), Some(1000), "{m:?}");
        // The stranger writes at the revealed offset.
        let evil = vec![
            (t("off"), Value::from(1000u64)),
            (t("data"), Value::Bytes(vec![0xee; 1000])),
        ];
        let m = call(&mut s, stranger_peer(), Op::Write, IMAGE, 1, &evil, 11);
        assert_eq!(rc(&m), Some(11), "window {window}: {m:?}");
        assert!(rsn(&m).contains("another peer"), "{m:?}");
        // Nor can it restart the upload at off 0 while it progresses.
        let mut restart = chunk(&mut s, stranger_peer(), &env, 0, None, 11);
        restart[1].1 = Value::Bytes(vec![0xee; 1000]);
        let m = call(&mut s, stranger_peer(), Op::Write, IMAGE, 1, &restart, 11);
        assert_eq!(rc(&m), Some(11), "window {window}: {m:?}");
        // The owner goes on from 1000 and the upload verifies.
        let mut at = 1000;
        let last = loop {
            let body = chunk(&mut s, owner_peer(), &env, at, owner, 12);
            let m = call(&mut s, owner_peer(), Op::Write, IMAGE, 1, &body, 12);
            match smp::get_u64(&m, "off").unwrap() {
                Some(n) if (n as usize) < env.len() && rc(&m).is_none() => at = n as usize,
                _ => break m,
            }
        };
        assert!(matched(&last), "window {window}: {last:?}");
        assert_eq!(
            s.pending().map(|p| p.hash.to_vec()),
            Some(Sha256::digest(&env).to_vec())
        );
    }
}

/// A digest failure (a corrupted byte on the way, the file's SHA-256
/// announced for the good file) clears the download record, so the same
/// release uploads again at once, and after a restart.
#[test]
fn failed_upload_clears_the_download_record_and_the_release_uploads_again() {
    for restart in [false, true] {
        let (f, mut s, o) = with_owner();
        let env = f.release("2.0.0", 2);
        let mut bad = env.clone();
        let n = bad.len();
        bad[n - 10] ^= 0x55;
        // The good file's `sha` on the first chunk, the bad bytes after it.
        let mut at = 0usize;
        let last = loop {
            let mut body = chunk(&mut s, owner_peer(), &bad, at, Some(&o), 20);
            if at == 0 {
                body.iter_mut()
                    .filter(|(k, _)| k.as_text() == Some("sha"))
                    .for_each(|(_, v)| *v = Value::Bytes(Sha256::digest(&env).to_vec()));
                let stripped: Map = body
                    .iter()
                    .filter(|(k, _)| k.as_text() != Some("auth"))
                    .cloned()
                    .collect();
                body = o.signed(&mut s, owner_peer(), IMAGE, 1, &stripped, 20);
            }
            let m = call(&mut s, owner_peer(), Op::Write, IMAGE, 1, &body, 20);
            match smp::get_u64(&m, "off").unwrap() {
                Some(x) if (x as usize) < n && rc(&m).is_none() => at = x as usize,
                _ => break m,
            }
        };
        assert!(!matched(&last), "the corrupted upload verified: {last:?}");
        assert!(
            s.lock().state().download.is_none(),
            "the failed download is still recorded: {:?}",
            s.lock().state().download
        );
        let mut s = if restart { f.restart(&s) } else { s };
        let m = upload(&mut s, owner_peer(), &env, Some(&o), 30);
        assert!(
            matched(&m),
            "restart {restart}: the good upload failed: {m:?}"
        );
        assert_eq!(
            s.pending().map(|p| p.hash.to_vec()),
            Some(Sha256::digest(&env).to_vec())
        );
    }
}

// ---------------------------------------------------------------- 4

/// An unauthenticated OS reset is refused and changes nothing: the
/// upload in progress, the presence window... stay.
#[test]
fn unauthenticated_reset_is_refused() {
    let (f, mut s, o) = with_owner();
    let env = f.release("2.0.0", 2);
    let first = chunk(&mut s, owner_peer(), &env, 0, Some(&o), 10);
    call(&mut s, owner_peer(), Op::Write, IMAGE, 1, &first, 10);
    let m = call(&mut s, stranger_peer(), Op::Write, OS, 5, &Vec::new(), 11);
    assert_eq!(rc(&m), Some(11), "{m:?}");
    assert!(!settle(&mut s), "the lock reset");
    assert!(s.upload().is_some(), "the upload was dropped");
    // The owner's signed reset runs; resets are rate-limited.
    let mut ran = 0;
    let mut busy = 0;
    for i in 0..10 {
        let m = o.call(&mut s, owner_peer(), Op::Write, OS, 5, &Vec::new(), 100 + i);
        match rc(&m) {
            None => ran += usize::from(settle(&mut s)),
            Some(10) => busy += 1,
            other => panic!("{other:?}: {m:?}"),
        }
    }
    println!("10 signed resets within 10 ms: {ran} ran, {busy} refused busy");
    assert!(ran >= 1 && busy >= 1, "ran {ran}, busy {busy}");
}

/// Consent survives a power cut (a restart from the lock's files) and a
/// reset: given while the bolt is locked (postponed), the lock installs
/// by itself once the owner unlocks.
#[test]
fn consent_survives_a_power_cut_and_a_reset_then_the_install_proceeds() {
    for cut in [true, false] {
        let (f, mut s, o) = with_owner();
        let env = f.release("2.0.0", 2);
        assert!(matched(&upload(&mut s, owner_peer(), &env, Some(&o), 10)));
        o.call(&mut s, owner_peer(), Op::Read, KEYWAY, 4, &Vec::new(), 11);
        let m = o.call(
            &mut s,
            owner_peer(),
            Op::Write,
            KEYWAY,
            5,
            &vec![(t("accept"), Value::Bool(true))],
            12,
        );
        assert_eq!(
            smp::get_text(&m, "state").unwrap(),
            Some("postponed"),
            "{m:?}"
        );
        let mut s = if cut {
            f.restart(&s)
        } else {
            let m = o.call(&mut s, owner_peer(), Op::Write, OS, 5, &Vec::new(), 13);
            assert_eq!(rc(&m), None, "{m:?}");
            assert!(settle(&mut s));
            s
        };
        assert_eq!(
            update_state(&mut s, &o, 14).as_deref(),
            Some("postponed"),
            "cut {cut}: the consent was lost"
        );
        let m = o.call(&mut s, owner_peer(), Op::Write, KEYWAY, 2, &Vec::new(), 15);
        assert_eq!(
            smp::get_text(&m, "bolt").unwrap(),
            Some("unlocked"),
            "{m:?}"
        );
        s.tick(16);
        settle(&mut s);
        assert_eq!(running_version(&s), "2.0.0", "cut {cut}");
    }
}

/// 130 unauthenticated resets used to push the owner's unlock records out
/// of the audit log; refused, they leave the log alone.
#[test]
fn unauthenticated_resets_do_not_evict_unlock_records() {
    let (_, mut s, o) = with_owner();
    for i in 0..6 {
        let id = if i % 2 == 0 { 2 } else { 1 };
        let m = o.call(
            &mut s,
            owner_peer(),
            Op::Write,
            KEYWAY,
            id,
            &Vec::new(),
            10 + i,
        );
        assert_eq!(rc(&m), None, "{m:?}");
        settle(&mut s);
    }
    for i in 0..130 {
        call(
            &mut s,
            peer(100 + (i % 50) as u8),
            Op::Write,
            OS,
            5,
            &Vec::new(),
            100 + i,
        );
        settle(&mut s);
    }
    // The log, exported by the owner.
    let mut file = Vec::new();
    for _ in 0..1000 {
        let body = vec![(t("off"), Value::from(file.len() as u64))];
        let m = if file.is_empty() {
            o.call(&mut s, owner_peer(), Op::Read, KEYWAY, 6, &body, 1000)
        } else {
            call(&mut s, owner_peer(), Op::Read, KEYWAY, 6, &body, 1000)
        };
        let len = smp::get_u64(&m, "len").unwrap().expect("an export chunk");
        let data = smp::get_bytes(&m, "data").unwrap().unwrap();
        file.extend_from_slice(data);
        if data.is_empty() || file.len() as u64 == len {
            break;
        }
    }
    let text = keyway::log::show_text(&keyway::log::parse(&file), None);
    let unlocks = text.matches("unlocked: owner command").count();
    println!("after 130 unauthenticated resets the log holds {unlocks} owner unlocks");
    assert_eq!(unlocks, 3, "{text}");
}

// ---------------------------------------------------------------- 6

/// During the owner's window a stranger uploads an older signed release
/// (3.0.0) over the owner's pending 5.0.0: refused, 5.0.0 stays pending.
#[test]
fn stranger_cannot_replace_a_pending_newer_release_with_an_older_one() {
    let (f, mut s, o) = with_owner();
    let new = f.release("5.0.0", 5);
    let old = f.release("3.0.0", 3);
    assert!(matched(&upload(&mut s, owner_peer(), &new, Some(&o), 10)));
    s.open_presence(20, 60_000);
    let m = upload(&mut s, stranger_peer(), &old, None, 21);
    assert!(!matched(&m), "the older release replaced the pending one");
    assert!(
        rsn(&m).contains("5.0.0") || smp::get(&m, "err").is_some(),
        "{m:?}"
    );
    assert_eq!(
        s.pending().map(|p| p.version.clone()).as_deref(),
        Some("5.0.0")
    );
    // Its test boot and reset cannot install anything older either.
    call(&mut s, stranger_peer(), Op::Write, OS, 5, &Vec::new(), 22);
    settle(&mut s);
    assert_ne!(running_version(&s), "3.0.0");
    // The owner may still choose an older release on purpose.
    s.close_presence();
    let m = upload(&mut s, owner_peer(), &old, Some(&o), 30);
    assert!(matched(&m), "{m:?}");
}

// ---------------------------------------------------------------- 5

/// One row of the authority matrix: a name, the request (group, id, op,
/// body), and who may make it.
type Row<'a> = (&'a str, u16, u8, Op, Map, &'a [Who]);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Who {
    Nobody,
    Window,
    Owner,
    WindowAndLongPress,
}

/// Issue 12's authority matrix, every command against every authority on
/// a fresh lock with a paired owner: a refusal for want of authority is a
/// top-level rc 11; anything else (an answer, or a refusal for another
/// reason such as "nothing pending") means the request was admitted.
#[test]
fn authority_matrix_every_command_and_authority() {
    use Who::*;
    let f = Fixture::new();
    let env = f.release("2.0.0", 2);
    let first_chunk = vec![
        (t("off"), Value::from(0u64)),
        (t("data"), Value::Bytes(env[..1000].to_vec())),
        (t("len"), Value::from(env.len() as u64)),
        (t("sha"), Value::Bytes(Sha256::digest(&env).to_vec())),
    ];
    let newcomer = self::Owner::new().public.to_vec();
    let all = [Nobody, Window, Owner, WindowAndLongPress];
    let window = [Window, Owner, WindowAndLongPress];
    let owner = [Owner];
    #[rustfmt::skip]
    let table: Vec<Row> = vec![
        ("echo", OS, 0, Op::Write, vec![(t("d"), t("hi"))], &all),
        ("MCUmgr params", OS, 6, Op::Read, vec![], &all),
        ("OS info", OS, 7, Op::Read, vec![], &window),
        ("reset", OS, 5, Op::Write, vec![], &window),
        ("image state read", IMAGE, 0, Op::Read, vec![], &all),
        ("image state write", IMAGE, 0, Op::Write, vec![(t("confirm"), Value::Bool(true))], &window),
        ("image upload", IMAGE, 1, Op::Write, first_chunk, &window),
        ("image erase", IMAGE, 5, Op::Write, vec![], &window),
        ("status", KEYWAY, 0, Op::Read, vec![], &owner),
        ("lock", KEYWAY, 1, Op::Write, vec![], &owner),
        ("unlock", KEYWAY, 2, Op::Write, vec![], &owner),
        ("presence", KEYWAY, 3, Op::Read, vec![], &window),
        ("notes", KEYWAY, 4, Op::Read, vec![], &owner),
        ("consent", KEYWAY, 5, Op::Write, vec![(t("accept"), Value::Bool(true))], &owner),
        ("log export", KEYWAY, 6, Op::Read, vec![(t("off"), Value::from(0u8))], &owner),
        ("challenge", KEYWAY, 7, Op::Read, vec![], &all),
        ("pair", KEYWAY, 8, Op::Write, vec![(t("key"), Value::Bytes(newcomer.clone()))], &[Window, WindowAndLongPress]),
        ("factory reset", KEYWAY, 9, Op::Write, vec![], &[WindowAndLongPress]),
        ("settings", KEYWAY, 10, Op::Write, vec![(t("auto_install_cve"), Value::Bool(true))], &owner),
        ("owners", KEYWAY, 16, Op::Read, vec![], &owner),
        ("unpair", KEYWAY, 17, Op::Write, vec![(t("key_id"), Value::Bytes(vec![0; 8]))], &owner),
    ];
    let mut wrong = Vec::new();
    let mut n = 0;
    for (name, group, id, op, body, allowed) in &table {
        for who in all {
            n += 1;
            let (_, mut s, o) = with_owner();
            s.take_log();
            let body = match who {
                Nobody => body.clone(),
                Window => {
                    s.open_presence(100, 60_000);
                    body.clone()
                }
                WindowAndLongPress => {
                    s.open_presence(100, 60_000);
                    s.long_press(101);
                    body.clone()
                }
                Owner => o.signed(&mut s, owner_peer(), *group, *id, body, 102),
            };
            let m = call(&mut s, owner_peer(), *op, *group, *id, &body, 103);
            let admitted = rc(&m) != Some(11);
            if admitted != allowed.contains(&who) {
                wrong.push(format!("{name} by {who:?}: admitted {admitted}: {m:?}"));
            }
            if who == Window && *name == "unlock" {
                assert_eq!(s.latch().bolt(), keyway_lock::lock::Bolt::Locked);
            }
        }
    }
    println!("authority matrix: {n} (command, authority) pairs");
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// A log export an owner began belongs to the peer that began it: the
/// next chunks from another peer need an owner's signature of their own.
#[test]
fn log_export_continues_only_for_the_peer_that_began_it() {
    let (_, mut s, o) = with_owner();
    for i in 0..24 {
        s.open_presence(i, 1000);
    }
    let first = vec![(t("off"), Value::from(0u8))];
    let m = o.call(&mut s, owner_peer(), Op::Read, KEYWAY, 6, &first, 10);
    assert!(smp::get_u64(&m, "len").unwrap().unwrap() > 1024, "{m:?}");
    let next = vec![(t("off"), Value::from(1024u64))];
    let m = call(&mut s, stranger_peer(), Op::Read, KEYWAY, 6, &next, 11);
    assert_eq!(rc(&m), Some(11), "{m:?}");
    let m = call(&mut s, owner_peer(), Op::Read, KEYWAY, 6, &next, 12);
    assert_eq!(smp::get_u64(&m, "off").unwrap(), Some(1024), "{m:?}");
}

/// A client that lost its socket continues its upload from a new one: the
/// same first chunk, signed by the owner who began it, takes the upload
/// over where it stood. A stranger replaying that first chunk (the window
/// open, without the owner's signature) cannot.
#[test]
fn only_the_same_owner_takes_over_an_upload_from_a_new_peer() {
    let (f, mut s, o) = with_owner();
    let env = f.release("2.0.0", 2);
    let first = chunk(&mut s, owner_peer(), &env, 0, Some(&o), 10);
    call(&mut s, owner_peer(), Op::Write, IMAGE, 1, &first, 10);
    let second = chunk(&mut s, owner_peer(), &env, 1000, Some(&o), 11);
    call(&mut s, owner_peer(), Op::Write, IMAGE, 1, &second, 11);
    // The stranger replays the owner's first chunk without its auth.
    s.open_presence(12, 60_000);
    let replay: Map = first
        .iter()
        .filter(|(k, _)| k.as_text() != Some("auth"))
        .cloned()
        .collect();
    let m = call(&mut s, stranger_peer(), Op::Write, IMAGE, 1, &replay, 13);
    assert_eq!(rc(&m), Some(11), "{m:?}");
    s.close_presence();
    // The owner, from a new socket: continues at 2000.
    let again = chunk(&mut s, peer(2), &env, 0, Some(&o), 14);
    let m = call(&mut s, peer(2), Op::Write, IMAGE, 1, &again, 14);
    assert_eq!(smp::get_u64(&m, "off").unwrap(), Some(2000), "{m:?}");
    // The old socket is no longer the upload's.
    let third = chunk(&mut s, owner_peer(), &env, 2000, Some(&o), 15);
    let m = call(&mut s, owner_peer(), Op::Write, IMAGE, 1, &third, 15);
    assert_eq!(rc(&m), Some(11), "{m:?}");
    let m = upload(&mut s, peer(2), &env, Some(&o), 16);
    assert!(matched(&m), "{m:?}");
}

/// A reset no longer shuts the person at the lock out: the presence
/// window lasts until its deadline across a reset (retained RAM); a power
/// cut ends it.
#[test]
fn a_reset_keeps_the_presence_window_a_power_cut_ends_it() {
    let (_, mut s, _) = with_owner();
    s.open_presence(100, 60_000);
    let m = call(&mut s, stranger_peer(), Op::Write, OS, 5, &Vec::new(), 200);
    assert_eq!(rc(&m), None, "{m:?}");
    assert!(settle(&mut s));
    assert!(s.presence_open(300), "the reset closed the window");
    s.lock_mut().note(keyway_audit::Event::FactoryReset);
    s.lock_mut().plan_power_cut(0, 1);
    let _ = s.lock_mut().commit_audit(0);
    assert!(s.lost_power());
    s.poll_reset().unwrap().unwrap();
    assert!(!s.presence_open(400));
}
