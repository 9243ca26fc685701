//! Shared by the TUF tests: a signed repository of real envelopes, and a
//! tiny HTTP server (a std TcpListener thread) that serves it — or lies.
#![allow(dead_code)]

use std::io::{BufRead as _, BufReader, Write as _};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use keyway_tuf::jiff::Timestamp;
use keyway_tuf::{Expiries, MirrorError, RepoWriter};
use keyway_vendor::encode::{Cve, EnvelopeBuilder, ReleaseVersion};
use keyway_vendor::keys::{Algorithm, SigningKey};

/// A fixed "now" (2026-12-07T00:00:00Z) so expiries are deterministic.
pub fn t0() -> Timestamp {
    Timestamp::from_second(1_796_601_600).unwrap()
}

/// `t0` plus `days`.
pub fn day(days: i64) -> Timestamp {
    Timestamp::from_second(t0().as_second() + days * 86_400).unwrap()
}

/// A signed envelope for class `deadbolt`, sequence `seq`.
pub fn envelope(seq: u64, cves: &[(&str, &str)]) -> Vec<u8> {
    let key = vendor_key();
    EnvelopeBuilder {
        sequence: seq,
        version: ReleaseVersion::new(1, 0, seq),
        vendor_domain: "locks.example".into(),
        class_name: "deadbolt".into(),
        notes: Some(format!("release {seq}")),
        cves: cves
            .iter()
            .map(|(id, s)| Cve::new(id, keyway_vendor::encode::parse_severity(s).unwrap()).unwrap())
            .collect(),
        payload: vec![seq as u8; 256],
        keys: vec![key],
        ..Default::default()
    }
    .build()
    .unwrap()
    .envelope
}

fn vendor_key() -> SigningKey {
    use std::sync::OnceLock;
    static KEY: OnceLock<SigningKey> = OnceLock::new();
    KEY.get_or_init(|| SigningKey::generate(Algorithm::Ed25519).unwrap())
        .clone()
}

/// A repository (REPO, KEYS) in a temp dir with `n` releases published.
pub struct TestRepo {
    pub dir: tempfile::TempDir,
    pub writer: RepoWriter,
}

impl TestRepo {
    pub fn new(n: u64) -> TestRepo {
        let dir = tempfile::tempdir().unwrap();
        let mut writer = RepoWriter::init(
            &dir.path().join("repo"),
            &dir.path().join("keys"),
            Expiries::default(),
            t0(),
        )
        .unwrap();
        for seq in 1..=n {
            writer
                .add_envelopes(&[(format!("r{seq}.suit"), envelope(seq, &[]))], t0())
                .unwrap();
        }
        TestRepo { dir, writer }
    }

    pub fn repo(&self) -> PathBuf {
        self.dir.path().join("repo")
    }

    pub fn meta(&self, name: &str) -> PathBuf {
        self.repo().join("metadata").join(name)
    }

    pub fn root1(&self) -> Vec<u8> {
        self.writer.first_root().unwrap()
    }

    /// A fresh mirror trusting root 1.
    pub fn mirror(&self) -> (tempfile::TempDir, keyway_tuf::Mirror) {
        let d = tempfile::tempdir().unwrap();
        let m = keyway_tuf::Mirror::init(&d.path().join("tuf"), &self.root1()).unwrap();
        (d, m)
    }

    /// Release 1 published, then release 2 added at [`t0`]: the older
    /// versions of every role's metadata are there to replay.
    pub fn republished() -> TestRepo {
        let mut r = TestRepo::new(1);
        r.add(2, t0());
        r
    }

    pub fn add(&mut self, seq: u64, now: Timestamp) {
        self.writer
            .add_envelopes(&[(format!("r{seq}.suit"), envelope(seq, &[]))], now)
            .unwrap();
    }
}

/// The role, valid signatures found and threshold of a refusal for too
/// few signatures; panics on anything else.
pub fn signature_refusal<T: std::fmt::Debug>(r: Result<T, MirrorError>) -> (String, usize, usize) {
    match r {
        Err(MirrorError::Signatures {
            role,
            found,
            threshold,
        }) => (role, found, threshold),
        other => panic!("expected a signature refusal, got {other:?}"),
    }
}

/// Copies a directory tree.
pub fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let p = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_tree(&e.path(), &p);
        } else {
            std::fs::copy(e.path(), &p).unwrap();
        }
    }
}

/// How the server answers one path.
#[derive(Clone)]
pub enum Answer {
    /// The file under the served root (404 if absent).
    File,
    /// These bytes instead.
    Bytes(Vec<u8>),
    /// An endless stream of bytes with no Content-Length.
    Endless,
}

/// A tiny HTTP/1.1 server over a directory, with per-path overrides.
pub struct Server {
    pub base: String,
    pub overrides: Arc<Mutex<Vec<(String, Answer)>>>,
    pub endless_sent: Arc<Mutex<u64>>,
}

