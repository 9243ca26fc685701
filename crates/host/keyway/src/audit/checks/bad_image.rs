//! Check 5, the bad image reverts: a signed release whose self-test fails
//! is rolled back to the release before it.

use super::*;

impl Session<'_> {
    pub(super) fn bad_image(&mut self) -> Result<Check> {
        if !self.source.can_sign() {
            return Ok(skip(
                5,
                "needs a fresh vendor signature (an image that fails its self-test): give --vendor-key",
                vec![],
            ));
        }
        let Some(r) = self.next_release(Some(SELF_TEST_FAIL_MARKER))? else {
            return Ok(skip(5, "no release", vec![]));
        };
        self.say(&format!("check 5: {}", r.label));
        let before = self.smp.running()?;
        let mut ev = vec![format!("running: {}", describe_slot(before.as_ref()))];
        let u = self.upload_all(&r)?;
        ev.push(format!(
            "uploaded {} (its image carries {:?}, which fails the simulated self-test): {}",
            r.label,
            String::from_utf8_lossy(SELF_TEST_FAIL_MARKER),
            u.describe(r.envelope.len())
        ));
        if !matches!(u, UploadOutcome::Done { .. }) {
            return Ok(fail(5, "the signed image was not accepted", ev));
        }
        let (c, accepted) = self.consent(&r)?;
        ev.push(c);
        let previous = self.current.clone();
        let run = self.settle(previous.as_ref(), self.settle_time())?;
        ev.push(format!(
            "then the lock runs {}",
            describe_slot(run.as_ref())
        ));
        // The lock must have tried the image (a trial boot) and gone back
        // by itself (its log says so), not merely ignored it.
        let exported = self.exports.len();
        let events = self.events_since_last_export("bad image");
        let log_read = self.exports.len() > exported
            && self.exports.last().is_some_and(|(_, b)| !b.is_empty());
        let bad_version = keyway_vendor::log::audit_version(&r.version);
        let tried = events.iter().any(|e| match e {
            Event::OnTrial { .. } => true,
            Event::Boot { version, .. } => *version == bad_version,
            _ => false,
        });
        let reverted = events.iter().any(|e| matches!(e, Event::Reverted { .. }));
        ev.push(format!(
            "its log since: {} (booted the bad image or put it on trial: {tried}, reverted: {reverted})",
            events
                .iter()
                .map(|e| e.name())
                .collect::<Vec<_>>()
                .join(", ")
        ));
        // Back on the previous image is a revert only if the lock tried
        // the bad one: its log shows the trial or the boot of it (a lock
        // that ignored the consent did not revert anything). Where the log
        // cannot be read, the consent it took is all there is.
        let back = match (&run, &before) {
            (Some(a), Some(b)) => {
                a.hash == b.hash && a.confirmed && if log_read { tried } else { accepted }
            }
            _ => false,
        };
        Ok(if back {
            pass(
                5,
                "the image failed its self-test and the lock reverted by itself",
                ev,
            )
        } else if run
            .as_ref()
            .is_some_and(|s| s.hash.as_slice() == r.hash().as_slice())
        {
            fail(5, "the lock kept the image that fails its self-test", ev)
        } else if log_read
            && !tried
            && run.as_ref().map(|s| &s.hash) == before.as_ref().map(|s| &s.hash)
        {
            fail(
                5,
                "the lock never tried the image: it ignored the consent instead of installing and reverting",
                ev,
            )
        } else {
            fail(
                5,
                "the lock did not come back to its previous working image",
                ev,
            )
        })
    }
}
