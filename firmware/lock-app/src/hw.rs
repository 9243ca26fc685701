//! The control channel on UART1: the lock's hardware as JSON lines
//! (`lock_core::control` parses them and writes the answers): the button
//! opens the agent's presence window, the keypad and the bolt go through
//! `lock_core::latch` (their events into the audit log), the door,
//! tamper and battery readings reach the agent's sensors, `setup-code`
//! reads the label from the factory record, `cut-power` arms the flash
//! driver's power cut after N operations (or once the upload passes a
//! byte), `status` reports the lock (its sensors in a `lock` object, as
//! `keyway-lock` answers; `power_cuts` from the file `power-cuts` beside
//! the flash, one byte a cut, which the harness that restarts QEMU after
//! each cut appends to: scripts/lib/lock.sh `lock_loop_start`).

use core::cell::RefCell;
use core::fmt::Write as _;

use keyway_agent::agent::Press;
use keyway_audit::LockMethod;
use keyway_board::semi;
use keyway_board::semi_flash::SemiFlash;
use keyway_smp::keyway_group::{Bolt, Door};
use lock_core::control::{Answer, Command, LINE_MAX, LineError, parse};
use lock_core::latch::{DEFAULT_PIN, Keypad};
use lock_core::lock::Lock;
use lock_core::map::Factory;

use crate::{Wire, now_ms};

/// The control line being received and the answer's buffer.
pub struct Control {
    line: [u8; LINE_MAX],
    len: usize,
    /// The line ran over [`LINE_MAX`]: dropped up to its newline.
    overlong: bool,
    answer: [u8; 1024],
    /// `cut-power mid_upload`: cut once the upload passes this byte
    /// (`Some(None)`: half its length).
    cut_mid: Option<Option<u64>>,
}

impl Control {
    /// Empty.
    pub const fn new() -> Self {
        Control {
            line: [0; LINE_MAX],
            len: 0,
            overlong: false,
            answer: [0; 1024],
            cut_mid: None,
        }
    }

    /// After an SMP packet: a planned mid-upload cut is armed at the
    /// flash driver (the next operation) once the upload passes its byte.
    pub fn after_packet(&mut self, lock: &Lock<'_, SemiFlash>, flash: &RefCell<SemiFlash>) {
        let Some(at) = self.cut_mid else {
            return;
        };
        let Some((next, total)) = lock.shell.upload_progress() else {
            return;
        };
        if next > at.unwrap_or(total / 2)
            && let Ok(mut f) = flash.try_borrow_mut()
        {
            f.cut_after(0);
            self.cut_mid = None;
        }
    }

    /// One received byte; at a line's end, the answer line to send.
    pub fn push<'s>(
        &'s mut self,
        b: u8,
        lock: &mut Lock<'_, SemiFlash>,
        flash: &RefCell<SemiFlash>,
        factory: &Factory,
        wire: &Wire,
    ) -> Option<&'s [u8]> {
        if b != b'\n' {
            if self.len < LINE_MAX {
                self.line[self.len] = b;
                self.len += 1;
            } else {
                self.overlong = true;
            }
            return None;
        }
        let n = core::mem::take(&mut self.len);
        if core::mem::take(&mut self.overlong) {
            return Some(
                Answer::error(
                    &mut self.answer,
                    LineError::Syntax("a line of at most 256 bytes"),
                )
                .finish(),
            );
        }
        let line = &self.line[..n];
        if line.iter().all(u8::is_ascii_whitespace) {
            return None;
        }
        let cmd = match parse(line) {
            Ok(c) => c,
            Err(e) => return Some(Answer::error(&mut self.answer, e).finish()),
        };
        let hw = Hw {
            lock,
            flash,
            factory,
            wire,
            cut_mid: &mut self.cut_mid,
        };
        Some(act(cmd, &mut self.answer, hw))
    }
}

/// What a control line acts on.
struct Hw<'h, 'l> {
    lock: &'h mut Lock<'l, SemiFlash>,
    flash: &'h RefCell<SemiFlash>,
    factory: &'h Factory,
    wire: &'h Wire,
    cut_mid: &'h mut Option<Option<u64>>,
}