impl Server {
    pub fn start(root: PathBuf) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let overrides: Arc<Mutex<Vec<(String, Answer)>>> = Arc::default();
        let endless_sent: Arc<Mutex<u64>> = Arc::default();
        let (o, sent) = (overrides.clone(), endless_sent.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let root = root.clone();
                let o = o.clone();
                let sent = sent.clone();
                std::thread::spawn(move || {
                    let mut line = String::new();
                    let mut r = BufReader::new(stream.try_clone().unwrap());
                    if r.read_line(&mut line).is_err() {
                        return;
                    }
                    loop {
                        let mut h = String::new();
                        if r.read_line(&mut h).is_err() || h == "\r\n" || h.is_empty() {
                            break;
                        }
                    }
                    let path = line.split(' ').nth(1).unwrap_or("/").to_owned();
                    let answer = o
                        .lock()
                        .unwrap()
                        .iter()
                        .find(|(p, _)| *p == path)
                        .map(|(_, a)| a.clone())
                        .unwrap_or(Answer::File);
                    let body = match answer {
                        Answer::Endless => {
                            let _ =
                                stream.write_all(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n");
                            let chunk = [b'x'; 16384];
                            loop {
                                if stream.write_all(&chunk).is_err() {
                                    return;
                                }
                                *sent.lock().unwrap() += chunk.len() as u64;
                            }
                        }
                        Answer::Bytes(b) => Some(b),
                        Answer::File => std::fs::read(root.join(path.trim_start_matches('/'))).ok(),
                    };
                    let _ = match body {
                        Some(b) => stream
                            .write_all(
                                format!(
                                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                                    b.len()
                                )
                                .as_bytes(),
                            )
                            .and_then(|_| stream.write_all(&b)),
                        None => stream.write_all(
                            b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                        ),
                    };
                });
            }
        });
        Server {
            base,
            overrides,
            endless_sent,
        }
    }

    pub fn answer(&self, path: &str, a: Answer) {
        self.overrides.lock().unwrap().push((path.to_owned(), a));
    }

    pub fn source(&self) -> keyway_tuf::Source {
        keyway_tuf::Source::http(&self.base)
    }
}

/// Runs a future on a small runtime.
pub fn block<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

/// Forges metadata with the repository's own (or foreign) keys, as an
/// attacker holding a key, or a broken mirror, would.
pub struct Forge {
    pub keys: PathBuf,
    pub meta: PathBuf,
}

pub fn signing_key(path: &Path) -> ed25519_dalek::SigningKey {
    let text = std::fs::read_to_string(path).unwrap();
    let seed: [u8; 32] = hex::decode(text.trim()).unwrap().try_into().unwrap();
    ed25519_dalek::SigningKey::from_bytes(&seed)
}

pub fn key_id(k: &ed25519_dalek::SigningKey) -> String {
    let key: keyway_tuf::sigstore_tuf::Key = serde_json::from_value(serde_json::json!({
        "keytype": "ed25519", "scheme": "ed25519",
        "keyval": {"public": hex::encode(k.verifying_key().to_bytes())}
    }))
    .unwrap();
    key.key_id().unwrap()
}

/// Signs `signed` with `keys` into a metadata document.
pub fn sign_doc(signed: &serde_json::Value, keys: &[&ed25519_dalek::SigningKey]) -> Vec<u8> {
    use ed25519_dalek::Signer as _;
    let c = keyway_tuf::sigstore_tuf::canonical_json::to_canonical_bytes(signed).unwrap();
    let sigs: Vec<_> = keys
        .iter()
        .map(|k| serde_json::json!({"keyid": key_id(k), "sig": hex::encode(k.sign(&c).to_bytes())}))
        .collect();
    serde_json::to_vec(&serde_json::json!({"signatures": sigs, "signed": signed})).unwrap()
}

pub fn signed_of(bytes: &[u8]) -> serde_json::Value {
    serde_json::from_slice::<serde_json::Value>(bytes).unwrap()["signed"].clone()
}

pub fn sha256_hex(b: &[u8]) -> String {
    keyway_tuf::writer::sha256_hex(b)
}

/// A snapshot/timestamp `meta` entry pinning `doc`.
pub fn pin(version: u64, doc: &[u8]) -> serde_json::Value {
    serde_json::json!({"version": version, "length": doc.len(), "hashes": {"sha256": sha256_hex(doc)}})
}

impl Forge {
    pub fn of(r: &TestRepo) -> Forge {
        Forge {
            keys: r.dir.path().join("keys"),
            meta: r.repo().join("metadata"),
        }
    }

    pub fn key(&self, role: &str) -> ed25519_dalek::SigningKey {
        signing_key(&self.keys.join(format!("{role}.key")))
    }

    pub fn read(&self, name: &str) -> Vec<u8> {
        std::fs::read(self.meta.join(name)).unwrap()
    }

