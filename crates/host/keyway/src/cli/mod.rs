//! The `keyway` command line: the clap top level ([`Cli`], [`Command`])
//! and [`run`], which hands each command to its module (one module a
//! command; `audit`, `device`, `hub`, `publish` and `tuf-client` live with
//! their subsystems).
//!
//! `main.rs` only parses the arguments and calls [`run`]; every handler
//! writes its normal output to `out`, warnings to `err`, and returns an error
//! (naming the file and what failed) instead of panicking.

use std::io::Write;

use anyhow::Result;
use clap::{Parser, Subcommand};

mod demo;
mod diff;
mod files;
mod flash_sim;
mod inspect;
mod keygen;
mod keyset;
mod log;
mod patch;
mod sign;
mod verify;

pub use demo::DemoArgs;
pub use diff::DiffArgs;
pub use flash_sim::{FlashSimArgs, SimModeArg};
pub use inspect::InspectArgs;
pub use keygen::{AlgArg, KeygenArgs};
pub use keyset::KeysetArgs;
pub use log::{LogCommand, LogDemoArgs, LogShowArgs, LogVerifyArgs};
pub use patch::PatchArgs;
pub use sign::{Ed25519AlgArg, P256AlgArg, SignArgs, keyset_warnings};
pub use verify::VerifyArgs;

/// Keyway vendor tool: keys, signed SUIT firmware envelopes, key sets.
#[derive(Debug, Parser)]
#[command(name = "keyway", version, about, propagate_version = false)]
pub struct Cli {
    /// The command to run.
    #[command(subcommand)]
    pub command: Command,
}

/// `keyway` subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Generate a key pair: NAME.key (PKCS#8 PEM) and NAME.pub (SPKI PEM).
    Keygen(KeygenArgs),
    /// Build and sign a firmware envelope.
    Sign(SignArgs),
    /// Build a root-signed key-set document.
    Keyset(KeysetArgs),
    /// Verify an envelope offline, as a lock would: exits 0 with a one-line
    /// summary, or non-zero naming the check that failed.
    Verify(VerifyArgs),
    /// Show what an envelope contains (structure and digests checked,
    /// signatures not).
    Inspect(InspectArgs),
    /// Run Keyway's main job end to end offline: vendor keys, a signed
    /// release with a CVE fix, a lock that verifies it itself, attacks, and
    /// the scorecard.
    Demo(DemoArgs),
    /// Simulate a firmware update on a NOR flash model with the lock's real
    /// installer and bootloader: flash wear and install time beside the
    /// physical minimum and MCUboot's swap algorithms, and power-cut sweeps.
    FlashSim(FlashSimArgs),
    /// Verify or show a lock's exported audit log.
    #[command(subcommand)]
    Log(LogCommand),
    /// Make a delta patch that turns OLD into NEW; prints its size and ratio.
    Diff(DiffArgs),
    /// Apply a delta patch to OLD with the lock's decoder (same fixed RAM).
    Patch(PatchArgs),
    /// Audit a lock through its local interface with the router unplugged:
    /// twelve checks, each PASS, FAIL or SKIP with its evidence.
    Audit(crate::audit::cli::AuditArgs),
    /// Talk to a lock over SMP: status, lock/unlock, update, consent,
    /// audit-log export, owners, settings.
    Device(crate::device::cli::DeviceArgs),
    /// Add signed envelopes to a TUF repository (static files), rotate its
    /// root, re-sign its timestamp, or write an offline bundle.
    Publish(crate::publish::PublishArgs),
    /// A TUF client speaking tuf-conformance's client CLI (init, refresh,
    /// download): the hub's client, testable by that suite.
    TufClient(crate::tuf_client::TufClientArgs),
    /// The hub, the home's update depot: with no subcommand, a demo house
    /// of simulated locks on loopback (`keyway hub demo`).
    Hub(crate::hub::cli::HubArgs),
}

