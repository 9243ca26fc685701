//! The owners' update settings, as the device core's policy reads them.
//!
//! The owners themselves, their sessions, the consent and where the
//! settings are stored belong to the lock agent (`keyway-agent`, its store
//! in `agent-store.bin`); the shell copies the settings here after each
//! change ([`crate::server::Server::adopt_settings`]).

/// The owner's update settings: the agent store's own type, so the
/// fields and their defaults exist once.
pub use keyway_agent::store::Settings;
