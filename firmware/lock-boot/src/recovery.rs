//! Serial recovery, as MCUboot's: with no bootable image the bootloader
//! itself answers MCUmgr SMP over UART0, with the serial transport
//! (`keyway_smp::serial`: base64 lines of at most 127 bytes, a 2-byte
//! length and CRC-16/XMODEM). Served:
//!
//! - image upload (group 1, command 1): the file is a SUIT envelope with
//!   its payload integrated. Its head is buffered until it decodes, then
//!   verified by `keyway_suit` (signature, vendor and class, anti-rollback
//!   above the journal's floor); only then does the `Installer` begin
//!   (the head into the inactive slot's manifest area) and stream the
//!   payload, checking its size and SHA-256 at the end and arming the
//!   slot (pending). Nothing here makes it run: the next boot verifies it
//!   again, in RAM, before jumping;
//! - image state read (group 1, command 0): each slot, `bootable` from
//!   `VerifiedSlot`, `hash` the manifest digest, `version` the sequence;
//! - reset (group 0, command 5): answers, then resets the board.
//!
//! Everything else is answered `NotSup`. An upload out of order is
//! answered with the offset wanted (the client resumes there); a refused
//! one with the image group's error and is dropped.

use keyway_board::map;
use keyway_board::semi_flash::SemiFlash;
use keyway_board::uart::Uart;
use keyway_board::{fail, hprintln};
use keyway_device::install::{Arm, Installer, SlotLayout, Target};
use keyway_device::journal::{Journal, TrialState};
use keyway_device::verified::{HEAD_BUF_LEN, VerifiedSlot};
use keyway_smp::cbor::Writer;
use keyway_smp::err::img_rc;
use keyway_smp::header::split_request;
use keyway_smp::seq::Seq;
use keyway_smp::serial::{Decoder, Encoder, MAX_LINE, rx_buf_len};
use keyway_smp::{MAX_BODY, MAX_FRAME, Message, MgmtErr, Op, answer_frame, group, img, os};
use keyway_suit::{DeviceState, Verified};

use crate::Device;

/// The envelope head buffered before the payload (at most the manifest
/// area's content).
const HEAD_MAX: usize = HEAD_BUF_LEN;

/// An upload in progress.
struct Upload {
    total: u64,
    next: u64,
    head: [u8; HEAD_MAX],
    head_len: usize,
    installer: Option<Installer<SemiFlash>>,
}

/// The recovery server's state.
struct Server<'a> {
    flash: &'a mut SemiFlash,
    journal: Journal<SemiFlash>,
    device: &'a Device,
    layout: SlotLayout,
    upload: Upload,
}

/// Serves SMP on UART0 until a reset request; never returns.
pub fn run(flash: &mut SemiFlash, device: &Device) -> ! {
    let Some(mut uart) = Uart::take(0) else {
        fail("UART0")
    };
    let journal = crate::journal(flash);
    let mut server = Server {
        flash,
        journal,
        device,
        layout: map::layout(),
        upload: Upload {
            total: 0,
            next: 0,
            head: [0; HEAD_MAX],
            head_len: 0,
            installer: None,
        },
    };
    let mut rx = [0u8; rx_buf_len(MAX_FRAME)];
    let mut decoder = Decoder::new(&mut rx);
    let mut out = [0u8; MAX_FRAME];
    // Sleep between bytes (`wfi` on the receive interrupt) rather than
    // spin: a spinning core starves QEMU's loop that feeds the UART.
    // Recovery ends in a reset, which masks the interrupt again before
    // any image runs.
    uart.enable_rx_interrupt();
    loop {
        let byte = uart.read_byte();
        let packet = match decoder.push(byte) {
            Ok(Some(p)) => p,
            Ok(None) => continue,
            Err(_) => continue, // a damaged line: the client times out and resends
        };
        let (n, reset) = server.handle(packet, &mut out);
        if n > 0 {
            send(&mut uart, &out[..n]);
        }
        if reset {
            hprintln!("lock-boot: reset requested over SMP");
            cortex_m::peripheral::SCB::sys_reset();
        }
    }
}

/// Sends one SMP packet as serial-transport lines.
fn send(uart: &mut Uart, packet: &[u8]) {
    let Ok(mut lines) = Encoder::new(packet) else {
        return;
    };
    let mut line = [0u8; MAX_LINE];
    while let Some(n) = lines.next_line(&mut line) {
        uart.write_all(&line[..n]);
    }
}

