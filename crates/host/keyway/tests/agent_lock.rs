//! The owner's client (`keyway::device::Client`) against keyway-lock's
//! agent shell (`keyway_lock::agent_shell::AgentLock`) in memory: the real
//! agent around the real device core (installer, journal, boot, audit
//! log, the bolt), on an in-memory transport. Pairing by the setup code,
//! sealed status/unlock/lock, a sealed upload with notes and consent that
//! the installer takes from the agent's store (after a reboot too), and
//! the window alone never unlocking.

mod common;

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use keyway::device::{Client, Intercept, Stats, Transport, TransportError};
use keyway_agent::agent::{Event, Press};
use keyway_agent::limits::PeerId;
use keyway_agent::testing::now;
use keyway_channel::SigningKey as KeyPair;
use keyway_channel::pairing::MIN_ITERATIONS;
use keyway_channel::{SetupCode, StoredVerifier};
use keyway_lock::agent_shell::{self, AgentLock};
use keyway_lock::device::{DeviceCore as Device, Trust, blank_flash};
use keyway_lock::server::Server;
use keyway_suit::{PublicKey, TrustAnchors};
use keyway_vendor::encode::EnvelopeBuilder;
use keyway_vendor::keys::{Algorithm, SigningKey};
use sha2::{Digest as _, Sha256};

const VENDOR: &str = "locks.example";
const CLASS: &str = "deadbolt-2";
const CODE: &str = "2023-1107";

fn release(key: &SigningKey, version: &str, sequence: u64, len: usize, notes: &str) -> Vec<u8> {
    EnvelopeBuilder {
        sequence,
        version: version.parse().unwrap(),
        vendor_domain: VENDOR.into(),
        class_name: CLASS.into(),
        payload: (0..len).map(|i| (i * 31 % 251) as u8).collect(),
        notes: Some(notes.into()),
        keys: vec![key.clone()],
        ..Default::default()
    }
    .build()
    .unwrap()
    .envelope
}

/// A lock in memory: the agent shell and its clock.
struct Bench {
    lock: AgentLock,
    clock: Arc<AtomicU64>,
    events: Vec<Event>,
}

type Shared = Rc<RefCell<Bench>>;

impl Bench {
    /// A lock running `1.0.0` (factory), setup code [`CODE`].
    fn new() -> (Shared, SigningKey) {
        let vendor = SigningKey::generate(Algorithm::Ed25519).unwrap();
        let public = PublicKey::from_raw(&vendor.raw_public_key_bytes()).unwrap();
        let trust = Trust::new(TrustAnchors::new(&[public], 1).unwrap(), VENDOR, CLASS);
        let mut device = Device::new(blank_flash(), trust, None).unwrap();
        device
            .attach_audit(
                keyway_audit::Ed25519Signer::from_seed([0xd0; 32]).unwrap(),
                0,
            )
            .unwrap();
        device
            .factory(&release(&vendor, "1.0.0", 1, 3000, ""))
            .unwrap();
        let server = Server::new(device);
        let verifier =
            StoredVerifier::derive(&SetupCode::parse(CODE).unwrap(), &[9; 16], MIN_ITERATIONS);
        let lock = AgentLock::new(
            server,
            agent_shell::blank_store().unwrap(),
            KeyPair::from_bytes(&[0xd0; 32]),
            Some(&verifier),
            1_000,
        )
        .unwrap();
        let b = Bench {
            lock,
            clock: Arc::new(AtomicU64::new(1_000)),
            events: Vec::new(),
        };
        (Rc::new(RefCell::new(b)), vendor)
    }

    /// [`Bench::new`] with the owner 0xa1 paired on peer 1: its client.
    fn with_owner() -> (Shared, SigningKey, Client<Link>) {
        let (bench, vendor) = Bench::new();
        let c = paired(&bench, 1, 0xa1);
        (bench, vendor, c)
    }

    /// A power cut: everything in RAM is gone; the lock starts again from
    /// the device flash and the agent's store flash.
    fn power_cut(&mut self) {
        let ms = self.ms();
        let core = self.lock.server().core();
        let flash =
            keyway_lock::device::flash_from_bytes(core.flash().as_bytes().to_vec()).unwrap();
        let mut device = Device::new(flash, core.trust().clone(), None).unwrap();
        device
            .attach_audit(
                keyway_audit::Ed25519Signer::from_seed([0xd0; 32]).unwrap(),
                core.boot_count().unwrap_or(0),
            )
            .unwrap();
        device.power_on().unwrap();
        let store =
            agent_shell::store_from_bytes(self.lock.agent().flash().as_bytes().to_vec()).unwrap();
        self.lock = AgentLock::new(
            Server::new(device),
            store,
            KeyPair::from_bytes(&[0xd0; 32]),
            None,
            ms,
        )
        .unwrap();
    }

    fn ms(&self) -> u64 {
        self.clock.load(Ordering::SeqCst)
    }

    fn press(&mut self) {
        let ms = self.ms();
        self.lock.button(ms, Press::Short).unwrap();
    }

    /// One frame, then what the shell does after sending: a reset asked
    /// for runs, and the installer takes the store's consent again.
    fn deliver(&mut self, peer: PeerId, frame: &[u8]) -> Vec<u8> {
        let ms = self.ms();
        let h = self.lock.handle(peer, now(ms), frame);
        if h.event != Event::None {
            self.events.push(h.event);
        }
        if self.lock.server_mut().poll_reset().is_some() {
            self.lock.after_boot(ms).unwrap();
        }
        h.answer
    }
}

struct Link {
    bench: Shared,
    peer: PeerId,
    stats: Stats,
}

impl Link {
    /// A link for `peer` to the bench's lock.
    fn new(bench: &Shared, peer: u64) -> Link {
        Link {
            bench: bench.clone(),
            peer: PeerId(peer),
            stats: Stats::default(),
        }
    }
}

impl Transport for Link {
    fn exchange(&mut self, frame: &[u8], seq: u8) -> Result<Vec<u8>, TransportError> {
        self.stats.frames_sent += 1;
        let a = self.bench.borrow_mut().deliver(self.peer, frame);
        if a.is_empty() || a.get(6) != Some(&seq) {
            return Err(TransportError::NoAnswer {
                peer: format!("{:?}", self.peer),
                tries: 1,
                timeout_ms: 0,
            });
        }
        Ok(a)
    }
    fn mtu(&self) -> usize {
        keyway::device::UDP_MTU
    }
    fn stats(&self) -> Stats {
        self.stats
    }
}

fn owner_key(tag: u8) -> SigningKey {
    SigningKey::Ed25519(ed25519_dalek::SigningKey::from_bytes(&[tag; 32]))
}

fn client(bench: &Shared, peer: u64, tag: u8) -> Client<Link> {
    let clock = bench.borrow().clock.clone();
    Client::new(Link::new(bench, peer))
        .with_owner(owner_key(tag))
        .unwrap()
        .with_channel_env([tag; 32], Box::new(move || clock.load(Ordering::SeqCst)))
}

