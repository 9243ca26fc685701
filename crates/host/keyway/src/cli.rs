//! The `keyway` command line: argument definitions and command handlers.
//!
//! `main.rs` only parses the arguments and calls [`run`]; every handler
//! writes its normal output to `out`, warnings to `err`, and returns an error
//! (naming the file and what failed) instead of panicking.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, bail};
use clap::{Args, Parser, Subcommand, ValueEnum};

use keyway_vendor::encode::{
    Cve, Ed25519Alg, EnvelopeBuilder, KeySetBuilder, KeySetInfo, KeySetParams, P256Alg,
    SignOptions, Version,
};
use keyway_vendor::keys::{self, Algorithm, KeyId, PublicKey, SigningKey, hex};

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

/// `keyway log` subcommands.
#[derive(Debug, Subcommand)]
pub enum LogCommand {
    /// Check the hash chain, checkpoints and signed head of an exported
    /// log: one line per break (record modified, deleted, reordered,
    /// inserted, truncated, signed by another key), then a summary; exits
    /// non-zero on any break.
    Verify(LogVerifyArgs),
    /// Print an exported log readably (no verification).
    Show(LogShowArgs),
    /// Build a demo log on a simulated lock's flash, signed by a device
    /// key, and write its export (for trying `verify` and `show`).
    DemoExport(LogDemoArgs),
}

/// Arguments of `keyway log verify`.
#[derive(Debug, Args)]
pub struct LogVerifyArgs {
    /// The exported log.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// The lock's device public key, SPKI PEM (Ed25519).
    #[arg(long, value_name = "DEVICE.pub")]
    pub device_key: PathBuf,
}

/// Arguments of `keyway log show`.
#[derive(Debug, Args)]
pub struct LogShowArgs {
    /// The exported log.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
    /// Only records with this sequence number or later.
    #[arg(long, value_name = "SEQ")]
    pub since: Option<u32>,
}

/// Arguments of `keyway log demo-export`.
#[derive(Debug, Args)]
pub struct LogDemoArgs {
    /// The device's private key, PKCS#8 PEM, Ed25519 (from `keyway keygen`).
    #[arg(long, value_name = "DEVICE.key")]
    pub key: PathBuf,
    /// Events to log.
    #[arg(long, value_name = "N", default_value_t = 100)]
    pub events: u32,
    /// 4 KiB flash pages in the log's ring (29 records each).
    #[arg(long, value_name = "N", default_value_t = 8)]
    pub pages: u32,
    /// Output file.
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: PathBuf,
}

/// Arguments of `keyway diff`.
#[derive(Debug, Args)]
pub struct DiffArgs {
    /// The image installed on the lock (the patch's base).
    pub old: PathBuf,
    /// The new image.
    pub new: PathBuf,
    /// Where to write the patch.
    #[arg(short, long, value_name = "PATCH")]
    pub output: PathBuf,
    /// Also model the end-to-end update (transfer, install on the nRF52840
    /// flash model, reboot) with the full image and with the delta, signed
    /// and installed through the lock's own code, over the lock's modeled
    /// BLE link (244-byte frames, 15 ms a response) at this many bytes per
    /// second (10000 in BENCHMARKS.md).
    #[arg(long, value_name = "BYTES_PER_S")]
    pub update_time: Option<u64>,
}

/// Arguments of `keyway patch`.
#[derive(Debug, Args)]
pub struct PatchArgs {
    /// The image the patch was made for.
    pub old: PathBuf,
    /// The patch.
    pub patch: PathBuf,
    /// Where to write the new image.
    #[arg(short, long, value_name = "NEW")]
    pub output: PathBuf,
    /// Feed the patch in chunks of this many bytes, as a lock receives it.
    #[arg(long, value_name = "B", default_value_t = 244)]
    pub chunk: usize,
    /// Apply it as a lock does, on a simulated flash with the nRF52840's
    /// timing: the base read from slot 0, the output written into slot 1
    /// by the lock's installer; prints the modeled flash time.
    #[arg(long)]
    pub flash_sim: bool,
}

fn read(path: &Path) -> Result<Vec<u8>> {
    fs::read(path).with_context(|| format!("reading {}", path.display()))
}

fn diff(a: &DiffArgs, out: &mut dyn Write) -> Result<()> {
    let (old, new) = (read(&a.old)?, read(&a.new)?);
    let start = std::time::Instant::now();
    let patch = keyway_vendor::delta::diff(&old, &new)?;
    let took = start.elapsed();
    fs::write(&a.output, &patch).with_context(|| format!("writing {}", a.output.display()))?;
    writeln!(
        out,
        "{}: {} bytes for {} -> {} bytes ({:.2}% of the new image, {:.1}x smaller), diff {:.2} s",
        a.output.display(),
        patch.len(),
        old.len(),
        new.len(),
        100.0 * patch.len() as f64 / new.len().max(1) as f64,
        new.len() as f64 / patch.len() as f64,
        took.as_secs_f64()
    )?;
    if let Some(link) = a.update_time {
        let [full, delta] = keyway_vendor::delta::update_times(&old, &new, link)?;
        writeln!(
            out,
            "end-to-end update over the lock's modeled BLE link (an owner's sealed upload, SMP frames up to the lock's {} B buffer in {BLE_PACKET} B ATT writes, {BLE_PACKET_HEADER} B of header a packet, {link} B/s, {BLE_TURNAROUND_MS} ms a response) on the nRF52840 flash model:",
            keyway_smp::MAX_FRAME
        )?;
        let mut totals = Vec::new();
        for (name, t) in [("full image", &full), ("delta", &delta)] {
            let (frames, bytes) = ble_upload(&t.envelope)?;
            let link_s = bytes as f64 / link.max(1) as f64;
            let turn_s = frames as f64 * f64::from(BLE_TURNAROUND_MS) / 1e3;
            let total = link_s + turn_s + t.install_s + t.reboot_s;
            totals.push(total);
            writeln!(
                out,
                "  {name:<10} envelope {:>7} B, {frames} frames, {bytes} B on the link: link {:6.1} s + turnaround {:5.1} s + install {:5.2} s + reboot {:5.3} s = {:6.1} s",
                t.envelope.len(),
                link_s,
                turn_s,
                t.install_s,
                t.reboot_s,
                total
            )?;
        }
        writeln!(
            out,
            "  delta / full: {:.3} ({:.1}x faster)",
            totals[1] / totals[0],
            totals[0] / totals[1]
        )?;
    }
    Ok(())
}

