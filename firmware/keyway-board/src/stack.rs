//! Stack high-water measurement by painting.
//!
//! Before a measured call, every word between the end of static RAM
//! (`_stack_end`, the top of .bss/.uninit in cortex-m-rt's link.x) and the
//! current stack pointer is filled with [`PAINT`]. After the call the region
//! is scanned upwards from `_stack_end`; the first word that no longer holds
//! the pattern is the deepest the stack reached. The firmware has no
//! interrupts enabled, so nothing else writes below the stack pointer.

use core::arch::asm;
use core::ptr::{addr_of, read_volatile, write_volatile};

/// The pattern painted below the stack pointer.
pub const PAINT: u32 = 0xA5C3_5A3C;

unsafe extern "C" {
    /// Initial stack pointer (top of RAM).
    static _stack_start: u32;
    /// Lowest address the stack may use (end of .bss/.uninit, = __sheap).
    static _stack_end: u32;
}

/// Stack usage of one measured call.
#[derive(Clone, Copy)]
pub struct Usage {
    /// Bytes below the caller's stack pointer touched by the call.
    pub call: usize,
    /// Bytes below the initial stack pointer in use at the deepest point
    /// (the harness's own frames included).
    pub total: usize,
}

#[inline(always)]
fn sp() -> usize {
    let sp: usize;
    // SAFETY: reads a register, no memory access.
    unsafe { asm!("mov {}, sp", out(reg) sp, options(nomem, nostack, preserves_flags)) };
    sp
}

/// The initial stack pointer (the top of RAM).
pub fn stack_top() -> usize {
    addr_of!(_stack_start) as usize
}

/// The lowest address the stack may use (the end of the statics).
pub fn stack_limit() -> usize {
    addr_of!(_stack_end) as usize
}

/// Runs `f` and reports how much stack it used.
///
/// `inline(never)` keeps this frame (and so the painted boundary) separate
/// from the caller's; the closure runs below it.
#[inline(never)]
pub fn measure<R>(f: impl FnOnce() -> R) -> (R, Usage) {
    // Leave a small gap below our own frame: the call into `f` pushes the
    // return address and callee-saved registers right away.
    let top = (sp() - 16) & !3;
    let bottom = stack_limit();
    let mut p = bottom;
    while p < top {
        // SAFETY: [bottom, top) is the unused part of the stack: above all
        // statics and below the live frames; no interrupt handler runs.
        unsafe { write_volatile(p as *mut u32, PAINT) };
        p += 4;
    }
    let r = f();
    let mut p = bottom;
    // SAFETY: same region, read only.
    while p < top && unsafe { read_volatile(p as *const u32) } == PAINT {
        p += 4;
    }
    let deepest = p;
    let usage = Usage {
        call: top.saturating_sub(deepest),
        total: stack_top() - deepest,
    };
    (r, usage)
}
