//! The OS group (0): echo, reset, the MCUmgr parameters and OS/application
//! info, as the lock serves them (Zephyr, "SMP Group 0").

use crate::Message;
use crate::cbor::{self, Error, Writer};
use crate::fields::{text, uint};

/// OS group command ids.
pub mod cmd {
    /// Write: echo `d` back as `r`.
    pub const ECHO: u8 = 0;
    /// Read: task statistics (not served).
    pub const TASK_STAT: u8 = 2;
    /// Read: memory pool statistics (not served).
    pub const MEMPOOL_STAT: u8 = 3;
    /// Read/write: date and time (not served).
    pub const DATETIME: u8 = 4;
    /// Write: reset the device after answering.
    pub const RESET: u8 = 5;
    /// Read: the MCUmgr buffer parameters.
    pub const PARAMS: u8 = 6;
    /// Read: OS and application info.
    pub const INFO: u8 = 7;
    /// Read: bootloader info (not served).
    pub const BOOTLOADER_INFO: u8 = 8;
}

message! {
    /// Echo request: `{"d": text}`.
    pub struct Echo<'a> {
        /// The text to echo.
        pub d: &'a str = "d" => text,
    }
    encode(m) { "d" => m.d }
}

message! {
    /// Echo response: `{"r": text}`.
    pub struct EchoRsp<'a> {
        /// The echoed text.
        pub r: &'a str = "r" => text,
    }
    encode(m) { "r" => m.r }
}

/// An empty body (`{}`), as reset, the parameters' request and several
/// answers carry. Unknown fields (e.g. reset's `force`) are skipped.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Empty;

impl<'a> Message<'a> for Empty {
    fn encode(&self, w: &mut Writer<'_>) -> Result<(), Error> {
        w.map(0)
    }
    fn decode(body: &'a [u8]) -> Result<Self, Error> {
        cbor::read_body(body, &[], &mut |_, _, _| Ok(()))?;
        Ok(Empty)
    }
}

message! {
    /// MCUmgr parameters response: `{"buf_size", "buf_count"}`.
    pub struct ParamsRsp {
        /// The largest frame the device takes, header included.
        pub buf_size: u64 = "buf_size" => uint,
        /// Buffers the device has.
        pub buf_count: u64 = "buf_count" => uint,
    }
    encode(m) { "buf_size" => m.buf_size, "buf_count" => m.buf_count }
}

message! {
    /// OS/application info request: `{"format"?: text}` (default `"s"`).
    pub struct Info<'a> {
        /// The format characters (`s n r v b m p i o`, `a` for all).
        pub format: Option<&'a str> = "format" => text,
    }
    encode(m) { "format" => m.format }
}

message! {
    /// OS/application info response: `{"output": text}`.
    pub struct InfoRsp<'a> {
        /// The fields asked for, separated by spaces.
        pub output: &'a str = "output" => text,
    }
    encode(m) { "output" => m.output }
}