/// The lock's modeled BLE link, as `examples/smp_bench.rs` models it:
/// MCUmgr's Bluetooth transport with reassembly. The client sends SMP
/// frames up to the lock's buffer ([`keyway_smp::MAX_FRAME`], what the
/// lock advertises as `buf_size`), each split into ATT writes of at most
/// this many bytes (ATT MTU 247) ...
const BLE_PACKET: usize = 244;
/// ... each carrying this many bytes of L2CAP (4) and ATT (3) header on
/// the link ...
const BLE_PACKET_HEADER: u64 = 7;
/// ... and each frame answered after one connection interval (a model
/// parameter).
const BLE_TURNAROUND_MS: u32 = 15;

/// What `keyway device update`'s client sends to upload `env` as an owner
/// does, sealed in a session (the handshake, then every chunk as a
/// record): (frames, link bytes: the frames' bytes and each packet's
/// header). Counted through an in-memory endpoint that runs the lock's
/// side of the channel (`keyway_channel::SessionTable`) and takes every
/// chunk (the lock's own answers are the same `off` values).
fn ble_upload(env: &[u8]) -> Result<(u64, u64)> {
    use crate::device::{Client, FnTransport, Transport as _};
    use keyway_channel::{ResponseStatus, SessionTable, TableConfig};
    use keyway_smp::{Request, Response, answer_frame, header::split_request, img, kw};
    use keyway_vendor::keys::{Algorithm, SigningKey};
    use rand_chacha::rand_core::SeedableRng as _;

    let owner = SigningKey::generate(Algorithm::Ed25519)?;
    let owner_pk: [u8; 32] = owner
        .raw_public_key_bytes()
        .try_into()
        .map_err(|_| anyhow::anyhow!("the modeled owner key is not Ed25519"))?;
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| anyhow::anyhow!("the OS's randomness: {e}"))?;
    let device = keyway_channel::SigningKey::from_bytes(&seed);
    let device_pk = device.verifying_key().to_bytes();
    let mut rng = rand_chacha::ChaCha20Rng::from_seed(seed);
    let mut table = SessionTable::<2>::new(TableConfig::default());
    let start = std::time::Instant::now();
    let lock = move |frame: &[u8]| -> Vec<u8> {
        let now = u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX);
        let mut out = vec![0u8; keyway_smp::MAX_FRAME + 64];
        let Ok((hdr, body)) = split_request(frame, keyway_smp::MAX_BODY) else {
            return Vec::new();
        };
        let Ok(req) = Request::decode(hdr.op, hdr.group, hdr.id, body) else {
            return Vec::new();
        };
        let answer = |out: &mut [u8], rsp: &Response<'_>| {
            answer_frame(out, &hdr, |w| rsp.encode(w)).unwrap_or(0)
        };
        let n = match req {
            Request::SessionStart(m) => {
                let mut msg2 = [0u8; keyway_channel::handshake::MSG2_LEN];
                match table.handshake1(now, &mut rng, &device, m.msg, &mut msg2) {
                    Ok(_) => answer(
                        &mut out,
                        &Response::SessionStart(kw::SessionStartRsp { msg: &msg2 }),
                    ),
                    Err(_) => 0,
                }
            }
            Request::SessionFinish(m) => {
                let mut msg4 = [0u8; keyway_channel::record::MSG4_LEN];
                let lookup = |k: &keyway_channel::KeyId| {
                    (*k == keyway_channel::key_id(&owner_pk)).then_some(owner_pk)
                };
                match table.handshake3(now, m.msg, lookup, &mut msg4) {
                    Ok(_) => answer(
                        &mut out,
                        &Response::SessionFinish(kw::SessionFinishRsp { msg: &msg4 }),
                    ),
                    Err(_) => 0,
                }
            }
            Request::Sealed(m) => {
                let mut rec = m.msg.to_vec();
                let Ok(opened) = table.open_request(now, &mut rec) else {
                    return Vec::new();
                };
                let inner = rec.get(opened.payload.clone()).unwrap_or(&[]);
                let Ok((ih, ib)) = split_request(inner, keyway_smp::MAX_BODY) else {
                    return Vec::new();
                };
                let Ok(Request::Upload(u)) = Request::decode(ih.op, ih.group, ih.id, ib) else {
                    return Vec::new();
                };
                let rsp = img::UploadRsp {
                    off: u.off + u.data.len() as u64,
                    matched: None,
                };
                let mut plain = vec![0u8; keyway_smp::MAX_FRAME];
                let k =
                    answer_frame(&mut plain, &ih, |w| Response::Upload(rsp).encode(w)).unwrap_or(0);
                let mut sealed = vec![0u8; k + 64];
                match table.seal_response(
                    now,
                    opened.session,
                    opened.counter,
                    ResponseStatus::Ok,
                    plain.get(..k).unwrap_or(&[]),
                    &mut sealed,
                ) {
                    Ok(m) => answer(
                        &mut out,
                        &Response::Sealed(kw::Sealed {
                            msg: sealed.get(..m).unwrap_or(&[]),
                        }),
                    ),
                    Err(_) => 0,
                }
            }
            _ => 0,
        };
        out.truncate(n);
        out
    };
    let t = FnTransport::fragmenting(BLE_PACKET, keyway_smp::MAX_FRAME, lock);
    let mut c = Client::new(t)
        .with_owner(owner)
        .and_then(|c| c.with_paired_lock(device_pk))
        .map_err(|e| anyhow::anyhow!("modeled BLE upload: {e}"))?;
    c.upload(env, &mut |_, _| {})
        .map_err(|e| anyhow::anyhow!("modeled BLE upload: {e}"))?;
    let st = c.transport().stats();
    Ok((
        st.frames_sent,
        st.bytes_sent + BLE_PACKET_HEADER * st.packets_sent,
    ))
}

