//! `keyway demo`: Keyway's main job, end to end, on this machine alone.
//!
//! A vendor makes keys and a key set, signs a release that fixes a CVE, and
//! a simulated lock verifies and accepts it offline, with its own trust
//! anchors, streaming the payload in small chunks as a local link would.
//! Then the lock installs it on a simulated nRF52840 flash in swap mode with
//! the real installer, journal and bootloader of `keyway-device` (see
//! [`lock`]): the power fails in the middle of the swap, the bootloader
//! resumes it, and the new image confirms after its self-test. Then the
//! lock is attacked with doctored envelopes and a tampered image in flash,
//! and the scorecard shows each refusal and the check that caught it.
//! Every vendor step is the `keyway` command printed beside it, so a reader
//! can repeat it by hand.
//!
//! The lock's verifier is the device code called in-process; the link (SMP
//! over a transport) is not simulated: the demo hands over the bytes in
//! link-sized chunks.

pub mod lock;

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, bail};
use clap::Parser as _;
use keyway_suit as suit;

use keyway::check::{VerifyOptions, check_name, verify_file};
use keyway::encode::{assemble_envelope, class_uuid, vendor_uuid};

const VENDOR: &str = "locks.example";
const CLASS: &str = "deadbolt-2";
/// The demo's trusted time (2026-11-25T00:00:00Z); fixed so runs repeat.
const NOW: u64 = 1_795_564_800;
/// A chunk as a BLE-class local link would deliver it.
pub const LINK_CHUNK: usize = 244;

/// One line of the scorecard.
#[derive(Debug, Clone)]
pub struct Score {
    /// The attack or check.
    pub name: &'static str,
    /// Whether the lock behaved as it must.
    pub pass: bool,
    /// What the lock said.
    pub evidence: String,
}

fn keyway(out: &mut dyn Write, args: &[&str]) -> Result<()> {
    writeln!(out, "  $ keyway {}", args.join(" "))?;
    let mut argv = vec!["keyway"];
    argv.extend_from_slice(args);
    let cli = crate::cli::Cli::try_parse_from(&argv).context("demo built a bad command line")?;
    let mut buf = Vec::new();
    crate::cli::run(cli, &mut buf, &mut std::io::sink())?;
    for line in String::from_utf8_lossy(&buf).lines() {
        writeln!(out, "    {line}")?;
    }
    Ok(())
}

fn firmware(version: u8, len: usize) -> Vec<u8> {
    // A deterministic stand-in image: a vector table-like header, then code-like bytes.
    let mut fw = vec![0u8; len];
    let mut x = 0x2545_f491_u32 ^ u32::from(version);
    for b in fw.iter_mut() {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        *b = (x >> 24) as u8;
    }
    fw[..4].copy_from_slice(&[0x00, 0x00, 0x04, 0x20]);
    fw
}

