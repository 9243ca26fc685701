//! `keyway-lock`: a simulated Keyway smart lock. The real device core of
//! `keyway-device` (installer, journal, bootloader, `VerifiedSlot`) runs on
//! a file-backed simulated nRF52840 flash (`keyway-sim`) in direct A/B
//! mode, managed over SMP (MCUmgr) on UDP, so MCUmgr tools (`smpmgr`,
//! `smpclient`) can update it.
//!
//! The lock's brain is `keyway-agent` (no_std): authority, pairing with
//! the setup code, sessions, owners, consent and settings. This crate is
//! the shell around it and the device core it drives.
//!
//! * [`smp`]: the SMP framing, bounded and panic-free.
//! * [`agent_shell`]: the lock around `keyway-agent` (its `Device`
//!   over the device core, its store's flash, its events).
//! * [`server`]: the device core's SMP side: it serves what the agent
//!   authorized (OS group echo, parameters, info; image group state
//!   read and write, upload, erase; the Keyway group's notes and log
//!   export) and holds the update's state and the presence window the
//!   control socket shows. It has no gate of its own: every frame goes
//!   through the agent.
//! * [`keyway_group`]: the Keyway SMP group (64) commands the device core
//!   serves: notes and the log export (and the in-process status report).
//! * [`owners`]: the owners' update settings the policy reads.
//! * [`peers`]: who is asking (the transport's peer).
//! * [`policy`]: the update policy (consent, battery, bolt) and the lock
//!   models with their battery models, sans-IO.
//! * [`profile`]: deliberately flawed locks (`--profile`) for `keyway audit`.
//! * [`device`]: the lock's device side over the simulated flash, with
//!   the audit log: the [`device::DeviceCore`] (firmware slots, journal,
//!   bootloader).
//! * [`lock`]: the lock's behaviour (bolt, keypad, auto-relock, sensors),
//!   sans-IO: the [`lock::Mechanism`] a person at the door works.
//! * [`state`]: the state directory (flash image, anchors, identity,
//!   device key, PIN, boot counter).
//! * [`shell`]: the sockets, files, clock and threads around the server;
//!   `main.rs` and in-process users (the demo, tests) start a lock with it.
//! * [`control`]: the line-delimited JSON control socket (the lock's
//!   button, keypad and sensors, the audit-log export).
//!
//! # keyway-lock: SMP
//!
//! `keyway-lock provision --state DIR --vendor-key V.pub --vendor-domain D --class C [--firmware FW.suit [--version X.Y.Z]] [--pin DIGITS]`
//! writes `DIR/flash.bin` (the 1 MiB nRF52840 flash, `SimFlash::as_bytes`),
//! `DIR/anchor-N.pub`, `DIR/lock.json` (domain, class, threshold), the device's
//! own Ed25519 key `DIR/device.key` (PKCS#8, 0600; `DIR/device.pub` SPKI PEM,
//! its key id printed), the keypad PIN `DIR/pin` (0600, default `1234`), and
//! programs the factory firmware (`--firmware`, alias `--factory`; its
//! manifest must carry `--version` when given) into slot 0 with the real
//! installer, boots and confirms it (boot 1 in the log). There is no built-in
//! image: without `--firmware` the lock boots into recovery, and an upload to
//! a lock in recovery is armed at once (nothing runs that consent could
//! protect).
//! `keyway-lock --state DIR --bind ADDR [--model NAME] [--control HOST:PORT|PATH]`
//! powers on (`boot::boot` with `VerifiedSlot`; an image on trial self-tests
//! and confirms) and serves SMP on UDP, one request per datagram.
//! `DIR/agent-store.bin` holds the agent's owner store (owners, consent,
//! settings, the setup code's verifier). Every datagram goes to the agent
//! (`AgentLock::handle`); what it authorizes, the device core serves.
//!
//! * **Layout**: journal in pages 0–1, slot 0 in pages 2–126, slot 1 in pages
//!   127–251, the audit log in pages 252–255 (`device::audit_config`), direct
//!   A/B, each slot's last page its manifest area: images up to 496 KiB. SMP
//!   `slot` is the physical slot; `active` marks the running one. (A
//!   `flash.bin` provisioned before the audit log had 127-page slots:
//!   provision it again.)
//! * **Image hash** in the state read is the SHA-256 of the whole envelope as
//!   uploaded (head from the manifest area, then the image): the same value as
//!   the upload's `sha` and `sha256sum UPDATE.suit`, so `smpmgr upgrade --format
//!   any` and "test by hash" need no MCUboot TLV.
//! * **Upload**: the first `HEAD_WINDOW` (4096) bytes, or the whole file if
//!   shorter, are buffered and checked by `keyway_suit::verify_envelope` with the
//!   journal's floor and the stored key set; then `Installer::begin_with_manifest`
//!   stores the head and the payload streams into the inactive slot. A refused
//!   envelope answers the image group's rc with the verifier's reason in the lock's log
//!   (and in `rsn` for SMPv1): rollback is 27 `CURRENT_VERSION_IS_NEWER`, any other
//!   check 22 `INVALID_IMAGE_HEADER`; a wrong `sha` 24, an overrun 31, a `len` that
//!   is not the envelope's 21. An offset other than the expected one is answered
//!   with `{"off": expected}`; `off` 0 with the same `len` and `sha` resumes; after
//!   a kill the journal's download record resumes it (head re-verified, slot
//!   re-hashed). The last chunk finishes the download *unarmed*
//!   (`Installer::finish` with `Arm::Later`: `download: None`, `trial` untouched): the
//!   slot is complete and verified but a reset boots the old image; the update
//!   policy arms it (below).
//! * **Delta uploads**: when the verified head's manifest is a delta
//!   (`Verified::delta`), the upload goes through
//!   `keyway_device::delta::DeltaInstaller` instead (`device::Download::Delta`,
//!   chosen in `device::Lock::begin_download`): first `Lock::delta_refusal`
//!   hashes the running slot's first `base_size` bytes, and a delta for another
//!   image is refused at the head, before anything is written, with rc 22 and
//!   a reason that names both images, e.g. `this delta applies to image
//!   3f2a9c10… (9000 bytes); the lock runs 9c01d2e4… (v1.0.0): send the full
//!   image` (audit: update rejected, compatibility); then the patch streams
//!   in, the running slot is read as the base and the output written into the
//!   inactive slot, finished unarmed like a full image. A delta is never
//!   resumed mid-patch after a kill or a cut (`resume_download` declines it):
//!   the client's upload starts again at 0. Its slot holds the produced image,
//!   so the image state lists it by the uploaded file's SHA-256 only until the
//!   lock restarts (kept in RAM); afterwards by SHA-256 of head and produced
//!   image. `tests/server.rs`: delta upload → test → reset → the new image
//!   runs; another base refused before writing; a power cut at every flash
//!   operation of a delta update.
//! * **Gate** (the agent's authority table, SECURITY.md §5b): upload, image
//!   state write and erase answer top-level `rc` 11 (ACCESSDENIED, with
//!   Keyway's typed refusal `kw-rc` 2, no presence window) unless the
//!   presence window is open (control socket `{"cmd":"presence"}`,
//!   or `--presence-always-open` for tests) or the request comes sealed in an
//!   owner's session; an upload belongs to whoever sent its first chunk. A
//!   reset in the open window is allowed once and closes the window (one
//!   reset per press of the button); with the window shut only an owner's
//!   session may reset, at most once a minute and not in the first minute
//!   after boot. A stock tool's image state "test" in the window arms the
//!   install, and the reset it sends next boots it (as with MCUboot). The
//!   upload's `upgrade` flag changes nothing: the sequence number must always
//!   exceed the floor.
//! * **Keyway group** (64, FORMAT.md): the agent answers status, lock,
//!   unlock, presence, consent, pairing, sessions, settings, owners, unpair
//!   and the factory reset; `keyway_group.rs` serves the notes and the log
//!   export the agent authorized for an owner's session. Every refusal is a
//!   top-level `rc` with Keyway's typed refusal (`kw-rc`) and, in `rsn`,
//!   keyway-smp's fixed words for it (`Refusal::words`); clients decide on
//!   `kw-rc` only. The PIN lives in `DIR/pin`; the shell
//!   saves it when `Server::take_pin_changed` says so. Factory reset (the
//!   window and a `long-press` at or after the window opened) clears owners, settings,
//!   consent, the wrong-code count and the upload, closes the window and sets
//!   the PIN back to `1234`; firmware, anchors, key set, device key, the
//!   setup code's verifier and the audit log (which records the reset) stay.
//! * **Update policy** (the decision in `keyway_agent::policy`, applied by the device core): the complete unarmed upload is
//!   `Server::pending` (found again at every boot: the inactive slot verifies,
//!   its sequence is above the floor, nothing is armed). Consent — an image
//!   state "test" of its hash, or an OS reset (`smpmgr upgrade`'s last
//!   request), with the window open, `consent` `accept` after
//!   `notes` was read, or `auto_install_cve` for a high/critical CVE — is
//!   bound to that envelope's hash (as are the notes offered: another
//!   envelope in the slot, even with the same sequence number, needs its own;
//!   keyway `tests/agent_lock.rs`,
//!   `consent_for_one_update_is_not_carried_over_to_a_replacement`) and
//!   stored in the agent's store (a record bound to the envelope's SHA-256),
//!   written before any reset the request asked for, restored at
//!   boot only if it names the pending update, cleared when the update is
//!   refused, erased, replaced or armed (FORMAT.md, "Update policy"). The
//!   install (`Lock::test`: `Pending`, then an in-place reset into the trial,
//!   as an SMP reset) runs only while the battery's mWh reach the manifest's
//!   `minimum-battery` and, with `install_needs_unlocked` (default), the bolt
//!   is withdrawn; otherwise the update is `postponed` with the reason (a
//!   standard tool's "test" or reset gets `rc` 6 with it and the reset is
//!   not done, the consent kept) and
//!   `Server::tick` installs it as soon as both hold (the shell's timer calls
//!   `poll_reset` after it). `consent` `accept: false` erases the slot. Audit
//!   events: consent given/refused, update installed (at arming).
//! * **Lock models** (`--model`): `deadbolt-2` (default; 2 × 3.6 V
//!   Li-SOCl2, linear 3000–3600 mV → 0–18,720 mWh, low at 3300 mV) and
//!   `lever-4aa` (4 × AA alkaline, 4400–6400 mV → 0–15,000 mWh, low at 4800
//!   mV). Until a battery reading arrives the lock assumes a full pack.
//! * **Power cuts**: after every request that changed the flash, `StateDir::save`
//!   writes only the 4 KiB sectors that differ from the file (in place; the
//!   first save of a process replaces the file atomically), so an upload chunk
//!   costs a few sectors, not 1 MiB. Killing the process between requests is
//!   a cut between two requests; killing it during a save tears some sectors,
//!   which the journal, installer and log survive as they survive torn flash
//!   operations. A cut inside a request's flash operations is
//!   `{"cmd":"cut-power","after_ops":N}` on the control socket (the Nth
//!   operation from then is torn, `keyway-sim`'s `PowerCut`) or
//!   `{"cmd":"cut-power","mid_upload":B}` (at the first flash operation once
//!   the upload passes byte B, or halfway with `null`); the lock stops
//!   answering and powers on again; `tests/server.rs` cuts every operation of
//!   an SMP update and checks that it always ends confirmed with the exact image.
//! * **Audit log**: `keyway_audit::AuditLog` on the flash's last 4 pages (29
//!   records a page, signed checkpoints before a page is erased), signed by the
//!   device key. The library only queues events (`device::Lock::note`); the
//!   shell stamps them with `Time { rtc: wall-clock seconds, boot }` and writes
//!   them after each request, control line and timer tick
//!   (`Lock::commit_audit`), so the flash is saved with them. `boot` is
//!   `DIR/boot-count`, raised at every power-on (a start, an SMP reset, a
//!   power cut) and stored before records carry it. A cut flash keeps the queue until
//!   power returns. Logged: boot (slot, version), update offered / verified /
//!   download started / rejected (the failed check) / installed, on trial,
//!   confirmed, reverted (device events from the boot decision and the
//!   server's upload), presence window opened, lock/unlock with the method,
//!   failed PINs, tamper detected/cleared, battery low. `{"cmd":"log-export",
//!   "path":F}` writes `Export`'s file as `DIR/exports/F` (F a plain file
//!   name; the answer gives the full path): `keyway log verify DIR/exports/F --device-key
//!   DIR/device.pub` checks it (`tests/audit.rs`).
//! * **Lock behaviour** (`lock.rs`, sans-IO, time in ms as input, each input
//!   returns its audit events): keypad PIN unlock; `--lockout-attempts` (5)
//!   wrong PINs in a row lock the keypad out for `--lockout-seconds` (300),
//!   entries during it are ignored and not counted; owner `lock`/`unlock`;
//!   the mechanical key turns the bolt over; auto-relock `--relock-seconds`
//!   (30, 0: never) after an unlock, never while the door is open (closing it
//!   restarts the delay); tamper logged on a change; battery in mV, logged
//!   once below 3300 mV, re-armed 100 mV above. A timer thread in the shell
//!   calls `Server::tick` every 250 ms. Control commands: `keypad {pin}`,
//!   `lock`, `unlock`, `mechanical-key`, `door {state: open|closed}`,
//!   `tamper {state: on|off}`, `battery {level: mV}`, `status` (adds `lock`:
//!   bolt, door, battery, tamper, failed PINs, lockout and relock seconds;
//!   model, the pending update; the `profile`, `flash_ops` and
//!   `power_cuts`, the cuts that fired, which `keyway audit` counts its
//!   scenarios by), `long-press`, `presence-close`, `setup-code` (the label),
//!   `cut-power`. The control socket is TCP (`--control HOST:PORT`, loopback only
//!   unless `--control-insecure-any-address`, which warns) or a Unix
//!   domain socket (`--control PATH`, created 0600); lines are at most 4096
//!   bytes and at most 16 connections are served at once; the state directory
//!   is 0700 and every file in it is created 0600 before it holds a byte
//!   (`state::write_atomic`); `keyway-lock ctl SOCKET ACTION [ARGS]`
//!   sends one line (`control::action_line` turns words into it) and prints
//!   the answer (exit 1 when `ok` is false). Each control line and SMP request
//!   holds the server's one mutex only for itself, so a keypad or Keyway-group
//!   unlock is served between two upload chunks.

#![warn(missing_docs)]

pub mod agent_shell;
pub mod control;
pub mod device;
pub mod keyway_group;
pub mod lock;
pub mod owners;
pub mod peers;
pub mod policy;
pub mod profile;
pub mod serial;
pub mod server;
pub mod shell;
/// The SMP framing, shared with the owner's client in `keyway device`.
pub use keyway_vendor::smp;
pub mod state;
pub mod suit;

/// Whether a read that failed with `e` only found nothing to read yet (a
/// non-blocking socket or port, a timeout, a signal): the serving loops
/// wait on rather than fail.
pub(crate) fn nothing_yet(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::{Interrupted, TimedOut, WouldBlock};
    matches!(e.kind(), WouldBlock | TimedOut | Interrupted)
}
