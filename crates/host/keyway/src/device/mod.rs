//! `keyway device`: the owner's client for a lock over SMP.
//!
//! * [`transport`]: UDP (timeouts, bounded resends with the same sequence
//!   number, answers matched by sequence number) and an in-memory peer.
//! * [`serial`]: SMP over a serial port (`serial:PATH`), and the
//!   transport a `--target` names.
//! * [`client`]: typed calls (OS, image and Keyway groups), owner
//!   authentication, refusals as sentences.
//! * [`paired`]: the owner's record of the locks it paired with by setup
//!   code (their device keys), beside the owner key.
//! * [`cli`]: the `keyway device` subcommands.
//!
//! # keyway device: the owner's client
//!
//! `crates/host/keyway/src/device/`, the client side of FORMAT.md's SMP groups.
//!
//! * **Transport** (`transport.rs`): `Transport::exchange(frame, seq)` returns
//!   the response carrying `seq`. `UdpTransport` is stop-and-wait: it sends,
//!   waits `--timeout-ms` (500), resends the same frame (same sequence number)
//!   up to `--tries` (5) times in all, and drops datagrams from another
//!   address, shorter than a header or with another sequence number (a late
//!   answer to an earlier resend); it reads at most 8 + 65,535 bytes.
//!   `FnTransport` hands frames to a function in the same process;
//!   `FnTransport::fragmenting` models MCUmgr's BLE reassembly (frames up to
//!   the lock's `buf_size`, each counted as ATT writes of at most 244 bytes):
//!   `examples/smp_bench.rs` drives the lock's `AgentLock` with it, and
//!   `keyway diff --update-time` counts an owner's sealed update through an
//!   in-memory endpoint running the lock's side of the channel.
//! * **Client** (`client.rs`): every answer is checked (a response op of the
//!   same group, command and sequence; one CBOR map, nesting bounded, by
//!   `keyway_vendor::smp::decode_response`); a top-level `rc` becomes
//!   `refused: RSN (NAME, rc N)`, an SMPv2 `err` `refused by the image group:
//!   WORDS (rc N)` (the `IMG_MGMT_ERR` and `OS_MGMT_ERR` codes in words). Every
//!   text the lock sends is printed through `client::printable` (control
//!   characters and bidi overrides as `\u{..}` escapes: a spoofed answer cannot
//!   rewrite the terminal). An owner pairs once with the setup code
//!   (`Client::pair_with_code`, SPAKE2+, ids 11/12, which yields the lock's
//!   device key, kept in `owner.locks.json` beside `owner.key`); from then on every call runs
//!   sealed in a SIGMA-I session (ids 13–15; the module doc of `client.rs`
//!   says how stale, `UnknownSession` and `RecordRefused` answers are
//!   retried). There is no other owner path: an owner key without a
//!   paired-lock record for the target is refused by the command line before
//!   anything is sent (`cli::NotPaired`, which says to pair with
//!   `pair --setup-code`); the lock answers the old `challenge` and `pair KEY`
//!   ids with `ENOTSUP` (rc 8).
//! * **Upload**: `sha` (SHA-256 of the whole file, which is also the image
//!   hash the lock's state read reports), `len` and `image` with `off` 0; each
//!   chunk is the largest that keeps the frame within the MTU and the body
//!   within the lock's 2,048 bytes (computed from the encoded size, not
//!   guessed: 1,448 data bytes at MTU 1472, 222 at 244). The client always
//!   continues from the `off` the lock answers (a resumed upload starts where
//!   the journal stands); an offset past the file, or one that does not move
//!   for 8 answers, is an error, and the request count is bounded. An
//!   owner's upload goes sealed in the session, chunk by chunk; without a
//!   paired owner it goes plain (the presence window's).
//! * **Log export**: chunks from `off` 0 until `len`, each answer naming the
//!   `off` asked for; `len` may not change,
//!   a chunk may not pass `len` or exceed 4 KiB, the total is at most 16 MiB.
//! * **`update ENVELOPE...`** reads the lock's image state and the Keyway
//!   `status` first and uploads the candidate `select_envelope` picks: among
//!   those the lock does not hold and that are newer (manifest sequence) than
//!   every candidate it holds in a bootable slot, so an older release never
//!   replaces a newer pending one (if none is left, it names the slot and
//!   state of each it holds: running, pending, not bootable), a delta whose base is the running image
//!   (the status's `image`, compared by `keyway_vendor::delta::choose` with each
//!   delta manifest's base digest), else a full image; it prints which and
//!   why (`chosen_because` in `--json`). If the lock refuses the delta's head
//!   (image group rc 22: it does not run that base, e.g. it changed since the
//!   status) and a full image was given, `update` sends the full image and
//!   says so (`tests/device.rs`
//!   `a_delta_the_lock_refuses_for_its_base_falls_back_to_the_full_image`:
//!   the lock's image changes between the sealed status and the upload). A lock without the Keyway group gets the first full image. `--install` asks for a test boot
//!   and a reset (what `smpmgr upgrade` does; at the lock with the presence
//!   window this is consent); `--wait` polls the image state and the Keyway
//!   `status` until the image runs confirmed, or the update is `postponed` or
//!   `refused`, or the time runs out; a rebooting lock that does not answer is
//!   waited out.
//! * **Tests** (`tests/device.rs`): the CLI against a lock run in-process
//!   (update end to end, refusals worded, rollback, resume after a cut link),
//!   and fake locks on loopback sending garbage, wrong sequence numbers,
//!   truncated, oversized and mistyped answers, dropping a datagram, never
//!   taking data, changing a log's length; property tests answer every call with
//!   arbitrary CBOR maps and arbitrary bytes.

pub mod cli;
pub mod client;
pub mod paired;
pub mod serial;
pub mod transport;

pub use client::{
    ChannelCounts, Client, Clock, DeviceError, ImageSlot, OwnerInfo, PairingReport, UploadReport,
};
pub use paired::{PairedLockRecord, PairedLocks, locks_path};
pub use serial::{SerialTransport, TargetTransport};
pub use transport::{
    FnTransport, Intercept, Stats, Transport, TransportError, UDP_MTU, UdpTransport,
};
