//! Check 3, local trust anchors: releases the lock's anchors do not
//! vouch for (doctored, replayed, rolled back) are refused.

use super::*;

impl Session<'_> {
    pub(super) fn attacks(&mut self) -> Result<Check> {
        self.say("check 3: attacks");
        if !self.genuine_accepted {
            // A lock that refuses every upload refuses the attacks too:
            // that proves nothing about its anchors.
            return Ok(skip(
                3,
                "blocked: the lock took no genuine upload (check 2), so refusing the doctored ones proves nothing",
                vec![],
            ));
        }
        // The floor the lock holds: the last release it confirmed, else
        // what it started with.
        let floor = self.current.as_ref().map(|c| c.sequence).or(self.floor);
        let next = floor.unwrap_or(0) + 1000;
        // Tamper with a genuine release the lock would otherwise take
        // (a fresh one when the audit can sign), so only the image can be
        // what is refused.
        let base = if self.source.can_sign() {
            self.next_release(None)?
        } else {
            self.last_genuine.clone()
        };
        let tampered = base.as_ref().map(releases::tampered).transpose()?;
        let rolled_back = match floor {
            Some(f) => self.source.rolled_back(f)?,
            None => None,
        };
        let list: Vec<(&str, Option<Release>, &str)> = vec![
            (
                "tampered payload",
                tampered,
                "no genuine release to tamper with",
            ),
            (
                "unknown signer",
                self.source.unknown_signer(next)?,
                "needs the vendor domain and class",
            ),
            (
                "rolled-back version",
                rolled_back,
                "needs a fresh vendor signature (or an --update file below the floor) and the lock's floor",
            ),
            (
                "wrong model",
                self.source.wrong_model(next)?,
                "needs a fresh vendor signature",
            ),
        ];
        let mut ev = Vec::new();
        let (mut accepted, mut skipped, mut unanswered) = (Vec::new(), Vec::new(), Vec::new());
        for (name, rel, why) in list {
            let Some(rel) = rel else {
                ev.push(format!("{name}: SKIP, {why}"));
                skipped.push(name);
                continue;
            };
            let u = self.upload_all(&rel)?;
            // The refused upload must leave no download behind.
            self.expect.retain(|e| *e != Expect::Download(rel.sequence));
            ev.push(format!(
                "{name}: sent {}; {}",
                rel.label,
                u.describe(rel.envelope.len())
            ));
            match u {
                UploadOutcome::Refused { .. } => self.expect.push(Expect::Rejected(rel.sequence)),
                UploadOutcome::Done { .. } => accepted.push(name),
                // Silence is no refusal: a lock that hangs or crashes on
                // a doctored upload fails too, by name.
                UploadOutcome::NoAnswer { .. } => unanswered.push(name),
            }
        }
        let run = self.settle(None, self.settle_time())?;
        ev.push(format!(
            "afterwards the lock runs {}",
            describe_slot(run.as_ref())
        ));
        if accepted.is_empty() && !unanswered.is_empty() {
            return Ok(fail(
                3,
                format!(
                    "no answer (the lock hung or reset): {}",
                    unanswered.join(", ")
                ),
                ev,
            ));
        }
        let what = if unanswered.is_empty() {
            "accepted".to_owned()
        } else {
            format!("no answer to {}; accepted", unanswered.join(", "))
        };
        Ok(verdict(
            3,
            &accepted,
            &what,
            &skipped,
            "the attacks sent were refused",
            "all four refused by the lock's own anchors and floor".into(),
            ev,
        ))
    }
}
