//! The update policy, sans-IO: when a complete, verified upload may be
//! installed (FORMAT.md, "Update policy").
//!
//! A verified upload is *pending* and unarmed
//! (`Installer::finish` with `Arm::Later`): a reset boots the old image. It is
//! installed (armed for a trial boot, then the lock resets itself) only
//! after consent — a person at the lock (presence window) asking for a
//! test boot, a remote owner's `consent`, or the `auto_install_cve`
//! setting for a release that fixes a high or critical CVE — and only
//! while the battery holds the manifest's `minimum-battery` and, if the
//! owner's `install_needs_unlocked` is set, the bolt is withdrawn.
//! Otherwise the update is *postponed* with the reason, and the lock
//! installs it by itself when both hold.
//!
//! The decision itself (and the battery model) is the lock agent's
//! (`keyway_agent::policy`, no_std); this module keeps the host's parts:
//! the lock models, the pending update read from its envelope head, and
//! the sentences that render a [`Postponed`] reason.

use keyway_suit::Severity;

use crate::owners::Settings;
use keyway_agent::policy as decide;

pub use keyway_agent::policy::{BatteryModel, Conditions, Postponed};

/// A lock model the simulator can play.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Model {
    /// Its name (`--model`).
    pub name: &'static str,
    /// What it is.
    pub description: &'static str,
    /// Its battery.
    pub battery: BatteryModel,
}

/// The lock models: `deadbolt-2` (the default: 2 × 3.6 V lithium-thionyl
/// cells in parallel, 2 × 2.6 Ah: 3600 mV full, 3000 mV empty, 18,720 mWh)
/// and `lever-4aa` (4 × AA alkaline in series: 6400 mV full, 4400 mV
/// empty, 4 × 1.5 V × 2.5 Ah = 15,000 mWh).
pub const MODELS: [Model; 2] = [
    Model {
        name: "deadbolt-2",
        description: "deadbolt, 2 x 3.6 V Li-SOCl2 cells in parallel",
        battery: BatteryModel {
            full_mv: 3600,
            empty_mv: 3000,
            capacity_mwh: 18_720,
            low_mv: 3300,
        },
    },
    Model {
        name: "lever-4aa",
        description: "lever lock, 4 x AA alkaline in series",
        battery: BatteryModel {
            full_mv: 6400,
            empty_mv: 4400,
            capacity_mwh: 15_000,
            low_mv: 4800,
        },
    },
];

/// The model called `name`, or an error listing the known ones.
pub fn model(name: &str) -> Result<Model, String> {
    MODELS
        .iter()
        .copied()
        .find(|m| m.name == name)
        .ok_or_else(|| {
            let names: Vec<_> = MODELS.iter().map(|m| m.name).collect();
            format!("unknown lock model {name:?}: one of {}", names.join(", "))
        })
}

/// A complete, verified update waiting in the inactive slot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pending {
    /// Its slot.
    pub slot: u8,
    /// The manifest's sequence number.
    pub sequence: u64,
    /// Its version, `X.Y.Z`.
    pub version: String,
    /// SHA-256 of the envelope (the image group's hash).
    pub hash: [u8; 32],
    /// The release notes (Markdown; empty when none).
    pub notes: String,
    /// The CVEs it fixes.
    pub cves: Vec<(String, Severity)>,
    /// The manifest's `minimum-battery`, mWh.
    pub min_battery_mwh: Option<u64>,
}

impl Pending {
    /// The highest severity among the fixed CVEs.
    pub fn highest(&self) -> Option<Severity> {
        self.cves.iter().map(|(_, s)| *s).max()
    }

    /// Reads what a stored envelope head says about the update.
    pub fn from_head(slot: u8, hash: [u8; 32], head: &[u8]) -> Option<Self> {
        let i = crate::suit::inspect(head).ok()?;
        Some(Self::from_inspected(slot, hash, &i))
    }

    /// What an inspected envelope head says about the update.
    pub fn from_inspected(slot: u8, hash: [u8; 32], i: &keyway_suit::Inspected<'_>) -> Self {
        let version = i
            .manifest
            .version
            .map_or_else(|| "0.0.0".to_owned(), |v| v.to_string());
        let (notes, cves) = i.notes.map_or_else(
            || (String::new(), Vec::new()),
            |n| {
                (
                    n.description.unwrap_or("").to_owned(),
                    n.cves().map(|c| (c.id.to_owned(), c.severity)).collect(),
                )
            },
        );
        Pending {
            slot,
            sequence: i.manifest.sequence,
            version,
            hash,
            notes,
            cves,
            min_battery_mwh: i.manifest.policy.minimum_battery_mwh,
        }
    }
}