fn act<'b>(cmd: Command<'_>, buf: &'b mut [u8], hw: Hw<'_, '_>) -> &'b [u8] {
    let Hw {
        lock,
        flash,
        factory,
        wire,
        cut_mid,
    } = hw;
    let now = now_ms();
    let log = |lock: &mut Lock<'_, SemiFlash>, e: Option<keyway_audit::Event>| {
        if let Some(e) = e {
            let _ = lock.shell.record(now, &e);
        }
    };
    match cmd {
        Command::Presence { seconds } => {
            let ok = lock.button(now).is_ok();
            let _ = lock.shell.record(
                now,
                &keyway_audit::Event::PresenceWindowOpened {
                    seconds: seconds.unwrap_or(60).min(3600) as u16,
                },
            );
            Answer::new(buf, ok)
                .num("presence_seconds", seconds.unwrap_or(60))
                .finish()
        }
        Command::PresenceClose => {
            if let Ok(a) = lock.agent_mut() {
                a.close_window();
            }
            Answer::new(buf, true).finish()
        }
        Command::LongPress => {
            let ok = lock
                .agent_mut()
                .map(|a| a.button(now, Press::Long).is_ok())
                .unwrap_or(false);
            let open = lock.agent().is_some_and(|a| a.window_open(now));
            Answer::new(buf, ok).bool("presence_open", open).finish()
        }
        Command::Keypad { pin } => {
            let (k, e) = lock.shell.latch.keypad(pin, DEFAULT_PIN, now);
            log(lock, e);
            // A store that cannot be written keeps the consent; the next
            // frame or unlock tries again.
            let _ = lock.install_if_allowed();
            match k {
                Keypad::Unlocked => Answer::new(buf, true).str("result", "unlocked").finish(),
                Keypad::Wrong {
                    consecutive,
                    lockout_ms,
                } => {
                    let a = Answer::new(buf, true)
                        .str("result", "wrong-pin")
                        .num("consecutive", u64::from(consecutive));
                    match lockout_ms {
                        Some(ms) => a.num("lockout_seconds", ms.div_ceil(1000)),
                        None => a.raw("lockout_seconds", "null"),
                    }
                    .finish()
                }
                Keypad::LockedOut { remaining_ms } => Answer::new(buf, true)
                    .str("result", "locked-out")
                    .num("lockout_seconds", remaining_ms.div_ceil(1000))
                    .finish(),
            }
        }
        Command::Lock | Command::Unlock | Command::MechanicalKey => {
            let (to, method) = match cmd {
                Command::Lock => (Bolt::Locked, LockMethod::OwnerCommand),
                Command::Unlock => (Bolt::Unlocked, LockMethod::OwnerCommand),
                _ if lock.shell.latch.bolt == Bolt::Locked => {
                    (Bolt::Unlocked, LockMethod::MechanicalKey)
                }
                _ => (Bolt::Locked, LockMethod::MechanicalKey),
            };
            let e = lock.shell.latch.drive(to, method);
            log(lock, e);
            // A store that cannot be written keeps the consent; the next
            // frame or unlock tries again.
            let _ = lock.install_if_allowed();
            status(Answer::new(buf, true), lock, now).finish()
        }
        Command::Door { open } => {
            lock.shell.latch.door = if open { Door::Open } else { Door::Closed };
            status(Answer::new(buf, true), lock, now).finish()
        }
        Command::Tamper { on } => {
            let e = lock.shell.latch.set_tamper(on);
            log(lock, e);
            status(Answer::new(buf, true), lock, now).finish()
        }
        Command::Battery { mv } => {
            let e = lock.shell.latch.set_battery(mv);
            log(lock, e);
            status(Answer::new(buf, true), lock, now).finish()
        }
        Command::SetupCode => Answer::new(buf, true)
            .str("setup_code", factory.label())
            .finish(),
        Command::CutMidUpload { at } => {
            *cut_mid = Some(at);
            let a = Answer::new(buf, true);
            match at {
                Some(b) => a.num("mid_upload", b),
                None => a.raw("mid_upload", "null"),
            }
            .finish()
        }
        Command::CutPower { after_ops } => {
            // A new plan replaces a mid-upload one (the audit disarms so).
            *cut_mid = None;
            let n = u32::try_from(after_ops).unwrap_or(u32::MAX);
            match flash.try_borrow_mut() {
                Ok(mut f) => {
                    f.cut_after(n);
                    Answer::new(buf, true).num("after_ops", after_ops).finish()
                }
                Err(_) => Answer::new(buf, false).str("error", "flash busy").finish(),
            }
        }
        Command::LogExport { name } => {
            let mut path = Text::<80>::new();
            let _ = write!(path, "exports/{name}");
            let Some(mut file) = semi::open(path.as_str(), semi::Mode::Create) else {
                return Answer::new(buf, false)
                    .str(
                        "error",
                        "log-export: cannot create exports/NAME beside the flash file",
                    )
                    .finish();
            };
            let mut chunk = [0u8; lock_core::lock::LOG_CHUNK];
            let mut off = 0u64;
            let ok = loop {
                match lock.export_chunk(now, off, &mut chunk) {
                    Ok((0, _)) => break true,
                    Ok((n, len)) => {
                        if !file.write(&chunk[..n]) {
                            break false;
                        }
                        off += n as u64;
                        if off >= len {
                            break true;
                        }
                    }
                    Err(_) => break false,
                }
            };
            file.close();
            if ok {
                Answer::new(buf, true)
                    .str("path", path.as_str())
                    .num("bytes", off)
                    .finish()
            } else {
                Answer::new(buf, false)
                    .str("error", "log-export: the export failed")
                    .finish()
            }
        }
        Command::Status => {
            let state = *lock.journal_state();
            let mut journal = Text::<160>::new();
            let _ = write!(journal, "{state:?}");
            let ops = flash.try_borrow().map(|f| f.ops()).unwrap_or((0, 0));
            let open = lock.agent().is_some_and(|a| a.window_open(now));
            let mut a = Answer::new(buf, true)
                .num(
                    "running_slot",
                    u64::from(lock_core::lock::running_slot(&state)),
                )
                .num(
                    "running_sequence",
                    lock.shell.running.as_ref().map_or(0, |r| r.sequence),
                )
                .str("version", lock.shell.version)
                .str("journal", journal.as_str())
                .bool("presence_open", open)
                .num("flash_ops", u64::from(ops.0) + u64::from(ops.1))
                .num("uart0_rx", wire.rx)
                .num("uart0_tx", wire.tx)
                .num("packets", wire.packets)
                .num("busy_ms", wire.busy_ms)
                .num("dropped", wire.dropped)
                .num("now_ms", now)
                .num("ram_statics", crate::statics() as u64)
                .num("stack_peak", crate::peak_stack() as u64);
            a = match &lock.shell.pending {
                Some(p) => a
                    .num("pending_sequence", p.sequence)
                    .bool("pending_armed", p.armed),
                None => a.raw("pending_sequence", "null"),
            };
            if let Some(mut f) = semi::open("power-cuts", semi::Mode::Read) {
                a = a.num("power_cuts", u64::from(f.len().unwrap_or(0)));
                f.close();
            }
            status(a, lock, now).finish()
        }
    }
}

/// The latch's fields, as `keyway-lock`'s `lock` object.
fn status<'b>(a: Answer<'b>, lock: &Lock<'_, SemiFlash>, now: u64) -> Answer<'b> {
    let l = &lock.shell.latch;
    let s = l.sensors(now);
    a.open("lock")
        .str("bolt", l.bolt.as_str())
        .str("door", l.door.as_str())
        .num("battery_mv", u64::from(l.battery_mv))
        .bool("tamper", l.tamper)
        .num("failed_pins", u64::from(l.failures()))
        .num("lockout_seconds", s.lockout_s)
        .close()
}

/// A small text buffer (for `Debug` output in an answer).
struct Text<const N: usize> {
    buf: [u8; N],
    len: usize,
}

impl<const N: usize> Text<N> {
    fn new() -> Self {
        Text {
            buf: [0; N],
            len: 0,
        }
    }
    fn as_str(&self) -> &str {
        core::str::from_utf8(&self.buf[..self.len]).unwrap_or("")
    }
}

impl<const N: usize> core::fmt::Write for Text<N> {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        // Cut at the buffer's end (on a char boundary: the input is ASCII).
        let room = N - self.len;
        let n = s.len().min(room);
        self.buf[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        Ok(())
    }
}
