//! The Keyway SMP group (64), the part the device core serves: the pending
//! update's release notes and the audit log's export, after the lock
//! agent (`keyway-agent`) authorized them for an owner's session. Status,
//! lock, unlock, presence, consent, pairing, sessions, settings, owners,
//! unpair and the factory reset are the agent's (FORMAT.md, "The Keyway
//! SMP group"); [`Server::status_report`] is the device core's own view of
//! the lock, read in-process.

use ciborium::Value;
use keyway_audit::Event;

use crate::lock::{Bolt, Door};
use crate::owners::Settings;
use crate::server::{Body, Fail, Server, inval, not_sup};
use crate::smp::{MgmtErr, Op, Request, get_text, get_u64, text};

/// Keyway group command ids (keyway-smp).
pub use keyway_smp::keyway_group::cmd;

/// The largest `data` of a `log` answer (keyway-smp).
pub use keyway_smp::keyway_group::LOG_CHUNK;

fn secs(ms: u64) -> u64 {
    ms.div_ceil(1000)
}

fn settings_map(s: Settings) -> Value {
    Value::Map(vec![
        (text("auto_install_cve"), Value::Bool(s.auto_install_cve)),
        (
            text("install_needs_unlocked"),
            Value::Bool(s.install_needs_unlocked),
        ),
    ])
}

impl Server {
    /// Handles a Keyway-group request the agent authorized and left to
    /// the device core: the pending update's release notes and the audit
    /// log's export. Everything else of the group (status, lock, unlock,
    /// presence, consent, pairing, sessions, settings, owners, unpair,
    /// factory reset) is the agent's own.
    pub(crate) fn keyway(&mut self, r: &Request, now_ms: u64) -> Result<Body, Fail> {
        let write = r.header.op == Op::Write;
        match (r.header.id, write) {
            (cmd::NOTES, false) => self.notes(),
            (cmd::LOG, false) => self.log_chunk(r, now_ms),
            (id, _) => Err(not_sup(
                format_args!("Keyway group command {id}"),
                write,
                "is not served by the device core: see FORMAT.md, \"The Keyway SMP group\"",
            )),
        }
    }

    fn presence_left_ms(&self, now_ms: u64) -> u64 {
        if !self.presence_open(now_ms) {
            return 0;
        }
        self.presence_until_ms()
            .map_or(u64::MAX / 1000, |t| t.saturating_sub(now_ms))
    }

    /// What `status` answers an owner, read in-process (the lock's own
    /// display; tests): over SMP it is for owners only.
    pub fn status_report(&mut self, now_ms: u64) -> Body {
        self.status_body(now_ms)
    }

    fn status_body(&mut self, now_ms: u64) -> Body {
        let l = self.mechanism();
        let mv = l.battery_mv().unwrap_or(self.model.battery.full_mv);
        let bolt = match l.bolt() {
            Bolt::Locked => "locked",
            Bolt::Unlocked => "unlocked",
        };
        let door = match l.door() {
            Door::Open => "open",
            Door::Closed => "closed",
        };
        let tamper = l.tamper();
        let lockout = l.lockout_remaining(now_ms).map_or(0, secs);
        let running = self.core().running();
        let version = running
            .and_then(|s| self.core().version(s))
            .unwrap_or_else(|| "recovery".into());
        let trial = matches!(
            self.core().state().trial,
            keyway_device::journal::TrialState::Trial { .. }
        );
        let mut m = vec![
            (text("bolt"), text(bolt)),
            (text("door"), text(door)),
            (text("battery_mv"), Value::from(u64::from(mv))),
            (text("battery_mwh"), Value::from(self.model.battery.mwh(mv))),
            (text("tamper"), Value::Bool(tamper)),
            (text("lockout_s"), Value::from(lockout)),
            (text("model"), text(self.model.name)),
            (text("version"), text(&version)),
        ];
        if let Some(s) = running {
            m.push((text("slot"), Value::from(u64::from(s))));
            // The running image's SHA-256: what a delta release's base must
            // be, so the owner's client can choose delta or full image.
            if let Some(h) = self.core().image_digest(s) {
                m.push((text("image"), Value::Bytes(h.to_vec())));
            }
        }
        m.push((text("trial"), Value::Bool(trial)));
        m.push((
            text("presence_s"),
            Value::from(secs(self.presence_left_ms(now_ms)).min(u64::from(u32::MAX))),
        ));
        if let Some(s) = self.update_summary(None) {
            m.push((text("update"), s));
        }
        m.push((text("settings"), settings_map(self.settings)));
        if let Some(k) = self.core().device_key() {
            m.push((text("device_key"), Value::Bytes(k.to_vec())));
        }
        m
    }

