//! The owner's client (`keyway_cli::device::Client`) against keyway-lock's
//! agent shell (`keyway_lock::agent_shell::AgentLock`) in memory: the real
//! agent around the real device core (installer, journal, boot, audit
//! log, the bolt), on an in-memory transport. Pairing by the setup code,
//! sealed status/unlock/lock, a sealed upload with notes and consent that
//! the installer takes from the agent's store (after a reboot too), and
//! the window alone never unlocking.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use keyway::encode::EnvelopeBuilder;
use keyway::keys::{Algorithm, SigningKey};
use keyway_agent::agent::{Event, Now, Press};
use keyway_agent::limits::PeerId;
use keyway_audit::Time;
use keyway_channel::SigningKey as KeyPair;
use keyway_channel::pairing::MIN_ITERATIONS;
use keyway_channel::{SetupCode, StoredVerifier};
use keyway_cli::device::{Client, Stats, Transport, TransportError};
use keyway_lock::agent_shell::{self, AgentLock};
use keyway_lock::device::{Lock as Device, Trust, blank_flash};
use keyway_lock::server::Server;
use keyway_suit::{PublicKey, TrustAnchors};
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

fn now(ms: u64) -> Now {
    Now {
        ms,
        time: Time {
            rtc: 1_760_000_000 + ms / 1000,
            boot: 1,
        },
    }
}

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

impl std::fmt::Debug for Link {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Link").field("peer", &self.peer).finish()
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
        keyway_cli::device::UDP_MTU
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
    Client::new(Link {
        bench: bench.clone(),
        peer: PeerId(peer),
        stats: Stats::default(),
    })
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
    b.borrow().lock.server().latch().bolt()
}

#[test]
fn pairs_by_setup_code_and_runs_status_unlock_lock_sealed_on_the_device_core() {
    let (bench, _) = Bench::new();
    let mut c = paired(&bench, 1, 0xa1);
    assert_eq!(bench.borrow().lock.agent().state().owner_count(), 1);
    let s = c.status().unwrap();
    assert_eq!(keyway::smp::get_text(&s, "version").unwrap(), Some("1.0.0"));
    assert_eq!(keyway::smp::get_text(&s, "bolt").unwrap(), Some("locked"));
    let u = c.unlock().unwrap();
    assert_eq!(keyway::smp::get_text(&u, "bolt").unwrap(), Some("unlocked"));
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
    let (bench, vendor) = Bench::new();
    let mut c = paired(&bench, 1, 0xa1);
    let env = release(&vendor, "2.0.0", 2, 20_000, "Fixes the lock.");
    let digest: [u8; 32] = Sha256::digest(&env).into();
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
    assert_eq!(
        keyway::smp::get_text(&a, "state").unwrap(),
        Some("postponed"),
        "{a:?}"
    );
    // The bolt is thrown: the policy postpones the install; the consent
    // waits in the agent's store, bound to the envelope.
    let stored = bench.borrow().lock.agent().state().consent().copied();
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
    {
        let mut b = bench.borrow_mut();
        let ms = b.ms();
        b.lock.server_mut().tick(ms);
        b.lock.after_tick();
        assert!(b.lock.server_mut().poll_reset().is_some(), "install armed");
        b.lock.after_boot(ms).unwrap();
        assert!(b.lock.agent().state().consent().is_none());
    }
    let s = c.status().unwrap();
    assert_eq!(keyway::smp::get_text(&s, "version").unwrap(), Some("2.0.0"));
    // Each boot started the agent again: the client opened a new session
    // after each (its old one was unknown to the rebooted agent).
    assert_eq!(c.channel_counts().handshakes, 3);
}

