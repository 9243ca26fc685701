//! The update policy's decision (FORMAT.md, "Update policy"), `no_std`,
//! heap-free and sans-IO.
//!
//! A complete, verified upload is *pending* and unarmed: a reset boots
//! the old image. It is installed only after consent — a person at the
//! lock asking for a test boot, a remote owner's `consent`, or the owners'
//! `auto_install_cve` setting for a release that fixes a high or critical
//! CVE ([`auto_consent`]) — and only while the battery holds the
//! manifest's `minimum-battery` and, if the owners' `install_needs_unlocked`
//! is set, the bolt is withdrawn ([`may_install`]). Otherwise the update
//! is postponed with a typed reason ([`Postponed`], carrying the figures);
//! the host renders it as a sentence, and installs by itself when both
//! conditions hold.
//!
//! The lock measures its battery as a voltage; [`BatteryModel`] turns it
//! into the energy the manifest's minimum is written in. Everything here
//! takes its inputs as arguments: the settings from the agent's store
//! ([`Settings`]), the highest CVE severity from the release notes, the
//! measurements from the sensors.

use keyway_suit::Severity;

pub use crate::store::Settings;

/// A battery pack: how the lock turns the voltage it measures into the
/// energy the manifest's `minimum-battery` asks for. The model is linear
/// between `empty_mv` (0 mWh) and `full_mv` (`capacity_mwh`), clamped:
/// real cells are flatter in the middle, so a vendor setting a minimum
/// should leave margin.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatteryModel {
    /// The pack's voltage when full.
    pub full_mv: u16,
    /// The voltage at which the lock stops working.
    pub empty_mv: u16,
    /// The energy a full pack holds.
    pub capacity_mwh: u64,
    /// The warning level logged as "battery low".
    pub low_mv: u16,
}

impl BatteryModel {
    /// The energy left at `mv` millivolts (saturating: never overflows).
    pub fn mwh(&self, mv: u16) -> u64 {
        if mv <= self.empty_mv || self.full_mv <= self.empty_mv {
            return 0;
        }
        let span = u64::from(self.full_mv - self.empty_mv);
        let above = u64::from(mv.min(self.full_mv) - self.empty_mv);
        self.capacity_mwh.saturating_mul(above) / span
    }
}

/// Whether the owners' settings consent on their own to an update whose
/// release notes list `highest` as the highest CVE severity it fixes
/// (`None`: it fixes none): only with `auto_install_cve` set, and only for
/// a high or critical fix.
pub fn auto_consent(settings: &Settings, highest: Option<Severity>) -> bool {
    settings.auto_install_cve && highest.is_some_and(|s| s >= Severity::High)
}

/// What the lock measures when it would install.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conditions {
    /// The battery's energy now, mWh.
    pub battery_mwh: u64,
    /// Whether the bolt is thrown.
    pub bolt_locked: bool,
}

/// Why a consented update is not installed now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Postponed {
    /// The battery holds less than the manifest's `minimum-battery`.
    BatteryLow {
        /// The energy the battery holds now, mWh.
        have_mwh: u64,
        /// The manifest's `minimum-battery`, mWh.
        need_mwh: u64,
    },
    /// The bolt is thrown and the owners' `install_needs_unlocked` is set.
    BoltLocked,
}

impl From<Postponed> for keyway_smp::keyway_group::Postponement {
    /// The postponement as the Keyway group's update summary reports it
    /// (`why`, typed on the wire).
    fn from(p: Postponed) -> Self {
        match p {
            Postponed::BatteryLow { have_mwh, need_mwh } => {
                keyway_smp::keyway_group::Postponement::BatteryLow { have_mwh, need_mwh }
            }
            Postponed::BoltLocked => keyway_smp::keyway_group::Postponement::BoltLocked,
        }
    }
}

/// Whether a consented update whose manifest asks for `min_battery_mwh`
/// (`None`: no minimum) may be installed now under `c`: `Ok`, or why it is
/// postponed. The battery is checked first.
pub fn may_install(
    settings: &Settings,
    min_battery_mwh: Option<u64>,
    c: &Conditions,
) -> Result<(), Postponed> {
    if let Some(need_mwh) = min_battery_mwh
        && c.battery_mwh < need_mwh
    {
        return Err(Postponed::BatteryLow {
            have_mwh: c.battery_mwh,
            need_mwh,
        });
    }
    if settings.install_needs_unlocked && c.bolt_locked {
        return Err(Postponed::BoltLocked);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `deadbolt-2`: 3600 mV full, 3000 mV empty, 18,720 mWh.
    const DEADBOLT: BatteryModel = BatteryModel {
        full_mv: 3600,
        empty_mv: 3000,
        capacity_mwh: 18_720,
        low_mv: 3300,
    };

    #[test]
    fn battery_model_is_linear_and_clamped() {
        let b = DEADBOLT;
        assert_eq!(b.mwh(2900), 0);
        assert_eq!(b.mwh(3000), 0);
        assert_eq!(b.mwh(3300), 9360);
        assert_eq!(b.mwh(3600), 18_720);
        assert_eq!(b.mwh(4000), 18_720);
        let inverted = BatteryModel {
            full_mv: 3000,
            empty_mv: 3600,
            ..b
        };
        assert_eq!(inverted.mwh(3300), 0);
        let huge = BatteryModel {
            capacity_mwh: u64::MAX,
            ..b
        };
        assert_eq!(huge.mwh(3600), u64::MAX / 600);
    }

    #[test]
    fn may_install_postpones_with_the_figures_battery_first() {
        // The default settings want the bolt withdrawn (the rows' `true`).
        assert!(Settings::default().install_needs_unlocked);
        let low = |have_mwh, need_mwh| Err(Postponed::BatteryLow { have_mwh, need_mwh });
        // One row a scenario: what it shows, the owners' `install_needs_unlocked`,
        // the manifest's minimum, the battery (mWh), the bolt thrown, the answer.
        let rows = [
            (
                "battery below the minimum",
                true,
                Some(5000),
                4999,
                false,
                low(4999, 5000),
            ),
            (
                "battery at the minimum",
                true,
                Some(5000),
                5000,
                false,
                Ok(()),
            ),
            ("no minimum", true, None, 4999, false, Ok(())),
            (
                "bolt thrown",
                true,
                None,
                0,
                true,
                Err(Postponed::BoltLocked),
            ),
            ("bolt thrown, owners allow it", false, None, 0, true, Ok(())),
            (
                "battery checked before the bolt",
                true,
                Some(2),
                1,
                true,
                low(1, 2),
            ),
        ];
        for (what, install_needs_unlocked, min, battery_mwh, bolt_locked, want) in rows {
            let s = Settings {
                install_needs_unlocked,
                ..Settings::default()
            };
            let c = Conditions {
                battery_mwh,
                bolt_locked,
            };
            assert_eq!(may_install(&s, min, &c), want, "{what}");
        }
    }

    #[test]
    fn auto_install_only_for_high_or_critical_cves() {
        let on = Settings {
            auto_install_cve: true,
            ..Settings::default()
        };
        assert!(!auto_consent(&on, None));
        assert!(!auto_consent(&on, Some(Severity::Low)));
        assert!(!auto_consent(&on, Some(Severity::Medium)));
        assert!(auto_consent(&on, Some(Severity::High)));
        assert!(auto_consent(&on, Some(Severity::Critical)));
        assert!(!auto_consent(
            &Settings::default(),
            Some(Severity::Critical)
        ));
    }
}
