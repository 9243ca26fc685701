//! `keyway log verify` / `show` against real exports built on the flash
//! simulator: one named test per kind of tampering, each detected with the
//! finding that names it, and intact logs (also wrapped ones) accepted.

use std::fs;
use std::path::{Path, PathBuf};

mod common;

use common::run_in_process as run;
use keyway_audit::record::MAX_RECORD_LEN;
use keyway_audit::{Body, Ed25519Signer, Event, Kind, LockMethod, Record};
use keyway_vendor::keys::{self, Algorithm, SigningKey, hex};
use keyway_vendor::log::ItemKind;

struct Lab {
    dir: PathBuf,
}

impl Lab {
    fn new(name: &str) -> Self {
        let dir = common::fresh_dir(&format!("log-{name}"));
        keys::keygen(dir.join("device"), Algorithm::Ed25519).unwrap();
        keys::keygen(dir.join("other"), Algorithm::Ed25519).unwrap();
        Lab { dir }
    }

    fn path(&self, n: &str) -> String {
        self.dir.join(n).to_str().unwrap().to_owned()
    }

    fn signer(&self, name: &str) -> Ed25519Signer {
        let SigningKey::Ed25519(k) =
            SigningKey::load(self.dir.join(format!("{name}.key"))).unwrap()
        else {
            panic!("not ed25519")
        };
        Ed25519Signer::from_seed(k.to_bytes()).unwrap()
    }

    /// An export of `events` demo events on `pages` 4 KiB pages, as records.
    fn export(&self, events: u32, pages: u32) -> Vec<Vec<u8>> {
        split(&keyway_vendor::log::demo_export(&self.signer("device"), events, pages).unwrap())
    }

    /// Runs `keyway log verify` on `records`; returns (ok, stdout).
    fn verify(&self, records: &[Vec<u8>], key: &str) -> (bool, String) {
        let file = self.path("log.bin");
        fs::write(&file, records.concat()).unwrap();
        self.verify_file(&file, key)
    }

