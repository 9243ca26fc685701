//! Polled drivers for the CMSDK APB UARTs of `mps2-an386` (ARM DDI0479C,
//! QEMU's `cmsdk-apb-uart`): UART0 at `0x4000_4000` carries the SMP serial
//! port, UART1 at `0x4000_5000` the tests' control channel. QEMU connects
//! UART *n* to its *n*-th `-serial` (e.g. `-serial pty -serial pty`).
//!
//! Registers: DATA (+0x00), STATE (+0x04: bit 0 TX full, bit 1 RX full),
//! CTRL (+0x08: bit 0 TX enable, bit 1 RX enable), INTSTATUS (+0x0C),
//! BAUDDIV (+0x10, at least 16). The receiver holds one byte; QEMU's
//! character device keeps the rest until it is read, so polling loses
//! nothing.
//!
//! **Waiting without spinning.** A loop that polls STATE keeps QEMU's
//! vCPU busy and its main loop, which moves the pty's bytes into the
//! one-byte receiver, starved: a spinning lock received about 4 kB/s.
//! [`Uart::enable_rx_interrupt`] and [`wait_for_rx`] let the firmware
//! sleep (`wfi`) until a byte arrives: the RX interrupt (UART0: IRQ 0,
//! UART1: IRQ 2, QEMU's `mps2.c`) wakes it, and [`ack_interrupts`],
//! called from the firmware's `DefaultHandler`, clears it.

use core::ptr::{read_volatile, write_volatile};
use core::sync::atomic::{AtomicBool, Ordering};

/// UART0's base: the SMP serial port.
pub const UART0: usize = 0x4000_4000;
/// UART1's base: the control channel.
pub const UART1: usize = 0x4000_5000;
/// The board's peripheral clock (QEMU's `SYSCLK_FRQ` for mps2: 25 MHz).
pub const PCLK_HZ: u32 = 25_000_000;
/// The line rate the drivers set.
pub const BAUD: u32 = 115_200;

const DATA: usize = 0x00;
const STATE: usize = 0x04;
const CTRL: usize = 0x08;
const BAUDDIV: usize = 0x10;
const STATE_TX_FULL: u32 = 1 << 0;
const STATE_RX_FULL: u32 = 1 << 1;
const CTRL_TX_EN: u32 = 1 << 0;
const CTRL_RX_EN: u32 = 1 << 1;
const CTRL_RX_INT_EN: u32 = 1 << 3;
const INTCLEAR: usize = 0x0C;
/// The NVIC interrupt numbers of the receivers (QEMU `hw/arm/mps2.c`:
/// RX is 0, 2, 4, … for UART0, UART1, UART2; TX one more).
const RX_IRQ: [u32; 2] = [0, 2];

static TAKEN: [AtomicBool; 2] = [AtomicBool::new(false), AtomicBool::new(false)];

/// One UART, owned: [`Uart::take`] hands each out once.
#[derive(Debug)]
pub struct Uart {
    base: usize,
    /// [`Uart::read_byte`] sleeps between polls (the RX interrupt is on).
    sleeps: bool,
}

impl Uart {
    /// UART `n` (0 or 1), enabled at [`BAUD`], 8N1; `None` if it was taken
    /// already or `n` is another number.
    pub fn take(n: usize) -> Option<Uart> {
        let base = match n {
            0 => UART0,
            1 => UART1,
            _ => return None,
        };
        if TAKEN[n].swap(true, Ordering::AcqRel) {
            return None;
        }
        let uart = Uart {
            base,
            sleeps: false,
        };
        uart.reg_write(BAUDDIV, PCLK_HZ / BAUD);
        uart.reg_write(CTRL, CTRL_TX_EN | CTRL_RX_EN);
        Some(uart)
    }

    fn reg_read(&self, reg: usize) -> u32 {
        // SAFETY: `base` is one of the board's UARTs, owned by this value;
        // the register is a 32-bit MMIO word.
        unsafe { read_volatile((self.base + reg) as *const u32) }
    }

    fn reg_write(&self, reg: usize, v: u32) {
        // SAFETY: as `reg_read`.
        unsafe { write_volatile((self.base + reg) as *mut u32, v) }
    }

    /// Sends one byte, waiting while the transmitter is full.
    pub fn write_byte(&mut self, b: u8) {
        while self.reg_read(STATE) & STATE_TX_FULL != 0 {}
        self.reg_write(DATA, u32::from(b));
    }

    /// Sends `bytes`.
    pub fn write_all(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_byte(b);
        }
    }

    /// Raises this UART's RX interrupt when a byte arrives, and unmasks it
    /// in the NVIC, so [`wait_for_rx`] can sleep. The firmware's
    /// `DefaultHandler` must call [`ack_interrupts`].
    pub fn enable_rx_interrupt(&mut self) {
        let n = usize::from(self.base == UART1);
        self.sleeps = true;
        self.reg_write(CTRL, CTRL_TX_EN | CTRL_RX_EN | CTRL_RX_INT_EN);
        // SAFETY: one write to the NVIC's set-enable register, for this
        // UART's own receive interrupt; its handler only clears it.
        unsafe {
            (*cortex_m::peripheral::NVIC::PTR).iser[0].write(1 << RX_IRQ[n]);
        }
    }

    /// Whether a received byte is waiting.
    pub fn rx_ready(&self) -> bool {
        self.reg_read(STATE) & STATE_RX_FULL != 0
    }

    /// The received byte, if one is waiting.
    pub fn try_read(&mut self) -> Option<u8> {
        (self.reg_read(STATE) & STATE_RX_FULL != 0).then(|| self.reg_read(DATA) as u8)
    }

    /// Waits for a byte (asleep between polls once
    /// [`Uart::enable_rx_interrupt`] was called).
    pub fn read_byte(&mut self) -> u8 {
        loop {
            if let Some(b) = self.try_read() {
                return b;
            }
            if self.sleeps {
                wait_for_rx(&[self]);
            }
        }
    }

    /// Reads bytes into `buf` up to and including `\n`, waiting for them;
    /// returns the line's length. A line longer than `buf` is cut at
    /// `buf.len()` (the rest comes with the next call).
    pub fn read_line(&mut self, buf: &mut [u8]) -> usize {
        let mut n = 0;
        while n < buf.len() {
            let b = self.read_byte();
            buf[n] = b;
            n += 1;
            if b == b'\n' {
                break;
            }
        }
        n
    }
}

/// Sleeps until one of `uarts` has a byte or any interrupt (SysTick)
/// fires. Interrupts are masked while the receivers are checked, so a
/// byte that arrives between the check and the `wfi` still wakes it (a
/// pending interrupt ends `wfi` even when masked).
pub fn wait_for_rx(uarts: &[&Uart]) {
    cortex_m::interrupt::disable();
    if !uarts.iter().any(|u| u.rx_ready()) {
        cortex_m::asm::wfi();
    }
    // SAFETY: interrupts were enabled before this call (the firmware runs
    // with them on); this only ends the masked section above.
    unsafe { cortex_m::interrupt::enable() };
}

/// Clears the receive and transmit interrupts of both UARTs: for the
/// firmware's `DefaultHandler` (the byte stays in DATA until it is read).
pub fn ack_interrupts() {
    for base in [UART0, UART1] {
        // SAFETY: INTCLEAR is write-one-to-clear; it touches no data.
        unsafe { write_volatile((base + INTCLEAR) as *mut u32, 0xF) }
    }
}

impl core::fmt::Write for Uart {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        self.write_all(s.as_bytes());
        Ok(())
    }
}
