//! End-to-end tests of the `keyway` binary: exit codes and messages.

use std::path::PathBuf;
use std::process::Output;

mod common;

use common::keyway;
use keyway_vendor::cbor::{Value, ValueExt};
use keyway_vendor::encode::KeySetInfo;
use keyway_vendor::keys::PublicKey;

fn tmpdir() -> PathBuf {
    common::fresh_dir("e2e")
}

/// A command line's words (none of these has a space in it).
fn words(line: &str) -> Vec<&str> {
    line.split_whitespace().collect()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn keygen_keyset_sign_end_to_end() {
    let dir = tmpdir();
    for (name, alg) in [
        ("a", "ed25519"),
        ("b", "p256"),
        ("root", "ed25519"),
        ("old", "p256"),
    ] {
        let o = keyway(&dir, &["keygen", name, "--alg", alg]);
        assert!(o.status.success(), "{}", stderr(&o));
    }
    let o = keyway(
        &dir,
        &words(
            "keyset --root root.key --signer a.pub --signer b.pub --threshold 2 --version 4 \
             --revoke old.pub -o ks.cbor",
        ),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let info = KeySetInfo::parse(&std::fs::read(dir.join("ks.cbor")).unwrap()).unwrap();
    assert_eq!(info.version, 4);
    assert_eq!(info.threshold, 2);
    let a = PublicKey::load(dir.join("a.pub")).unwrap();
    let b = PublicKey::load(dir.join("b.pub")).unwrap();
    let old = PublicKey::load(dir.join("old.pub")).unwrap();
    assert_eq!(info.signer_kids, vec![a.key_id(), b.key_id()]);
    assert_eq!(info.revoked, vec![old.key_id()]);

    std::fs::write(dir.join("fw.bin"), vec![0x5a; 4096]).unwrap();
    std::fs::write(dir.join("NOTES.md"), "# 2.0.0\nSecurity fixes.\n").unwrap();
    let sign = |keys: &[&str], out: &str| {
        let mut args = words(
            "sign --firmware fw.bin --version 2.0.0 --sequence 9 --vendor-domain keyway.example \
             --class deadbolt --notes NOTES.md --cve CVE-2025-10001:critical --keyset ks.cbor -o",
        );
        args.push(out);
        for k in keys {
            args.extend(["--key", k]);
        }
        keyway(&dir, &args)
    };
    let o = sign(&["a.key", "b.key"], "ok.suit");
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).is_empty(),
        "no warnings expected: {}",
        stderr(&o)
    );
    let env = Value::from_bytes(&std::fs::read(dir.join("ok.suit")).unwrap()).unwrap();
    let (tag, map) = env.as_tag().unwrap();
    assert_eq!(tag, 107);
    let auth = map.get_int(2).unwrap().decode_bstr().unwrap().unwrap();
    assert_eq!(auth.as_array().unwrap().len(), 3);
    assert_eq!(
        map.as_map().unwrap().last().unwrap().0,
        Value::from("#firmware")
    );

    // Signing with a revoked key and below threshold only warns.
    let o = sign(&["old.key"], "weak.suit");
    assert!(o.status.success(), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("is revoked by this key set"), "{err}");
    assert!(err.contains("which needs 2"), "{err}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn bad_input_fails_cleanly_without_panicking() {
    let dir = tmpdir();
    std::fs::write(
        dir.join("trunc.key"),
        "-----BEGIN PRIVATE KEY-----\nMC4CAQAw",
    )
    .unwrap();
    assert!(keyway(&dir, &["keygen", "a"]).status.success());
    let cases = [
        (
            "keyset --root trunc.key --signer a.pub --threshold 1 --version 1 -o k",
            "error: trunc.key: not a PEM private key",
        ),
        (
            "keyset --root a.key --signer a.key --threshold 1 --version 1 -o k",
            "error: a.key: wrong key type: expected a public key, got a private key",
        ),
        (
            "keyset --root a.key --signer nope.pub --threshold 1 --version 1 -o k",
            "error: nope.pub: cannot read",
        ),
        (
            "keyset --root a.key --signer a.pub --revoke a.pub --threshold 1 --version 1 -o k",
            "error: a.pub: this key is both a --signer and revoked",
        ),
        ("keygen a", "error: a.key: already exists"),
        (
            "verify x.suit --trust nope.pub",
            "error: REJECTED x.suit: nope.pub",
        ),
    ];
    for (line, want) in cases {
        let args = words(line);
        let o = keyway(&dir, &args);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {}", stderr(&o));
        assert!(
            stderr(&o).starts_with(want),
            "{args:?}: want {want:?}, got {:?}",
            stderr(&o)
        );
    }
    // clap usage errors exit with 2.
    let o = keyway(&dir, &["sign", "--version", "1.2"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(!dir.join("k").exists());
    std::fs::remove_dir_all(dir).unwrap();
}
