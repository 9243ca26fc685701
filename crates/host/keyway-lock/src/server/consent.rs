//! The update policy's side of the server: the pending update, consent
//! (who gave it, where it is kept), the owners' settings, and the
//! install that consent and the policy let go ahead.

use crate::policy::{self, Pending};

use super::Server;

/// Where a pending update stands.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct UpdateStatus {
    /// Consent was given to the pending update with this hash (its
    /// envelope's SHA-256, as the image group names it): bound to that
    /// envelope, not to its sequence number or slot, so another envelope
    /// in the slot needs consent of its own.
    pub(crate) consent: Option<[u8; 32]>,
    /// The notes were offered (`notes` read) for the update with this hash.
    pub(crate) notes_offered: Option<[u8; 32]>,
    /// Why the consented install waits (typed: the status reports it as
    /// `why`, and in words as `reason`).
    pub(crate) postponed: Option<policy::Postponed>,
    /// Armed: the lock resets into the trial.
    pub(crate) installing: bool,
}

/// Who gave a consent the server recorded itself (not an owner's
/// consent command, which the agent stores).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConsentBy {
    /// An owner's session (a test boot of the pending update).
    Owner([u8; 8]),
    /// A person at the lock (a test boot or reset in the window).
    Presence,
    /// The owners' `auto_install_cve` setting.
    AutoInstall,
}

/// A consent change the server made, for the agent's store
/// ([`Server::take_consent_change`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConsentChange {
    /// Consent was given to the envelope with this digest.
    Granted {
        /// The envelope's SHA-256.
        digest: [u8; 32],
        /// Its manifest's sequence number.
        sequence: u64,
        /// Who gave it.
        by: ConsentBy,
    },
    /// The consent was cleared.
    Cleared,
}

impl Server {
    /// Consent and settings live in the agent's store
    /// ([`crate::agent_shell`]): the server reports each consent change
    /// ([`Server::take_consent_change`]) for the shell to write there.
    pub fn use_agent_store(&mut self) {
        self.agent_store = true;
    }

    /// The consent change since the last call, for the agent's store.
    pub fn take_consent_change(&mut self) -> Option<ConsentChange> {
        self.consent_change.take()
    }

    /// The consent the agent's store holds (after a boot, a restart, or
    /// an owner's consent command): taken if it names the pending update.
    /// `announce`: an owner just gave it (the audit log records it and the
    /// install is tried now).
    pub fn adopt_consent(&mut self, digest: Option<[u8; 32]>, announce: bool) {
        let Some(p) = &self.pending else { return };
        if digest != Some(p.hash) || self.update.consent == digest {
            return;
        }
        let sequence = p.sequence;
        self.update.consent = digest;
        if announce {
            self.core
                .note(keyway_audit::Event::ConsentGiven { sequence });
            self.log.push(format!(
                "consent to install sequence {sequence}: the owner's consent command"
            ));
        }
        let _ = self.try_install();
    }

    /// The owners' settings, as the agent's store holds them; a pending
    /// update `auto_install_cve` now covers is consented to.
    pub fn adopt_settings(&mut self, settings: crate::owners::Settings) {
        if self.settings != settings {
            self.settings = settings;
            self.auto_consent();
        }
    }

    /// An owner refused the pending update (the agent's consent command
    /// with `accept` false): it is erased, as the old command did.
    pub fn refuse_pending(&mut self) {
        if let Err(e) = self.refuse_pending_update() {
            self.log
                .push(format!("erasing the refused update: {}", e.reason));
        }
    }

    /// The complete, verified update waiting for consent.
    pub fn pending(&self) -> Option<&Pending> {
        self.pending.as_ref()
    }

    /// Looks for a complete, verified, unarmed update in the slot that
    /// does not run (after a boot or an upload).
    pub(crate) fn refresh_pending(&mut self) {
        self.pending = None;
        let Some(running) = self.core.running() else {
            return;
        };
        let st = self.core.state();
        let other = 1 - running.min(1);
        // Nothing on trial or pending: `None` too (after a revert).
        if st.download.is_some_and(|d| d.slot == other)
            || !matches!(
                st.trial,
                keyway_device::journal::TrialState::Confirmed
                    | keyway_device::journal::TrialState::None
            )
        {
            return;
        }
        // One parse of the stored head serves the slot's view and the
        // pending update's notes.
        let Some(head) = self.core.head(other) else {
            return;
        };
        let Ok(i) = crate::suit::inspect_slot(&head, other) else {
            return;
        };
        let Some(v) = self.core.view_of(other, &head, &i) else {
            return;
        };
        if !v.bootable || v.pending || st.floor.is_some_and(|f| v.sequence <= f) {
            return;
        }
        self.pending = Some(Pending::from_inspected(other, v.hash, &i));
    }

    /// What the policy measures now.
    pub(crate) fn conditions(&self) -> policy::Conditions {
        let b = self.model.battery;
        policy::Conditions {
            battery_mwh: b.mwh(self.mechanism.battery_mv().unwrap_or(b.full_mv)),
            bolt_locked: self.mechanism.bolt() == crate::lock::Bolt::Locked,
        }
    }