impl Server<'_> {
    /// One request packet in, the answer's length out (0: none), and
    /// whether to reset after sending it.
    fn handle(&mut self, packet: &[u8], out: &mut [u8]) -> (usize, bool) {
        let Ok((header, body)) = split_request(packet, MAX_BODY) else {
            return (0, false);
        };
        let v2 = header.version == 1;
        // Only the three commands served are decoded (and their codecs
        // linked): the bootloader's code budget.
        let n = match (header.op, header.group, header.id) {
            (Op::Write, group::IMAGE, img::cmd::UPLOAD) => {
                let r = match img::Upload::decode(body) {
                    Ok(u) => self.upload(&u),
                    Err(_) => Err(img_rc::INVALID_LENGTH),
                };
                match r {
                    Ok((off, matched)) => {
                        answer_frame(out, &header, |w| img::UploadRsp { off, matched }.encode(w))
                    }
                    Err(rc) => {
                        answer_frame(out, &header, |w| error(w, v2, MgmtErr::Inval, Some(rc)))
                    }
                }
            }
            (Op::Read, group::IMAGE, img::cmd::STATE) => {
                let slots = [self.slot_state(0), self.slot_state(1)];
                let mut versions = [[0u8; 20]; 2];
                let [a, b] = &mut versions;
                let (va, vb) = (slots[0].version(a), slots[1].version(b));
                let images = [slots[0].item(0, va), slots[1].item(1, vb)];
                answer_frame(out, &header, |w| {
                    img::StateRsp {
                        images: Seq::Items(&images),
                    }
                    .encode(w)
                })
            }
            (Op::Write, group::OS, os::cmd::RESET) => {
                let n = answer_frame(out, &header, |w| w.map(0));
                return (n.unwrap_or(0), true);
            }
            _ => answer_frame(out, &header, |w| error(w, v2, MgmtErr::NotSup, None)),
        };
        (n.unwrap_or(0), false)
    }

    /// What a slot holds, for the state answer.
    fn slot_state(&mut self, slot: u8) -> Slot {
        let state = *self.journal.state();
        let mut head = [0u8; HEAD_BUF_LEN];
        let info = VerifiedSlot::<256>::new(
            &self.layout,
            &self.device.anchors,
            &self.device.identity,
            &state,
            None,
            &mut head,
        )
        .check(self.flash, slot);
        let pending = matches!(state.trial, TrialState::Pending { slot: s } if s == slot);
        match info {
            Ok(info) => Slot {
                bootable: true,
                pending,
                confirmed: state.active_slot == slot
                    && matches!(state.trial, TrialState::None | TrialState::Confirmed),
                sequence: info.sequence,
                hash: info.manifest_digest,
            },
            Err(_) => Slot {
                pending,
                ..Slot::default()
            },
        }
    }

    /// One upload chunk (see the module documentation): the next offset
    /// and, at the end, whether the file's SHA-256 was given (Keyway
    /// checks the payload's digest from the signed manifest instead).
    fn upload(&mut self, u: &img::Upload<'_>) -> Result<(u64, Option<bool>), u16> {
        if u.off == 0 {
            let len = u.len.ok_or(img_rc::INVALID_LENGTH)?;
            let capacity = u64::from(map::IMAGE_CAPACITY) + HEAD_MAX as u64;
            if len == 0 || len > capacity {
                return Err(img_rc::INVALID_IMAGE_TOO_LARGE);
            }
            self.upload.installer = None;
            self.upload.total = len;
            self.upload.next = 0;
            self.upload.head_len = 0;
        }
        if u.off != self.upload.next || self.upload.total == 0 {
            return Ok((self.upload.next, None));
        }
        if u.off + u.data.len() as u64 > self.upload.total {
            self.upload.total = 0;
            return Err(img_rc::INVALID_IMAGE_DATA_OVERRUN);
        }
        let r = self.take(u.data);
        if r.is_err() {
            self.upload.installer = None;
            self.upload.total = 0;
        }
        r
    }

    fn take(&mut self, data: &[u8]) -> Result<(u64, Option<bool>), u16> {
        self.upload.next += data.len() as u64;
        if let Some(installer) = self.upload.installer.as_mut() {
            installer
                .push(self.flash, &mut self.journal, data)
                .map_err(|_| img_rc::INVALID_HASH)?;
        } else {
            let (from, to) = (self.upload.head_len, self.upload.head_len + data.len());
            if to > HEAD_MAX {
                // The head must decode within HEAD_MAX bytes; the rest of
                // this chunk is payload once it does.
                let fits = HEAD_MAX - from;
                self.upload.head[from..].copy_from_slice(&data[..fits]);
                self.upload.head_len = HEAD_MAX;
                self.begin()?;
                let installer = self
                    .upload
                    .installer
                    .as_mut()
                    .ok_or(img_rc::INVALID_IMAGE_HEADER)?;
                installer
                    .push(self.flash, &mut self.journal, &data[fits..])
                    .map_err(|_| img_rc::INVALID_HASH)?;
            } else {
                self.upload.head[from..to].copy_from_slice(data);
                self.upload.head_len = to;
                self.begin()?;
            }
        }
        if self.upload.next < self.upload.total {
            return Ok((self.upload.next, None));
        }
        let installer = self
            .upload
            .installer
            .take()
            .ok_or(img_rc::INVALID_IMAGE_HEADER)?;
        let slot = installer
            .finish(self.flash, &mut self.journal, Arm::Now)
            .map_err(|_| img_rc::INVALID_HASH)?;
        self.upload.total = 0;
        hprintln!(
            "lock-boot: recovery installed a verified image into slot {} (pending)",
            slot
        );
        Ok((self.upload.next, Some(true)))
    }

    /// Once the buffered head decodes: verify it (update rule: above the
    /// floor, for the inactive slot) and begin the installer with it; the
    /// payload bytes already buffered go to the installer.
    fn begin(&mut self) -> Result<(), u16> {
        let head = &self.upload.head[..self.upload.head_len];
        let Ok(envelope) = keyway_suit::Envelope::decode(head) else {
            if self.upload.head_len == HEAD_MAX {
                return Err(img_rc::INVALID_IMAGE_HEADER);
            }
            return Ok(()); // not yet: the head is still arriving
        };
        let p = envelope.payload.ok_or(img_rc::INVALID_IMAGE_HEADER)?;
        let state = self.journal.state();
        let mut identity = self.device.identity;
        identity.slot = Some(u64::from(1 - state.active_slot.min(1)));
        let suit_state = DeviceState {
            sequence_floor: state.floor,
            keyset: None,
        };
        let mut verified = Verified::empty();
        keyway_suit::verify_envelope_into(
            &mut verified,
            head,
            &self.device.anchors,
            &identity,
            &suit_state,
        )
        .map_err(|_| img_rc::INVALID_IMAGE_HEADER)?;
        let expectation = verified
            .payload
            .as_ref()
            .ok_or(img_rc::INVALID_IMAGE_HEADER)?;
        let mut installer = Installer::<SemiFlash>::begin_with_manifest(
            self.flash,
            &mut self.journal,
            Target::new(&self.layout, expectation, verified.manifest_digest),
            &head[..p.offset],
        )
        .map_err(|_| img_rc::FLASH_WRITE_FAILED)?;
        installer
            .push(self.flash, &mut self.journal, &head[p.offset..])
            .map_err(|_| img_rc::INVALID_HASH)?;
        self.upload.installer = Some(installer);
        self.upload.head_len = p.offset;
        Ok(())
    }
}

