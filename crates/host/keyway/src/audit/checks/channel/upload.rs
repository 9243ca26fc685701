//! Checks 17 to 19, the owner's pending update: chunk injection into the
//! upload by another peer, an unauthenticated reset, and consent
//! surviving a power cut.

use super::*;

impl Session<'_> {
    pub(super) fn chunk_injection(&mut self) -> Result<Check> {
        let mut ev = Vec::new();
        let Some(r) = self.next_release(None)? else {
            return Ok(skip(17, "needs a fresh release: give --vendor-key", ev));
        };
        if self.smp.paired().is_none() {
            return Ok(fail(
                17,
                "the audit's owner has no session with the lock: uploads are bound to nobody",
                ev,
            ));
        }
        self.ctl(json!({"cmd": "presence", "seconds": 60}))?;
        ev.push("the presence window is open".into());
        let mut s = self.stranger()?;
        let half = r.envelope.len() as u64 / 2;
        let mut injected: Option<String> = None;
        self.expect_download(&r);
        let u = self.smp.upload(&r.envelope, Duration::ZERO, &mut |done| {
            if injected.is_none() && done >= half {
                let a = s.try_request(
                    Op::Write,
                    group::IMAGE,
                    1,
                    vec![
                        (text("off"), Value::from(done)),
                        (text("data"), Value::Bytes(vec![0xA5; 64])),
                    ],
                );
                injected = Some(match a {
                    Ok(Some(a)) => format!("at byte {done}: {}", a.describe()),
                    Ok(None) => format!("at byte {done}: no answer"),
                    Err(e) => format!("at byte {done}: {e:#}"),
                });
            }
            true
        })?;
        let _ = self.ctl(json!({"cmd": "presence-close"}));
        ev.push(format!(
            "a stranger's 64-byte chunk {}",
            injected.as_deref().unwrap_or("was never sent")
        ));
        ev.push(format!(
            "the owner's upload of {}: {}",
            r.label,
            u.describe(r.envelope.len())
        ));
        let staged = self
            .smp
            .images()?
            .iter()
            .any(|s| !s.active && s.hash.as_slice() == r.hash().as_slice());
        ev.push(format!(
            "the slot {} the signed image",
            if staged { "holds" } else { "does NOT hold" }
        ));
        let ok = matches!(u, UploadOutcome::Done { .. }) && staged;
        if ok {
            self.last_genuine = Some(r.clone());
        } else {
            self.expect
                .retain(|e| *e != super::super::Expect::Download(r.sequence));
        }
        Ok(if ok {
            pass(
                17,
                "another peer's chunk was refused; the owner's upload completed and verifies",
                ev,
            )
        } else {
            fail(
                17,
                "another peer's chunk went into the owner's upload and broke it: bind an upload to the session (or the peer) that began it and refuse everyone else's chunks",
                ev,
            )
        })
    }

    /// Makes sure a genuine release is pending with the owner's consent
    /// held back by the policy (the bolt locked): returns it, or `None`
    /// with the evidence saying why not.
    pub(super) fn consent_held(
        &mut self,
        ev: &mut Vec<String>,
    ) -> Result<Option<keyway_smp::keyway_group::UpdateState>> {
        // The pending update must be the release the audit knows.
        let known = self.last_genuine.as_ref().map(|r| r.hash().to_vec());
        let staged = self
            .smp
            .images()?
            .iter()
            .any(|s| !s.active && Some(s.hash.to_vec()) == known);
        let pending = staged
            && matches!(
                self.update_state(),
                Some(UpdateState::AwaitingConsent | UpdateState::Postponed)
            );
        if !pending {
            let Some(r) = self.next_release(None)? else {
                ev.push("no fresh release to upload: give --vendor-key".into());
                return Ok(None);
            };
            let u = self.upload_noted(&r, "the owner uploaded", ev)?;
            if matches!(u, UploadOutcome::Done { .. }) {
                self.last_genuine = Some(r);
            }
        }
        let _ = self.smp.owner_call(|c| c.lock())?;
        let _ = self.smp.owner_call(|c| c.notes())?;
        if self.update_state() != Some(UpdateState::Postponed) {
            let a = self.smp.owner_call(|c| c.consent(true))?;
            ev.push(format!(
                "with the bolt locked, the owner consents: {}",
                a.describe()
            ));
        }
        let st = self.update_state();
        ev.push(format!(
            "the update is {}",
            st.map_or("not pending".into(), |s| s.as_str().to_owned())
        ));
        Ok(st)
    }

    pub(super) fn unauthenticated_reset(&mut self) -> Result<Check> {
        let mut ev = Vec::new();
        let mut fails = Vec::new();
        let held = self.consent_held(&mut ev)? == Some(UpdateState::Postponed);
        if !held {
            ev.push("no consent held (see above): only the reset itself is judged".into());
        }
        let _ = self.ctl(json!({"cmd": "presence-close"}));
        let mut s = self.stranger()?;
        let a = s.try_request(Op::Write, group::OS, 5, Vec::new())?;
        ev.push(format!(
            "a stranger's OS reset (no window, no session): {}",
            a.as_ref().map_or("no answer".into(), Answer::describe)
        ));
        std::thread::sleep(Duration::from_millis(300));
        self.wait_back()?;
        match &a {
            Some(Answer::Ok(_)) => fails.push("the lock reset for a stranger".to_owned()),
            // Refused only because resets are rate-limited: a stranger's
            // reset a minute later would run.
            Some(Answer::Err { rc, .. }) if *rc == keyway_smp::MgmtErr::Busy as u64 => fails
                .push("the lock refused a stranger's reset only as too frequent (EBUSY), not for want of authority".to_owned()),
            _ => {}
        }
        let st = self.update_state();
        ev.push(format!(
            "then the update is {}",
            st.map_or("not pending".into(), |s| s.as_str().to_owned())
        ));
        if held && st != Some(UpdateState::Postponed) {
            fails.push("the owner's consent is gone".to_owned());
        }
        Ok(verdict(
            18,
            &fails,
            "a stranger's reset was refused; the owner's consent stands",
            "an OS reset must need the presence window or an owner's session (and be rate-limited), and consent must live in flash",
            ev,
        ))
    }

    pub(super) fn consent_power_cut(&mut self) -> Result<Check> {
        let mut ev = Vec::new();
        let st = self.consent_held(&mut ev)?;
        if st != Some(UpdateState::Postponed) {
            // A lock that takes no consent fails check 2 (or 12); one that
            // installs at once has nothing to keep.
            return Ok(skip(
                19,
                "no update waited with the owner's consent (the bolt locked): nothing to keep across a power cut; see the evidence",
                ev,
            ));
        }
        let r = self.last_genuine.clone();
        // A wrong PIN on the keypad is logged (a flash write, where the
        // cut lands) and leaves the bolt locked.
        let cut = self.power_cycle()?;
        ev.push(format!(
            "the lock lost power at its next flash write: {}",
            if cut {
                "yes, and came back"
            } else {
                "NO (no flash write)"
            }
        ));
        let _ = self.smp.owner_call(|c| c.lock());
        let st = self.update_state();
        ev.push(format!(
            "after power returned the update is {}",
            st.map_or("not pending".into(), |s| s.as_str().to_owned())
        ));
        let kept = st == Some(UpdateState::Postponed);
        let mut installed = false;
        if let Some(r) = r.filter(|_| kept) {
            let _ = self.owner_unlock();
            let run = self.settle(Some(&r), self.settle_time())?;
            installed = run.as_ref().is_some_and(|s| runs_confirmed(s, &r));
            ev.push(format!(
                "the owner unlocks, no new consent: the lock runs {}",
                describe_slot(run.as_ref())
            ));
            if installed {
                self.expect
                    .push(super::super::Expect::Confirmed(r.sequence));
                self.current = Some(r);
            }
        }
        Ok(if !cut {
            skip(
                19,
                "the power cut did not fire (no flash write followed it)",
                ev,
            )
        } else if kept && installed {
            pass(
                19,
                "consent survived the power cut and the update installed without asking again",
                ev,
            )
        } else if kept {
            fail(
                19,
                "consent survived the power cut but the update did not install once the bolt was unlocked",
                ev,
            )
        } else {
            fail(
                19,
                "the owner's consent was lost in the power cut: write consent to flash before answering it",
                ev,
            )
        })
    }
}
