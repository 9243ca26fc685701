//! The audit log's export, a chunk at a time: `log` (id 6).

use super::*;

/// `log` request: `{"off", "auth"?}`; offset 0 starts a new export, which
/// an owner signs (later chunks belong to the same peer's export).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Log {
    /// The byte offset into the export file.
    pub off: u64,
    /// An owner's authentication (the first chunk).
    pub auth: Option<Auth>,
}

impl<'a> Message<'a> for Log {
    fn encode(&self, w: &mut Writer<'_>) -> Result<(), Error> {
        write_map!(w, { "off" => self.off, "auth" => self.auth })
    }
    fn decode(body: &'a [u8]) -> Result<Self, Error> {
        read_map!(body => Log {
            off: "off" => uint,
            auth: "auth" => owner_auth,
        })
    }
}

/// `log` answer: `{"off", "len", "data"}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LogRsp<'a> {
    /// The chunk's offset.
    pub off: u64,
    /// The whole export file's length.
    pub len: u64,
    /// The chunk.
    pub data: &'a [u8],
}

impl<'a> Message<'a> for LogRsp<'a> {
    fn encode(&self, w: &mut Writer<'_>) -> Result<(), Error> {
        write_map!(w, {
            "len" => self.len,
            "off" => self.off,
            "data" => self.data,
        })
    }
    fn decode(body: &'a [u8]) -> Result<Self, Error> {
        read_map!(body => LogRsp {
            off: "off" => uint,
            len: "len" => uint,
            data: "data" => bytes,
        })
    }
}
