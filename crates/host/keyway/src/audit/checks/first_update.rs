//! Checks 2, 11 and 12: the first genuine update (it installs), no
//! forced install (nothing changes before consent), and the release notes
//! shown before consent.

use super::*;

impl Session<'_> {
    pub(super) fn first_update(&mut self) -> Result<(Check, Check, Check)> {
        let Some(r) = self.next_release(None)? else {
            let s = |n, ev| skip(n, "no release to upload: give --vendor-key or --update", ev);
            let ev2 = std::mem::take(&mut self.baseline);
            return Ok((s(2, ev2), s(11, vec![]), s(12, vec![])));
        };
        self.last_genuine = Some(r.clone());
        self.say(&format!("check 2/11/12: {}", r.label));
        let before = self.smp.running()?;
        let _ = self.ctl(json!({"cmd": "presence-close"}));
        let mut ev2 = std::mem::take(&mut self.baseline);
        ev2.push(format!(
            "running before: {}",
            describe_slot(before.as_ref())
        ));
        let u = self.upload_noted(&r, "uploaded", &mut ev2)?;
        self.genuine_accepted = matches!(u, UploadOutcome::Done { .. });
        if !self.genuine_accepted {
            let c2 = fail(
                2,
                format!(
                    "the genuine update was not accepted: {}",
                    u.describe(r.envelope.len())
                ),
                ev2,
            );
            let s = |n| skip(n, "blocked: the genuine upload was refused", vec![]);
            return Ok((c2, s(11), s(12)));
        }
        // 11: nothing installs without consent, not even across a reset.
        let mut ev11 = vec![format!(
            "uploaded {} without the presence window and without consent",
            r.label
        )];
        // Watched for a while, not looked at once: a lock that installs
        // on a timer a moment later is forcing the update just the same.
        let watch = self.consent_watch();
        let (mid, changed) = self.watch_running(before.as_ref(), watch)?;
        ev11.push(format!(
            "watched {} ms: {}the lock runs {}",
            watch.as_millis(),
            if changed { "it CHANGED: " } else { "" },
            describe_slot(mid.as_ref())
        ));
        let (pending, state) = self.pending_state();
        ev11.push(format!("pending update: {pending}"));
        // Decided on the typed state, never on the words shown.
        let installing = state == Some(keyway_smp::keyway_group::UpdateState::Installing);
        let a = self.smp.owner_call(|c| c.reset().map(|()| Vec::new()))?;
        // A lock that declines the reset (an agent limits resets right
        // after its boot) is power-cycled instead, where it has a control
        // socket: either way it boots with the update unconsented.
        let how = if a.is_err() && self.control.is_some() {
            ev11.push(format!(
                "the SMP reset was refused ({}): power-cycled the lock instead",
                a.describe()
            ));
            self.power_cycle()?;
            "a power cycle"
        } else if a.is_err() {
            ev11.push(format!("the SMP reset was refused ({})", a.describe()));
            "a refused SMP reset"
        } else {
            "an SMP reset"
        };
        let _ = self.settle(None, self.settle_time())?;
        let (after_reset, changed_after) = self.watch_running(before.as_ref(), watch)?;
        ev11.push(format!(
            "after {how}, watched {} ms: the lock runs {}",
            watch.as_millis(),
            describe_slot(after_reset.as_ref())
        ));
        let forced = changed || changed_after || installing;
        // 12: the notes and CVEs, read before consent.
        let c12 = self.notes_before_consent(&r);
        let c11 = if forced {
            fail(11, "the lock installed the update without consent", ev11)
        } else {
            pass(
                11,
                "nothing installed without consent, not even across a reset",
                ev11,
            )
        };
        // 2: consent, install.
        let ok = self.install(&r, &mut ev2)?;
        let c2 = if ok {
            pass(
                2,
                format!(
                    "{} installed and confirmed over the local channel{}",
                    r.version,
                    self.offline()
                ),
                ev2,
            )
        } else {
            fail(
                2,
                format!("{} was not installed after consent", r.version),
                ev2,
            )
        };
        Ok((c2, c11, c12))
    }

    /// How long check 11 watches a lock that holds an update without
    /// consent (before and after a reset).
    pub(super) fn consent_watch(&self) -> Duration {
        match self.o.target {
            Target::Udp(a) if self.o.in_process || a.ip().is_loopback() => {
                Duration::from_millis(1000)
            }
            Target::Udp(_) | Target::Serial(_) => Duration::from_secs(5),
        }
    }

    /// Polls the running image for `within`; returns the last seen and
    /// whether it ever differed from `before` (by hash; recovery counts).
    pub(super) fn watch_running(
        &mut self,
        before: Option<&SlotState>,
        within: Duration,
    ) -> Result<(Option<SlotState>, bool)> {
        let end = Instant::now() + within;
        let mut last = before.cloned();
        loop {
            // An unanswered poll (the lock resetting) is looked at again.
            if let Ok(run) = self.smp.running() {
                let same = match (&run, before) {
                    (Some(a), Some(b)) => a.hash == b.hash,
                    (None, None) => true,
                    _ => false,
                };
                if !same {
                    return Ok((run, true));
                }
                last = run;
            }
            if Instant::now() >= end {
                return Ok((last, false));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The pending update as the evidence shows it, and its typed state
    /// (`None`: nothing pending, or no status to read).
    pub(super) fn pending_state(
        &mut self,
    ) -> (String, Option<keyway_smp::keyway_group::UpdateState>) {
        if !self.keyway_group {
            return ("(no Keyway status on this lock)".into(), None);
        }
        match self.smp.status() {
            Ok(b) => match smp::get(&b, "update") {
                Some(Value::Map(u)) => {
                    let text =
                        |k: &str| smp::get_text(u, k).ok().flatten().unwrap_or("").to_owned();
                    let seq = smp::get_u64(u, "sequence").ok().flatten().unwrap_or(0);
                    let state = keyway_smp::keyway_group::UpdateState::parse(&text("state"));
                    let shown = format!("sequence {seq} {}{}", text("state"), {
                        let r = text("reason");
                        if r.is_empty() {
                            String::new()
                        } else {
                            format!(" ({r})")
                        }
                    });
                    (shown, state)
                }
                _ => ("none".into(), None),
            },
            Err(e) => (format!("status failed: {e:#}"), None),
        }
    }

    pub(super) fn notes_before_consent(&mut self, r: &Release) -> Check {
        let mut ev = Vec::new();
        let a = match self.smp.owner_call(|c| c.notes()) {
            Ok(a) => a,
            Err(e) => return errored(12, &e),
        };
        let b = match a {
            Answer::Ok(b) => b,
            e => {
                ev.push(format!("notes request answered {}", e.describe()));
                return fail(
                    12,
                    "the pending update's notes cannot be read before consent",
                    ev,
                );
            }
        };
        let notes = smp::get_text(&b, "notes")
            .ok()
            .flatten()
            .unwrap_or("")
            .to_owned();
        let seq = smp::get_u64(&b, "sequence").ok().flatten();
        let mut ids = Vec::new();
        if let Some(Value::Array(cves)) = smp::get(&b, "cves") {
            for c in cves {
                if let Value::Map(m) = c
                    && let Ok(Some(id)) = smp::get_text(m, "id")
                {
                    let sev = smp::get_text(m, "severity").ok().flatten().unwrap_or("?");
                    ids.push(format!("{id} ({sev})"));
                }
            }
        }
        ev.push(format!(
            "notes of sequence {}: {} bytes, CVEs: {}",
            seq.map_or_else(|| "?".into(), |s| s.to_string()),
            notes.len(),
            if ids.is_empty() {
                "none".into()
            } else {
                ids.join(", ")
            }
        ));
        if let Some(first) = notes.lines().find(|l| !l.trim().is_empty()) {
            ev.push(format!("notes begin: {first}"));
        }
        let want_notes = r.notes.as_deref().unwrap_or("");
        let all_cves = r
            .cves
            .iter()
            .all(|c| ids.iter().any(|i| i.starts_with(c.as_str())));
        if r.cves.is_empty() {
            ev.push(format!(
                "signed: sequence {}, {} bytes of notes, no CVE ids",
                r.sequence,
                want_notes.len()
            ));
            skip(
                12,
                "the release uploaded lists no CVE ids, so their display cannot be checked: give --update files whose notes list CVEs (or --vendor-key)",
                ev,
            )
        } else if seq == Some(r.sequence) && notes == want_notes && all_cves {
            pass(
                12,
                format!("notes and {} read before consent", r.cves.join(", ")),
                ev,
            )
        } else {
            ev.push(format!(
                "signed: sequence {}, {} bytes of notes, CVEs {}",
                r.sequence,
                want_notes.len(),
                r.cves.join(", ")
            ));
            fail(
                12,
                "the notes the lock shows are not the signed release's",
                ev,
            )
        }
    }
}
