//! `keyway device --target serial:PATH` against the simulated lock's
//! serial port (`keyway_lock::shell::start` with `serial`: a pty pair
//! speaking MCUmgr's serial transport): pair by setup code, status, an
//! update with the owner's consent, all over the serial line; and the
//! serial client against a hostile line (console noise, a bad CRC, an
//! answer with another sequence number, silence).

use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use keyway::device::{SerialTransport, Transport, TransportError};
use keyway_lock::shell::{Running, start};
use keyway_testkit::pair::Lab;
use keyway_testkit::release::payload;
use keyway_vendor::encode::EnvelopeBuilder;
use keyway_vendor::keys::SigningKey;
use keyway_vendor::smp::{HEADER_LEN, Header, Op};

mod common;

use common::{BIN, control, device_cli};
/// A release of `len` bytes signed by `key`, with release notes.
fn envelope(key: &SigningKey, version: &str, sequence: u64, len: usize) -> Vec<u8> {
    let more = EnvelopeBuilder {
        notes: Some("Serial release.".into()),
        ..Default::default()
    };
    keyway_testkit::release::sign(key, version, sequence, &payload(len, sequence), more)
}

/// The lock with a control socket and its serial port linked at
/// `serial` in the lab.
fn start_serial(lab: &Lab) -> Running {
    let mut o = lab.options(false);
    o.control = Some("127.0.0.1:0".parse().unwrap());
    o.serial = Some(lab.tmp.path().join("serial"));
    start(&o).unwrap()
}

/// The `--target` of the lab's serial port.
fn target(lab: &Lab) -> String {
    format!("serial:{}", lab.tmp.path().join("serial").display())
}

fn cli(lab: &Lab, args: &[&str]) -> (bool, String, String) {
    device_cli(&target(lab), &["--timeout-ms", "3000"], args)
}

fn ok(r: (bool, String, String)) -> String {
    assert!(r.0, "failed: {}\n{}", r.1, r.2);
    r.1
}

fn json(s: &str) -> serde_json::Value {
    serde_json::from_str(s.trim()).unwrap_or_else(|e| panic!("{e}: {s}"))
}

fn keygen(dir: &Path, name: &str) -> String {
    let o = Command::new(BIN)
        .current_dir(dir)
        .args(["keygen", name])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    dir.join(format!("{name}.key")).display().to_string()
}

