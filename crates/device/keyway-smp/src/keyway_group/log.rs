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
        w.map(1 + usize::from(self.auth.is_some()))?;
        w.entry_u64("off", self.off)?;
        Auth::write_entry(self.auth.as_ref(), w)?;
        Ok(())
    }
    fn decode(body: &'a [u8]) -> Result<Self, Error> {
        let (mut off, mut auth) = (0, None);
        let names = ["off", "auth"];
        let seen = cbor::read_body(body, &names, &mut |i, name, r| {
            match i {
                0 => off = uint(r, name)?,
                _ => auth = Some(Auth::read(r)?),
            }
            Ok(())
        })?;
        cbor::require(seen, 0b1, &names)?;
        Ok(Log { off, auth })
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
        w.map(3)?;
        w.entry_u64("len", self.len)?;
        w.entry_u64("off", self.off)?;
        w.entry_bytes("data", self.data)
    }
    fn decode(body: &'a [u8]) -> Result<Self, Error> {
        let (mut off, mut len, mut data) = (None, None, None);
        cbor::read_body(body, &["off", "len", "data"], &mut |i, name, r| {
            match i {
                0 => off = Some(uint(r, name)?),
                1 => len = Some(uint(r, name)?),
                _ => data = Some(field(r.bytes(), name, "a byte string")?),
            }
            Ok(())
        })?;
        Ok(LogRsp {
            off: cbor::need(off, "off")?,
            len: cbor::need(len, "len")?,
            data: cbor::need(data, "data")?,
        })
    }
}