/// An error body: SMPv1 `{"rc": rc}`; SMPv2 with an image-group code
/// `{"err": {"rc": code, "group": 1}}`.
fn error(
    w: &mut Writer<'_>,
    v2: bool,
    rc: MgmtErr,
    img: Option<u16>,
) -> Result<(), keyway_smp::cbor::Error> {
    w.map(1)?;
    match img.filter(|_| v2) {
        Some(code) => {
            w.text("err")?;
            w.map(2)?;
            w.entry_u64("rc", u64::from(code))?;
            w.entry_u64("group", u64::from(group::IMAGE))
        }
        None => w.entry_u64("rc", rc as u64),
    }
}

/// A slot in the state answer.
#[derive(Clone, Copy, Default)]
struct Slot {
    bootable: bool,
    pending: bool,
    confirmed: bool,
    sequence: u64,
    hash: [u8; 32],
}

impl Slot {
    /// The version text: the sequence number in decimal.
    fn version<'b>(&self, buf: &'b mut [u8; 20]) -> &'b str {
        let mut n = self.sequence;
        let mut i = buf.len();
        loop {
            i -= 1;
            buf[i] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        core::str::from_utf8(&buf[i..]).unwrap_or("")
    }

    fn item<'b>(&'b self, slot: u64, version: &'b str) -> img::ImageSlot<'b> {
        img::ImageSlot {
            image: Some(0),
            slot,
            version,
            hash: if self.bootable { &self.hash } else { &[] },
            bootable: self.bootable,
            pending: self.pending,
            confirmed: self.confirmed,
            active: false,
            permanent: false,
        }
    }
}
