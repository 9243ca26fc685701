//! ARM semihosting calls beyond printing and exit: the command line and
//! host files (`SYS_OPEN`, `SYS_SEEK`, `SYS_READ`, `SYS_WRITE`, `SYS_FLEN`,
//! `SYS_CLOSE`). QEMU serves them with `-semihosting-config
//! enable=on,target=native`; file names are host paths, relative to QEMU's
//! working directory.

use cortex_m_semihosting::{nr, syscall};

/// The longest file name [`open`] takes.
pub const MAX_PATH: usize = 255;

/// A host file handle.
#[derive(Debug, PartialEq, Eq)]
pub struct File(usize);

/// How [`open`] opens the file (the ISO C `fopen` modes, binary).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// `rb`.
    Read,
    /// `r+b`: read and write, the file must exist.
    ReadWrite,
    /// `w+b`: read and write, created or truncated.
    Create,
}

/// Opens the host file `path`; `None` if the host refuses or the path is
/// longer than [`MAX_PATH`].
pub fn open(path: &str, mode: Mode) -> Option<File> {
    let mut name = [0u8; MAX_PATH + 1];
    name.get_mut(..path.len())?.copy_from_slice(path.as_bytes());
    let mode = match mode {
        Mode::Read => nr::open::R_BINARY,
        Mode::ReadWrite => nr::open::RW_BINARY,
        Mode::Create => nr::open::RW_TRUNC_BINARY,
    };
    // SAFETY: a NUL-terminated name that lives across the call.
    let fd = unsafe { syscall!(OPEN, name.as_ptr(), mode, path.len()) };
    (fd as isize >= 0).then_some(File(fd))
}

impl File {
    /// Moves to byte `pos`.
    pub fn seek(&mut self, pos: u32) -> bool {
        // SAFETY: plain values.
        unsafe { syscall!(SEEK, self.0, pos as usize) == 0 }
    }

    /// Reads `buf.len()` bytes at the current position; false if fewer
    /// were read.
    pub fn read(&mut self, buf: &mut [u8]) -> bool {
        if buf.is_empty() {
            return true;
        }
        // SAFETY: the buffer lives across the call; SYS_READ returns the
        // number of bytes *not* read.
        unsafe { syscall!(READ, self.0, buf.as_mut_ptr(), buf.len()) == 0 }
    }

    /// Writes `buf` at the current position; false if not all of it was
    /// written.
    pub fn write(&mut self, buf: &[u8]) -> bool {
        if buf.is_empty() {
            return true;
        }
        // SAFETY: as `read`; SYS_WRITE returns the bytes not written.
        unsafe { syscall!(WRITE, self.0, buf.as_ptr(), buf.len()) == 0 }
    }

    /// The file's length; `None` if the host cannot tell.
    #[allow(clippy::len_without_is_empty)]
    pub fn len(&mut self) -> Option<u32> {
        // SAFETY: plain value.
        let n = unsafe { syscall!(FLEN, self.0) };
        u32::try_from(n as isize).ok()
    }

    /// Closes the handle.
    pub fn close(self) {
        // SAFETY: plain value; the handle is not used again.
        unsafe { syscall!(CLOSE, self.0) };
    }
}

/// The command line QEMU passes (`-semihosting-config arg=A,arg=B`: `"A B"`),
/// read into `buf`; `None` if there is none or it does not fit.
pub fn cmdline(buf: &mut [u8]) -> Option<&str> {
    let mut block = [buf.as_mut_ptr() as usize, buf.len()];
    // SAFETY: the block and the buffer live across the call; the host
    // writes at most `buf.len()` bytes and the length back into block[1].
    let r = unsafe { cortex_m_semihosting::syscall1!(GET_CMDLINE, block.as_mut_ptr()) };
    if r != 0 {
        return None;
    }
    let n = block[1].min(buf.len());
    let s = core::str::from_utf8(buf.get(..n)?).ok()?;
    Some(s.trim_end_matches('\0'))
}

/// The value of `key=N` among the space-separated words of `line`.
pub fn arg_u32(line: &str, key: &str) -> Option<u32> {
    line.split(' ').find_map(|w| {
        let v = w.strip_prefix(key)?.strip_prefix('=')?;
        v.parse().ok()
    })
}

/// The value of `key=VALUE` among the space-separated words of `line`.
pub fn arg<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    line.split(' ')
        .find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
}