/// Reads `path`, refusing (before reading) a file over `limit` bytes.
fn read_bounded(path: &Path, limit: u64, what: &str) -> Result<Vec<u8>> {
    use std::io::Read as _;
    let f = fs::File::open(path).with_context(|| format!("reading {}", path.display()))?;
    let mut bytes = Vec::new();
    // A file that grows while it is read is cut at one byte over.
    f.take(limit + 1)
        .read_to_end(&mut bytes)
        .with_context(|| format!("reading {}", path.display()))?;
    if bytes.len() as u64 > limit {
        bail!(
            "{}: {what} over {} MiB; refused",
            path.display(),
            limit >> 20
        );
    }
    Ok(bytes)
}

fn patch(a: &PatchArgs, out: &mut dyn Write) -> Result<()> {
    let old = read_bounded(
        &a.old,
        u64::from(keyway_vendor::delta::MAX_IMAGE),
        "the old image is",
    )?;
    let patch = read_bounded(&a.patch, keyway_vendor::delta::MAX_PATCH, "the patch is")?;
    let context = || format!("applying {} to {}", a.patch.display(), a.old.display());
    let new = if a.flash_sim {
        let start = std::time::Instant::now();
        let r =
            keyway_vendor::delta::apply_on_flash(&old, &patch, a.chunk).with_context(context)?;
        writeln!(
            out,
            "flash-sim (nRF52840 timing): {:.2} s modeled flash time, {} sector erases, {} bytes programmed; \
             host decode+simulation {:.2} s; at 10 KB/s the patch transfers in {:.1} s, the full image in {:.1} s",
            r.seconds,
            r.erases,
            r.bytes_written,
            start.elapsed().as_secs_f64(),
            patch.len() as f64 / 10_000.0,
            r.image.len() as f64 / 10_000.0
        )?;
        r.image
    } else {
        keyway_vendor::delta::apply(&old, &patch, a.chunk).with_context(context)?
    };
    fs::write(&a.output, &new).with_context(|| format!("writing {}", a.output.display()))?;
    writeln!(
        out,
        "{}: {} bytes, SHA-256 matches the patch header (decoder RAM {} bytes)",
        a.output.display(),
        new.len(),
        core::mem::size_of::<keyway_delta::Patcher>()
    )?;
    Ok(())
}

/// Key algorithm for `keygen`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AlgArg {
    /// Ed25519.
    Ed25519,
    /// ECDSA P-256.
    P256,
}

impl From<AlgArg> for Algorithm {
    fn from(a: AlgArg) -> Self {
        match a {
            AlgArg::Ed25519 => Algorithm::Ed25519,
            AlgArg::P256 => Algorithm::P256,
        }
    }
}

/// COSE algorithm label for Ed25519 signatures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Ed25519AlgArg {
    /// -8 (EdDSA, RFC 9053), which most COSE implementations verify.
    Eddsa,
    /// -19 (Ed25519, fully specified, RFC 9864), as the SUIT MTI profiles name it.
    Ed25519,
}

/// COSE algorithm label for P-256 signatures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum P256AlgArg {
    /// -9 (ESP256, fully specified, RFC 9864), as the SUIT MTI profiles name it.
    Esp256,
    /// -7 (ES256, RFC 9053), as in draft-ietf-suit-manifest's examples.
    Es256,
}

impl From<P256AlgArg> for P256Alg {
    fn from(a: P256AlgArg) -> Self {
        match a {
            P256AlgArg::Esp256 => P256Alg::Esp256,
            P256AlgArg::Es256 => P256Alg::Es256,
        }
    }
}

impl From<Ed25519AlgArg> for Ed25519Alg {
    fn from(a: Ed25519AlgArg) -> Self {
        match a {
            Ed25519AlgArg::Eddsa => Ed25519Alg::EdDsa,
            Ed25519AlgArg::Ed25519 => Ed25519Alg::Ed25519,
        }
    }
}

