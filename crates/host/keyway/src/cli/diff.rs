//! `keyway diff`: make a delta patch, and optionally model the end-to-end
//! update over the lock's BLE link with the full image and with the delta.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

use super::files::{read, write_said};

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

/// Runs `keyway diff`.
pub fn diff(a: &DiffArgs, out: &mut dyn Write) -> Result<()> {
    let (old, new) = (read(&a.old)?, read(&a.new)?);
    let start = std::time::Instant::now();
    let patch = keyway_vendor::delta::diff(&old, &new)?;
    let took = start.elapsed();
    write_said(
        &a.output,
        &patch,
        false,
        out,
        format_args!(
            " for {} -> {} bytes ({:.2}% of the new image, {:.1}x smaller), diff {:.2} s",
            old.len(),
            new.len(),
            100.0 * patch.len() as f64 / new.len().max(1) as f64,
            new.len() as f64 / patch.len() as f64,
            took.as_secs_f64()
        ),
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
    use keyway_smp::{Request, Response, answer_frame, header::split_request, img, keyway_group};
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
                        &Response::SessionStart(keyway_group::SessionStartRsp { msg: &msg2 }),
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
                        &Response::SessionFinish(keyway_group::SessionFinishRsp { msg: &msg4 }),
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
                        &Response::Sealed(keyway_group::Sealed {
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
