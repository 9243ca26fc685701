//! The audit log's export, a chunk at a time: `log` (id 6).

use super::*;

message! {
    /// `log` request: `{"off", "auth"?}`; offset 0 starts a new export, which
    /// an owner signs (later chunks belong to the same peer's export).
    pub struct Log {
        /// The byte offset into the export file.
        pub off: u64 = "off" => uint,
        /// An owner's authentication (the first chunk).
        pub auth: Option<Auth> = "auth" => owner_auth,
    }
    encode(m) { "off" => m.off, "auth" => m.auth }
}

message! {
    /// `log` answer: `{"off", "len", "data"}`.
    pub struct LogRsp<'a> {
        /// The chunk's offset.
        pub off: u64 = "off" => uint,
        /// The whole export file's length.
        pub len: u64 = "len" => uint,
        /// The chunk.
        pub data: &'a [u8] = "data" => bytes,
    }
    encode(m) { "len" => m.len, "off" => m.off, "data" => m.data }
}