/// Arguments of `keyway keygen`.
#[derive(Debug, Args)]
pub struct KeygenArgs {
    /// Base name; writes NAME.key and NAME.pub (never overwrites).
    #[arg(value_name = "NAME")]
    pub name: PathBuf,
    /// Key algorithm.
    #[arg(long, value_enum, default_value_t = AlgArg::Ed25519)]
    pub alg: AlgArg,
}

/// Arguments of `keyway sign`.
#[derive(Debug, Args)]
pub struct SignArgs {
    /// Firmware image.
    #[arg(long, value_name = "FW")]
    pub firmware: PathBuf,
    /// Release version, MAJOR.MINOR.PATCH.
    #[arg(long, value_name = "X.Y.Z")]
    pub version: Version,
    /// Anti-rollback sequence number.
    #[arg(long, value_name = "N")]
    pub sequence: u64,
    /// Vendor domain (vendor UUID = UUIDv5(DNS, DOMAIN)).
    #[arg(long, value_name = "DOMAIN")]
    pub vendor_domain: String,
    /// Device class name (class UUID = UUIDv5(vendor UUID, NAME)).
    #[arg(long, value_name = "NAME")]
    pub class: String,
    /// Human-readable vendor name for the release notes.
    #[arg(long, value_name = "NAME")]
    pub vendor_name: Option<String>,
    /// Release notes (Markdown, UTF-8).
    #[arg(long, value_name = "NOTES.md")]
    pub notes: PathBuf,
    /// A fixed vulnerability, CVE-YYYY-NNNN:low|medium|high|critical (repeatable).
    #[arg(long = "cve", value_name = "ID:SEVERITY")]
    pub cves: Vec<Cve>,
    /// Signing key, PKCS#8 PEM (repeatable; one signature each).
    #[arg(long = "key", value_name = "KEY", required = true)]
    pub keys: Vec<PathBuf>,
    /// Key-set document to embed (from `keyway keyset`).
    #[arg(long, value_name = "KEYSET")]
    pub keyset: Option<PathBuf>,
    /// Do not install after this time (seconds since 1970).
    #[arg(long, value_name = "UNIX_SECONDS")]
    pub use_before: Option<u64>,
    /// Minimum battery charge needed to install, in mWh.
    #[arg(long = "min-battery-mwh", value_name = "N")]
    pub min_battery_mwh: Option<u64>,
    /// Leave the firmware out of the envelope.
    #[arg(long, conflicts_with = "delta_from")]
    pub detached: bool,
    /// Make a delta update from the image the locks run now: the envelope
    /// carries a patch from OLD.bin to the firmware, and its manifest binds
    /// OLD.bin's digest and size (the base) and the firmware's (the output).
    #[arg(long, value_name = "OLD.bin")]
    pub delta_from: Option<PathBuf>,
    /// COSE algorithm label on Ed25519 signatures.
    #[arg(long, value_enum, default_value_t = Ed25519AlgArg::Eddsa)]
    pub ed25519_alg: Ed25519AlgArg,
    /// COSE algorithm label on P-256 signatures.
    #[arg(long = "p256-alg", value_enum, default_value_t = P256AlgArg::Esp256)]
    pub p256_alg: P256AlgArg,
    /// Leave the key id out of the signatures.
    #[arg(long)]
    pub no_kid: bool,
    /// Output envelope.
    #[arg(short = 'o', long = "output", value_name = "OUT.suit")]
    pub output: PathBuf,
}

/// Arguments of `keyway keyset`.
#[derive(Debug, Args)]
pub struct KeysetArgs {
    /// Root private key that signs the key set (repeatable).
    #[arg(long = "root", value_name = "ROOT.key", required = true)]
    pub roots: Vec<PathBuf>,
    /// Release signer public key (repeatable).
    #[arg(long = "signer", value_name = "SIGNER.pub", required = true)]
    pub signers: Vec<PathBuf>,
    /// Signatures a release needs (1..=number of signers).
    #[arg(long, value_name = "K")]
    pub threshold: u64,
    /// Key-set version (must increase with every new key set).
    #[arg(long, value_name = "N")]
    pub version: u64,
    /// Public key to revoke (repeatable).
    #[arg(long = "revoke", value_name = "OLD.pub")]
    pub revoke: Vec<PathBuf>,
    /// COSE algorithm label on Ed25519 signatures.
    #[arg(long, value_enum, default_value_t = Ed25519AlgArg::Eddsa)]
    pub ed25519_alg: Ed25519AlgArg,
    /// Output key-set document.
    #[arg(short = 'o', long = "output", value_name = "KEYSET")]
    pub output: PathBuf,
}

/// Arguments of `keyway verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The envelope.
    #[arg(value_name = "ENVELOPE")]
    pub envelope: PathBuf,
    /// Root public key, SPKI PEM, Ed25519 or P-256 (repeatable): the
    /// device's immutable trust anchors.
    #[arg(long = "trust", value_name = "ROOT.pub", required = true)]
    pub trust: Vec<PathBuf>,
    /// Root signatures required (for key sets, or manifests signed by root
    /// keys directly).
    #[arg(long, value_name = "K", default_value_t = 1)]
    pub threshold: u8,
    /// The firmware of a detached envelope.
    #[arg(long, value_name = "FW")]
    pub payload: Option<PathBuf>,
    /// Check the vendor identity (with --class): the device's vendor domain.
    #[arg(long, value_name = "DOMAIN", requires = "class")]
    pub vendor_domain: Option<String>,
    /// Check the device class (with --vendor-domain).
    #[arg(long, value_name = "NAME", requires = "vendor_domain")]
    pub class: Option<String>,
    /// The device's anti-rollback floor: the sequence number must exceed it.
    #[arg(long, value_name = "N")]
    pub floor: Option<u64>,
    /// The key-set document the device has stored (its version is the floor
    /// for key sets).
    #[arg(long, value_name = "KEYSET")]
    pub stored_keyset: Option<PathBuf>,
    /// Trusted time for use-before, seconds since 1970 (default: this host's clock).
    #[arg(long, value_name = "UNIX_SECONDS")]
    pub now: Option<u64>,
    /// The device's battery, to check minimum-battery.
    #[arg(long = "battery-mwh", value_name = "N")]
    pub battery_mwh: Option<u64>,
    /// The slot the update would be written to (a lock's inactive slot):
    /// chooses the try-each alternative whose component-slot condition
    /// holds. Without it every alternative is listed and the first one
    /// whose conditions hold is verified.
    #[arg(long, value_name = "N")]
    pub slot: Option<u64>,
}