    /// The owner's `auto_install_cve` consents to a pending update that
    /// fixes a high or critical CVE (after an upload, a setting change, or
    /// a boot that forgot an earlier consent); then installs it if the
    /// policy allows.
    pub(crate) fn auto_consent(&mut self) {
        if let Some(p) = &self.pending
            && policy::auto_consent(&self.settings, p)
        {
            self.consent(
                "the owner's auto_install_cve setting (a high or critical CVE fix)",
                ConsentBy::AutoInstall,
            );
        }
        let _ = self.try_install();
    }

    /// Stores the consent (in RAM for the device core's own tests; with
    /// the agent, in its store through [`Server::take_consent_change`],
    /// before the next reset runs): `None` forgets it.
    pub(super) fn persist_consent(&mut self, hash: Option<[u8; 32]>) {
        if self.agent_store {
            // The agent's store holds consent: the shell applies the
            // change there (`take_consent_change`).
            if hash.is_none() {
                self.consent_change = Some(ConsentChange::Cleared);
            }
            return;
        }
        self.stored_consent = hash;
    }

    /// Forgets where the pending update stood, its stored consent too.
    pub(crate) fn clear_update(&mut self) {
        self.update = UpdateStatus::default();
        self.persist_consent(None);
    }

    /// The stored consent, if it names the pending update (after a boot
    /// or a restart forgot the one in RAM).
    pub(super) fn restore_consent(&mut self) {
        if let Some(p) = &self.pending
            && self.stored_consent == Some(p.hash)
        {
            self.update.consent = Some(p.hash);
        }
    }

    /// Who gives a consent the server records itself.
    pub(crate) fn consent_by(&self, by_owner: bool) -> ConsentBy {
        match self.auth_key {
            Some(k) if by_owner => ConsentBy::Owner(k),
            _ => ConsentBy::Presence,
        }
    }

    /// Records consent for the pending update.
    pub(crate) fn consent(&mut self, how: &str, by: ConsentBy) {
        let Some(p) = &self.pending else { return };
        if self.update.consent != Some(p.hash) {
            let sequence = p.sequence;
            let hash = p.hash;
            self.update.consent = Some(hash);
            if self.agent_store {
                self.consent_change = Some(ConsentChange::Granted {
                    digest: hash,
                    sequence,
                    by,
                });
            }
            self.persist_consent(Some(hash));
            self.core
                .note(keyway_audit::Event::ConsentGiven { sequence });
            self.log
                .push(format!("consent to install sequence {sequence}: {how}"));
        }
    }

    /// Installs the consented pending update if the policy allows it now:
    /// arms it for a trial boot and resets into it. `None`: nothing
    /// consented; `Err`: postponed (or refused by the slot), with why.
    pub(crate) fn try_install(&mut self) -> Option<Result<(), String>> {
        self.install(true)
    }

    /// As [`Server::try_install`]; with `reset_now` false the update is
    /// only armed and the next reset boots it (MCUboot's "test": a stock
    /// tool marks the image, then sends the reset that the presence window
    /// allows once).
    pub(super) fn install(&mut self, reset_now: bool) -> Option<Result<(), String>> {
        let p = self.pending.clone()?;
        if self.update.consent != Some(p.hash) || self.update.installing {
            return None;
        }
        // PROFILE HOOK (cloud-verify): no install without the vendor server.
        if let Err(why) = self.core.profile.before_install(self.vendor.as_mut()) {
            self.update.consent = None;
            self.persist_consent(None);
            self.log.push(why.clone());
            return Some(Err(why));
        }
        if let Err(why) =
            keyway_agent::policy::may_install(&self.settings, p.min_battery_mwh, &self.conditions())
        {
            let words = policy::postponed_sentence(&why);
            if self.update.postponed != Some(why) {
                self.log.push(format!(
                    "update {} (sequence {}) {words}",
                    p.version, p.sequence
                ));
            }
            self.update.postponed = Some(why);
            return Some(Err(words));
        }
        // PROFILE HOOK (no-rollback): the image is copied over the running
        // one instead of booting on trial from its own slot.
        let armed = if self.core.profile == crate::profile::Profile::NoRollback {
            self.core.install_in_place(p.slot)
        } else {
            self.core.test(&p.hash).map_err(|e| e.reason)
        };
        if let Err(e) = armed {
            self.update.consent = None;
            self.persist_consent(None);
            return Some(Err(e));
        }
        self.update.postponed = None;
        self.update.installing = true;
        // Armed in the journal: the boot installs it from here on.
        self.persist_consent(None);
        self.core.note(keyway_audit::Event::UpdateInstalled {
            sequence: p.sequence,
            slot: p.slot,
        });
        self.log.push(format!(
            "installing {} (sequence {}): slot {} armed for a trial boot; {}",
            p.version,
            p.sequence,
            p.slot,
            if reset_now {
                "resetting"
            } else {
                "the next reset boots it"
            }
        ));
        if reset_now {
            self.reset_pending = true;
        }
        Some(Ok(()))
    }
}
