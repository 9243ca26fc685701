//! The owners' update settings, as the device core's policy reads them.
//!
//! The owners themselves, their sessions, the consent and where the
//! settings are stored belong to the lock agent (`keyway-agent`, its store
//! in `agent-store.bin`); the shell copies the settings here after each
//! change ([`crate::server::Server::adopt_settings`]).

/// The owner's update settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Settings {
    /// Install without asking when the release fixes a CVE of high or
    /// critical severity (default false).
    pub auto_install_cve: bool,
    /// Install only while the bolt is withdrawn (default true).
    pub install_needs_unlocked: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            auto_install_cve: false,
            install_needs_unlocked: true,
        }
    }
}