/// Arguments of `keyway demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Folder for the demo's keys, releases, lock state and report (emptied first).
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Stay in this machine's network instead of re-running under
    /// `unshare -rn` (the "router unplugged" line then says so).
    #[arg(long)]
    pub no_netns: bool,
}

/// Arguments of `keyway inspect`.
#[derive(Debug, Args)]
pub struct InspectArgs {
    /// The envelope.
    #[arg(value_name = "ENVELOPE")]
    pub envelope: PathBuf,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Update mode for `flash-sim`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SimModeArg {
    /// Direct A/B: write the inactive slot, activate by a journal record.
    Direct,
    /// Swap: stage in the secondary slot, the bootloader swaps it in.
    Swap,
}

/// Arguments of `keyway flash-sim`.
#[derive(Debug, Args)]
pub struct FlashSimArgs {
    /// Flash preset: nrf52840, stm32f4, small-pages or ecc32 (the defaults
    /// for the custom options below).
    #[arg(long, value_name = "NAME", default_value = "nrf52840")]
    pub geometry: String,
    /// Custom uniform page (erase sector) size in bytes: 256 to 262144, a
    /// power of two.
    #[arg(long, value_name = "B")]
    pub page_size: Option<u32>,
    /// Custom write unit in bytes: 1, 2, 4, 8, 16 or 32.
    #[arg(long, value_name = "B")]
    pub write_size: Option<usize>,
    /// Custom page erase time in milliseconds.
    #[arg(long, value_name = "MS")]
    pub erase_ms: Option<f64>,
    /// Custom program time per write unit in microseconds.
    #[arg(long, value_name = "US")]
    pub write_us: Option<f64>,
    /// Image size in KiB.
    #[arg(long, value_name = "N")]
    pub image_kib: u32,
    /// Update mode.
    #[arg(long, value_enum, default_value_t = SimModeArg::Direct)]
    pub mode: SimModeArg,
    /// Power-cut sweep: exhaustive (every flash op, 3 cut kinds) or
    /// random:N (N scenarios of 1-3 nested cuts).
    #[arg(long, value_name = "exhaustive|random:N")]
    pub power_cuts: Option<String>,
    /// Seed of the image payloads and the random cuts.
    #[arg(long, value_name = "S", default_value_t = 0x4B45_5957)]
    pub seed: u64,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

fn flash_sim(a: &FlashSimArgs, out: &mut dyn Write) -> Result<()> {
    let request = keyway_vendor::flashsim::SimRequest {
        geometry: a.geometry.clone(),
        page_size: a.page_size,
        write_size: a.write_size,
        erase_ms: a.erase_ms,
        write_us: a.write_us,
        image_kib: a.image_kib,
        mode: match a.mode {
            SimModeArg::Direct => keyway_device::install::Mode::Direct,
            SimModeArg::Swap => keyway_device::install::Mode::Swap,
        },
        power_cuts: a.power_cuts.clone(),
        seed: a.seed,
        json: a.json,
    };
    keyway_vendor::flashsim::run(&request, out)
}

/// Runs a parsed command line.
pub fn run(cli: Cli, out: &mut dyn Write, err: &mut dyn Write) -> Result<()> {
    match cli.command {
        Command::Keygen(a) => keygen(&a, out),
        Command::Sign(a) => sign(&a, out, err),
        Command::Keyset(a) => keyset(&a, out),
        Command::Verify(a) => verify(&a, out),
        Command::Inspect(a) => inspect(&a, out),
        Command::Demo(a) => demo(&a, out),
        Command::FlashSim(a) => flash_sim(&a, out),
        Command::Log(LogCommand::Verify(a)) => log_verify(&a, out),
        Command::Log(LogCommand::Show(a)) => log_show(&a, out),
        Command::Log(LogCommand::DemoExport(a)) => log_demo_export(&a, out),
        Command::Diff(a) => diff(&a, out),
        Command::Patch(a) => patch(&a, out),
        // A lock to start first is the lab's; the audit only reaches locks.
        Command::Audit(a) if a.lock_state.is_some() => crate::lab::audit(&a, out),
        Command::Audit(a) => crate::audit::cli::audit(&a, out),
        Command::Device(a) => crate::device::cli::run(&a, out, err),
        Command::Publish(a) => crate::publish::run(&a, out),
        Command::TufClient(a) => crate::tuf_client::run(&a),
        Command::Hub(a) => crate::hub::cli::run(a, out, err),
    }
}

fn log_verify(a: &LogVerifyArgs, out: &mut dyn Write) -> Result<()> {
    let key = PublicKey::load(&a.device_key)?;
    if key.algorithm() != Algorithm::Ed25519 {
        bail!(
            "{}: a device key is Ed25519, this is a {} key",
            a.device_key.display(),
            key.algorithm()
        );
    }
    let bytes = read_file(&a.file, "the audit log")?;
    let report = keyway_vendor::log::verify(&bytes, &key);
    for f in &report.findings {
        writeln!(out, "{}", f.message)?;
    }
    writeln!(out, "{}: {}", a.file.display(), report.summary(&key))?;
    if !report.intact() {
        bail!(
            "{}: audit log broken: {} finding(s)",
            a.file.display(),
            report.findings.len()
        );
    }
    Ok(())
}

fn log_show(a: &LogShowArgs, out: &mut dyn Write) -> Result<()> {
    let bytes = read_file(&a.file, "the audit log")?;
    let items = keyway_vendor::log::parse(&bytes);
    if a.json {
        let v = keyway_vendor::log::show_json(&items, a.since);
        writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
    } else {
        write!(out, "{}", keyway_vendor::log::show_text(&items, a.since))?;
    }
    Ok(())
}

fn log_demo_export(a: &LogDemoArgs, out: &mut dyn Write) -> Result<()> {
    let SigningKey::Ed25519(k) = SigningKey::load(&a.key)? else {
        bail!("{}: a device key is Ed25519", a.key.display());
    };
    let signer = keyway_audit::Ed25519Signer::from_seed(k.to_bytes())
        .ok_or_else(|| anyhow::anyhow!("{}: unusable Ed25519 seed", a.key.display()))?;
    let bytes = keyway_vendor::log::demo_export(&signer, a.events, a.pages)?;
    write_output(&a.output, &bytes)?;
    writeln!(
        out,
        "wrote {} ({} bytes): {} events on {} simulated 4 KiB pages, signed by device key {}",
        a.output.display(),
        bytes.len(),
        a.events,
        a.pages,
        hex(&keyway_audit::record::key_id(
            &keyway_audit::Signer::public_key(&signer)
        ))
    )?;
    Ok(())
}

fn verify(a: &VerifyArgs, out: &mut dyn Write) -> Result<()> {
    let identity = match (&a.vendor_domain, &a.class) {
        (Some(d), Some(c)) => {
            let v = keyway_vendor::encode::vendor_uuid(d);
            Some((v, keyway_vendor::encode::class_uuid(&v, c)))
        }
        _ => None,
    };
    let opts = keyway_vendor::check::VerifyOptions {
        trust: a.trust.clone(),
        threshold: a.threshold,
        payload: a.payload.clone(),
        identity,
        floor: a.floor,
        stored_keyset: a.stored_keyset.clone(),
        now: a.now,
        battery_mwh: a.battery_mwh,
        slot: a.slot,
    };
    match keyway_vendor::check::verify_file(&a.envelope, &opts) {
        Ok(summary) => {
            writeln!(out, "OK {}: {summary}", a.envelope.display())?;
            Ok(())
        }
        Err(r) => bail!("REJECTED {}: {r}", a.envelope.display()),
    }
}

fn demo(a: &DemoArgs, out: &mut dyn Write) -> Result<()> {
    let dir = a.dir.clone().unwrap_or_else(crate::demo::default_dir);
    let inside = std::env::var_os(crate::audit::netns::ENV_INSIDE).is_some();
    // Unplug the router: run this same command again in a network
    // namespace that holds only loopback.
    let mut namespace = None;
    if !inside && !a.no_netns {
        let exe = std::env::current_exe().context("finding the keyway executable")?;
        let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
        match crate::audit::netns::reexec_isolated(&exe, &args) {
            Ok(0) => return Ok(()),
            Ok(code) => bail!("the demo in its network namespace exited with {code}"),
            Err(why) => {
                namespace = Some(Err(format!(
                    "{why}; the demo ran in this machine's network"
                )))
            }
        }
    }
    // With --no-netns too, the "router unplugged" line judges the network
    // the demo runs in: it passes only where no route leaves this machine.
    let namespace = match namespace {
        Some(n) => n,
        None => crate::demo::isolation(),
    };
    writeln!(
        out,
        "Keyway demo: an offline firmware update of a simulated lock, then its audit (files in {})",
        dir.display()
    )?;
    let outcome = crate::demo::run(&dir, namespace, out)?;
    crate::demo::print_scorecard(&outcome, out)?;
    let failed = outcome.lock_failures();
    if !failed.is_empty() {
        bail!("the lock failed: {}", failed.join("; "));
    }
    if !outcome.passed() {
        // Only the network failed: the demo's environment, not the lock.
        writeln!(
            out,
            "\nThe lock passed everything else, but this machine's network was not unplugged, \
             so \"router unplugged\" and audit check 1 FAIL: run the demo without --no-netns \
             where user namespaces are permitted (unshare -rn)."
        )?;
    }
    Ok(())
}

fn inspect(a: &InspectArgs, out: &mut dyn Write) -> Result<()> {
    // The head is enough: a large payload's tail is neither read nor held.
    let bytes = fs::File::open(&a.envelope)
        .and_then(|mut f| keyway_vendor::check::read_head(&mut f))
        .with_context(|| format!("{}: cannot read the envelope", a.envelope.display()))?;
    let j = keyway_vendor::check::inspect_json(&bytes).map_err(|e| {
        anyhow::anyhow!(
            "{}: {} check failed: {}",
            a.envelope.display(),
            keyway_vendor::check::Check::of(&e),
            keyway_vendor::describe::describe(&e)
        )
    })?;
    if a.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&j)?)?;
    } else {
        write!(out, "{}", keyway_vendor::check::inspect_text(&j))?;
    }
    Ok(())
}