/// The `keyway` binary against `keyway-lock`'s shell with `--brain
/// agent` over loopback UDP: the setup code read off the label (the
/// control socket), the window opened by the button, `pair --setup-code`,
/// then `unlock` sealed in a new process; after a power cut and a restart
/// the owner (in the agent's store file) unlocks again and a new pairing
/// without the window is refused.
#[test]
fn the_keyway_binary_pairs_by_setup_code_with_the_agent_brain_over_udp_and_survives_a_restart() {
    use keyway_lock::shell::{Brain, Options, start};
    use keyway_lock::state::StateDir;
    const BIN: &str = env!("CARGO_BIN_EXE_keyway");
    let tmp = tempfile::tempdir().unwrap();
    let vendor = SigningKey::generate(Algorithm::Ed25519).unwrap();
    let vendor_pub = tmp.path().join("vendor.pub");
    std::fs::write(&vendor_pub, vendor.public_key().to_spki_pem().unwrap()).unwrap();
    let factory = tmp.path().join("factory.suit");
    std::fs::write(&factory, release(&vendor, "1.0.0", 1, 4000, "")).unwrap();
    let dir = StateDir::new(tmp.path().join("lock"));
    dir.provision(&[vendor_pub], 1, VENDOR, CLASS, Some(&factory), false)
        .unwrap();
    dir.new_setup_code().unwrap();
    let options = |bind: std::net::SocketAddr| {
        let mut o = Options::new(tmp.path().join("lock"), bind);
        o.control = Some("127.0.0.1:0".parse().unwrap());
        o.brain = Brain::Agent;
        o
    };
    let control = |lock: &keyway_lock::shell::Running, line: &str| -> serde_json::Value {
        use std::io::{BufRead as _, Write as _};
        let mut c = std::net::TcpStream::connect(lock.control.unwrap()).unwrap();
        writeln!(c, "{line}").unwrap();
        let mut answer = String::new();
        std::io::BufReader::new(c).read_line(&mut answer).unwrap();
        serde_json::from_str(answer.trim()).unwrap()
    };
    let base = tmp.path().join("owner");
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
        let o = std::process::Command::new(BIN)
            .args(["device", "--target", &target, "--owner-key", &key])
            .args(args)
            .output()
            .unwrap();
        (
            o.status.success(),
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
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
        let dk = StateDir::new(tmp.path().join("lock"))
            .device_keypair()
            .unwrap()
            .verifying_key()
            .to_bytes();
        let mut c = Client::new(
            keyway_cli::device::UdpTransport::connect(&format!("udp:{}", lock.smp)).unwrap(),
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
    let store = tmp.path().join("lock").join(agent_shell::STORE_FILE);
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
    bench.borrow_mut().press();
    let mut tool = Client::new(Link {
        bench: bench.clone(),
        peer: PeerId(7),
        stats: Stats::default(),
    });
    let env = release(&vendor, "2.0.0", 2, 8_000, "");
    let digest: [u8; 32] = Sha256::digest(&env).into();
    tool.upload(&env, &mut |_, _| {}).unwrap();
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
        let (latch, _) = b.lock.server_mut().latch_mut();
        latch.owner(false, ms);
        b.lock.server_mut().tick(ms);
        b.lock.after_tick();
        assert!(b.lock.server_mut().poll_reset().is_some(), "install armed");
        b.lock.after_boot(ms).unwrap();
        assert!(b.lock.agent().state().consent().is_none());
    }
    let run = tool.image_state().unwrap();
    assert!(
        run.iter().any(|s| s.active && s.version == "2.0.0"),
        "{run:?}"
    );
}

/// Issue 12's frozen release, through the agent shell: an owner's sealed
/// upload whose bytes were altered fails its digest; the download record
/// is cleared and the upload's binding ends, so the genuine file uploads
/// at once from its first byte (never resumed onto the bad bytes).
#[test]
fn a_corrupted_sealed_upload_leaves_nothing_behind_and_the_release_uploads_again() {
    let (bench, vendor) = Bench::new();
    let mut c = paired(&bench, 1, 0xa1);
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
        assert!(b.lock.server().lock().state().download.is_none());
        assert!(b.lock.server().pending().is_none());
    }
    let r = c.upload(&env, &mut |_, _| {}).unwrap();
    assert_eq!(r.resumed_from, 0);
    let digest: [u8; 32] = Sha256::digest(&env).into();
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
    let (bench, vendor) = Bench::new();
    let mut c = paired(&bench, 1, 0xa1);
    let new = release(&vendor, "5.0.0", 5, 6_000, "");
    let old = release(&vendor, "3.0.0", 3, 6_000, "");
    c.upload(&new, &mut |_, _| {}).unwrap();
    bench.borrow_mut().press();
    let mut stranger = Client::new(Link {
        bench: bench.clone(),
        peer: PeerId(66),
        stats: Stats::default(),
    });
    let e = stranger.upload(&old, &mut |_, _| {}).unwrap_err();
    // An SMPv2 group error, as MCUmgr's tools read it: the image group's
    // CURRENT_VERSION_IS_NEWER (27), not only a top-level rc.
    assert!(
        matches!(
            e,
            keyway_cli::device::DeviceError::GroupRefused {
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