#[test]
fn serial_pair_status_and_update_with_consent_over_the_cli() {
    let lab = Lab::new(1);
    let lock = start_serial(&lab);
    let pts = lock.serial.clone().expect("a serial port");
    assert!(pts.starts_with("/dev/pts"), "{}", pts.display());
    let key = keygen(lab.tmp.path(), "owner");

    // Pair by the setup code with the presence window open.
    assert!(control(&lock, r#"{"cmd":"presence","seconds":60}"#).contains("\"ok\":true"));
    let code = json(&control(&lock, r#"{"cmd":"setup-code"}"#))["setup_code"]
        .as_str()
        .unwrap()
        .to_owned();
    let out = ok(cli(
        &lab,
        &["--owner-key", &key, "pair", "--setup-code", &code],
    ));
    assert!(out.contains("paired"), "{out}");
    // The paired-locks file records the serial target.
    let locks = std::fs::read_to_string(lab.tmp.path().join("owner.locks.json")).unwrap();
    assert!(locks.contains(&target(&lab)), "{locks}");

    let v = json(&ok(cli(&lab, &["--owner-key", &key, "--json", "status"])));
    assert_eq!(
        (v["version"].as_str(), v["owners"].as_u64()),
        (Some("1.0.0"), Some(1))
    );

    // Update: upload, notes, consent; unlocked, so it installs at once.
    let env = envelope(&lab.vendor.key, "1.1.0", 2, 20_000);
    let path: PathBuf = lab.tmp.path().join("v1.1.suit");
    std::fs::write(&path, &env).unwrap();
    let out = ok(cli(
        &lab,
        &["--owner-key", &key, "update", path.to_str().unwrap()],
    ));
    assert!(out.contains("pending: awaiting-consent"), "{out}");
    let notes = ok(cli(&lab, &["--owner-key", &key, "notes"]));
    assert!(notes.contains("Serial release."), "{notes}");
    ok(cli(&lab, &["--owner-key", &key, "unlock"]));
    ok(cli(&lab, &["--owner-key", &key, "consent", "accept"]));
    let t0 = Instant::now();
    loop {
        let r = cli(&lab, &["--owner-key", &key, "--json", "status"]);
        if r.0 && json(&r.1)["version"] == "1.1.0" {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "not installed: {} {}",
            r.1,
            r.2
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// An OS echo request (group 0, id 0) with sequence number `seq`.
fn echo_request(seq: u8) -> Vec<u8> {
    let body = [0xa1, 0x61, b'd', 0x62, b'h', b'i'];
    let mut f = Header {
        op: Op::Write,
        version: 1,
        flags: 0,
        len: body.len() as u16,
        group: 0,
        seq,
        id: 0,
    }
    .encode()
    .to_vec();
    f.extend_from_slice(&body);
    f
}

fn lines(packet: &[u8]) -> Vec<u8> {
    let mut out = vec![0; keyway_smp::serial::encoded_len(packet.len())];
    keyway_smp::serial::encode(packet, &mut out).unwrap();
    out
}

#[test]
fn serial_client_skips_console_noise_bad_frames_and_other_sequence_numbers() {
    let mut answer = echo_request(9);
    answer[0] = 3; // a write response
    let mut wrong = answer.clone();
    wrong[6] = 8; // another sequence number
    let mut bad = lines(&answer);
    let at = bad.len() - 3;
    bad[at] ^= 1; // a flipped bit: the CRC fails
    let mut out = b"[00:00:01.000] <inf> lock: booting\r\nuart:~$ ".to_vec();
    out.extend_from_slice(&lines(&wrong));
    out.extend_from_slice(b"log line\r\n");
    out.extend_from_slice(&bad);
    out.extend_from_slice(&[0x06, 0x41, 0x04, 0x00, b'\n']);
    out.extend_from_slice(&lines(&answer));
    let (r, t, request_lines) = exchange_with_fake_lock(9, out);
    assert_eq!(request_lines, lines(&echo_request(9)));
    let h = Header::decode(&r).unwrap();
    assert_eq!((h.seq, r.len()), (9, HEADER_LEN + 6));
    assert_eq!(
        t.stats().ignored,
        2,
        "the other sequence number and the bad CRC"
    );
}

#[test]
fn serial_client_gives_up_on_a_silent_line_with_a_sentence() {
    let tmp = tempfile::tempdir().unwrap();
    let (_port, mut t) = client_on_pty(tmp.path(), Duration::from_millis(200), 2);
    let e = t.exchange(&echo_request(1), 1).unwrap_err();
    assert!(
        matches!(e, TransportError::NoAnswer { tries: 2, .. }),
        "{e:?}"
    );
    assert!(e.to_string().contains("serial:"), "{e}");
    assert_eq!(t.stats().resends, 1);
    // A path that is no port: a sentence naming it.
    let e = SerialTransport::connect("serial:/nonexistent/tty").unwrap_err();
    assert!(e.to_string().contains("/nonexistent/tty"), "{e}");
}

/// A pty (its link in `dir`) and a client on it that waits `wait` for each
/// answer and sends at most `tries` times.
fn client_on_pty(
    dir: &Path,
    wait: Duration,
    tries: u32,
) -> (keyway_lock::serial::SerialPort, SerialTransport) {
    let link = dir.join("tty");
    let port = keyway_lock::serial::open_pty(Some(&link)).unwrap();
    let t = SerialTransport::connect(&format!("serial:{}", link.display()))
        .unwrap()
        .with_retry(wait, tries);
    (port, t)
}

/// A fake lock on `port`'s master: reads the request's lines (up to its
/// newline), writes `out` and returns what it read.
fn fake_lock(
    port: &keyway_lock::serial::SerialPort,
    out: Vec<u8>,
) -> std::thread::JoinHandle<Vec<u8>> {
    let mut master = port.master().try_clone().unwrap();
    std::thread::spawn(move || {
        let mut got = Vec::new();
        let mut b = [0u8; 256];
        while !got.ends_with(b"\n") {
            match master.read(&mut b) {
                Ok(n) => got.extend_from_slice(&b[..n]),
                Err(_) => std::thread::sleep(Duration::from_millis(5)),
            }
        }
        master.write_all(&out).unwrap();
        got
    })
}

/// Sends an echo request with sequence number `seq` from a client on a
/// fresh pty (one send, a 3 s wait) to a fake lock on the pty's master
/// that reads the request's lines (up to its newline) and writes `out`.
/// Returns the answer the client took, the client (for its counters) and
/// the lines the fake lock read.
fn exchange_with_fake_lock(seq: u8, out: Vec<u8>) -> (Vec<u8>, SerialTransport, Vec<u8>) {
    let tmp = tempfile::tempdir().unwrap();
    let (port, mut t) = client_on_pty(tmp.path(), Duration::from_millis(3000), 1);
    let fake = fake_lock(&port, out);
    let r = t.exchange(&echo_request(seq), seq).unwrap();
    let got = fake.join().unwrap();
    drop(port);
    (r, t, got)
}

/// Found auditing the emulated lock: an echo that went unanswered in time
/// was answered late, and the next request of a new client (the same
/// sequence number, 0) took that echo's answer for its own. An answer
/// whose group and command id are not the request's is skipped.
#[test]
fn serial_client_skips_a_late_answer_to_another_command_with_the_same_sequence() {
    let mut answer = echo_request(0);
    answer[0] = 3; // a write response
    let mut late = answer.clone();
    late[7] = 1; // another command of the group, same sequence
    let mut out = lines(&late);
    out.extend_from_slice(&lines(&answer));
    let (r, t, _) = exchange_with_fake_lock(0, out);
    let h = Header::decode(&r).unwrap();
    assert_eq!((h.seq, h.id), (0, 0), "the answer to this command");
    assert_eq!(t.stats().ignored, 1, "the late answer to another command");
}

/// Found auditing the emulated lock: after a power cut the lock came back
/// on another pty, its link moved, and the client went on writing to the
/// hung-up one. A try finds the link leading elsewhere and opens it again.
#[test]
fn serial_client_follows_a_lock_restarted_on_a_new_pty() {
    let tmp = tempfile::tempdir().unwrap();
    let (old, mut t) = client_on_pty(tmp.path(), Duration::from_millis(300), 4);
    // The power cut: the lock's end of the line goes away.
    drop(old);
    let new = keyway_lock::serial::open_pty(Some(&tmp.path().join("tty"))).unwrap();
    let mut answer = echo_request(4);
    answer[0] = 3; // a write response
    let fake = fake_lock(&new, lines(&answer));
    let r = t
        .exchange(&echo_request(4), 4)
        .expect("the restarted lock's answer");
    fake.join().unwrap();
    assert_eq!(Header::decode(&r).unwrap().seq, 4);
    // The link had moved before the first try, so that try already went
    // to the new pty.
    assert_eq!(t.stats().resends, 0);
    drop(new);
}