/// The severity's name as FORMAT.md spells it.
pub fn severity_name(s: Severity) -> &'static str {
    match s {
        Severity::Low => "low",
        Severity::Medium => "medium",
        Severity::High => "high",
        Severity::Critical => "critical",
    }
}

/// Whether the owner's settings consent on their own to `p`
/// ([`keyway_agent::policy::auto_consent`]).
pub fn auto_consent(settings: &Settings, p: &Pending) -> bool {
    decide::auto_consent(settings, p.highest())
}

/// Whether a consented update may be installed now
/// ([`keyway_agent::policy::may_install`]): `Ok`, or the reason it is
/// postponed, rendered by [`postponed_sentence`].
pub fn may_install(settings: &Settings, p: &Pending, c: &Conditions) -> Result<(), String> {
    decide::may_install(settings, p.min_battery_mwh, c).map_err(|why| postponed_sentence(&why))
}

/// A postponement in words for people: what holds the update back and
/// what to do about it.
pub fn postponed_sentence(why: &Postponed) -> String {
    match *why {
        Postponed::BatteryLow { have_mwh, need_mwh } => format!(
            "postponed: the battery holds {have_mwh} mWh, the update needs {need_mwh} mWh; charge or replace it to install"
        ),
        Postponed::BoltLocked => "postponed: the bolt is locked; unlock the door to install".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending(min: Option<u64>, cves: &[Severity]) -> Pending {
        Pending {
            slot: 1,
            sequence: 2,
            version: "2.0.0".into(),
            hash: [0; 32],
            notes: String::new(),
            cves: cves
                .iter()
                .map(|s| ("CVE-2024-0001".to_owned(), *s))
                .collect(),
            min_battery_mwh: min,
        }
    }

    #[test]
    fn battery_model_is_linear_and_clamped() {
        let b = model("deadbolt-2").unwrap().battery;
        assert_eq!(b.mwh(2900), 0);
        assert_eq!(b.mwh(3000), 0);
        assert_eq!(b.mwh(3300), 9360);
        assert_eq!(b.mwh(3600), 18_720);
        assert_eq!(b.mwh(4000), 18_720);
        let e = model("nope").unwrap_err();
        assert!(e.contains("deadbolt-2") && e.contains("lever-4aa"), "{e}");
    }

    #[test]
    fn low_battery_postpones_with_the_figures() {
        let s = Settings::default();
        let p = pending(Some(5000), &[]);
        let low = Conditions {
            battery_mwh: 4999,
            bolt_locked: false,
        };
        let e = may_install(&s, &p, &low).unwrap_err();
        assert!(e.contains("4999 mWh") && e.contains("5000 mWh"), "{e}");
        let ok = Conditions {
            battery_mwh: 5000,
            ..low
        };
        assert_eq!(may_install(&s, &p, &ok), Ok(()));
    }

    #[test]
    fn locked_bolt_postpones_unless_the_owner_allows_it() {
        let p = pending(None, &[]);
        let c = Conditions {
            battery_mwh: 0,
            bolt_locked: true,
        };
        let e = may_install(&Settings::default(), &p, &c).unwrap_err();
        assert!(e.contains("the bolt is locked"), "{e}");
        let s = Settings {
            install_needs_unlocked: false,
            ..Settings::default()
        };
        assert_eq!(may_install(&s, &p, &c), Ok(()));
    }

    #[test]
    fn auto_install_only_for_high_or_critical_cves() {
        let on = Settings {
            auto_install_cve: true,
            ..Settings::default()
        };
        assert!(!auto_consent(&on, &pending(None, &[])));
        assert!(!auto_consent(&on, &pending(None, &[Severity::Medium])));
        assert!(auto_consent(
            &on,
            &pending(None, &[Severity::Low, Severity::High])
        ));
        assert!(auto_consent(&on, &pending(None, &[Severity::Critical])));
        assert!(!auto_consent(
            &Settings::default(),
            &pending(None, &[Severity::Critical])
        ));
    }
}