fn keygen(a: &KeygenArgs, out: &mut dyn Write) -> Result<()> {
    let files = keys::keygen(&a.name, a.alg.into())?;
    writeln!(
        out,
        "wrote {} and {} ({}, key id {})",
        files.private.display(),
        files.public.display(),
        Algorithm::from(a.alg),
        hex(&files.key_id)
    )?;
    Ok(())
}

fn read_file(path: &Path, what: &str) -> Result<Vec<u8>> {
    fs::read(path).with_context(|| format!("{}: cannot read {what}", path.display()))
}

/// Loads keys, rejecting the same key given under two names.
fn load_unique<K>(
    paths: &[PathBuf],
    load: impl Fn(&Path) -> Result<K, keys::KeyError>,
    kid: impl Fn(&K) -> KeyId,
) -> Result<Vec<K>> {
    let mut loaded: Vec<(K, &Path)> = Vec::new();
    for p in paths {
        let k = load(p)?;
        if let Some((_, first)) = loaded.iter().find(|(o, _)| kid(o) == kid(&k)) {
            bail!(
                "{}: same key as {} (key id {}); each key may be given once",
                p.display(),
                first.display(),
                hex(&kid(&k))
            );
        }
        loaded.push((k, p));
    }
    Ok(loaded.into_iter().map(|(k, _)| k).collect())
}