/// Runs a parsed command line.
pub fn run(cli: Cli, out: &mut dyn Write, err: &mut dyn Write) -> Result<()> {
    match cli.command {
        Command::Keygen(a) => keygen::keygen(&a, out),
        Command::Sign(a) => sign::sign(&a, out, err),
        Command::Keyset(a) => keyset::keyset(&a, out),
        Command::Verify(a) => verify::verify(&a, out),
        Command::Inspect(a) => inspect::inspect(&a, out),
        Command::Demo(a) => demo::demo(&a, out),
        Command::FlashSim(a) => flash_sim::flash_sim(&a, out),
        Command::Log(LogCommand::Verify(a)) => log::verify(&a, out),
        Command::Log(LogCommand::Show(a)) => log::show(&a, out),
        Command::Log(LogCommand::DemoExport(a)) => log::demo_export(&a, out),
        Command::Diff(a) => diff::diff(&a, out),
        Command::Patch(a) => patch::patch(&a, out),
        // A lock to start first is the lab's; the audit only reaches locks.
        Command::Audit(a) if a.lock_state.is_some() => crate::lab::audit(&a, out),
        Command::Audit(a) => crate::audit::cli::audit(&a, out),
        Command::Device(a) => crate::device::cli::run(&a, out, err),
        Command::Publish(a) => crate::publish::run(&a, out),
        Command::TufClient(a) => crate::tuf_client::run(&a),
        Command::Hub(a) => crate::hub::cli::run(a, out, err),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::path::PathBuf;

    use clap::error::ErrorKind;
    use keyway_vendor::encode::ReleaseVersion;
    use keyway_vendor::keys::{self, Algorithm};

    /// A full sign command line, split into its words.
    const SIGN: &str = "keyway sign --firmware fw.bin --version 1.2.3 --sequence 4 \
                        --vendor-domain keyway.example --class deadbolt --notes NOTES.md \
                        --key a.key -o out.suit";

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(args)
    }

    /// A command line's words.
    fn words(line: &'static str) -> Vec<&'static str> {
        line.split_whitespace().collect()
    }

    /// [`SIGN`] with the words of `extra` after it.
    fn with(extra: &'static str) -> Vec<&'static str> {
        let mut v = words(SIGN);
        v.extend(words(extra));
        v
    }

    fn replace(flag: &str, value: &str) -> Vec<&'static str> {
        let mut v = words(SIGN);
        let i = v.iter().position(|a| *a == flag).unwrap();
        v[i + 1] = Box::leak(value.to_string().into_boxed_str());
        v
    }

    #[test]
    fn parses_a_full_sign_command() {
        let cli = parse(&with(
            "--cve CVE-2024-12345:critical --cve CVE-2023-0001:low --key b.key --keyset ks.cbor \
             --use-before 1900000000 --min-battery-mwh 250 --detached --ed25519-alg ed25519",
        ))
        .unwrap();
        let Command::Sign(a) = cli.command else {
            panic!("expected sign")
        };
        assert_eq!(a.version, ReleaseVersion::new(1, 2, 3));
        assert_eq!(a.sequence, 4);
        assert_eq!(a.cves.len(), 2);
        assert_eq!(a.cves[0].id, "CVE-2024-12345");
        assert_eq!(a.keys, [PathBuf::from("a.key"), PathBuf::from("b.key")]);
        assert_eq!(a.keyset, Some(PathBuf::from("ks.cbor")));
        assert_eq!(a.use_before, Some(1_900_000_000));
        assert_eq!(a.min_battery_mwh, Some(250));
        assert!(a.detached);
        assert_eq!(a.ed25519_alg, Ed25519AlgArg::Ed25519);
        assert_eq!(a.output, PathBuf::from("out.suit"));
    }

    #[test]
    fn rejects_bad_versions() {
        for bad in ["1.2", "1.2.3.4", "v1.2.3", "1.2.x", ""] {
            let err = parse(&replace("--version", bad)).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::ValueValidation, "{bad:?}");
            let msg = err.to_string();
            assert!(msg.contains("--version"), "{msg}");
            assert!(msg.contains("MAJOR.MINOR.PATCH"), "{msg}");
        }
    }

    #[test]
    fn rejects_bad_cves() {
        for (bad, what) in [
            ("CVE-2024-12345", "expected CVE-YYYY-NNNN:SEVERITY"),
            ("CVE-2024-12345:severe", "invalid CVE severity \"severe\""),
            ("CVE-24-12345:high", "invalid CVE id \"CVE-24-12345\""),
            ("CVE-2024-123:high", "invalid CVE id"),
        ] {
            let mut args = with("--cve");
            args.push(bad);
            let err = parse(&args).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::ValueValidation, "{bad:?}");
            let msg = err.to_string();
            assert!(msg.contains("--cve"), "{msg}");
            assert!(msg.contains(what), "{bad:?}: {msg}");
        }
    }

    #[test]
    fn rejects_missing_and_malformed_arguments() {
        let no_key: Vec<&str> = SIGN
            .split_whitespace()
            .filter(|a| *a != "--key" && *a != "a.key")
            .collect();
        let err = parse(&no_key).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::MissingRequiredArgument);
        assert!(err.to_string().contains("--key"), "{err}");

        let err = parse(&replace("--sequence", "-1")).unwrap_err();
        assert!(err.to_string().contains("--sequence"), "{err}");
        let err = parse(&with("--min-battery-mwh lots")).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ValueValidation);
        let err = parse(&words("keyway keygen k --alg rsa")).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidValue);
        let err = parse(&words(
            "keyway keyset --root r.key --threshold 1 --version 1 -o k",
        ))
        .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::MissingRequiredArgument);
        assert!(err.to_string().contains("--signer"), "{err}");
    }

    #[test]
    fn keygen_defaults_to_ed25519() {
        let Command::Keygen(a) = parse(&words("keyway keygen vendor")).unwrap().command else {
            panic!("expected keygen")
        };
        assert_eq!(a.alg, AlgArg::Ed25519);
        assert_eq!(a.name, PathBuf::from("vendor"));
        let Command::Keygen(a) = parse(&words("keyway keygen v --alg p256")).unwrap().command
        else {
            panic!("expected keygen")
        };
        assert_eq!(Algorithm::from(a.alg), Algorithm::P256);
    }

    fn run_args(args: &[&str]) -> (Result<()>, String, String) {
        let cli = parse(args).unwrap();
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let r = run(cli, &mut out, &mut err);
        (
            r,
            String::from_utf8(out).unwrap(),
            String::from_utf8(err).unwrap(),
        )
    }

    #[test]
    fn verify_and_inspect_name_the_missing_file() {
        let (r, _, _) = run_args(&[
            "keyway",
            "verify",
            "/nonexistent/x.suit",
            "--trust",
            "/nonexistent/a.pub",
        ]);
        let msg = r.unwrap_err().to_string();
        assert!(msg.contains("/nonexistent/a.pub"), "{msg}");
        let (r, _, _) = run_args(&["keyway", "inspect", "/nonexistent/x.suit"]);
        let msg = r.unwrap_err().to_string();
        assert!(msg.contains("/nonexistent/x.suit"), "{msg}");
    }

    #[test]
    fn sign_errors_name_the_file() {
        let dir = std::env::temp_dir().join(format!(
            "keyway-cli-{}-{}",
            std::process::id(),
            getrandom::u64().unwrap()
        ));
        fs::create_dir_all(&dir).unwrap();
        let p = |n: &str| dir.join(n).to_str().unwrap().to_owned();
        keys::keygen(p("a"), Algorithm::Ed25519).unwrap();
        fs::write(p("fw.bin"), b"firmware").unwrap();
        fs::write(p("NOTES.md"), "# notes").unwrap();
        fs::write(p("bad.md"), [0xff, 0xfe]).unwrap();
        fs::write(p("empty.bin"), b"").unwrap();
        fs::write(p("garbage.key"), b"garbage").unwrap();
        let (fw, notes, key, out) = (p("fw.bin"), p("NOTES.md"), p("a.key"), p("out.suit"));
        let base = |fw: &str, notes: &str, key: &str| {
            vec![
                "keyway".to_owned(),
                "sign".into(),
                "--firmware".into(),
                fw.into(),
                "--version".into(),
                "1.0.0".into(),
                "--sequence".into(),
                "1".into(),
                "--vendor-domain".into(),
                "v.example".into(),
                "--class".into(),
                "c".into(),
                "--notes".into(),
                notes.into(),
                "--key".into(),
                key.into(),
                "-o".into(),
                out.clone(),
            ]
        };
        let go = |args: Vec<String>| {
            let refs: Vec<&str> = args.iter().map(String::as_str).collect();
            run_args(&refs)
        };

        let (r, stdout, _) = go(base(&fw, &notes, &key));
        r.unwrap();
        assert!(stdout.starts_with(&format!("wrote {out}")), "{stdout}");
        assert!(fs::read(&out).unwrap().starts_with(&[0xd8, 0x6b]));

        let cases = [
            (
                base(&p("missing.bin"), &notes, &key),
                format!("{}: cannot read the firmware", p("missing.bin")),
            ),
            (
                base(&p("empty.bin"), &notes, &key),
                format!("{}: the firmware image is empty", p("empty.bin")),
            ),
            (
                base(&fw, &p("bad.md"), &key),
                format!("{}: release notes are not valid UTF-8", p("bad.md")),
            ),
            (
                base(&fw, &notes, &p("a.pub")),
                format!(
                    "{}: wrong key type: expected a private key, got a public key",
                    p("a.pub")
                ),
            ),
            (
                base(&fw, &notes, &p("garbage.key")),
                format!("{}: not a PEM private key", p("garbage.key")),
            ),
        ];
        for (args, want) in cases {
            let msg = format!("{:#}", go(args).0.unwrap_err());
            assert!(msg.starts_with(&want), "want {want:?}, got {msg:?}");
        }
        let mut dup = base(&fw, &notes, &key);
        dup.extend(["--key".to_owned(), key.clone()]);
        let msg = go(dup).0.unwrap_err().to_string();
        assert!(msg.contains("same key as"), "{msg}");
        let mut bad_ks = base(&fw, &notes, &key);
        bad_ks.extend(["--keyset".to_owned(), notes.clone()]);
        let msg = format!("{:#}", go(bad_ks).0.unwrap_err());
        assert!(
            msg.starts_with(&format!("{notes}: not a Keyway key-set document")),
            "{msg}"
        );
        fs::remove_dir_all(dir).unwrap();
    }
}
