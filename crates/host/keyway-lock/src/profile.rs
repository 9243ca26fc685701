//! Deliberately flawed locks (`keyway-lock --profile NAME`), modelled on
//! the failures real locks show, so that `keyway audit` can be shown to
//! fail them (issue 6, §3). Each flaw is one small hook, marked
//! `PROFILE HOOK` where it sits in `server/` or `device/`; the default
//! profile changes nothing.
//!
//! | Profile | Flaw | The hook |
//! |---|---|---|
//! | `cloud-verify` | refuses to install without reaching a vendor server | before an install: a TCP connect to the vendor server, which fails offline |
//! | `no-rollback` | overwrites in place, so a power cut bricks it | the install copies the staged image over the running slot, and the boot has no fallback |
//! | `unsigned` | accepts any image | an upload whose signatures fail is taken anyway |
//! | `downgrade` | accepts older versions | an upload is checked against no floor |
//! | `forced` | installs without consent | a complete upload installs on the lock's own timer, 400 ms later |
//! | `log-gaps` | drops audit records during updates | update events are not logged |
//! | `open-pairing` | today's local channel (issue 12's findings): pairs a plain public key in the window without the setup code, takes held-back requests, answers owner commands in the clear, takes anyone's chunks and resets, keeps consent in RAM | the agent's `Flaws::OPEN_PAIRING` (`keyway-agent` feature `flawed-profiles`), set in [`crate::agent_shell::agent_config`]; the agent brain only |

use keyway_audit::Event;

/// The vendor server the `cloud-verify` lock insists on reaching: a
/// public address, unreachable with the router unplugged.
pub const DEFAULT_VENDOR_SERVER: &str = "1.1.1.1:443";

/// The network as the `cloud-verify` profile sees it: whether its vendor
/// server answers. The shell provides it ([`crate::shell`]: a TCP connect);
/// the sans-IO server only asks, so no I/O happens inside the device
/// core's handling of a request.
pub trait VendorServer: core::fmt::Debug + Send {
    /// `Ok` when `server` (`host:port`) answers; `Err` names why not.
    fn reach(&mut self, server: &str) -> Result<(), String>;
}

/// No network (the server's default, and in-memory tests): the vendor
/// server never answers.
#[derive(Debug, Default, Clone, Copy)]
pub struct Offline;

impl VendorServer for Offline {
    fn reach(&mut self, _server: &str) -> Result<(), String> {
        Err("the lock has no network".into())
    }
}

/// How long after a complete upload the `forced` lock installs it on its
/// own, as real locks do on their own schedule: long enough that one look
/// right after the upload sees nothing, short enough for a test.
pub const FORCED_DELAY_MS: u64 = 400;

/// Marks an image whose self-test fails on the simulated lock: the
/// application's self-test reports its comms check failed when the image
/// carries these bytes at offset 256 (every profile, the default too).
///
/// The value is `keyway audit`'s convention for its "bad image" check
/// (`keyway::audit::releases::SELF_TEST_FAIL_MARKER`: any lock's
/// integrator makes its self-test fail on it), written out here because
/// the simulated lock does not link the audit; the keyway crate's
/// `tests/layering.rs` fails if the two differ.
pub const SELF_TEST_FAIL_MARKER: &[u8] = b"KEYWAY-SELF-TEST-FAIL";
/// Where the marker sits in the image (the audit's
/// `SELF_TEST_FAIL_AT`, likewise).
pub const SELF_TEST_FAIL_AT: usize = 256;

/// A lock's behaviour: the real one, or one flaw.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Profile {
    /// The real lock.
    #[default]
    Default,
    /// Refuses to install unless it reaches its vendor server (`host:port`).
    CloudVerify {
        /// The server it tries.
        server: String,
    },
    /// Copies an update over the running image in place; no fallback.
    NoRollback,
    /// Accepts an upload whose signatures do not verify.
    Unsigned,
    /// Accepts an upload at or below the anti-rollback floor.
    Downgrade,
    /// Installs a complete upload on its own timer ([`FORCED_DELAY_MS`]),
    /// without waiting for consent.
    Forced,
    /// Drops the audit records of update steps.
    LogGaps,
    /// The local channel as issue 12 found it (the agent brain's
    /// deliberate flaws, [`keyway_agent::agent::flaws::Flaws::OPEN_PAIRING`]).
    OpenPairing,
}