/// Writes `bytes` to `path` via a temporary file and a rename, so a failed
/// run never leaves a truncated output behind.
fn write_output(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    fs::write(&tmp, bytes)
        .and_then(|()| fs::rename(&tmp, path))
        .map_err(|e| {
            let _ = fs::remove_file(&tmp);
            anyhow::anyhow!("{}: cannot write: {e}", path.display())
        })
}

fn sign(a: &SignArgs, out: &mut dyn Write, err: &mut dyn Write) -> Result<()> {
    let payload = read_file(&a.firmware, "the firmware")?;
    if payload.is_empty() {
        bail!("{}: the firmware image is empty", a.firmware.display());
    }
    let notes = String::from_utf8(read_file(&a.notes, "the release notes")?)
        .map_err(|_| anyhow::anyhow!("{}: release notes are not valid UTF-8", a.notes.display()))?;
    let signing_keys = load_unique(&a.keys, |p| SigningKey::load(p), SigningKey::key_id)?;
    let keyset = match &a.keyset {
        Some(p) => {
            let doc = read_file(p, "the key-set document")?;
            let info = KeySetInfo::parse(&doc).with_context(|| format!("{}", p.display()))?;
            for w in keyset_warnings(&info, &signing_keys) {
                writeln!(err, "warning: {}: {w}", p.display())?;
            }
            Some(doc)
        }
        None => None,
    };
    let delta_from = match &a.delta_from {
        Some(p) => Some(read_file(p, "the delta base image")?),
        None => None,
    };
    let builder = EnvelopeBuilder {
        sequence: a.sequence,
        version: a.version,
        vendor_domain: a.vendor_domain.clone(),
        vendor_name: a.vendor_name.clone(),
        class_name: a.class.clone(),
        notes: Some(notes),
        cves: a.cves.clone(),
        use_before: a.use_before,
        min_battery_mwh: a.min_battery_mwh,
        keyset,
        placement: if a.detached {
            keyway_vendor::encode::PayloadPlacement::Detached(a.firmware.file_name().map_or_else(
                || keyway_vendor::encode::DETACHED_PAYLOAD_URI.to_string(),
                |n| n.to_string_lossy().into_owned(),
            ))
        } else {
            keyway_vendor::encode::PayloadPlacement::Integrated
        },
        payload,
        delta_from,
        keys: signing_keys,
        sign_options: SignOptions {
            ed25519_alg: a.ed25519_alg.into(),
            p256_alg: a.p256_alg.into(),
            include_kid: !a.no_kid,
        },
    };
    let built = builder.build()?;
    write_output(&a.output, &built.envelope)?;
    if let (Some(patch), Some(old)) = (&built.patch, &builder.delta_from) {
        writeln!(
            out,
            "delta: patch {} bytes ({:.2}% of the {}-byte image), applies to {} ({} bytes)",
            patch.len(),
            100.0 * patch.len() as f64 / builder.payload.len().max(1) as f64,
            builder.payload.len(),
            hex(&keyway_vendor::encode::sha256(old)),
            old.len()
        )?;
    }
    writeln!(
        out,
        "wrote {} ({} bytes): version {}, sequence {}, {} signature(s){}",
        a.output.display(),
        built.envelope.len(),
        a.version,
        a.sequence,
        builder.keys.len(),
        if a.detached { ", payload detached" } else { "" }
    )?;
    Ok(())
}

/// Problems worth a warning when signing with an embedded key set: a
/// signing key that the key set does not list or has revoked, or fewer
/// listed signers than the threshold.
pub fn keyset_warnings(info: &KeySetInfo, keys: &[SigningKey]) -> Vec<String> {
    let mut w = Vec::new();
    let mut listed = 0u64;
    for k in keys {
        let kid = k.key_id();
        if info.revoked.contains(&kid) {
            w.push(format!(
                "signing key {} is revoked by this key set",
                hex(&kid)
            ));
        } else if info.signer_kids.contains(&kid) {
            listed += 1;
        } else {
            w.push(format!(
                "signing key {} is not a signer in this key set",
                hex(&kid)
            ));
        }
    }
    if listed < info.threshold {
        w.push(format!(
            "only {listed} of the signing keys are signers in this key set, which needs {}",
            info.threshold
        ));
    }
    w
}