    /// The pending update's summary; `state` overrides the state name.
    fn update_summary(&self, state: Option<&str>) -> Option<Value> {
        let (sequence, version, own, _, cves, highest) = self.update_view()?;
        let name = state.unwrap_or(own);
        let mut m = vec![
            (text("sequence"), Value::from(sequence)),
            (text("version"), text(&version)),
            (text("state"), text(name)),
        ];
        if name == "postponed"
            && let Some(r) = &self.update.postponed
        {
            m.push((text("reason"), text(&crate::policy::postponed_sentence(r))));
        }
        m.push((text("cves"), Value::from(cves)));
        if let Some(h) = highest {
            m.push((text("highest"), text(crate::policy::severity_name(h))));
        }
        Some(Value::Map(m))
    }

    fn nothing_pending() -> Fail {
        Fail::Smp(
            MgmtErr::NoEnt,
            "nothing pending: no complete, verified update waits for consent".into(),
        )
    }

    fn notes(&mut self) -> Result<Body, Fail> {
        let summary = self
            .update_summary(None)
            .ok_or_else(Self::nothing_pending)?;
        let Some(p) = self.pending.clone() else {
            return Err(Self::nothing_pending());
        };
        self.update.notes_offered = Some(p.hash);
        let cves = p
            .cves
            .iter()
            .map(|(id, s)| {
                Value::Map(vec![
                    (text("id"), text(id)),
                    (text("severity"), text(crate::policy::severity_name(*s))),
                ])
            })
            .collect();
        let state = summary
            .as_map()
            .and_then(|m| get_text(m, "state").ok().flatten().map(str::to_owned))
            .unwrap_or_default();
        let mut m = vec![
            (text("sequence"), Value::from(p.sequence)),
            (text("version"), text(&p.version)),
            (text("notes"), text(&p.notes)),
            (text("cves"), Value::Array(cves)),
        ];
        if let Some(b) = p.min_battery_mwh {
            m.push((text("min_battery_mwh"), Value::from(b)));
        }
        m.push((text("state"), text(&state)));
        if state == "postponed"
            && let Some(r) = &self.update.postponed
        {
            m.push((text("reason"), text(&crate::policy::postponed_sentence(r))));
        }
        Ok(m)
    }

    /// Refused: the update is erased (not only left unarmed), so no later
    /// consent or reset can install it; the owner uploads it again to
    /// reconsider.
    pub(crate) fn refuse_pending_update(&mut self) -> Result<(), crate::device::ImgError> {
        let Some(p) = self.pending.clone() else {
            return Ok(());
        };
        self.core_mut().erase(Some(p.slot))?;
        self.core_mut().note(Event::ConsentRefused {
            sequence: p.sequence,
        });
        self.pending = None;
        self.clear_update();
        self.note_log(format!(
            "consent refused for {} (sequence {}): slot {} erased",
            p.version, p.sequence, p.slot
        ));
        Ok(())
    }

    fn log_chunk(&mut self, r: &Request, now_ms: u64) -> Result<Body, Fail> {
        let off = get_u64(&r.body, "off").map_err(inval)?.ok_or_else(|| {
            inval("\"off\" (a byte offset into the export file) is missing".into())
        })?;
        if off == 0 {
            let rtc = self.rtc(now_ms);
            let file = self
                .core_mut()
                .export_audit(rtc)
                .map_err(|e| Fail::Smp(MgmtErr::Unknown, format!("audit-log export: {e}")))?;
            self.export = Some(file);
            self.export_peer = Some(self.peer());
        }
        let file = self.export.as_ref().ok_or_else(|| {
            Fail::Smp(
                MgmtErr::BadState,
                "no export in progress: ask for off 0 first".into(),
            )
        })?;
        let len = file.len() as u64;
        if off > len {
            return Err(inval(format!(
                "\"off\" {off} is past the export file's end ({len} bytes)"
            )));
        }
        let start = usize::try_from(off).unwrap_or(usize::MAX);
        let data = file
            .get(start..)
            .unwrap_or(&[])
            .iter()
            .take(LOG_CHUNK)
            .copied()
            .collect();
        Ok(vec![
            (text("off"), Value::from(off)),
            (text("len"), Value::from(len)),
            (text("data"), Value::Bytes(data)),
        ])
    }
}
