//! Checks 15 and 16: a replayed or held-back command, and a forged
//! answer (altered, stale, or owner commands in the clear).

use super::*;

impl Session<'_> {
    pub(super) fn replay_held_back(&mut self) -> Result<Check> {
        let mut ev = Vec::new();
        let mut fails = Vec::new();
        let mut c = self.tapped()?;
        c.unlock()?;
        let (unlock, seq) = c
            .transport_mut()
            .last
            .clone()
            .ok_or_else(|| anyhow!("the tap saw no unlock"))?;
        ev.push(format!(
            "captured the owner's sealed unlock ({} bytes)",
            unlock.len()
        ));
        c.lock()?;
        ev.push(format!(
            "the owner locks: the bolt is {}",
            shown(self.bolt()?)
        ));
        let r = c.transport_mut().replay(&unlock, seq);
        let bolt = self.bolt()?;
        ev.push(format!(
            "replayed the captured unlock: {r}; the bolt is {}",
            shown(bolt)
        ));
        if bolt != Some(Bolt::Locked) {
            fails.push("a replayed unlock opened the door".to_owned());
            c.lock()?;
        }
        // Held back: the owner's unlock never arrives, then does, late.
        c.transport_mut().hold = true;
        let lost = c.unlock();
        ev.push(format!(
            "held back the owner's next unlock (the owner saw {})",
            match lost {
                Ok(_) => "an answer".to_owned(),
                Err(e) => format!("no answer: {e}"),
            }
        ));
        let (held, hseq) = c
            .transport_mut()
            .held
            .take()
            .ok_or_else(|| anyhow!("the tap held nothing back"))?;
        let wait = Duration::from_millis(6_500);
        std::thread::sleep(wait);
        let r = c.transport_mut().replay(&held, hseq);
        let bolt = self.bolt()?;
        ev.push(format!(
            "delivered it {} s later: {r}; the bolt is {}",
            wait.as_secs_f64(),
            shown(bolt)
        ));
        if bolt != Some(Bolt::Locked) {
            fails.push(format!(
                "an unlock held back {} s opened the door",
                wait.as_secs_f64()
            ));
            c.lock()?;
        }
        Ok(verdict(
            15,
            &fails,
            "a replayed and a held-back sealed unlock were refused; the bolt stayed locked",
            "every owner command must carry a counter the lock accepts once and a freshness proof (the lock's clock) so that a request delivered late is refused",
            ev,
        ))
    }

    pub(super) fn forged_answer(&mut self) -> Result<Check> {
        let mut ev = Vec::new();
        let mut fails = Vec::new();
        let mut c = self.tapped()?;
        c.transport_mut().alter = true;
        let r = c.status();
        c.transport_mut().alter = false;
        match &r {
            Ok(_) => {
                ev.push("an altered answer to the owner's status: the client TOOK it".into());
                fails.push("the audit's client accepted an altered answer".to_owned());
            }
            Err(e) => ev.push(format!(
                "an altered answer to the owner's status: the client rejected it ({e})"
            )),
        }
        // The forged "bolt locked": the lock's earlier answer to a
        // lock, handed back as the answer to the next unlock.
        c.lock()?;
        let locked = c.transport_mut().last_answer.clone();
        c.transport_mut().stale_answer = locked;
        match c.unlock() {
            Ok(_) => {
                ev.push("the lock's earlier 'locked' answer handed back for an unlock: the client TOOK it".into());
                fails.push("the audit's client accepted an earlier answer as the answer to a new command".to_owned());
            }
            Err(e) => ev.push(format!(
                "the lock's earlier 'locked' answer handed back for an unlock: the client rejected it ({e})"
            )),
        }
        // The unlock did run at the lock: lock again.
        let _ = c.lock();
        let mut s = self.stranger()?;
        for (what, op, id) in [
            ("status", Op::Read, crate::audit::link::kw::STATUS),
            ("lock", Op::Write, keyway_smp::keyway_group::cmd::LOCK),
        ] {
            let a = s.try_request(op, group::KEYWAY, id, Vec::new())?;
            let line = a.as_ref().map_or("no answer".into(), Answer::describe);
            ev.push(format!(
                "the owner command {what} sent in the clear: {line}"
            ));
            if matches!(a, Some(Answer::Ok(_))) {
                fails.push(format!(
                    "the lock runs {what} sent in the clear and answers it unauthenticated"
                ));
            }
        }
        Ok(verdict(
            16,
            &fails,
            "the lock answers owner commands only sealed in a session; an altered answer, and an earlier answer handed back for a new command, are errors at the client",
            "owner commands must run only in an authenticated session whose answers are sealed, so a forged 'bolt locked' cannot pass for the lock's",
            ev,
        ))
    }
}
