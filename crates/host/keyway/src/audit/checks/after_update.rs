//! Check 8: the lock is fully functional after the update (it runs the
//! new release, confirmed, and still answers and unlocks).

use super::*;

impl Session<'_> {
    pub(super) fn after_update(&mut self) -> Result<Check> {
        self.say("check 8: after the update");
        let mut ev = Vec::new();
        let mut bad = Vec::new();
        let run = self.settle(None, self.settle_time())?;
        ev.push(format!("runs {}", describe_slot(run.as_ref())));
        let want = self.current.as_ref().map(Release::hash);
        if !run.as_ref().is_some_and(|s| {
            s.confirmed
                && s.bootable
                && Some(s.hash.as_slice()) == want.as_ref().map(|h| h.as_slice())
        }) {
            bad.push("not on the last installed release, confirmed");
        }
        match self
            .smp
            .request(Op::Write, group::OS, 0, vec![(text("d"), text("ping"))])?
        {
            Answer::Ok(_) => ev.push("SMP echo answered".into()),
            e => {
                ev.push(format!("SMP echo: {}", e.describe()));
                bad.push("echo");
            }
        }
        if self.control.is_some() {
            let _ = self.ctl(json!({"cmd": "lock"}));
            match self.ctl(json!({"cmd": "keypad", "pin": self.pin})) {
                Ok(v) if v["result"] == "unlocked" => ev.push("keypad PIN: unlocked".into()),
                Ok(v) => {
                    ev.push(format!("keypad PIN: {v}"));
                    bad.push("keypad");
                }
                Err(e) => {
                    ev.push(format!("keypad: {e:#}"));
                    bad.push("keypad");
                }
            }
            let _ = self.ctl(json!({"cmd": "lock"}));
        }
        if self.keyway_group && self.owner.is_some() {
            for (what, lock) in [("unlock", false), ("lock", true)] {
                let a = self
                    .smp
                    .owner_call(|c| if lock { c.lock() } else { c.unlock() })?;
                match a {
                    Answer::Ok(b) => ev.push(format!(
                        "owner {what} over SMP: bolt {}",
                        smp::get_text(&b, "bolt").ok().flatten().unwrap_or("?")
                    )),
                    e => {
                        ev.push(format!("owner {what} over SMP: {}", e.describe()));
                        bad.push(if lock { "owner lock" } else { "owner unlock" });
                    }
                }
            }
        }
        let iso = netns::inspect();
        ev.push(format!("still no route out: {}", iso.no_route_out()));
        Ok(if bad.is_empty() {
            pass(
                8,
                format!(
                    "updated, confirmed, and {} work{}",
                    [
                        self.control.is_some().then_some("the keypad"),
                        (self.keyway_group && self.owner.is_some()).then_some("owner commands"),
                        Some("SMP"),
                    ]
                    .into_iter()
                    .flatten()
                    .collect::<Vec<_>>()
                    .join(", "),
                    self.offline()
                ),
                ev,
            )
        } else {
            fail(8, format!("after the update: {}", bad.join(", ")), ev)
        })
    }
}