fn keyset(a: &KeysetArgs, out: &mut dyn Write) -> Result<()> {
    // Cheap argument checks first, before any file is read.
    if a.threshold == 0 || a.threshold > a.signers.len() as u64 {
        bail!(
            "--threshold {} is invalid: it must be between 1 and the number of --signer keys ({})",
            a.threshold,
            a.signers.len()
        );
    }
    let roots = load_unique(&a.roots, |p| SigningKey::load(p), SigningKey::key_id)?;
    let signers = load_unique(&a.signers, |p| PublicKey::load(p), PublicKey::key_id)?;
    let revoked_keys = load_unique(&a.revoke, |p| PublicKey::load(p), PublicKey::key_id)?;
    for (path, r) in a.revoke.iter().zip(&revoked_keys) {
        if signers.contains(r) {
            bail!(
                "{}: this key is both a --signer and revoked",
                path.display()
            );
        }
    }
    let builder = KeySetBuilder {
        roots,
        keyset: KeySetParams {
            version: a.version,
            threshold: a.threshold,
            signers,
            revoked: revoked_keys.iter().map(PublicKey::key_id).collect(),
        },
        sign_options: SignOptions {
            ed25519_alg: a.ed25519_alg.into(),
            ..SignOptions::default()
        },
    };
    let doc = builder.build()?;
    write_output(&a.output, &doc)?;
    writeln!(
        out,
        "wrote {} ({} bytes): key-set version {}, {} signer(s), threshold {}, {} revoked, {} root signature(s)",
        a.output.display(),
        doc.len(),
        a.version,
        builder.keyset.signers.len(),
        a.threshold,
        builder.keyset.revoked.len(),
        builder.roots.len()
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::error::ErrorKind;

    const SIGN: &[&str] = &[
        "keyway",
        "sign",
        "--firmware",
        "fw.bin",
        "--version",
        "1.2.3",
        "--sequence",
        "4",
        "--vendor-domain",
        "keyway.example",
        "--class",
        "deadbolt",
        "--notes",
        "NOTES.md",
        "--key",
        "a.key",
        "-o",
        "out.suit",
    ];

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(args)
    }

    fn with(extra: &[&str]) -> Vec<&'static str> {
        let mut v: Vec<&'static str> = SIGN.to_vec();
        for e in extra {
            v.push(Box::leak(e.to_string().into_boxed_str()));
        }
        v
    }

    fn replace(flag: &str, value: &str) -> Vec<&'static str> {
        let mut v: Vec<&'static str> = SIGN.to_vec();
        let i = v.iter().position(|a| *a == flag).unwrap();
        v[i + 1] = Box::leak(value.to_string().into_boxed_str());
        v
    }

    #[test]
    fn parses_a_full_sign_command() {
        let cli = parse(&with(&[
            "--cve",
            "CVE-2024-12345:critical",
            "--cve",
            "CVE-2023-0001:low",
            "--key",
            "b.key",
            "--keyset",
            "ks.cbor",
            "--use-before",
            "1900000000",
            "--min-battery-mwh",
            "250",
            "--detached",
            "--ed25519-alg",
            "ed25519",
        ]))
        .unwrap();
        let Command::Sign(a) = cli.command else {
            panic!("expected sign")
        };
        assert_eq!(a.version, Version::new(1, 2, 3));
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
            let err = parse(&with(&["--cve", bad])).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::ValueValidation, "{bad:?}");
            let msg = err.to_string();
            assert!(msg.contains("--cve"), "{msg}");
            assert!(msg.contains(what), "{bad:?}: {msg}");
        }
    }

    #[test]
    fn rejects_missing_and_malformed_arguments() {
        let no_key: Vec<&str> = SIGN
            .iter()
            .copied()
            .filter(|a| *a != "--key" && *a != "a.key")
            .collect();
        let err = parse(&no_key).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::MissingRequiredArgument);
        assert!(err.to_string().contains("--key"), "{err}");

        let err = parse(&replace("--sequence", "-1")).unwrap_err();
        assert!(err.to_string().contains("--sequence"), "{err}");
        let err = parse(&with(&["--min-battery-mwh", "lots"])).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ValueValidation);
        let err = parse(&["keyway", "keygen", "k", "--alg", "rsa"]).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidValue);
        let err = parse(&[
            "keyway",
            "keyset",
            "--root",
            "r.key",
            "--threshold",
            "1",
            "--version",
            "1",
            "-o",
            "k",
        ])
        .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::MissingRequiredArgument);
        assert!(err.to_string().contains("--signer"), "{err}");
    }

    #[test]
    fn keygen_defaults_to_ed25519() {
        let Command::Keygen(a) = parse(&["keyway", "keygen", "vendor"]).unwrap().command else {
            panic!("expected keygen")
        };
        assert_eq!(a.alg, AlgArg::Ed25519);
        assert_eq!(a.name, PathBuf::from("vendor"));
        let Command::Keygen(a) = parse(&["keyway", "keygen", "v", "--alg", "p256"])
            .unwrap()
            .command
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
