//! Fixtures the test binaries share: an owner's `auth`, the owner list,
//! and a later upload chunk.

#![allow(dead_code)]

use keyway_smp::auth::Auth;
use keyway_smp::{img, keyway_group};

/// An owner's `auth` with recognizable bytes.
pub const AUTH: Auth = Auth {
    key: [1; 32],
    nonce: [2; 16],
    sig: [3; 64],
};

/// Three owners: named and dated, unnamed and undated, dated at 0.
pub const OWNERS: [keyway_group::OwnerEntry<'static>; 3] = [
    keyway_group::OwnerEntry {
        key_id: [0x11; 8],
        name: "alice",
        paired: Some(1_796_000_000),
    },
    keyway_group::OwnerEntry {
        key_id: [0x22; 8],
        name: "",
        paired: None,
    },
    keyway_group::OwnerEntry {
        key_id: [0x33; 8],
        name: "bob's phone",
        paired: Some(0),
    },
];

/// An upload chunk after the first: `off` and `data`, nothing else.
pub fn chunk(off: u64, data: &[u8]) -> img::Upload<'_> {
    img::Upload {
        off,
        data,
        len: None,
        sha: None,
        image: None,
        upgrade: None,
        auth: None,
        kw: false,
    }
}