    /// Runs `keyway log verify FILE --device-key KEY.pub`; returns (ok, stdout).
    fn verify_file(&self, file: &str, key: &str) -> (bool, String) {
        run(&[
            "log",
            "verify",
            file,
            "--device-key",
            &self.path(&format!("{key}.pub")),
        ])
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// An export's records (every one must decode), as the log's parser
/// splits it.
fn split(bytes: &[u8]) -> Vec<Vec<u8>> {
    keyway_vendor::log::parse(bytes)
        .iter()
        .map(|i| {
            assert!(matches!(i.what, ItemKind::Record { .. }), "{i:?}");
            bytes[i.offset..i.offset + i.len].to_vec()
        })
        .collect()
}

fn decode(b: &[u8]) -> Record {
    Record::decode(b).unwrap().0
}

fn encode(r: &Record) -> Vec<u8> {
    let mut buf = [0u8; MAX_RECORD_LEN];
    let n = r.encode(&mut buf);
    buf[..n].to_vec()
}

/// Record `b` re-encoded (a valid CRC) as the bolt locked, or `unlocked`,
/// by an owner command.
fn by_owner(b: &[u8], unlocked: bool) -> Vec<u8> {
    let method = LockMethod::OwnerCommand;
    let mut r = decode(b);
    r.body = Body::Event(if unlocked {
        Event::Unlocked { method }
    } else {
        Event::Locked { method }
    });
    encode(&r)
}

/// The index of the record with sequence number `seq`.
fn index_of(records: &[Vec<u8>], seq: u32) -> usize {
    records.iter().position(|b| decode(b).seq == seq).unwrap()
}

/// The byte offset of record `i` in the file.
fn offset_of(records: &[Vec<u8>], i: usize) -> usize {
    records[..i].iter().map(Vec::len).sum()
}

fn assert_broken(ok: bool, out: &str, want: &str) {
    assert!(!ok, "verify accepted a tampered log:\n{out}");
    assert!(out.contains(want), "want {want:?} in:\n{out}");
    assert!(out.contains("BROKEN"), "{out}");
}

/// A 45-event export on 8 pages in a lab named `name`, altered by
/// `tamper`, which returns the finding that must name the alteration;
/// asserts that `keyway log verify` reports it BROKEN; its output.
fn tampered(name: &str, tamper: impl FnOnce(&mut Vec<Vec<u8>>) -> String) -> String {
    let lab = Lab::new(name);
    let mut records = lab.export(45, 8);
    let want = tamper(&mut records);
    let (ok, out) = lab.verify(&records, "device");
    assert_broken(ok, &out, &want);
    out
}

#[test]
fn intact_log_verifies() {
    let lab = Lab::new("intact");
    let records = lab.export(45, 8);
    let (ok, out) = lab.verify(&records, "device");
    assert!(ok, "{out}");
    assert_eq!(out.lines().count(), 1, "{out}");
    assert!(
        out.contains(
            "intact: 45 records, 0..44 (45 events, 0 checkpoints), signed head over 45 records"
        ),
        "{out}"
    );
}

#[test]
fn wrapped_log_with_checkpoints_verifies() {
    let lab = Lab::new("wrapped");
    // 2 pages of 29 slots: 400 events wrap the ring about 7 times.
    let records = lab.export(400, 2);
    let first = decode(&records[0]);
    assert!(
        first.seq > 300 && first.kind() == Kind::Checkpoint,
        "{first:?}"
    );
    let (ok, out) = lab.verify(&records, "device");
    assert!(ok, "{out}");
    assert!(
        out.contains(&format!(
            "records 0..{} rotated out by design",
            first.seq - 1
        )),
        "{out}"
    );
}

#[test]
fn record_modified_is_detected() {
    tampered("modified", |records| {
        let i = index_of(records, 17);
        let r = by_owner(&records[i], false);
        assert_ne!(r, records[i]);
        records[i] = r; // a valid CRC: only the chain can tell
        format!(
            "record 17 at byte {} modified: its hash does not match record 18's prev-hash",
            offset_of(records, i)
        )
    });
}

#[test]
fn record_modified_without_fixing_its_crc_is_detected() {
    tampered("corrupt", |records| {
        let i = index_of(records, 30);
        records[i][60] ^= 1;
        format!(
            "record 30 at byte {} modified: CRC mismatch",
            offset_of(records, i)
        )
    });
}

#[test]
fn record_deleted_from_the_middle_is_detected() {
    let out = tampered("deleted", |records| {
        let i = index_of(records, 12);
        records.drain(i..i + 4);
        "records 12..15 deleted".into()
    });
    // Exactly one finding: nothing else is wrong.
    assert_eq!(out.lines().count(), 3, "{out}");
}

#[test]
fn records_reordered_are_detected() {
    tampered("reordered", |records| {
        let i = index_of(records, 9);
        records.swap(i, i + 1);
        format!(
            "record 9 at byte {} out of order",
            offset_of(records, i + 1)
        )
    });
}

#[test]
fn record_inserted_is_detected() {
    tampered("inserted", |records| {
        // A forged "unlocked by owner command" that claims to follow record 9,
        // with a correct prev-hash and CRC: it cannot be signed into the chain.
        let i = index_of(records, 10);
        let fake = by_owner(&records[i], true);
        records.insert(i, fake);
        format!(
            "record at byte {} inserted: not signed into the chain (it claims sequence 10)",
            offset_of(records, i)
        )
    });
}

#[test]
fn tail_truncated_is_detected() {
    tampered("truncated", |records| {
        // Keep the signed head, drop records 40..44 before it.
        let head = records.pop().unwrap();
        records.truncate(40);
        records.push(head);
        "log truncated after record 39: the signed head says 45 records (the last is record 44)"
            .into()
    });
}

#[test]
fn signed_head_removed_is_detected() {
    tampered("headless", |records| {
        records.pop();
        "no signed head at the end of the file".into()
    });
}

/// The newest checkpoint's sequence and retained sequence in an export.
fn newest_checkpoint(records: &[Vec<u8>]) -> (u32, u32) {
    records
        .iter()
        .filter_map(|b| match decode(b) {
            Record {
                seq,
                body: Body::Checkpoint(c),
                ..
            } => Some((seq, c.retained)),
            _ => None,
        })
        .next_back()
        .unwrap()
}

#[test]
fn prefix_deleted_beyond_checkpoint_is_detected() {
    let lab = Lab::new("prefix");
    // Four pages: the newest checkpoint (first slot of the newest page)
    // retains from the second-oldest page, and survives the deletion.
    let mut records = lab.export(400, 4);
    let (cseq, retained) = newest_checkpoint(&records);
    let first = decode(&records[0]).seq;
    // Delete from the start up to two records past what the newest
    // checkpoint allows to be gone.
    let i = index_of(&records, retained + 2);
    records.drain(..i);
    let (ok, out) = lab.verify(&records, "device");
    assert_broken(
        ok,
        &out,
        &format!(
            "records {retained}..{} deleted: the newest checkpoint (record {cseq}) retains from record {retained}",
            retained + 1
        ),
    );
    assert!(first < retained);
}

#[test]
fn prefix_deleted_within_retention_is_detected_by_the_signed_head() {
    // Records the ring could have rotated out by now, but had not when the
    // lock exported them: the signed head names the export's first record.
    let lab = Lab::new("prefix-head");
    let mut records = lab.export(400, 2);
    let first = decode(&records[0]).seq;
    records.drain(..3);
    let (ok, out) = lab.verify(&records, "device");
    assert_broken(
        ok,
        &out,
        &format!(
            "records {first}..{} deleted: the signed head says the export starts at record {first}",
            first + 2
        ),
    );
}

#[test]
fn log_from_another_device_is_detected() {
    let lab = Lab::new("other");
    let records = lab.export(45, 8);
    let device_kid = hex(&keyway_audit::record::key_id(
        &keyway_audit::Signer::public_key(&lab.signer("device")),
    ));
    let (ok, out) = lab.verify(&records, "other");
    let head_at = offset_of(&records, records.len() - 1);
    assert_broken(
        ok,
        &out,
        &format!("head at byte {head_at} signed by another device key {device_kid}…"),
    );
}

#[test]
fn forged_checkpoint_is_detected() {
    let lab = Lab::new("forged");
    let mut records = lab.export(400, 2);
    // Raise the newest checkpoint's retained sequence to hide deleted
    // records, keeping its CRC right: its signature no longer verifies.
    let (cseq, retained) = newest_checkpoint(&records);
    let i = index_of(&records, cseq);
    let mut r = decode(&records[i]);
    let Body::Checkpoint(ref mut c) = r.body else {
        unreachable!()
    };
    c.retained = retained + 5;
    records[i] = encode(&r);
    let (ok, out) = lab.verify(&records, "device");
    assert_broken(
        ok,
        &out,
        &format!(
            "checkpoint {cseq} at byte {} forged: its signature does not verify under the device key",
            offset_of(&records, i)
        ),
    );
}

#[test]
fn garbage_never_panics_and_never_verifies() {
    let lab = Lab::new("garbage");
    let records = lab.export(30, 8);
    let whole = records.concat();
    for cut in [0, 1, 59, 60, 61, 500, whole.len() - 1] {
        let (ok, _) = lab.verify(&[whole[..cut].to_vec()], "device");
        assert!(!ok, "{cut} bytes verified");
    }
    let mut x = 0x1234_5678u32;
    let noise: Vec<u8> = (0..4000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect();
    let (ok, out) = lab.verify(std::slice::from_ref(&noise), "device");
    assert!(!ok && out.contains("unreadable"), "{out}");
    let at = offset_of(&records, 16);
    let mut spliced = whole.clone();
    spliced.splice(at..at, noise[..300].iter().copied());
    let (ok, out) = lab.verify(&[spliced], "device");
    assert!(
        !ok && out.contains(&format!("bytes {at}..{} unreadable", at + 300)),
        "{out}"
    );
}

#[test]
fn show_prints_text_json_and_since() {
    let lab = Lab::new("show");
    let records = lab.export(60, 8);
    let file = lab.path("log.bin");
    fs::write(&file, records.concat()).unwrap();
    let (ok, out) = run(&["log", "show", &file]);
    assert!(ok, "{out}");
    assert_eq!(out.lines().count(), 61, "{out}");
    assert!(
        out.lines()
            .next()
            .unwrap()
            .contains("boot: slot 0, version 2.1.0"),
        "{out}"
    );
    assert!(
        out.contains("update rejected: sequence 21, reason anti-rollback"),
        "{out}"
    );
    assert!(
        out.lines()
            .last()
            .unwrap()
            .contains("export head: 60 records"),
        "{out}"
    );

    let (ok, out) = run(&["log", "show", &file, "--json", "--since", "50"]);
    assert!(ok, "{out}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let a = v.as_array().unwrap();
    assert_eq!(a.len(), 11); // records 50..59 and the head (60)
    assert_eq!(a[0]["seq"], 50);
    assert_eq!(a[0]["event"]["type"], "boot");
    assert_eq!(a[0]["event"]["fields"]["version"], "2.1.1");
    assert_eq!(a[10]["kind"], "export head");
    assert_eq!(a[10]["signed"]["count"], 60);
    assert_eq!(a[0]["offset"], offset_of(&records, 50));
}

#[test]
fn demo_export_writes_a_log_that_verifies() {
    let lab = Lab::new("demo-export");
    let out_file = lab.path("demo.bin");
    let (ok, out) = run(&[
        "log",
        "demo-export",
        "--key",
        &lab.path("device.key"),
        "--events",
        "120",
        "--pages",
        "3",
        "-o",
        &out_file,
    ]);
    assert!(ok, "{out}");
    assert!(Path::new(&out_file).exists());
    let (ok, out) = lab.verify_file(&out_file, "device");
    assert!(ok && out.contains("rotated out by design"), "{out}");
    // A P-256 key is not a device key.
    keys::keygen(lab.dir.join("p"), Algorithm::P256).unwrap();
    let (ok, out) = lab.verify_file(&out_file, "p");
    assert!(!ok && out.contains("a device key is Ed25519"), "{out}");
}