/// The owner `tag` paired by the setup code in a window a press opened;
/// the client in session mode.
fn paired(bench: &Shared, peer: u64, tag: u8) -> Client<Link> {
    bench.borrow_mut().press();
    let mut c = client(bench, peer, tag);
    let r = c
        .pair_with_code(&SetupCode::parse(CODE).unwrap(), "Alice")
        .unwrap();
    assert_eq!(
        r.device_key,
        bench.borrow().lock.agent().device_public_key()
    );
    c.with_paired_lock(r.device_key).unwrap()
}

fn bolt(b: &Shared) -> keyway_lock::lock::Bolt {
    b.borrow().lock.server().mechanism().bolt()
}

#[test]
fn pairs_by_setup_code_and_runs_status_unlock_lock_sealed_on_the_device_core() {
    let (bench, _, mut c) = Bench::with_owner();
    assert_eq!(bench.borrow().lock.agent().state().owner_count(), 1);
    let s = c.status().unwrap();
    assert_eq!(text(&s, "version"), Some("1.0.0"));
    assert_eq!(text(&s, "bolt"), Some("locked"));
    let u = c.unlock().unwrap();
    assert_eq!(text(&u, "bolt"), Some("unlocked"));
    assert_eq!(bolt(&bench), keyway_lock::lock::Bolt::Unlocked);
    c.lock().unwrap();
    assert_eq!(bolt(&bench), keyway_lock::lock::Bolt::Locked);
    // The audit log's export, sealed, verifies with the device key.
    let log = c.log_export(&mut |_, _| {}).unwrap();
    assert!(log.len() > 100, "{}", log.len());
    // The audit log of the device core recorded the pairing and the
    // owner's unlock.
    let counts = c.channel_counts();
    assert_eq!(counts.handshakes, 1);
    assert!(counts.sealed >= 3);
}

#[test]
fn wrong_setup_code_pairs_nobody_and_the_window_alone_never_unlocks() {
    let (bench, _) = Bench::new();
    bench.borrow_mut().press();
    let mut c = client(&bench, 1, 0xa1);
    let e = c
        .pair_with_code(&SetupCode::parse("3141-5926").unwrap(), "Mallory")
        .unwrap_err();
    assert!(e.wrong_setup_code(), "{e}");
    assert_eq!(bench.borrow().lock.agent().state().owner_count(), 0);
    // The old unauthenticated pairing is not served, nor a plain unlock in
    // the window.
    let mut plain = client(&bench, 2, 0xb2);
    assert!(plain.unlock().is_err());
    assert_eq!(bolt(&bench), keyway_lock::lock::Bolt::Locked);
}

#[test]
fn sealed_upload_notes_and_consent_reach_the_installer_through_the_agents_store() {
    let (bench, vendor, mut c) = Bench::with_owner();
    let env = release(&vendor, "2.0.0", 2, 20_000, "Fixes the lock.");
    let digest = sha(&env);
    c.upload(&env, &mut |_, _| {}).unwrap();
    assert_eq!(
        bench.borrow().lock.server().pending().map(|p| p.hash),
        Some(digest),
        "the upload left the update pending"
    );
    // Consent before the notes is refused by the agent.
    assert!(c.consent(true).is_err());
    c.notes().unwrap();
    // The answer says where the update stands after the consent (the
    // installer took it inside the call): postponed, the bolt is thrown.
    let a = c.consent(true).unwrap();
    assert_eq!(text(&a, "state"), Some("postponed"), "{a:?}");
    // The bolt is thrown: the policy postpones the install; the consent
    // waits in the agent's store, bound to the envelope.
    let stored = stored_consent(&bench);
    assert_eq!(stored.map(|c| c.digest), Some(digest));
    // A reset (power cycle of the device core) forgets RAM; the installer
    // takes the stored consent again.
    {
        let mut b = bench.borrow_mut();
        let ms = b.ms();
        b.lock.server_mut().agent_reset(false, None, ms).unwrap();
        b.lock.server_mut().request_reset();
        assert!(b.lock.server_mut().poll_reset().is_some());
        b.lock.after_boot(ms).unwrap();
    }
    // Unlocking lets the postponed install go: armed, the store's consent
    // cleared (the journal holds the install now), the lock resets into
    // 2.0.0 on trial and confirms it.
    c.unlock().unwrap();
    assert!(tick(&bench), "install armed");
    assert!(stored_consent(&bench).is_none());
    let s = c.status().unwrap();
    assert_eq!(text(&s, "version"), Some("2.0.0"));
    // Each boot started the agent again: the client opened a new session
    // after each (its old one was unknown to the rebooted agent).
    assert_eq!(c.channel_counts().handshakes, 3);
}