/// The profile names, for `--profile`.
pub const NAMES: [&str; 8] = [
    "default",
    "cloud-verify",
    "no-rollback",
    "unsigned",
    "downgrade",
    "forced",
    "log-gaps",
    "open-pairing",
];

impl Profile {
    /// The profile called `name`.
    pub fn parse(name: &str) -> Result<Profile, String> {
        Ok(match name {
            "default" => Profile::Default,
            "cloud-verify" => Profile::CloudVerify {
                server: DEFAULT_VENDOR_SERVER.to_owned(),
            },
            "no-rollback" => Profile::NoRollback,
            "unsigned" => Profile::Unsigned,
            "downgrade" => Profile::Downgrade,
            "forced" => Profile::Forced,
            "log-gaps" => Profile::LogGaps,
            "open-pairing" => Profile::OpenPairing,
            other => {
                return Err(format!(
                    "unknown profile {other:?}: one of {}",
                    NAMES.join(", ")
                ));
            }
        })
    }

    /// Its name.
    pub fn name(&self) -> &'static str {
        match self {
            Profile::Default => "default",
            Profile::CloudVerify { .. } => "cloud-verify",
            Profile::NoRollback => "no-rollback",
            Profile::Unsigned => "unsigned",
            Profile::Downgrade => "downgrade",
            Profile::Forced => "forced",
            Profile::LogGaps => "log-gaps",
            Profile::OpenPairing => "open-pairing",
        }
    }

    /// `cloud-verify`: whether the vendor server answers, asked through
    /// `net` (the shell's network: the server does no I/O); `Err` says why
    /// the install is refused.
    pub fn before_install(&self, net: &mut dyn VendorServer) -> Result<(), String> {
        let Profile::CloudVerify { server } = self else {
            return Ok(());
        };
        net.reach(server).map_err(|why| {
            format!(
                "refused (cloud-verify profile): the install needs the vendor server {server}: {why}"
            )
        })
    }

    /// `log-gaps`: whether `event` is dropped instead of logged.
    pub fn drops(&self, event: &Event) -> bool {
        *self == Profile::LogGaps
            && matches!(
                event,
                Event::UpdateOffered { .. }
                    | Event::UpdateVerified { .. }
                    | Event::DownloadStarted { .. }
                    | Event::UpdateRejected { .. }
                    | Event::UpdateInstalled { .. }
                    | Event::OnTrial { .. }
                    | Event::Confirmed { .. }
                    | Event::Reverted { .. }
                    | Event::ConsentGiven { .. }
            )
    }
}

/// Whether `image` carries [`SELF_TEST_FAIL_MARKER`] at
/// [`SELF_TEST_FAIL_AT`].
pub fn fails_self_test(image: &[u8]) -> bool {
    image.get(SELF_TEST_FAIL_AT..SELF_TEST_FAIL_AT + SELF_TEST_FAIL_MARKER.len())
        == Some(SELF_TEST_FAIL_MARKER)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_names_are_refused() {
        for n in NAMES {
            assert_eq!(Profile::parse(n).map(|p| p.name()), Ok(n));
        }
        let e = Profile::parse("sloppy").unwrap_err();
        assert!(
            e.contains("unknown profile \"sloppy\"") && e.contains("log-gaps"),
            "{e}"
        );
    }

    #[test]
    fn marker_is_found_only_at_its_offset() {
        let mut img = vec![0u8; 1024];
        assert!(!fails_self_test(&img));
        img[SELF_TEST_FAIL_AT..SELF_TEST_FAIL_AT + SELF_TEST_FAIL_MARKER.len()]
            .copy_from_slice(SELF_TEST_FAIL_MARKER);
        assert!(fails_self_test(&img));
        assert!(!fails_self_test(&img[..SELF_TEST_FAIL_AT + 3]));
    }

    #[test]
    fn log_gaps_drops_only_update_events() {
        let p = Profile::LogGaps;
        assert!(p.drops(&Event::DownloadStarted { sequence: 3 }));
        assert!(!p.drops(&Event::FactoryReset));
        assert!(!Profile::Default.drops(&Event::DownloadStarted { sequence: 3 }));
    }
}
