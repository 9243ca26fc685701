//! The conditions that depend on the moment of installation: the
//! verifier collects them ([`PolicyConditions`]) and the device decides
//! them from its inputs ([`PolicyInputs`]) when it would install.

use crate::error::Error;

/// Conditions that depend on the moment of installation. The verifier
/// collects them; [`PolicyConditions::check`] decides them from inputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PolicyConditions {
    /// `condition-use-before`: the deadline, seconds since 1970.
    pub use_before: Option<u64>,
    /// `condition-minimum-battery`: mWh.
    pub minimum_battery_mwh: Option<u64>,
    /// `condition-update-authorized`: whether the owner must consent, and
    /// at which priority.
    pub update_authorized: UpdateAuthorization,
}

/// `condition-update-authorized`: whether the owner must consent before
/// the update installs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UpdateAuthorization {
    /// The manifest does not ask for the owner's consent.
    #[default]
    NotRequired,
    /// The owner must consent.
    Required {
        /// `suit-parameter-update-priority`, which the condition needs
        /// (more negative is more urgent).
        priority: i64,
    },
}

impl UpdateAuthorization {
    /// Whether the owner must consent.
    pub fn is_required(self) -> bool {
        matches!(self, UpdateAuthorization::Required { .. })
    }

    /// The update priority, when the owner must consent.
    pub fn priority(self) -> Option<i64> {
        match self {
            UpdateAuthorization::Required { priority } => Some(priority),
            UpdateAuthorization::NotRequired => None,
        }
    }
}

/// What the device knows at the moment it would install.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PolicyInputs {
    /// Trusted time (seconds since 1970), if the device has it.
    pub now: Option<u64>,
    /// Battery energy available, mWh.
    pub battery_mwh: u64,
    /// Whether the owner has consented to this update.
    pub consent: bool,
}

impl PolicyConditions {
    /// Decides every collected condition from `inputs`; the first that
    /// fails is returned.
    pub fn check(&self, inputs: &PolicyInputs) -> Result<(), Error> {
        if let Some(use_before) = self.use_before {
            let now = inputs.now.ok_or(Error::NoTrustedTime)?;
            if now >= use_before {
                return Err(Error::Expired { use_before, now });
            }
        }
        if let Some(required_mwh) = self.minimum_battery_mwh
            && inputs.battery_mwh < required_mwh
        {
            return Err(Error::BatteryTooLow {
                required_mwh,
                have_mwh: inputs.battery_mwh,
            });
        }
        if self.update_authorized.is_required() && !inputs.consent {
            return Err(Error::NotAuthorized);
        }
        Ok(())
    }
}