    pub fn signed(&self, name: &str) -> serde_json::Value {
        signed_of(&self.read(name))
    }

    /// A timestamp `version` pinning snapshot document `snap` (version `sv`).
    pub fn timestamp(&self, version: u64, sv: u64, snap: &[u8], expires: &str) -> Vec<u8> {
        let signed = serde_json::json!({
            "_type": "timestamp", "spec_version": "1.0.31", "version": version,
            "expires": expires, "meta": {"snapshot.json": pin(sv, snap)}
        });
        sign_doc(&signed, &[&self.key("timestamp")])
    }

    /// A snapshot `version` pinning targets document `targets` (version `tv`).
    pub fn snapshot(&self, version: u64, tv: u64, targets: &[u8], expires: &str) -> Vec<u8> {
        let signed = serde_json::json!({
            "_type": "snapshot", "spec_version": "1.0.31", "version": version,
            "expires": expires, "meta": {"targets.json": pin(tv, targets)}
        });
        sign_doc(&signed, &[&self.key("snapshot")])
    }

    /// Writes a new targets → snapshot → timestamp chain over `targets_signed`
    /// signed by `targets_keys`, at the next versions; returns the versions.
    pub fn publish(
        &self,
        targets_signed: serde_json::Value,
        targets_keys: &[&ed25519_dalek::SigningKey],
        expires: &str,
    ) -> (u64, u64, u64) {
        let ts = self.signed("timestamp.json");
        let tsv = ts["version"].as_u64().unwrap() + 1;
        let sv = ts["meta"]["snapshot.json"]["version"].as_u64().unwrap() + 1;
        let tv = targets_signed["version"].as_u64().unwrap();
        let tdoc = sign_doc(&targets_signed, targets_keys);
        std::fs::write(self.meta.join(format!("{tv}.targets.json")), &tdoc).unwrap();
        let sdoc = self.snapshot(sv, tv, &tdoc, expires);
        std::fs::write(self.meta.join(format!("{sv}.snapshot.json")), &sdoc).unwrap();
        std::fs::write(
            self.meta.join("timestamp.json"),
            self.timestamp(tsv, sv, &sdoc, expires),
        )
        .unwrap();
        (tv, sv, tsv)
    }

    /// The current targets `signed`, with its version bumped.
    pub fn next_targets(&self) -> serde_json::Value {
        let ts = self.signed("timestamp.json");
        let sv = ts["meta"]["snapshot.json"]["version"].as_u64().unwrap();
        let snap = self.signed(&format!("{sv}.snapshot.json"));
        let tv = snap["meta"]["targets.json"]["version"].as_u64().unwrap();
        let mut t = self.signed(&format!("{tv}.targets.json"));
        t["version"] = (tv + 1).into();
        t
    }
}

/// An `expires` string a year after t0.
pub const LATER: &str = "2027-12-07T00:00:00Z";

/// A repository served over HTTP ([`Server`]) and a fresh mirror of it
/// trusting root 1 ([`TestRepo::mirror`]).
pub struct Served {
    /// The server, to tell lies per path.
    pub server: Server,
    /// The mirror under attack.
    pub m: keyway_tuf::Mirror,
    _dir: tempfile::TempDir,
}

impl Served {
    /// Serves `r` as it is now.
    pub fn new(r: &TestRepo) -> Served {
        let server = Server::start(r.repo());
        let (_dir, m) = r.mirror();
        Served { server, m, _dir }
    }

    /// Serves `r`, and the mirror refreshed from it once (at [`t0`]).
    pub fn synced(r: &TestRepo) -> Served {
        let s = Served::new(r);
        s.refresh().unwrap();
        s
    }

    /// The mirror refreshes from the server at `now`.
    pub fn refresh_at(&self, now: Timestamp) -> Result<keyway_tuf::Refreshed, MirrorError> {
        block(self.m.refresh(self.server.source(), now))
    }

    /// The mirror refreshes from the server at [`t0`].
    pub fn refresh(&self) -> Result<keyway_tuf::Refreshed, MirrorError> {
        self.refresh_at(t0())
    }

    /// The mirror refreshes, then downloads its first target while the
    /// server answers that target's file with `answer`: the target and
    /// what the download gave.
    pub fn download_first(
        &self,
        answer: Answer,
    ) -> (keyway_tuf::ListedTarget, Result<Vec<u8>, MirrorError>) {
        let t = self.refresh().unwrap().targets.remove(0);
        let file = keyway_tuf::writer::consistent_target_path(&t.name, &t.sha256);
        self.server.answer(&format!("/targets/{file}"), answer);
        let got = self.download(&t.name);
        (t, got)
    }

    /// The mirror downloads `target` from the server at [`t0`].
    pub fn download(&self, target: &str) -> Result<Vec<u8>, MirrorError> {
        block(self.m.download(self.server.source(), target, t0()))
    }
}