/// The `keyway` binary against `keyway-lock`'s shell (the agent) over
/// loopback UDP: the setup code read off the label (the
/// control socket), the window opened by the button, `pair --setup-code`,
/// then `unlock` sealed in a new process; after a power cut and a restart
/// the owner (in the agent's store file) unlocks again and a new pairing
/// without the window is refused.
#[test]
fn the_keyway_binary_pairs_by_setup_code_with_the_agent_brain_over_udp_and_survives_a_restart() {
    use common::BIN;
    use keyway_lock::shell::start;
    use keyway_testkit::{pair::Lab, release::Vendor};
    let vendor = Vendor::new();
    let factory = release(&vendor.key, "1.0.0", 1, 4000, "");
    let (lab, _) = Lab::with_factory(vendor, &factory);
    lab.state_dir().new_setup_code().unwrap();
    let options = |bind: std::net::SocketAddr| {
        let mut o = lab.options(false);
        o.bind = bind;
        o.control = Some("127.0.0.1:0".parse().unwrap());
        o
    };
    let control = |lock: &keyway_lock::shell::Running, line: &str| -> serde_json::Value {
        serde_json::from_str(common::control(lock, line).trim()).unwrap()
    };
    let base = lab.tmp.path().join("owner");
    assert!(
        std::process::Command::new(BIN)
            .arg("keygen")
            .arg(&base)
            .output()
            .unwrap()
            .status
            .success()
    );
    let key = format!("{}.key", base.display());
    let run = |lock: &keyway_lock::shell::Running, args: &[&str]| {
        let target = format!("udp:{}", lock.smp);
        common::device_cli(&target, &["--owner-key", &key], args)
    };

    let lock = start(&options("127.0.0.1:0".parse().unwrap())).unwrap();
    let addr = lock.smp;
    let code = control(&lock, r#"{"cmd":"setup-code"}"#);
    let code = code["setup_code"].as_str().unwrap().to_owned();
    // Without the window, pairing is refused.
    let (ok, out, err) = run(&lock, &["pair", "--setup-code", &code]);
    assert!(!ok, "paired without the window: {out}{err}");
    assert_eq!(control(&lock, r#"{"cmd":"presence"}"#)["ok"], true);
    let (ok, out, err) = run(&lock, &["pair", "--setup-code", &code, "--name", "Alice"]);
    assert!(ok, "{out}{err}");
    let (ok, out, err) = run(&lock, &["unlock"]);
    assert!(ok, "{out}{err}");
    assert_eq!(out, "bolt unlocked\n");
    let (ok, out, err) = run(&lock, &["lock"]);
    assert!(ok, "{out}{err}");
    // The owner's client library over UDP: the log export, sealed.
    {
        let owner = SigningKey::load(std::path::Path::new(&key)).unwrap();
        let dk = lab
            .state_dir()
            .device_keypair()
            .unwrap()
            .verifying_key()
            .to_bytes();
        let mut c = Client::new(
            keyway::device::UdpTransport::connect(&format!("udp:{}", lock.smp)).unwrap(),
        )
        .with_owner(owner)
        .unwrap()
        .with_paired_lock(dk)
        .unwrap();
        let log = c.log_export(&mut |_, _| {}).unwrap();
        assert!(log.len() > 100);
        c.status().unwrap();
        c.image_state().unwrap();
    }
    lock.power_off();

    // The owner survives in agent-store.bin (0600).
    let store = lab.state().join(agent_shell::STORE_FILE);
    use std::os::unix::fs::PermissionsExt as _;
    assert_eq!(
        std::fs::metadata(&store).unwrap().permissions().mode() & 0o777,
        0o600
    );
    // The same address: the owner's paired-lock record names the target.
    let lock = start(&options(addr)).unwrap();
    let (ok, out, err) = run(&lock, &["unlock"]);
    assert!(ok, "{out}{err}");
    assert_eq!(out, "bolt unlocked\n");
    let (ok, out, err) = run(&lock, &["--json", "owners"]);
    assert!(ok, "{out}{err}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["owners"][0]["name"], "Alice");
    lock.power_off();
}

/// A stock tool's `smpmgr upgrade` in the presence window, as the agent
/// shell runs it: a plain upload, then the reset that is the consent of
/// the person at the lock. With the bolt thrown the policy postpones the
/// install: the reset is declined (rc 6, nothing resets) and the consent
/// waits in the agent's store, granted by presence; unlocking installs.
#[test]
fn window_upload_and_reset_consent_is_stored_in_the_agent_and_a_postponed_reset_is_declined() {
    let (bench, vendor) = Bench::new();
    let (mut tool, env) = stock_upload(&bench, &vendor, 8_000);
    let digest = sha(&env);
    // Past the agent's first minute after boot (no resets in it).
    bench.borrow().clock.fetch_add(61_000, Ordering::SeqCst);
    let e = tool.reset().unwrap_err();
    assert_eq!(e.rc(), Some(6), "{e}");
    {
        let b = bench.borrow();
        let c = b
            .lock
            .agent()
            .state()
            .consent()
            .copied()
            .expect("consent stored");
        assert_eq!(c.digest, digest);
        assert_eq!(c.granted_by, keyway_agent::store::GrantedBy::Presence);
        assert!(!b.events.iter().any(|e| matches!(e, Event::Reset { .. })));
    }
    // The bolt withdrawn (the keypad), the postponed install goes ahead.
    {
        let mut b = bench.borrow_mut();
        let ms = b.ms();
        let (latch, _) = b.lock.server_mut().mechanism_mut();
        latch.owner(false, ms);
    }
    assert!(tick(&bench), "install armed");
    assert!(stored_consent(&bench).is_none());
    assert_running(&mut tool, "2.0.0");
}

/// Issue 12's frozen release, through the agent shell: an owner's sealed
/// upload whose bytes were altered fails its digest; the download record
/// is cleared and the upload's binding ends, so the genuine file uploads
/// at once from its first byte (never resumed onto the bad bytes).
#[test]
fn a_corrupted_sealed_upload_leaves_nothing_behind_and_the_release_uploads_again() {
    let (bench, vendor, mut c) = Bench::with_owner();
    let env = release(&vendor, "2.0.0", 2, 20_000, "");
    let mut bad = env.clone();
    let n = bad.len();
    // A byte of the payload (the head, at the start, verifies).
    bad[n / 2] ^= 0x55;
    assert!(
        c.upload(&bad, &mut |_, _| {}).is_err(),
        "the corrupted upload verified"
    );
    {
        let b = bench.borrow();
        assert!(b.lock.server().core().state().download.is_none());
        assert!(b.lock.server().pending().is_none());
    }
    let r = c.upload(&env, &mut |_, _| {}).unwrap();
    assert_eq!(r.resumed_from, 0);
    let digest = sha(&env);
    assert_eq!(
        bench.borrow().lock.server().pending().map(|p| p.hash),
        Some(digest)
    );
}

/// Issue 12's downgrade in the window, through the agent shell: with a
/// newer release pending (the owner's), a stranger in the window uploads
/// an older signed one: refused, the newer stays pending, and the
/// stranger's reset installs nothing older.
#[test]
fn a_stranger_in_the_window_cannot_replace_a_pending_newer_release() {
    let (bench, vendor, mut c) = Bench::with_owner();
    let new = release(&vendor, "5.0.0", 5, 6_000, "");
    let old = release(&vendor, "3.0.0", 3, 6_000, "");
    c.upload(&new, &mut |_, _| {}).unwrap();
    bench.borrow_mut().press();
    let mut stranger = Client::new(Link::new(&bench, 66));
    let e = stranger.upload(&old, &mut |_, _| {}).unwrap_err();
    // An SMPv2 group error, as MCUmgr's tools read it: the image group's
    // CURRENT_VERSION_IS_NEWER (27), not only a top-level rc.
    assert!(
        matches!(
            e,
            keyway::device::DeviceError::GroupRefused {
                group: 1,
                rc: 27,
                ..
            }
        ),
        "{e:?}"
    );
    assert_eq!(
        bench
            .borrow()
            .lock
            .server()
            .pending()
            .map(|p| p.version.clone())
            .as_deref(),
        Some("5.0.0")
    );
    bench.borrow().clock.fetch_add(61_000, Ordering::SeqCst);
    let _ = stranger.reset();
    let run = c.image_state().unwrap();
    let running = run.iter().find(|s| s.active).map(|s| s.version.clone());
    assert_ne!(running.as_deref(), Some("3.0.0"));
}

/// Issue 12's "unlock during an upload", functionally, on the agent brain
/// over loopback UDP: while one session of the owner uploads a release in
/// sealed chunks, a second session of the same owner sends sealed unlocks
/// and locks; every one succeeds, some land while the upload runs, and
/// the upload completes. (The latencies are a benchmark's:
/// `cargo run --release -p keyway --example unlock_during_upload`.)
/// Two sessions of one owner at once through the shell (its store, its
/// flash file, its audit log): one uploads 96 KiB while the other unlocks
/// and locks between the upload's chunks. In memory (keyway-testkit's
/// pair): the two clients' frames interleave on one thread, every few
/// chunks a command, instead of two threads racing over loopback UDP.
#[test]
fn sealed_unlocks_succeed_while_another_session_of_the_owner_uploads() {
    use keyway_testkit::pair::Lab;
    use std::cell::Cell;
    let lab = Lab::new(1);
    let code = lab.state_dir().new_setup_code().unwrap();
    let pair = lab.pair(false);
    let a = pair.control(r#"{"cmd":"presence"}"#);
    assert!(a.contains("\"ok\":true"), "{a}");
    let owner = owner_key(0x0a);
    let paired = pair
        .client()
        .with_owner(owner.clone())
        .unwrap()
        .pair_with_code(&code, "Alice")
        .unwrap();
    let session = |t: keyway_testkit::pair::MemoryTransport| {
        let mut c = Client::new(t)
            .with_owner(owner.clone())
            .unwrap()
            .with_paired_lock(paired.device_key)
            .unwrap();
        c.open_session().unwrap();
        c
    };
    let other: std::net::SocketAddr = "127.0.0.1:50001".parse().unwrap();
    let commander = Rc::new(RefCell::new(session(pair.transport_from(other))));
    let n = Rc::new(Cell::new(0u32));
    let frames = Rc::new(Cell::new(0u32));
    let between = {
        let (commander, n, frames) = (Rc::clone(&commander), Rc::clone(&n), Rc::clone(&frames));
        move || {
            frames.set(frames.get() + 1);
            // A command after every third frame of the upload.
            if frames.get() % 3 != 0 {
                return;
            }
            let mut c = commander.borrow_mut();
            if n.get() % 2 == 0 {
                c.unlock().expect("a sealed unlock during the upload");
            } else {
                c.lock().expect("a sealed lock during the upload");
            }
            n.set(n.get() + 1);
        }
    };
    let mut uploader = session(pair.transport().with_before(between));
    let during_before = n.get();
    let file = release(&lab.vendor.key, "1.1.0", 2, 96 * 1024, "");
    let sha: [u8; 32] = Sha256::digest(&file).into();
    let report = uploader
        .upload(&file, &mut |_, _| {})
        .expect("the sealed upload completes");
    let during = n.get() - during_before;
    assert!(report.requests > 60, "{report:?}");
    assert!(
        during >= 20,
        "only {during} commands landed during the upload"
    );
    let images = uploader.image_state().unwrap();
    assert!(images.iter().any(|i| i.hash == sha), "{images:?}");
    assert!(commander.borrow().channel_counts().sealed >= u64::from(n.get()));
}

// ---- issue 12's attacks, ported from keyway-lock's tests/attacks.rs (the
// legacy brain) to the agent shell: each now exercises the agent's defence
// through the shell's wiring (frames in, events acted on, reboots).

/// `link` that, after the owner's `at`-th frame, delivers someone else's
/// `frames` (a radio attacker's, sent between the owner's) and keeps
/// their answers in `answers`.
fn injecting(
    link: Link,
    at: u64,
    mut frames: Vec<(PeerId, Vec<u8>)>,
    answers: Rc<RefCell<Vec<Vec<u8>>>>,
) -> impl Transport {
    Intercept::new(link, move |link: &mut Link, frame: &[u8], seq| {
        let a = link.exchange(frame, seq);
        if link.stats.frames_sent == at {
            for (peer, f) in frames.drain(..) {
                let answer = link.bench.borrow_mut().deliver(peer, &f);
                answers.borrow_mut().push(answer);
            }
        }
        a
    })
}

/// A plain (unsealed) image upload chunk, as a stock tool sends it.
fn plain_chunk(off: u64, data: &[u8], len: Option<u64>) -> Vec<u8> {
    use ciborium::Value;
    let mut body = vec![
        (Value::Text("off".into()), Value::from(off)),
        (Value::Text("data".into()), Value::Bytes(data.to_vec())),
    ];
    if let Some(l) = len {
        body.push((Value::Text("len".into()), Value::from(l)));
    }
    keyway_vendor::smp::encode_request(keyway_vendor::smp::Op::Write, 1, 1, 0x33, body)
}

/// The `rc` of an answer frame (`None`: success).
fn answer_rc(frame: &[u8]) -> Option<u64> {
    let body = keyway_vendor::smp::decode_body(&frame[keyway_vendor::smp::HEADER_LEN..]).unwrap();
    keyway_vendor::smp::get_u64(&body, "rc")
        .unwrap()
        .or_else(|| {
            body.iter()
                .find(|(k, _)| k.as_text() == Some("err"))
                .map(|_| u64::MAX)
        })
}

/// Was `attacks.rs`'s `injected_chunk_is_refused_and_leaves_the_upload_untouched`
/// (the legacy per-peer upload ownership): while the owner's sealed upload
/// runs, a stranger in the window injects plain chunks (at the next
/// offset, and a new first chunk): refused before the installer sees them
/// (the agent's upload binding), and the owner's upload completes intact.
#[test]
fn an_injected_chunk_is_refused_and_leaves_the_owners_sealed_upload_untouched() {
    let (bench, vendor, _) = Bench::with_owner();
    let env = release(&vendor, "2.0.0", 2, 20_000, "");
    let digest = sha(&env);
    // A person opened the window: the stranger counts as "the window".
    bench.borrow_mut().press();
    let answers = Rc::new(RefCell::new(Vec::new()));
    let evil = vec![0xee; 200];
    let t = injecting(
        Link::new(&bench, 1),
        // The handshake (2 frames), then two chunks of the upload.
        4,
        vec![
            (PeerId(66), plain_chunk(2_000, &evil, None)),
            (PeerId(66), plain_chunk(0, &evil, Some(env.len() as u64))),
        ],
        answers.clone(),
    );
    let dk = bench.borrow().lock.agent().device_public_key();
    let clock = bench.borrow().clock.clone();
    let mut c = Client::new(t)
        .with_owner(owner_key(0xa1))
        .unwrap()
        .with_channel_env([0x5a; 32], Box::new(move || clock.load(Ordering::SeqCst)))
        .with_paired_lock(dk)
        .unwrap();
    c.upload(&env, &mut |_, _| {}).unwrap();
    let answers = answers.borrow();
    assert_eq!(answers.len(), 2, "the injection ran");
    for a in answers.iter() {
        assert!(answer_rc(a).is_some(), "an injected chunk was taken");
    }
    assert_eq!(
        bench.borrow().lock.server().pending().map(|p| p.hash),
        Some(digest),
        "the owner's upload is intact"
    );
}

/// Was `attacks.rs`'s `unauthenticated_reset_is_refused` and
/// `unauthenticated_resets_do_not_evict_unlock_records` (130 resets used
/// to push the owner's unlock records out of the audit log): with the
/// window closed a stranger's reset is refused and resets nothing; with
/// the window opened once, 130 resets from 50 addresses reset the lock
/// once (the window's reset consumes it); an owner's resets are
/// rate-limited; the owner's three unlocks are all still in the log.
#[test]
fn resets_need_a_press_each_so_130_resets_do_not_evict_the_unlock_records() {
    let (bench, _, mut c) = Bench::with_owner();
    for i in 0..6 {
        if i % 2 == 0 {
            c.unlock().unwrap();
        } else {
            c.lock().unwrap();
        }
    }
    let resets = |b: &Shared| {
        b.borrow()
            .events
            .iter()
            .filter(|e| matches!(e, Event::Reset { .. }))
            .count()
    };
    let reset = keyway_vendor::smp::encode_request(keyway_vendor::smp::Op::Write, 0, 5, 9, vec![]);
    // Window closed: refused (ACCESSDENIED), nothing resets.
    let a = bench.borrow_mut().deliver(PeerId(66), &reset);
    assert_eq!(answer_rc(&a), Some(11));
    assert_eq!(resets(&bench), 0);
    // One press, 130 resets.
    bench.borrow_mut().press();
    for i in 0..130u64 {
        bench.borrow().clock.fetch_add(100, Ordering::SeqCst);
        let _ = bench.borrow_mut().deliver(PeerId(100 + i % 50), &reset);
    }
    assert_eq!(resets(&bench), 1, "one press, one reset");
    // The owner's resets: one a minute (the first a minute after boot).
    let mut ran = 0;
    for _ in 0..10 {
        if c.reset().is_ok() {
            ran += 1;
        }
    }
    bench.borrow().clock.fetch_add(61_000, Ordering::SeqCst);
    for _ in 0..10 {
        if c.reset().is_ok() {
            ran += 1;
        }
    }
    assert_eq!(ran, 1, "20 owner resets, one a minute after boot: one ran");
    let log = c.log_export(&mut |_, _| {}).unwrap();
    let text = keyway_vendor::log::show_text(&keyway_vendor::log::parse(&log), None);
    let unlocks = text.matches("unlocked: owner command").count();
    println!(
        "after 130 resets in one window and 20 owner resets: {} resets, {unlocks} owner unlocks in the log",
        resets(&bench)
    );
    assert_eq!(unlocks, 3, "{text}");
}

/// Was `attacks.rs`'s `consent_survives_a_power_cut_and_a_reset_then_the_install_proceeds`
/// (consent in `owners.json`): the owner's sealed consent, postponed by
/// the thrown bolt, lives in the agent's store flash; after a power cut
/// (a new shell from the two flash images) the lock still holds it and
/// installs by itself once the owner unlocks.
#[test]
fn sealed_consent_survives_a_power_cut_then_the_install_proceeds() {
    let (bench, vendor, mut c) = Bench::with_owner();
    postponed(&mut c, &vendor, 8_000, "Fix.");
    // The power cut: everything in RAM is gone; the shell starts again
    // from the device flash and the agent's store flash.
    bench.borrow_mut().power_cut();
    assert!(stored_consent(&bench).is_some(), "the consent was lost");
    c.unlock().unwrap();
    assert!(tick(&bench), "install armed");
    let s = c.status().unwrap();
    assert_eq!(text(&s, "version"), Some("2.0.0"));
}

/// Was `attacks.rs`'s `a_reset_keeps_the_presence_window_a_power_cut_ends_it`
/// (the legacy server kept the window across a soft reset): now a reset
/// the window authorized consumes the window, and every boot starts the
/// agent with it closed; a stock tool's "test, then reset" still installs
/// (the test only arms it, the reset boots it).
#[test]
fn a_window_test_then_reset_installs_and_the_reset_closes_the_window() {
    let (bench, vendor) = Bench::new();
    {
        let mut b = bench.borrow_mut();
        let ms = b.ms();
        let (latch, _) = b.lock.server_mut().mechanism_mut();
        latch.owner(false, ms);
    }
    let (mut tool, env) = stock_upload(&bench, &vendor, 8_000);
    let digest = sha(&env);
    tool.image_test(&digest).unwrap();
    assert!(
        !bench
            .borrow()
            .events
            .iter()
            .any(|e| matches!(e, Event::Reset { .. })),
        "the test only arms the install"
    );
    assert!(bench.borrow().lock.agent().window_open(bench.borrow().ms()));
    tool.reset().unwrap();
    assert!(!bench.borrow().lock.agent().window_open(bench.borrow().ms()));
    assert_running(&mut tool, "2.0.0");
    // The window is gone: a second reset is refused.
    assert_eq!(tool.reset().unwrap_err().rc(), Some(11));
}

/// Was `attacks.rs`'s `authority_matrix_every_command_and_authority`
/// (the legacy server's table): every command against every authority,
/// through the shell, each on a fresh lock with a paired owner. A request
/// is refused for want of authority with rc 11; the old unauthenticated
/// `challenge` (7) and `pair KEY` (8) are not served to anyone (rc 8).
/// Anything else (an answer, or a refusal for another reason, such as
/// "nothing pending" or the owner's reset limit) means it was admitted.
#[test]
fn authority_matrix_every_command_and_authority_through_the_shell() {
    use ciborium::Value;
    use keyway_vendor::smp::Op;
    #[derive(Clone, Copy, Debug, PartialEq)]
    enum Who {
        Nobody,
        Window,
        Owner,
        WindowAndLongPress,
    }
    use Who::*;
    let t = |s: &str| Value::Text(s.into());
    let (_, vendor) = Bench::new();
    let env = release(&vendor, "2.0.0", 2, 3_000, "");
    let first_chunk = vec![
        (t("off"), Value::from(0u64)),
        (t("data"), Value::Bytes(env[..1000].to_vec())),
        (t("len"), Value::from(env.len() as u64)),
        (t("sha"), Value::Bytes(Sha256::digest(&env).to_vec())),
    ];
    let all = [Nobody, Window, Owner, WindowAndLongPress];
    let window = [Window, Owner, WindowAndLongPress];
    let owner = [Owner];
    let none: [Who; 0] = [];
    type Row<'a> = (&'a str, u16, u8, Op, Vec<(Value, Value)>, &'a [Who]);
    #[rustfmt::skip]
    let table: Vec<Row> = vec![
        ("echo", 0, 0, Op::Write, vec![(t("d"), t("hi"))], &all),
        ("MCUmgr params", 0, 6, Op::Read, vec![], &all),
        ("OS info", 0, 7, Op::Read, vec![], &window),
        ("reset", 0, 5, Op::Write, vec![], &window),
        ("image state read", 1, 0, Op::Read, vec![], &all),
        ("image state write", 1, 0, Op::Write, vec![(t("confirm"), Value::Bool(true))], &window),
        ("image upload", 1, 1, Op::Write, first_chunk, &window),
        ("image erase", 1, 5, Op::Write, vec![], &window),
        ("status", 64, 0, Op::Read, vec![], &owner),
        ("lock", 64, 1, Op::Write, vec![], &owner),
        ("unlock", 64, 2, Op::Write, vec![], &owner),
        ("presence", 64, 3, Op::Read, vec![], &window),
        ("notes", 64, 4, Op::Read, vec![], &owner),
        ("consent", 64, 5, Op::Write, vec![(t("accept"), Value::Bool(true))], &owner),
        ("log export", 64, 6, Op::Read, vec![(t("off"), Value::from(0u8))], &owner),
        ("challenge (old)", 64, 7, Op::Read, vec![], &none),
        ("pair KEY (old)", 64, 8, Op::Write, vec![(t("key"), Value::Bytes(vec![7; 32]))], &none),
        ("factory reset", 64, 9, Op::Write, vec![], &[WindowAndLongPress]),
        ("settings", 64, 10, Op::Write, vec![(t("auto_install_cve"), Value::Bool(true))], &owner),
        ("owners", 64, 16, Op::Read, vec![], &owner),
        ("unpair", 64, 17, Op::Write, vec![(t("key_id"), Value::Bytes(vec![0; 8]))], &owner),
    ];
    let mut wrong = Vec::new();
    let mut n = 0;
    for (name, group, id, op, body, allowed) in &table {
        for who in all {
            n += 1;
            let (bench, _) = Bench::new();
            let mut owner_client = paired(&bench, 1, 0xa1);
            if matches!(who, Window | WindowAndLongPress) {
                bench.borrow_mut().press();
            }
            if who == WindowAndLongPress {
                let ms = bench.borrow().ms();
                bench.borrow_mut().lock.button(ms, Press::Long).unwrap();
            }
            let c = if who == Owner {
                owner_client.request(name, *op, *group, *id, body.clone())
            } else {
                // A plain client: no owner key, no session.
                let mut plain = Client::new(Link::new(&bench, 66));
                plain.request(name, *op, *group, *id, body.clone())
            };
            let rc = match &c {
                Ok(_) => None,
                Err(e) => e.rc(),
            };
            let admitted = !matches!(rc, Some(11) | Some(8));
            if admitted != allowed.contains(&who) {
                wrong.push(format!("{name} by {who:?}: admitted {admitted}: {c:?}"));
            }
            if *group == 64 && (*id == 7 || *id == 8) {
                assert_eq!(rc, Some(8), "{name} by {who:?}: {c:?}");
            }
            if who != Owner && *group == 64 && *id == 2 {
                assert_eq!(bolt(&bench), keyway_lock::lock::Bolt::Locked);
            }
        }
    }
    println!("authority matrix through the shell: {n} (command, authority) pairs");
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// Was `attacks.rs`'s `owner_commands_succeed_while_another_peer_floods_challenges`
/// (the legacy global nonce list of 8): a stranger floods the lock with
/// session handshakes and plain requests (20 before each of the owner's
/// commands, 5 ms apart: 200 a second) while the owner, in a session,
/// unlocks and locks 50 times: at least 9 in 10 succeed, and the flood is
/// rate-limited (the agent's per-peer buckets).
#[test]
fn owner_commands_succeed_while_another_peer_floods_the_lock() {
    let (bench, _, mut c) = Bench::with_owner();
    let mut flooder = client(&bench, 66, 0x66);
    let echo = keyway_vendor::smp::encode_request(
        keyway_vendor::smp::Op::Write,
        0,
        0,
        1,
        vec![(
            ciborium::Value::Text("d".into()),
            ciborium::Value::Text("x".into()),
        )],
    );
    let (mut ok, mut refused, mut sent) = (0, 0, 0);
    let rounds = 50;
    for round in 0..rounds {
        for i in 0..20 {
            bench.borrow().clock.fetch_add(5, Ordering::SeqCst);
            sent += 1;
            if i % 2 == 0 {
                // A handshake toward a session it can never finish.
                if flooder.open_session().is_err() {
                    refused += 1;
                }
            } else {
                let a = bench.borrow_mut().deliver(PeerId(66), &echo);
                if answer_rc(&a).is_some() {
                    refused += 1;
                }
            }
        }
        let r = if round % 2 == 0 { c.unlock() } else { c.lock() };
        if r.is_ok() {
            ok += 1;
        }
    }
    println!(
        "{rounds} owner commands during a flood of {sent} requests at 200/s: {ok} succeeded, {refused} flood requests refused"
    );
    assert!(
        ok * 10 >= rounds * 9,
        "only {ok} of {rounds} owner commands succeeded"
    );
    assert!(refused > 0, "the flooding peer was never limited");
}

/// `link`, flipping one byte of the `nth` frame it sends, near its end
/// (inside a chunk's data: radio noise, or an attacker in the path).
fn corrupting(link: Link, nth: u64) -> impl Transport {
    Intercept::new(link, move |link: &mut Link, frame: &[u8], seq| {
        if link.stats.frames_sent + 1 == nth {
            let mut f = frame.to_vec();
            let n = f.len();
            f[n - 10] ^= 0x55;
            return link.exchange(&f, seq);
        }
        link.exchange(frame, seq)
    })
}

/// Was `attacks.rs`'s `failed_upload_clears_the_download_record_and_the_release_uploads_again`,
/// through the shell: a stock tool's upload in the window whose 5th chunk
/// is corrupted on the way (the first chunk announced the good file's
/// SHA-256) fails its digest at the end; the device core clears the
/// journal's download record, so the same release uploads again at once
/// from its first byte, and after a power cut too.
#[test]
fn a_corrupted_chunk_clears_the_download_record_and_the_release_uploads_again() {
    for cut in [false, true] {
        let (bench, vendor) = Bench::new();
        bench.borrow_mut().press();
        let env = release(&vendor, "2.0.0", 2, 20_000, "");
        let mut tool = Client::new(corrupting(Link::new(&bench, 7), 5));
        assert!(
            tool.upload(&env, &mut |_, _| {}).is_err(),
            "the corrupted upload verified"
        );
        assert!(
            bench
                .borrow()
                .lock
                .server()
                .core()
                .state()
                .download
                .is_none(),
            "the failed download is still recorded"
        );
        if cut {
            let mut b = bench.borrow_mut();
            b.power_cut();
            b.press();
        }
        let mut tool = Client::new(Link::new(&bench, 7));
        let r = tool.upload(&env, &mut |_, _| {}).unwrap();
        assert_eq!(r.resumed_from, 0, "cut {cut}");
        let digest = sha(&env);
        assert_eq!(
            bench.borrow().lock.server().pending().map(|p| p.hash),
            Some(digest),
            "cut {cut}"
        );
    }
}

/// A release whose notes name CVEs of the given severities.
fn release_with_cves(key: &SigningKey, version: &str, sequence: u64, cves: &[&str]) -> Vec<u8> {
    EnvelopeBuilder {
        sequence,
        version: version.parse().unwrap(),
        vendor_domain: VENDOR.into(),
        class_name: CLASS.into(),
        payload: (0..6000)
            .map(|i| (i * 13 + sequence as usize) as u8)
            .collect(),
        notes: Some("Security fixes.".into()),
        cves: cves.iter().map(|c| c.parse().unwrap()).collect(),
        keys: vec![key.clone()],
        ..Default::default()
    }
    .build()
    .unwrap()
    .envelope
}

/// What the shell does on its timer thread: the device core's tick
/// (a postponed or self-consented install may go), then a reset it asked
/// for.
/// A stock tool (no owner key, peer 7) in the window a press opened.
fn stock_tool(bench: &Shared) -> Client<Link> {
    bench.borrow_mut().press();
    Client::new(Link::new(bench, 7))
}

/// A [`stock_tool`] that uploaded release 2.0.0 (`len` bytes, no notes):
/// the tool and the release.
fn stock_upload(bench: &Shared, vendor: &SigningKey, len: usize) -> (Client<Link>, Vec<u8>) {
    let mut tool = stock_tool(bench);
    let env = release(vendor, "2.0.0", 2, len, "");
    tool.upload(&env, &mut |_, _| {}).unwrap();
    (tool, env)
}

/// `env` uploaded by the owner's `c`, its notes read and consent given:
/// the consent's answer.
fn consented(c: &mut Client<Link>, env: &[u8]) -> Vec<(ciborium::Value, ciborium::Value)> {
    c.upload(env, &mut |_, _| {}).unwrap();
    c.notes().unwrap();
    c.consent(true).unwrap()
}

/// Release 2.0.0 (`len` bytes, `notes`) [`consented`] to by the owner's
/// `c`, and the answer says it is postponed (the bolt is thrown): the
/// release.
fn postponed(c: &mut Client<Link>, vendor: &SigningKey, len: usize, notes: &str) -> Vec<u8> {
    let env = release(vendor, "2.0.0", 2, len, notes);
    let a = consented(c, &env);
    assert_eq!(text(&a, "state"), Some("postponed"));
    env
}

/// An envelope's SHA-256.
fn sha(b: &[u8]) -> [u8; 32] {
    Sha256::digest(b).into()
}

/// The consent in the agent's store.
fn stored_consent(bench: &Shared) -> Option<keyway_agent::store::Consent> {
    bench.borrow().lock.agent().state().consent().copied()
}

/// A text field of an answer map.
fn text<'a>(m: &'a [(ciborium::Value, ciborium::Value)], key: &str) -> Option<&'a str> {
    keyway_vendor::smp::get_text(m, key).unwrap()
}

/// The `update` map of the lock's status, as `c` reads it.
fn update_of(c: &mut Client<Link>) -> Vec<(ciborium::Value, ciborium::Value)> {
    let st = c.status().unwrap();
    keyway_vendor::smp::get(&st, "update")
        .unwrap()
        .as_map()
        .unwrap()
        .clone()
}

fn tick(bench: &Shared) -> bool {
    let mut b = bench.borrow_mut();
    let ms = b.ms();
    b.lock.server_mut().tick(ms);
    b.lock.after_tick();
    let reset = b.lock.server_mut().poll_reset().is_some();
    if reset {
        b.lock.after_boot(ms).unwrap();
    }
    reset
}

/// Was keyway-lock `keyway_group.rs`'s `auto_install_cve_consents_for_a_high_severity_fix_only`
/// (settings in `owners.json`): the owner's sealed settings (in the
/// agent's store) let a critical fix install by itself, bolt locked or
/// not, while a medium one waits for consent.
#[test]
fn auto_install_cve_consents_for_a_high_severity_fix_only() {
    let (bench, vendor, mut c) = Bench::with_owner();
    let set = c.settings(Some(true), Some(false)).unwrap();
    let s = keyway_vendor::smp::get(&set, "settings")
        .unwrap()
        .as_map()
        .unwrap()
        .clone();
    assert_eq!(
        keyway_vendor::smp::get_bool(&s, "auto_install_cve").unwrap(),
        Some(true)
    );
    let medium = release_with_cves(&vendor, "2.0.0", 2, &["CVE-2099-0001:medium"]);
    c.upload(&medium, &mut |_, _| {}).unwrap();
    assert!(!tick(&bench), "a medium fix installed without consent");
    let u = update_of(&mut c);
    assert_eq!(text(&u, "state"), Some("awaiting-consent"));
    // Refused (after reading the notes): erased.
    c.notes().unwrap();
    c.consent(false).unwrap();
    assert!(bench.borrow().lock.server().pending().is_none());
    // A critical fix installs by itself, the bolt locked.
    let critical = release_with_cves(
        &vendor,
        "2.1.0",
        3,
        &["CVE-2099-0002:low", "CVE-2099-0003:critical"],
    );
    c.upload(&critical, &mut |_, _| {}).unwrap();
    // (The lock arms and resets by itself, at the upload's end or on its
    // next tick.)
    tick(&bench);
    assert_eq!(bolt(&bench), keyway_lock::lock::Bolt::Locked);
    assert_running(&mut c, "2.1.0");
}

/// Was keyway-lock `keyway_group.rs`'s `consent_for_one_update_carried_over_to_a_replacement_is_refused`:
/// the owner's consent is bound to the envelope's digest in the agent's
/// store; a newer release uploaded over the consented one is not
/// installed on that consent (it waits for its own).
#[test]
fn consent_for_one_update_is_not_carried_over_to_a_replacement() {
    let (bench, vendor, mut c) = Bench::with_owner();
    let first = postponed(&mut c, &vendor, 6_000, "First.");
    let digest = sha(&first);
    assert_eq!(stored_consent(&bench).map(|c| c.digest), Some(digest));
    // A replacement (newer) over it, by the owner.
    let second = release(&vendor, "3.0.0", 3, 6_000, "Second.");
    c.upload(&second, &mut |_, _| {}).unwrap();
    c.unlock().unwrap();
    assert!(
        !tick(&bench),
        "the replacement installed on the old consent"
    );
    let u = update_of(&mut c);
    assert_eq!(text(&u, "version"), Some("3.0.0"));
    assert_eq!(text(&u, "state"), Some("awaiting-consent"));
    assert_running(&mut c, "1.0.0");
}

/// Was keyway-lock `keyway_group.rs`'s `postponed_then_installed_when_battery_and_bolt_allow`,
/// through the shell: a stock tool's test boot in the window with the
/// battery low is refused rc 6 (postponed) and the consent is kept in the
/// agent's store; the owner's status gives the reason (battery, then the
/// bolt); once both allow it, the lock installs by itself on a tick.
#[test]
fn postponed_then_installed_when_battery_and_bolt_allow() {
    let (bench, vendor, mut owner) = Bench::with_owner();
    let env = EnvelopeBuilder {
        sequence: 2,
        version: "2.0.0".parse().unwrap(),
        vendor_domain: VENDOR.into(),
        class_name: CLASS.into(),
        payload: vec![0x42; 6_000],
        min_battery_mwh: Some(9_000),
        keys: vec![vendor.clone()],
        ..Default::default()
    }
    .build()
    .unwrap()
    .envelope;
    let digest = sha(&env);
    let mut tool = stock_tool(&bench);
    tool.upload(&env, &mut |_, _| {}).unwrap();
    // deadbolt-2: 3200 mV is 6,240 mWh.
    {
        let mut b = bench.borrow_mut();
        let ms = b.ms();
        b.lock.server_mut().mechanism_mut().0.battery(3200, ms);
    }
    let e = tool.image_test(&digest).unwrap_err();
    assert_eq!(e.rc(), Some(6), "{e}");
    assert_eq!(
        stored_consent(&bench).map(|c| c.digest),
        Some(digest),
        "the consent is kept"
    );
    let reason = |c: &mut Client<Link>| {
        let u = update_of(c);
        (
            text(&u, "state").map(str::to_owned),
            text(&u, "reason").map(str::to_owned),
        )
    };
    let (state, why) = reason(&mut owner);
    assert_eq!(state.as_deref(), Some("postponed"));
    assert!(why.unwrap_or_default().contains("battery"));
    assert!(!tick(&bench), "nothing installs yet");
    // Battery raised: now the bolt is the reason.
    {
        let mut b = bench.borrow_mut();
        let ms = b.ms();
        b.lock.server_mut().mechanism_mut().0.battery(3600, ms);
    }
    assert!(!tick(&bench));
    let (_, why) = reason(&mut owner);
    assert!(why.unwrap_or_default().contains("the bolt is locked"));
    // The keypad withdraws the bolt: the next tick installs and resets.
    {
        let mut b = bench.borrow_mut();
        let ms = b.ms();
        b.lock
            .server_mut()
            .mechanism_mut()
            .0
            .keypad(keyway_lock::lock::DEFAULT_PIN, ms);
    }
    assert!(tick(&bench), "the lock reset itself");
    let run = tool.image_state().unwrap();
    assert!(
        run.iter()
            .any(|s| s.active && s.confirmed && s.version == "2.0.0"),
        "{run:?}"
    );
    assert!(stored_consent(&bench).is_none());
}

/// Was keyway-lock `keyway_group.rs`'s `refused_erase_of_the_running_slot_keeps_the_pending_update_and_its_consent`:
/// the owner's sealed erase of the running slot is refused and changes
/// nothing: the pending update and the consent in the agent's store stay,
/// and unlocking installs it.
#[test]
fn refused_erase_of_the_running_slot_keeps_the_pending_update_and_its_consent() {
    use ciborium::Value;
    let (bench, vendor, mut c) = Bench::with_owner();
    let env = release(&vendor, "2.0.0", 2, 6_000, "Fix.");
    consented(&mut c, &env);
    let running = bench.borrow().lock.server().core().running().unwrap();
    let e = c
        .request(
            "erase",
            keyway_vendor::smp::Op::Write,
            1,
            5,
            vec![(Value::Text("slot".into()), Value::from(u64::from(running)))],
        )
        .unwrap_err();
    assert!(
        e.rc().is_some() || matches!(e, keyway::device::DeviceError::GroupRefused { .. }),
        "{e:?}"
    );
    assert!(
        bench.borrow().lock.server().pending().is_some(),
        "the refused erase dropped the update"
    );
    assert!(stored_consent(&bench).is_some(), "and its consent");
    c.unlock().unwrap();
    assert!(tick(&bench), "installed on the kept consent");
    assert_running(&mut c, "2.0.0");
}

/// The owner `tag`'s client for a lock it paired with, over `t`.
fn owner_over<T: Transport>(bench: &Shared, t: T, tag: u8) -> Client<T> {
    let dk = bench.borrow().lock.agent().device_public_key();
    let clock = bench.borrow().clock.clone();
    Client::new(t)
        .with_owner(owner_key(tag))
        .unwrap()
        .with_channel_env(
            [tag ^ 0x5a; 32],
            Box::new(move || clock.load(Ordering::SeqCst)),
        )
        .with_paired_lock(dk)
        .unwrap()
}

/// Was keyway-lock `keyway_group.rs`'s `upload_begun_by_a_forgotten_owner_cannot_continue_after_a_factory_reset`:
/// an owner's sealed upload is cut short; the lock is factory reset (the
/// window and the long press); the forgotten owner can no longer open a
/// session to finish it, and without the window nobody else may: no
/// update is left pending.
#[test]
fn upload_begun_by_a_forgotten_owner_cannot_continue_after_a_factory_reset() {
    let (bench, vendor, _) = Bench::with_owner();
    let env = release(&vendor, "2.0.0", 2, 20_000, "");
    // The handshake (2 frames) and 4 chunks, then the link dies.
    let cut = TransportError::NoAnswer {
        peer: "cut".into(),
        tries: 1,
        timeout_ms: 0,
    };
    let mut partial = owner_over(&bench, common::dying(Link::new(&bench, 1), 6, cut), 0xa1);
    assert!(partial.upload(&env, &mut |_, _| {}).is_err());
    // Factory reset at the lock: the window and the long press.
    bench.borrow_mut().press();
    {
        let mut b = bench.borrow_mut();
        let ms = b.ms();
        b.lock.button(ms, Press::Long).unwrap();
    }
    let mut person = Client::new(Link::new(&bench, 9));
    person.factory_reset().unwrap();
    assert_eq!(bench.borrow().lock.agent().state().owner_count(), 0);
    bench.borrow_mut().lock.close_window();
    // The forgotten owner cannot finish it; nor can anyone without the
    // window.
    let mut gone = owner_over(&bench, Link::new(&bench, 1), 0xa1);
    assert!(gone.upload(&env, &mut |_, _| {}).is_err());
    let mut stranger = Client::new(Link::new(&bench, 1));
    assert!(
        stranger
            .upload(&env, &mut |_, _| {})
            .unwrap_err()
            .access_denied()
    );
    assert!(bench.borrow().lock.server().pending().is_none());
}

/// Was keyway-lock `keyway_group.rs`'s `no_forced_update_after_upload_reset_and_power_cut`:
/// a stock tool uploads in the window and the person leaves; a reset
/// without the window is refused (and would be no consent), a power cut
/// boots the old image again, and the new one is still offered, not
/// armed; a test boot without the window is refused.
#[test]
fn no_forced_update_after_upload_reset_and_power_cut() {
    let (bench, vendor) = Bench::new();
    let (mut tool, env) = stock_upload(&bench, &vendor, 6_000);
    let digest = sha(&env);
    bench.borrow_mut().lock.close_window();
    assert_eq!(tool.reset().unwrap_err().rc(), Some(11));
    // A power cut at the next flash operation (the audit log's write),
    // then the power-on.
    {
        let mut b = bench.borrow_mut();
        let ms = b.ms();
        b.lock.server_mut().core_mut().plan_power_cut(0, 1);
        let _ = b.lock.server_mut().core_mut().commit_audit(4);
        assert!(b.lock.server().lost_power());
        b.lock.server_mut().poll_reset().unwrap().unwrap();
        b.lock.after_boot(ms).unwrap();
    }
    let run = tool.image_state().unwrap();
    assert!(
        run.iter().any(|s| s.active && s.version == "1.0.0"),
        "{run:?}"
    );
    assert!(!run.iter().any(|s| s.pending), "armed: {run:?}");
    assert_eq!(
        bench.borrow().lock.server().pending().map(|p| p.sequence),
        Some(2)
    );
    assert!(stored_consent(&bench).is_none());
    assert_eq!(tool.image_test(&digest).unwrap_err().rc(), Some(11));
    assert!(!tick(&bench));
    assert_running(&mut tool, "1.0.0");
}

/// Asserts that the lock's image state names `version` as the active image.
fn assert_running<T: keyway::device::Transport>(c: &mut Client<T>, version: &str) {
    let run = c.image_state().unwrap();
    assert!(
        run.iter().any(|s| s.active && s.version == version),
        "{version} is not running: {run:?}"
    );
}
