//! Check 4: power cuts mid-upload, at every flash operation of an
//! install, and during the trial boot.

use super::*;

impl Session<'_> {
    pub(super) fn interruption(&mut self) -> Result<Check> {
        let mut ev = Vec::new();
        let mut failures = Vec::new();
        let mut scenarios = 0u32;
        let mut skipped = Vec::new();
        // (a) mid-upload
        if self.control.is_some() {
            match self.cut_mid_upload(&mut ev)? {
                Some(true) => scenarios += 1,
                Some(false) => {
                    scenarios += 1;
                    failures.push("mid-upload");
                }
                None => skipped.push("mid-upload (no release)"),
            }
            self.export("cut mid-upload");
            // A sweep in which no cut landed proves nothing: SKIP it.
            for (trial, what, none) in [
                (
                    false,
                    "mid-install",
                    "mid-install (no cut landed inside an install: see the evidence)",
                ),
                (
                    true,
                    "trial boot",
                    "trial boot (no cut landed inside a trial boot: see the evidence)",
                ),
            ] {
                let (n, bad) = self.cut_sweep(trial, &mut ev)?;
                scenarios += n;
                if bad {
                    failures.push(what);
                } else if n == 0 {
                    skipped.push(none);
                }
            }
        } else {
            skipped.push("mid-upload and mid-install (no control interface to cut the power)");
            match self.reset_in_trial(&mut ev)? {
                Some(ok) => {
                    scenarios += 1;
                    if !ok {
                        failures.push("trial boot (SMP reset)");
                    }
                }
                None => skipped.push("trial boot (no release)"),
            }
        }
        ev.insert(0, format!("{scenarios} power-cut scenarios run"));
        Ok(verdict(
            4,
            &failures,
            "not recovered after a power cut",
            &skipped,
            &format!("{scenarios} scenario(s) recovered"),
            format!(
                "{scenarios} power cut{}: always a working, verified image, and the update completed",
                if scenarios == 1 { "" } else { "s" }
            ),
            ev,
        ))
    }

    /// Whether the lock runs a confirmed, verified image.
    pub(super) fn working(&mut self, ev: &mut Vec<String>, what: &str) -> Result<bool> {
        let run = self.settle(None, self.settle_time())?;
        let ok = run.as_ref().is_some_and(|s| s.confirmed && s.bootable);
        ev.push(format!(
            "{what}: the lock came back on {}",
            describe_slot(run.as_ref())
        ));
        Ok(ok)
    }

    pub(super) fn cut_mid_upload(&mut self, ev: &mut Vec<String>) -> Result<Option<bool>> {
        let Some(r) = self.next_release(None)? else {
            return Ok(None);
        };
        self.say(&format!("check 4: a power cut mid-upload of {}", r.label));
        let half = r.envelope.len() as u64 / 2;
        // The lock cuts its own power at the next flash operation once
        // the upload passes byte `half`.
        self.ctl(json!({"cmd": "cut-power", "mid_upload": half}))?;
        self.smp.set_window(Some(self.cut_timeout()))?;
        let u = self.upload(&r, Duration::ZERO, &mut |_| true);
        self.smp.set_window(None)?;
        let u = u?;
        ev.push(format!(
            "mid-upload: power cut planned at byte {half} of {}; {}",
            r.label,
            u.describe(r.envelope.len())
        ));
        let ok = self.working(ev, "mid-upload")?;
        self.disarm();
        let done = self.complete(&r, ev)?;
        Ok(Some(ok && done))
    }

    /// Cancels a planned cut that did not fire.
    pub(super) fn disarm(&mut self) {
        let _ = self.ctl(json!({"cmd": "cut-power", "after_ops": u64::from(u32::MAX)}));
    }

    /// Cuts the power at every flash operation of an install (`trial`:
    /// only of the boot after the reset), one scenario each, until a cut
    /// no longer lands inside it. Returns (scenarios, any failed).
    pub(super) fn cut_sweep(&mut self, trial: bool, ev: &mut Vec<String>) -> Result<(u32, bool)> {
        let name = if trial { "trial boot" } else { "mid-install" };
        let mut r = match self.next_release(None)? {
            Some(r) => r,
            None => {
                ev.push(format!("{name}: no release left to install"));
                return Ok((0, false));
            }
        };
        self.say(&format!("check 4: power cuts {name}"));
        let mut n = 0;
        let mut failed = false;
        for k in 1..=40u64 {
            // Stage r.
            let staged = self
                .smp
                .images()?
                .iter()
                .any(|s| !s.active && s.bootable && s.hash.as_slice() == r.hash().as_slice());
            if !staged {
                let u = self.upload_all(&r)?;
                if !matches!(u, UploadOutcome::Done { .. }) {
                    ev.push(format!(
                        "{name}: staging {} failed: {}",
                        r.label,
                        u.describe(r.envelope.len())
                    ));
                    return Ok((n, true));
                }
            }
            let cuts_before = self.power_cuts();
            self.smp.set_window(Some(self.cut_timeout()))?;
            let silent = if trial {
                // A person at the lock asks for a test boot of the pending
                // update: its consent, then the install and the trial boot.
                self.ctl(json!({"cmd": "presence", "seconds": 60}))?;
                let _ = self.owner_unlock();
                self.ctl(json!({"cmd": "cut-power", "after_ops": k}))?;
                matches!(self.test_boot(&r), Ok(None))
            } else {
                let _ = self.owner_unlock();
                self.ctl(json!({"cmd": "cut-power", "after_ops": k}))?;
                let a = self.consent(&r);
                a.is_err()
            };
            let fired = match (cuts_before, self.power_cuts()) {
                (Some(b), Some(a)) => a > b,
                _ => silent || self.silent_after(),
            };
            self.smp.set_window(None)?;
            if !fired {
                self.disarm();
                // The install ran to its end without reaching op k.
                let run = self.settle(Some(&r), self.settle_time())?;
                if run
                    .as_ref()
                    .is_some_and(|s| s.hash.as_slice() == r.hash().as_slice())
                {
                    self.expect.push(Expect::Confirmed(r.sequence));
                    self.current = Some(r.clone());
                }
                ev.push(format!(
                    "{name}: the install takes {} flash operations; a cut at each of them was run",
                    k - 1
                ));
                break;
            }
            n += 1;
            let mut sev = Vec::new();
            let ok = self.working(&mut sev, &format!("{name}, cut at flash operation {k}"))?;
            self.disarm();
            let done = self.complete(&r, &mut sev)?;
            if !ok || !done {
                // One unrecovered cut is the finding: stop there.
                failed = true;
                ev.extend(sev);
                break;
            } else if k <= 2 {
                ev.extend(sev);
            }
            if k % 4 == 0 {
                self.export(&format!("{name} {k}"));
            }
            // The next scenario needs a release above the new floor.
            if done {
                match self.next_release(None)? {
                    Some(x) => r = x,
                    None => break,
                }
            }
        }
        ev.push(format!(
            "{name}: {n} scenarios, {}",
            if failed {
                "some did NOT recover"
            } else {
                "each recovered and completed"
            }
        ));
        self.export(name);
        Ok((n, failed))
    }

    /// Cuts the lock's power at its next flash write (a wrong PIN on the
    /// keypad makes one) and waits until it answers again. `Ok(false)`:
    /// the cut never fired.
    pub(super) fn power_cycle(&mut self) -> Result<bool> {
        let cuts = self.power_cuts();
        self.ctl(json!({"cmd": "cut-power", "after_ops": 1}))?;
        let wrong_pin = if self.pin == "0000" { "1111" } else { "0000" };
        let end = std::time::Instant::now() + Duration::from_secs(3);
        while self.power_cuts() == cuts && std::time::Instant::now() < end {
            let _ = self.ctl(json!({"cmd": "keypad", "pin": wrong_pin}));
        }
        self.disarm();
        let cut = self.power_cuts() != cuts;
        self.wait_back()?;
        Ok(cut)
    }

    /// Waits until the lock answers again after a reset or a power cut,
    /// for `--boot-seconds` ([`Options::boot_wait`]) at the most.
    pub(super) fn wait_back(&mut self) -> Result<()> {
        let t = Instant::now();
        self.smp.wait_up(self.o.boot_wait)?;
        self.say(&format!(
            "the lock answered again after {:.1} s",
            t.elapsed().as_secs_f64()
        ));
        Ok(())
    }

    /// Power cuts the lock has had since it started (its control status),
    /// if it says.
    pub(super) fn power_cuts(&mut self) -> Option<u64> {
        self.ctl(json!({"cmd": "status"}))
            .ok()?
            .get("power_cuts")?
            .as_u64()
    }

    /// How long to wait for a lock that may have lost power: short in
    /// this process, longer over a real link.
    pub(super) fn cut_timeout(&self) -> Duration {
        if self.o.in_process {
            Duration::from_millis(400)
        } else {
            Duration::from_millis(1500)
        }
    }

    /// After a request that may have cut the power: whether the lock
    /// stopped answering for a while (it lost power and came back).
    pub(super) fn silent_after(&mut self) -> bool {
        let t = self.cut_timeout();
        let a = self.smp.try_request_once(
            t,
            Op::Write,
            group::OS,
            0,
            vec![(text("d"), text("after-cut"))],
        );
        !matches!(a, Ok(Some(Answer::Ok(_))))
    }

    pub(super) fn reset_in_trial(&mut self, ev: &mut Vec<String>) -> Result<Option<bool>> {
        let Some(r) = self.next_release(None)? else {
            return Ok(None);
        };
        self.upload_noted(&r, "trial boot: uploaded", ev)?;
        ev.push(self.consent(&r)?.0);
        let _ = self.smp.owner_call(|c| c.reset().map(|()| Vec::new()));
        ev.push("an SMP reset sent during the trial boot".into());
        let ok = self.working(ev, "trial boot")?;
        let done = self.complete(&r, ev)?;
        Ok(Some(ok && done))
    }
}
