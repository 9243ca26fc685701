//! Deliberate flaws, for the simulated lock's `open-pairing` profile only
//! (feature `flawed-profiles`, off by default: a firmware build never
//! compiles them).
//!
//! `keyway audit` must be able to fail a lock whose secure channel is
//! broken, so the simulator can run the agent with "today's behaviour"
//! from issue 12's findings switched back on. Each flaw is one field of
//! [`Flaws`], given as data in [`super::Config::flaws`] and consulted at
//! one decision point of the dispatch (marked `FLAW` there); the agent
//! still performs no I/O. [`Flaws::NONE`] (the default) changes nothing.
//!
//! | flaw | decision point | the audit check that catches it |
//! |---|---|---|
//! | [`Flaws::plain_pair`] | a plain `pair` (id 8) with a public key in the window stores that key as an owner, no setup code | pairing without the code; a stranger during the owner's window |
//! | [`Flaws::no_freshness`] | the session table's freshness limit is off: a request held back and played later runs | a replayed or held-back command |
//! | [`Flaws::plain_owner`] | a plain owner command (status, unlock, consent, ...) runs as the first paired owner and is answered in the clear | a forged answer |
//! | [`Flaws::any_chunk`] | an upload chunk from any peer goes into the upload in progress | chunk injection into an owner's upload |
//! | [`Flaws::open_reset`] | an OS reset from anyone (no window, no session) runs, with no rate limit | an unauthenticated reset |
//! | [`Flaws::ram_consent`] | consent is held in RAM only, never written to the store | consent surviving a power cut |

/// Which deliberate flaws the agent has (see the module doc).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Flaws {
    /// A plain `pair` request in the presence window pairs its key.
    pub plain_pair: bool,
    /// Sealed requests are not checked for freshness.
    pub no_freshness: bool,
    /// Plain owner commands run as the first owner, answered in the clear.
    pub plain_owner: bool,
    /// Anyone's chunk goes into the upload in progress.
    pub any_chunk: bool,
    /// Anyone may reset the lock.
    pub open_reset: bool,
    /// Consent lives in RAM only.
    pub ram_consent: bool,
}

impl Flaws {
    /// No flaw: the real agent.
    pub const NONE: Flaws = Flaws {
        plain_pair: false,
        no_freshness: false,
        plain_owner: false,
        any_chunk: false,
        open_reset: false,
        ram_consent: false,
    };

    /// The `open-pairing` profile: every channel flaw issue 12 measured.
    pub const OPEN_PAIRING: Flaws = Flaws {
        plain_pair: true,
        no_freshness: true,
        plain_owner: true,
        any_chunk: true,
        open_reset: true,
        ram_consent: true,
    };
}
