//! The session's steps every check builds on: upload a release (as an
//! owner or through the button), consent, the test boot, waiting for the
//! lock to settle, the install end to end, and the next release to use.

use super::*;

impl Session<'_> {
    /// Uploads `r` with the owner's auth (or the presence window).
    pub(super) fn upload(
        &mut self,
        r: &Release,
        pace: Duration,
        between: &mut dyn FnMut(u64) -> bool,
    ) -> Result<UploadOutcome> {
        if !self.keyway_group || self.owner.is_none() {
            self.ctl(json!({"cmd": "presence", "seconds": 120}))
                .context("an upload needs the presence window or a paired owner")?;
        }
        self.expect_download(r);
        self.smp.upload(&r.envelope, pace, between)
    }

    pub(super) fn expect_download(&mut self, r: &Release) {
        if !self.expect.contains(&Expect::Download(r.sequence)) {
            self.expect.push(Expect::Download(r.sequence));
        }
    }

    /// Uploads `r` whole and notes it in the evidence: "`doing` LABEL:
    /// how the upload ended".
    pub(super) fn upload_noted(
        &mut self,
        r: &Release,
        doing: &str,
        ev: &mut Vec<String>,
    ) -> Result<UploadOutcome> {
        let u = self.upload_all(r)?;
        ev.push(format!(
            "{doing} {}: {}",
            r.label,
            u.describe(r.envelope.len())
        ));
        Ok(u)
    }

    pub(super) fn upload_all(&mut self, r: &Release) -> Result<UploadOutcome> {
        self.upload(r, Duration::ZERO, &mut |_| true)
    }

    /// Unlocks the bolt as the owner (the default policy installs only
    /// while it is unlocked).
    pub(super) fn owner_unlock(&mut self) -> Result<Answer> {
        match (self.keyway_group, self.owner.clone()) {
            (true, Some(_)) => self.smp.owner_call(|c| c.unlock()),
            _ => {
                self.ctl(json!({"cmd": "unlock"}))?;
                Ok(Answer::Ok(Vec::new()))
            }
        }
    }

    /// Gives consent to the pending update (or, on a lock without the
    /// Keyway group, asks for a test boot with the presence window open
    /// and resets).
    pub(super) fn consent(&mut self, r: &Release) -> Result<(String, bool)> {
        let _ = self.owner_unlock();
        if self.keyway_group && self.owner.is_some() {
            // The lock offers the notes before it takes consent.
            let _ = self.smp.owner_call(|c| c.notes())?;
            let a = self.smp.owner_call(|c| c.consent(true))?;
            // Taken: the lock installs now, or as soon as its policy allows.
            let taken = match &a {
                Answer::Ok(b) => matches!(
                    smp::get_text(b, "state").ok().flatten(),
                    Some("installing" | "postponed")
                ),
                Answer::Err { .. } => false,
            };
            let how = if self.smp.paired().is_some() {
                "owner, in a session"
            } else {
                "owner, signed"
            };
            return Ok((format!("consent ({how}): {}", summary(&a)), taken));
        }
        self.ctl(json!({"cmd": "presence", "seconds": 120}))?;
        let a = self
            .test_boot(r)?
            .ok_or_else(|| anyhow!("no answer to the test boot"))?;
        let _ = self.smp.owner_call(|c| c.reset().map(|()| Vec::new()));
        Ok((
            format!(
                "test boot with the presence window open, reset: {}",
                a.describe()
            ),
            !a.is_err(),
        ))
    }

    /// Asks for a test boot of `r` (image state write): with the presence
    /// window open, a person's consent at the lock.
    pub(super) fn test_boot(&mut self, r: &Release) -> Result<Option<Answer>> {
        self.smp.try_request(
            Op::Write,
            group::IMAGE,
            0,
            vec![
                (text("hash"), Value::Bytes(r.hash().to_vec())),
                (text("confirm"), Value::Bool(false)),
            ],
        )
    }

    /// Polls the slots until a confirmed image runs (and it is `want`, if
    /// given) or `within` passes; returns the running slot last seen.
    pub(super) fn settle(
        &mut self,
        want: Option<&Release>,
        within: Duration,
    ) -> Result<Option<SlotState>> {
        let end = Instant::now() + within;
        let mut last = None;
        let mut recovery_since: Option<Instant> = None;
        loop {
            let _ = self.smp.wait_up(Duration::from_secs(3));
            if let Ok(imgs) = self.smp.images() {
                let run = imgs.into_iter().find(|s| s.active);
                let done = run.as_ref().is_some_and(|s| {
                    s.confirmed && want.is_none_or(|w| s.hash.as_slice() == w.hash().as_slice())
                });
                // A lock that answers and runs nothing has booted into
                // recovery; it stays there (half a second to be sure).
                let since = if run.is_none() {
                    *recovery_since.get_or_insert_with(Instant::now)
                } else {
                    recovery_since = None;
                    Instant::now()
                };
                last = run;
                if done || (want.is_none() && since.elapsed() > Duration::from_millis(500)) {
                    return Ok(last);
                }
            }
            if Instant::now() > end {
                return Ok(last);
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// Consent, then wait until `r` runs confirmed. Returns whether it
    /// does, with evidence.
    pub(super) fn install(&mut self, r: &Release, ev: &mut Vec<String>) -> Result<bool> {
        let (c, accepted) = self.consent(r)?;
        ev.push(c);
        // A refused consent installs nothing: look once, briefly.
        let wait = if accepted {
            self.settle_time()
        } else {
            Duration::from_millis(300)
        };
        let run = self.settle(Some(r), wait)?;
        let ok = run.as_ref().is_some_and(|s| runs_confirmed(s, r));
        ev.push(format!(
            "then the lock runs {}",
            describe_slot(run.as_ref())
        ));
        if ok {
            self.expect.push(Expect::Confirmed(r.sequence));
            self.current = Some(r.clone());
        }
        Ok(ok)
    }

    /// Brings the lock to run `r`, uploading it again only if no slot
    /// holds it (a retried or resumed update).
    pub(super) fn complete(&mut self, r: &Release, ev: &mut Vec<String>) -> Result<bool> {
        let imgs = self.smp.images()?;
        if imgs
            .iter()
            .any(|s| s.active && s.confirmed && s.hash.as_slice() == r.hash().as_slice())
        {
            ev.push("the update had completed".into());
            // The cut may have struck the confirm's own write after its
            // bytes were in (the write "failed", the record stands): the
            // lock then never logs the confirm, but its next boot logs
            // the version it runs.
            self.expect.push(Expect::Ran(
                r.sequence,
                keyway_vendor::log::audit_version(&r.version),
            ));
            self.current = Some(r.clone());
            return Ok(true);
        }
        let staged = imgs
            .iter()
            .any(|s| !s.active && s.bootable && s.hash.as_slice() == r.hash().as_slice());
        if !staged {
            let u = self.upload_all(r)?;
            ev.push(format!(
                "retried the upload: {}",
                u.describe(r.envelope.len())
            ));
            if !matches!(u, UploadOutcome::Done { .. }) {
                return Ok(false);
            }
        } else {
            ev.push("the image was still staged".into());
        }
        // A lock in recovery arms an upload at once: a reset boots it.
        if self.smp.running()?.is_none() {
            if staged {
                let u = self.upload_all(r)?;
                ev.push(format!(
                    "uploaded again in recovery: {}",
                    u.describe(r.envelope.len())
                ));
            }
            // The agent rate-limits an owner's resets (none in the first
            // minute after a boot, as after this cut); a press of the
            // button pays for one at once, where the lock has one.
            let _ = self.ctl(json!({"cmd": "presence", "seconds": 60}));
            let _ = self.smp.owner_call(|c| c.reset().map(|()| Vec::new()));
            let _ = self.ctl(json!({"cmd": "presence-close"}));
            let run = self.settle(Some(r), self.settle_time())?;
            ev.push(format!(
                "reset from recovery: the lock runs {}",
                describe_slot(run.as_ref())
            ));
            let ok = run.is_some_and(|s| runs_confirmed(&s, r));
            if ok {
                self.expect.push(Expect::Confirmed(r.sequence));
                self.current = Some(r.clone());
            }
            return Ok(ok);
        }
        self.install(r, ev)
    }

    pub(super) fn next_release(&mut self, marker: Option<&[u8]>) -> Result<Option<Release>> {
        self.source.genuine(marker)
    }

    /// How long a lock may take to reset, boot and confirm: short in
    /// this process, longer over a real link.
    pub(super) fn settle_time(&self) -> Duration {
        if self.o.in_process {
            Duration::from_millis(3000)
        } else {
            Duration::from_secs(6)
        }
    }
}
