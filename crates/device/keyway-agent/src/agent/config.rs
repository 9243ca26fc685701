//! The agent's time limits and rates ([`Config`]).

use super::*;

/// The agent's time limits and rates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    /// How long a press of the button keeps the presence window open.
    pub window_ms: u64,
    /// A pairing run not finished by then may be taken by another peer.
    pub pairing_timeout_ms: u64,
    /// The session table's limits.
    pub table: TableConfig,
    /// The wrong-setup-code limits.
    pub guard: GuardConfig,
    /// Each peer's rate.
    pub peer_rate: Rate,
    /// The rate shared by peers that find no entry in the table.
    pub overflow_rate: Rate,
    /// Idle time after which a full entry may go to another peer.
    pub peer_idle_ms: u64,
    /// Deliberate flaws (the simulator's `open-pairing` profile; feature
    /// `flawed-profiles`, never in a firmware build).
    #[cfg(feature = "flawed-profiles")]
    pub flaws: flaws::Flaws,
}

impl Default for Config {
    /// A 120 s window, 30 s to finish a pairing, the channel's defaults,
    /// 10 requests a second per peer (bursts of 20).
    fn default() -> Self {
        Self {
            window_ms: 120_000,
            pairing_timeout_ms: 30_000,
            table: TableConfig::default(),
            guard: GuardConfig::default(),
            peer_rate: Rate {
                burst: 20,
                interval_ms: 100,
            },
            overflow_rate: Rate {
                burst: 20,
                interval_ms: 100,
            },
            peer_idle_ms: 60_000,
            #[cfg(feature = "flawed-profiles")]
            flaws: flaws::Flaws::NONE,
        }
    }
}
