//! Check 9, factory reset and re-pairing offline: the reset forgets the
//! owners, and the lock takes a genuine update again afterwards.

use super::*;

impl Session<'_> {
    pub(super) fn factory_reset(&mut self) -> Result<Check> {
        if self.control.is_none() {
            return Ok(skip(
                9,
                "needs the lock's button (presence and long press): the lock has no control interface",
                vec![],
            ));
        }
        if !self.keyway_group {
            return Ok(fail(
                9,
                "the lock offers no factory reset or pairing over its local interface",
                vec![],
            ));
        }
        self.say("check 9: factory reset, re-pairing, a second update");
        let mut ev = Vec::new();
        self.ctl(json!({"cmd": "presence", "seconds": 60}))?;
        let lp = self.ctl(json!({"cmd": "long-press"}));
        ev.push(format!(
            "button held 10 s (control long-press): {}",
            lp.as_ref()
                .map_or_else(|e| format!("{e:#}"), |_| "ok".into())
        ));
        let a = self.smp.owner_call(|c| c.factory_reset())?;
        ev.push(format!("SMP factory reset: {}", summary(&a)));
        if a.is_err() {
            return Ok(fail(9, "the factory reset was refused offline", ev));
        }
        if self.owner.is_some() {
            // Still signed by the owner paired before the reset.
            let a = self.smp.owner_call(|c| c.unlock())?;
            ev.push(format!("the old owner's unlock: {}", a.describe()));
            if !a.is_err() {
                return Ok(fail(9, "the factory reset kept the old owner", ev));
            }
        }
        let key =
            SigningKey::generate(Algorithm::Ed25519).map_err(|e| anyhow!("owner key: {e}"))?;
        let n = self.pair(&key)?;
        ev.push(format!(
            "re-paired a new owner {} offline: owners {n}",
            hex(&key.key_id())
        ));
        // `status` is for owners, and none is left after the reset: the
        // pairing's count tells how many the reset left.
        let owners = n.checked_sub(1);
        ev.push(format!("owners after the reset: {owners:?}"));
        self.owner = Some(key);
        self.smp.set_owner(self.owner.clone())?;
        let Some(r) = self.next_release(None)? else {
            return Ok(skip(
                9,
                "reset and re-paired; no release left for the second update",
                ev,
            ));
        };
        let u = self.upload_noted(&r, "second update", &mut ev)?;
        let ok = matches!(u, UploadOutcome::Done { .. }) && self.install(&r, &mut ev)?;
        Ok(if ok && owners == Some(0) {
            pass(
                9,
                format!(
                    "factory reset, re-paired and updated again{}",
                    self.offline()
                ),
                ev,
            )
        } else if owners != Some(0) {
            fail(9, "the factory reset left owners paired", ev)
        } else {
            fail(9, "the second update after the reset did not install", ev)
        })
    }
}