/// Runs the demo in `dir` (emptied first), printing to `out`. Returns the
/// scorecard; every line must pass.
pub fn run(dir: &Path, out: &mut dyn Write) -> Result<Vec<Score>> {
    if dir.exists() {
        std::fs::remove_dir_all(dir).with_context(|| format!("{}: cannot clear", dir.display()))?;
    }
    std::fs::create_dir_all(dir.join("attacks"))
        .with_context(|| format!("{}: cannot create", dir.display()))?;
    let p = |name: &str| dir.join(name).to_string_lossy().into_owned();

    writeln!(
        out,
        "\n1. Vendor: keys. A root key (kept offline) delegates to two release signers."
    )?;
    keyway(out, &["keygen", &p("root")])?;
    keyway(out, &["keygen", &p("signer-a")])?;
    keyway(out, &["keygen", &p("signer-b"), "--alg", "p256"])?;
    keyway(out, &["keygen", &p("mallory")])?;
    keyway(
        out,
        &[
            "keyset",
            "--root",
            &p("root.key"),
            "--signer",
            &p("signer-a.pub"),
            "--signer",
            &p("signer-b.pub"),
            "--threshold",
            "2",
            "--version",
            "1",
            "-o",
            &p("keyset-v1.cbor"),
        ],
    )?;

    writeln!(
        out,
        "\n2. Vendor: a release that fixes a vulnerability, signed 2-of-2."
    )?;
    std::fs::write(dir.join("firmware-2.1.0.bin"), firmware(2, 300 * 1024))?;
    std::fs::write(
        dir.join("notes-2.1.0.md"),
        "# Deadbolt-2 firmware 2.1.0\n\n\
         - Keypad: lock out for 5 minutes after 5 wrong PINs.\n\
         - BLE: owner commands answer a fresh challenge, so a captured command cannot be replayed.\n\n\
         CVE-2099-0001 is a placeholder ID for this demo, not a real vulnerability.\n",
    )?;
    let release = p("release-2.1.0.suit");
    let sign =
        |out: &mut dyn Write, extra: &[&str], seq: &str, class: &str, key2: &str, o: &str| {
            let owned = [
                p("firmware-2.1.0.bin"),
                p("notes-2.1.0.md"),
                p("keyset-v1.cbor"),
                p("signer-a.key"),
            ];
            let mut args = vec![
                "sign",
                "--firmware",
                &owned[0],
                "--version",
                "2.1.0",
                "--sequence",
                seq,
                "--vendor-domain",
                VENDOR,
                "--class",
                class,
                "--notes",
                &owned[1],
                "--cve",
                "CVE-2099-0001:high",
                "--keyset",
                &owned[2],
                "--key",
                &owned[3],
                "--key",
                key2,
                "-o",
                o,
            ];
            args.extend_from_slice(extra);
            keyway(out, &args)
        };
    sign(out, &[], "2", CLASS, &p("signer-b.key"), &release)?;
    writeln!(
        out,
        "  The lock's current firmware, 1.4.0 (sequence 1), was signed the same way:"
    )?;
    std::fs::write(dir.join("firmware-1.4.0.bin"), firmware(1, 280 * 1024))?;
    std::fs::write(
        dir.join("notes-1.4.0.md"),
        "# Deadbolt-2 firmware 1.4.0\n\nFactory image.\n",
    )?;
    let factory_release = p("release-1.4.0.suit");
    keyway(
        out,
        &[
            "sign",
            "--firmware",
            &p("firmware-1.4.0.bin"),
            "--version",
            "1.4.0",
            "--sequence",
            "1",
            "--vendor-domain",
            VENDOR,
            "--class",
            CLASS,
            "--notes",
            &p("notes-1.4.0.md"),
            "--keyset",
            &p("keyset-v1.cbor"),
            "--key",
            &p("signer-a.key"),
            "--key",
            &p("signer-b.key"),
            "-o",
            &factory_release,
        ],
    )?;
    keyway(
        out,
        &[
            "verify",
            &release,
            "--trust",
            &p("root.pub"),
            "--vendor-domain",
            VENDOR,
            "--class",
            CLASS,
            "--now",
            &NOW.to_string(),
        ],
    )?;

    writeln!(
        out,
        "\n3. The router is unplugged: from here on nothing but these files and the lock."
    )?;

    writeln!(
        out,
        "\n4. The lock receives the release over a local link ({LINK_CHUNK}-byte chunks) and checks it itself."
    )?;
    let anchors = {
        let root = keyway::keys::PublicKey::load(dir.join("root.pub"))?;
        suit::TrustAnchors::new(
            &[suit::PublicKey::from_raw(&root.raw_public_key_bytes())?],
            1,
        )?
    };
    let v = vendor_uuid(VENDOR);
    let identity = suit::DeviceIdentity::new(v, class_uuid(&v, CLASS));
    let mut state = suit::DeviceState::new(1); // the factory image is sequence 1
    let bytes = std::fs::read(&release)?;
    let (verified, verified_at) = {
        // Verify as soon as the manifest has arrived: the lock needs the
        // head of the envelope only, then streams the payload.
        let mut n = 0;
        loop {
            n = (n + LINK_CHUNK).min(bytes.len());
            match suit::verify_envelope(&bytes[..n], &anchors, &identity, &state) {
                Ok(v) => break (v, n),
                Err(e) if n == bytes.len() => bail!(
                    "the lock refused the genuine release: {}",
                    keyway::describe::describe(&e)
                ),
                Err(_) => continue,
            }
        }
    };
    writeln!(
        out,
        "  signatures, key set, anti-rollback and model verified after the first {verified_at} of {} bytes",
        bytes.len()
    )?;
    let expect = verified
        .payload
        .context("the release describes its image")?;
    let ip = verified
        .integrated
        .context("the release carries its image")?;
    let mut pv = suit::PayloadVerifier::new(&expect);
    let start = ip.offset;
    let mut chunks = 0;
    for c in bytes[start..start + ip.len as usize].chunks(LINK_CHUNK) {
        pv.update(c)?;
        chunks += 1;
    }
    pv.finish()?;
    writeln!(
        out,
        "  payload: {} bytes in {chunks} chunks, SHA-256 matches the signed manifest",
        ip.len
    )?;
    let notes = verified.notes.context("the release has notes")?;
    writeln!(out, "  release notes shown to the owner before consent:")?;
    for line in notes.description.unwrap_or("").lines() {
        writeln!(out, "  | {line}")?;
    }
    for cve in notes.cves() {
        writeln!(
            out,
            "  | fixes {} (severity {})",
            cve.id,
            cve.severity.as_str()
        )?;
    }
    writeln!(out, "  owner at the lock: consent given")?;
    verified.manifest.policy.check(&suit::PolicyInputs {
        now: Some(NOW),
        battery_mwh: 4_000,
        consent: true,
    })?;
    let before = state.sequence_floor;
    state.sequence_floor = Some(verified.sequence);
    if let Some(ks) = verified.new_keyset.clone() {
        state.keyset = Some(ks);
    }
    writeln!(
        out,
        "  accepted: floor {} -> {}, key set v{} stored (learnt from the update itself)",
        before.unwrap_or(0),
        verified.sequence,
        state.keyset_version()
    )?;

    writeln!(
        out,
        "\n5. The lock installs it: swap mode (images linked to one address) on a simulated nRF52840 flash, with the device's installer, journal and bootloader."
    )?;
    let old = lock::Release::new("1.4.0", std::fs::read(&factory_release)?)?;
    let new = lock::Release::new("2.1.0", bytes.clone())?;
    let image_len = old.image_len().max(new.image_len());
    let lock = lock::Lock::new(&anchors, &identity, state.keyset.clone(), image_len)?;
    let installed = lock.install((&old, 1), (&new, verified.sequence), out)?;

    writeln!(
        out,
        "\n6. The lock under attack (each file is in {}):",
        dir.join("attacks").display()
    )?;
    let a = |name: &str| {
        dir.join("attacks")
            .join(name)
            .to_string_lossy()
            .into_owned()
    };
    sign(
        out,
        &[],
        "3",
        CLASS,
        &p("signer-b.key"),
        &a("tampered-payload.suit"),
    )?;
    let mut tampered = std::fs::read(a("tampered-payload.suit"))?;
    let last = tampered.len() - 100;
    tampered[last] ^= 0x01; // one bit of the firmware, after signing
    std::fs::write(a("tampered-payload.suit"), &tampered)?;
    sign(
        out,
        &[],
        "3",
        CLASS,
        &p("mallory.key"),
        &a("unknown-signer.suit"),
    )?;
    sign(
        out,
        &[],
        "3",
        "padlock-1",
        &p("signer-b.key"),
        &a("wrong-model.suit"),
    )?;
    sign(
        out,
        &["--use-before", &(NOW - 86_400).to_string()],
        "3",
        CLASS,
        &p("signer-b.key"),
        &a("expired.suit"),
    )?;
    // Release notes of this release glued onto a release with other notes.
    let other_fw = firmware(3, 1024);
    let other = keyway::encode::EnvelopeBuilder {
        sequence: 3,
        version: "2.1.1".parse()?,
        vendor_domain: VENDOR.into(),
        class_name: CLASS.into(),
        notes: Some("# 2.1.1\n\nNo security fixes.\n".into()),
        payload: other_fw.clone(),
        keys: vec![
            keyway::keys::SigningKey::load(dir.join("signer-a.key"))?,
            keyway::keys::SigningKey::load(dir.join("signer-b.key"))?,
        ],
        ..Default::default()
    }
    .build()?;
    let old_text = suit::Envelope::decode(&bytes)?.text().map(<[u8]>::to_vec);
    std::fs::write(
        a("mixed-notes.suit"),
        assemble_envelope(
            &other.auth,
            &other.manifest,
            old_text.as_deref(),
            None,
            Some(&other_fw),
        ),
    )?;

    let lock_opts = VerifyOptions {
        trust: vec![dir.join("root.pub")],
        threshold: 1,
        identity: Some((v, class_uuid(&v, CLASS))),
        floor: state.sequence_floor,
        stored_keyset: Some(dir.join("keyset-v1.cbor")),
        now: Some(NOW),
        ..VerifyOptions::default()
    };
    let cases: [(&'static str, String, &str); 6] = [
        ("tampered payload", a("tampered-payload.suit"), "payload"),
        (
            "signature by an unknown key",
            a("unknown-signer.suit"),
            "signatures",
        ),
        (
            "replay of the installed release (rollback)",
            release.clone(),
            "anti-rollback",
        ),
        (
            "release for another model",
            a("wrong-model.suit"),
            "compatibility",
        ),
        ("expired release (use-before)", a("expired.suit"), "policy"),
        (
            "release notes from another release",
            a("mixed-notes.suit"),
            "release notes",
        ),
    ];
    let mut scores = vec![Score {
        name: "genuine release accepted offline",
        pass: true,
        evidence: format!(
            "sequence {}, {} CVE fix shown before consent",
            verified.sequence,
            notes.cve_count()
        ),
    }];
    scores.extend(installed.scores);
    for (name, file, expected) in cases {
        let score = match verify_file(Path::new(&file), &lock_opts) {
            Ok(s) => Score {
                name,
                pass: false,
                evidence: format!("ACCEPTED: {s}"),
            },
            Err(keyway::check::Rejection::Verifier(e)) => Score {
                name,
                pass: check_name(&e) == expected,
                evidence: format!(
                    "refused by the {} check: {}",
                    check_name(&e),
                    keyway::describe::describe(&e)
                ),
            },
            Err(e) => Score {
                name,
                pass: false,
                evidence: e.to_string(),
            },
        };
        scores.push(score);
    }
    writeln!(
        out,
        "  and in flash: one byte of the staged 2.1.0 image flipped before the bootloader runs (on a copy of the lock's flash after step 5's staging)"
    )?;
    scores.push(lock.tampered_image(&installed.staged, &old, &new)?);
    Ok(scores)
}

/// Prints the scorecard table.
pub fn print_scorecard(scores: &[Score], out: &mut dyn Write) -> Result<()> {
    writeln!(out, "\nScorecard")?;
    let w = scores.iter().map(|s| s.name.len()).max().unwrap_or(0);
    for s in scores {
        writeln!(
            out,
            "  {}  {:w$}  {}",
            if s.pass { "PASS" } else { "FAIL" },
            s.name,
            s.evidence
        )?;
    }
    let passed = scores.iter().filter(|s| s.pass).count();
    writeln!(out, "{passed} passed, {} failed", scores.len() - passed)?;
    Ok(())
}

/// The default demo folder: `target/keyway-demo` under the current directory.
pub fn default_dir() -> PathBuf {
    PathBuf::from("target").join("keyway-demo")
}
