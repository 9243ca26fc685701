//! Checks 13 to 19: the secure local channel (issue 12, §5). Each one is
//! an attack from radio range that issue 12 measured against the lock,
//! tried again:
//!
//! * 13 pairing without the code: a wrong setup code in the window, and a
//!   plain `pair` with only a public key;
//! * 14 a stranger during the owner's window: pairing its own key, and
//!   replacing the owner's pending release with an older signed one;
//! * 15 a replayed or held-back command: a sealed unlock captured and
//!   played again, and one held back past the lock's freshness limit;
//! * 16 a forged answer: an altered sealed answer, and the lock's earlier
//!   "locked" answer handed back for an unlock, at the audit's client;
//!   and owner commands sent in the clear;
//! * 17 chunk injection into the owner's upload, by another peer;
//! * 18 an unauthenticated reset (window closed, consent given);
//! * 19 consent surviving a power cut.
//!
//! The attacker is another UDP socket (another peer), with no owner key.
//! The audit's own owner, paired by the setup code, is the victim; the
//! man in the middle is [`Tap`], a transport around the owner's that can
//! record, hold back or alter frames. Verdicts rest on what the lock does
//! (the bolt as the owner's authenticated `status` reports it, the
//! owners, the slots, the update's typed state), never on its words.

use std::time::Duration;

use anyhow::{Result, anyhow};
use ciborium::Value;
use keyway_smp::kw::{Bolt, UpdateState};
use keyway_vendor::keys::{Algorithm, SigningKey};
use keyway_vendor::smp::{self, Op, group, text};
use serde_json::json;

use super::{Session, check, describe_slot};
use crate::audit::link::{Answer, Smp, Upload};
use crate::audit::{Check, Status};
use crate::device::{Client, Stats, Transport, TransportError, UdpTransport};

/// A man in the middle on the owner's link: records the last request
/// frame, and on demand holds a request back (the owner sees no answer)
/// or alters the answer's last byte.
#[derive(Debug)]
pub(super) struct Tap {
    inner: UdpTransport,
    /// The last request frame delivered, with its sequence number.
    last: Option<(Vec<u8>, u8)>,
    /// Hold the next request back instead of delivering it.
    hold: bool,
    /// The request held back.
    held: Option<(Vec<u8>, u8)>,
    /// Flip a bit in the last byte of every answer.
    alter: bool,
    /// The last answer delivered.
    last_answer: Option<Vec<u8>>,
    /// Deliver the next request, but hand the owner this earlier answer
    /// instead of the lock's (its sequence number made to match).
    stale_answer: Option<Vec<u8>>,
}

impl Transport for Tap {
    fn exchange(&mut self, frame: &[u8], seq: u8) -> Result<Vec<u8>, TransportError> {
        if self.hold {
            self.hold = false;
            self.held = Some((frame.to_vec(), seq));
            return Err(TransportError::NoAnswer {
                peer: self.inner.peer().to_string(),
                tries: 1,
                timeout_ms: 0,
            });
        }
        self.last = Some((frame.to_vec(), seq));
        let mut a = self.inner.exchange(frame, seq)?;
        if let Some(mut old) = self.stale_answer.take()
            && let Ok(mut h) = keyway_smp::Header::decode(&old)
        {
            h.seq = seq;
            if let Some(head) = old.get_mut(..keyway_smp::HEADER_LEN) {
                head.copy_from_slice(&h.encode());
            }
            a = old;
        }
        self.last_answer = Some(a.clone());
        if self.alter
            && let Some(b) = a.last_mut()
        {
            *b ^= 0x01;
        }
        Ok(a)
    }
    fn mtu(&self) -> usize {
        self.inner.mtu()
    }
    fn stats(&self) -> Stats {
        self.inner.stats()
    }
}

impl Tap {
    /// Delivers `frame` again, unchanged; one line on what came back.
    fn replay(&mut self, frame: &[u8], seq: u8) -> String {
        match self.inner.exchange(frame, seq) {
            Ok(a) => describe_frame(&a),
            Err(e) => format!("no answer ({e})"),
        }
    }
}

/// One line on an answer frame: a refusal (`rc`, `kw-rc`) or a body.
fn describe_frame(frame: &[u8]) -> String {
    let body = frame.get(keyway_smp::HEADER_LEN..).unwrap_or(&[]);
    match ciborium::from_reader::<Value, _>(body) {
        Ok(Value::Map(m)) => {
            let rc = smp::get_u64(&m, "rc").ok().flatten();
            let kw = smp::get_u64(&m, "kw-rc").ok().flatten();
            match (rc, kw) {
                (Some(rc), Some(kw)) => format!("refused (rc {rc}, kw-rc {kw})"),
                (Some(rc), None) => format!("refused (rc {rc})"),
                _ if smp::get(&m, "rec").is_some() => "answered with a sealed record".into(),
                _ => "answered".into(),
            }
        }
        _ => format!("an answer of {} bytes that is not a CBOR map", frame.len()),
    }
}

/// The bolt's state for the evidence.
fn shown(b: Option<Bolt>) -> &'static str {
    b.map_or("not reported", Bolt::as_str)
}

/// The fail/pass verdict of a channel check: `failures` are what the lock
/// let through (empty: pass).
fn verdict(n: u8, failures: &[String], pass: &str, fix: &str, ev: Vec<String>) -> Check {
    if failures.is_empty() {
        check(n, Status::Pass, pass, ev)
    } else {
        check(
            n,
            Status::Fail,
            format!("{}: {fix}", failures.join("; ")),
            ev,
        )
    }
}

/// One channel check.
type ChannelCheck<'o> = fn(&mut Session<'o>) -> Result<Check>;

impl Session<'_> {
    /// Runs checks 13 to 19.
    pub(super) fn channel_checks(&mut self) -> Vec<Check> {
        let mut out = Vec::new();
        let runs: [(u8, ChannelCheck<'_>); 7] = [
            (13, Self::pairing_without_code),
            (14, Self::stranger_in_window),
            (15, Self::replay_held_back),
            (16, Self::forged_answer),
            (17, Self::chunk_injection),
            (18, Self::unauthenticated_reset),
            (19, Self::consent_power_cut),
        ];
        for (n, f) in runs {
            // 13, 14 and 17 need the button (the window), 19 the power;
            // 15, 16 and 18 only the owner's session.
            let hardware = match n {
                13 | 14 | 17 => Some("the lock's button (the presence window)"),
                19 => Some("the lock's power (a power cut)"),
                _ => None,
            };
            if let Some(what) = hardware
                && self.control.is_none()
            {
                out.push(check(
                    n,
                    Status::Skip,
                    format!("needs {what}: the lock has no control interface (--control)"),
                    vec![],
                ));
                continue;
            }
            self.say(&format!("check {n}"));
            let c = f(self).unwrap_or_else(|e| super::errored(n, &e));
            let _ = self.ctl(json!({"cmd": "presence-close"}));
            out.push(c);
        }
        out
    }

    /// A new peer with no owner key: another UDP socket.
    fn stranger(&self) -> Result<Smp> {
        Smp::connect(self.addr)
    }

    /// The owner's client on a tapped link, with a session open.
    fn tapped(&self) -> Result<Client<Tap>> {
        let key = self
            .owner
            .clone()
            .ok_or_else(|| anyhow!("the audit has no owner key paired with the lock"))?;
        let device = self.smp.paired().ok_or_else(|| {
            anyhow!(
                "the audit's owner has no session with the lock (not paired by a setup code, or the lock offers none): its commands travel unsealed"
            )
        })?;
        let inner = UdpTransport::connect(&self.addr.to_string())?
            .with_retry(Duration::from_millis(700), 3);
        let tap = Tap {
            inner,
            last: None,
            hold: false,
            held: None,
            alter: false,
            last_answer: None,
            stale_answer: None,
        };
        let mut c = Client::new(tap).with_owner(key)?.with_paired_lock(device)?;
        c.open_session()?;
        Ok(c)
    }

    /// The owners' key ids, as the owner's session lists them.
    fn owner_ids(&mut self) -> Result<Vec<[u8; 8]>> {
        Ok(self
            .smp
            .client()
            .owners()?
            .into_iter()
            .map(|o| o.key_id)
            .collect())
    }

    /// The bolt as the owner's authenticated status reports it (typed:
    /// `None` when the status names no bolt state).
    fn bolt(&mut self) -> Result<Option<Bolt>> {
        let b = self.smp.status()?;
        Ok(smp::get_text(&b, "bolt")
            .ok()
            .flatten()
            .and_then(Bolt::parse))
    }

    /// The pending update's typed state, from the owner's status.
    fn update_state(&mut self) -> Option<UpdateState> {
        self.pending_state().1
    }

    /// A wrong setup code: the next valid one after the real one (after a
    /// fixed guess when the audit does not know the code).
    fn wrong_code(&self) -> keyway_channel::SetupCode {
        let v = self.setup_code.map_or(20_202_021, |c| c.value());
        (1..)
            .find_map(|d| keyway_channel::SetupCode::new((v + d) % 99_999_998).ok())
            .unwrap_or(self.setup_code.unwrap_or_else(|| {
                keyway_channel::SetupCode::new(20_202_021).expect("a valid code")
            }))
    }

    // --------------------------------------------------------------- 13

    fn pairing_without_code(&mut self) -> Result<Check> {
        let mut ev = Vec::new();
        let mut fails = Vec::new();
        let before = self.owner_ids()?;
        ev.push(format!("owners before: {}", before.len()));
        self.ctl(json!({"cmd": "presence", "seconds": 60}))?;
        ev.push("the presence window is open (a person at the lock)".into());
        let key = SigningKey::generate(Algorithm::Ed25519)
            .map_err(|e| anyhow!("generating a key: {e}"))?;
        let mut s = self.stranger()?;
        let wrong = self.wrong_code();
        match s.pair_by_code(&key, &wrong) {
            Ok(Answer::Ok(_)) => {
                fails.push("a wrong setup code paired".to_owned());
                ev.push("pairing with a wrong setup code: PAIRED".into());
            }
            Ok(a) => ev.push(format!(
                "pairing with a wrong setup code: refused ({})",
                a.describe()
            )),
            Err(e) => ev.push(format!("pairing with a wrong setup code: refused ({e:#})")),
        }
        let mut s = self.stranger()?;
        let a = s.pair(&key)?;
        ev.push(format!(
            "a plain pair (id 8) with only the public key: {}",
            a.describe()
        ));
        if !a.is_err() {
            fails.push("a plain pair with only a public key was accepted".to_owned());
        }
        let _ = self.ctl(json!({"cmd": "presence-close"}));
        let after = self.owner_ids()?;
        let theirs = keyway_channel::key_id(
            &<[u8; 32]>::try_from(key.raw_public_key_bytes().as_slice())
                .map_err(|_| anyhow!("an Ed25519 key"))?,
        );
        ev.push(format!("owners after: {}", after.len()));
        if after.contains(&theirs) {
            fails.push(format!(
                "the key {} is now an owner",
                keyway_vendor::keys::hex(&theirs)
            ));
        }
        Ok(verdict(
            13,
            &fails,
            "no way in without the setup code: a wrong code and a plain pair were refused",
            "pairing must need the presence window AND the setup code, proven by a PAKE (SPAKE2+); refuse every other way to add an owner",
            ev,
        ))
    }

    // --------------------------------------------------------------- 14

    fn stranger_in_window(&mut self) -> Result<Check> {
        let mut ev = Vec::new();
        let mut fails = Vec::new();
        let (Some(older), Some(newer)) = (self.next_release(None)?, self.next_release(None)?)
        else {
            return Ok(check(
                14,
                Status::Skip,
                "needs two fresh releases: give --vendor-key",
                ev,
            ));
        };
        // The owner's newer release waits for consent.
        let u = self.upload_all(&newer)?;
        ev.push(format!(
            "the owner uploaded {}: {}",
            newer.label,
            u.describe(newer.envelope.len())
        ));
        if matches!(u, Upload::Done { .. }) {
            self.last_genuine = Some(newer.clone());
        } else {
            return Ok(check(
                14,
                Status::Fail,
                "the owner's own upload did not complete",
                ev,
            ));
        }
        self.ctl(json!({"cmd": "presence", "seconds": 60}))?;
        ev.push("the owner opens the presence window".into());
        let before = self.owner_ids()?;
        let key = SigningKey::generate(Algorithm::Ed25519)
            .map_err(|e| anyhow!("generating a key: {e}"))?;
        let mut s = self.stranger()?;
        let a = s.pair(&key)?;
        ev.push(format!(
            "a stranger's plain pair with its own key: {}",
            a.describe()
        ));
        let wrong = self.wrong_code();
        let mut s2 = self.stranger()?;
        let b = s2.pair_by_code(&key, &wrong);
        ev.push(format!(
            "a stranger's pairing with a guessed setup code: {}",
            match &b {
                Ok(a) => a.describe(),
                Err(e) => format!("{e:#}"),
            }
        ));
        let after = self.owner_ids()?;
        if after.len() > before.len() {
            fails.push(format!(
                "a stranger became an owner ({} owners, were {})",
                after.len(),
                before.len()
            ));
        }
        // The older signed release, by the stranger, in the window.
        let mut s3 = self.stranger()?;
        let u = s3.upload(&older.envelope, Duration::ZERO, &mut |_| true)?;
        ev.push(format!(
            "the stranger uploads the older {} (sequence {} < {}): {}",
            older.label,
            older.sequence,
            newer.sequence,
            u.describe(older.envelope.len())
        ));
        let test = s3.try_request(
            Op::Write,
            group::IMAGE,
            0,
            vec![
                (text("hash"), Value::Bytes(older.hash().to_vec())),
                (text("confirm"), Value::Bool(false)),
            ],
        )?;
        ev.push(format!(
            "the stranger asks for a test boot of it: {}",
            test.map_or("no answer".into(), |a| a.describe())
        ));
        let _ = self.ctl(json!({"cmd": "presence-close"}));
        let imgs = self.smp.images()?;
        let slot = |r: &super::Release| {
            imgs.iter()
                .find(|s| s.hash.as_slice() == r.hash().as_slice())
                .map(|s| s.active)
        };
        let (newer_at, older_at) = (slot(&newer), slot(&older));
        let say = |at: Option<bool>| match at {
            Some(true) => "runs",
            Some(false) => "is in the other slot",
            None => "is in no slot",
        };
        ev.push(format!(
            "then the owner's {} {}; the older {} {}",
            newer.label,
            say(newer_at),
            older.label,
            say(older_at)
        ));
        // Replaced: the owner's release is gone, or the older one runs.
        if newer_at.is_none() || older_at == Some(true) {
            fails.push(format!(
                "the stranger replaced the owner's pending sequence {} with the older {}",
                newer.sequence, older.sequence
            ));
        }
        Ok(verdict(
            14,
            &fails,
            "during the owner's window a stranger could neither pair nor replace the pending release with an older one",
            "the window must not be enough to pair (the setup code is needed), and an upload without an owner's session must never replace a pending newer release with an older one",
            ev,
        ))
    }

    // --------------------------------------------------------------- 15

    fn replay_held_back(&mut self) -> Result<Check> {
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

    // --------------------------------------------------------------- 16

    fn forged_answer(&mut self) -> Result<Check> {
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
            ("lock", Op::Write, keyway_smp::kw::cmd::LOCK),
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

    // --------------------------------------------------------------- 17

    fn chunk_injection(&mut self) -> Result<Check> {
        let mut ev = Vec::new();
        let Some(r) = self.next_release(None)? else {
            return Ok(check(
                17,
                Status::Skip,
                "needs a fresh release: give --vendor-key",
                ev,
            ));
        };
        if self.smp.paired().is_none() {
            return Ok(check(
                17,
                Status::Fail,
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
        let ok = matches!(u, Upload::Done { .. }) && staged;
        if ok {
            self.last_genuine = Some(r.clone());
        } else {
            self.expect
                .retain(|e| *e != super::Expect::Download(r.sequence));
        }
        Ok(if ok {
            check(
                17,
                Status::Pass,
                "another peer's chunk was refused; the owner's upload completed and verifies",
                ev,
            )
        } else {
            check(
                17,
                Status::Fail,
                "another peer's chunk went into the owner's upload and broke it: bind an upload to the session (or the peer) that began it and refuse everyone else's chunks",
                ev,
            )
        })
    }

    // ----------------------------------------------------------- 18, 19

    /// Makes sure a genuine release is pending with the owner's consent
    /// held back by the policy (the bolt locked): returns it, or `None`
    /// with the evidence saying why not.
    fn consent_held(
        &mut self,
        ev: &mut Vec<String>,
    ) -> Result<Option<keyway_smp::kw::UpdateState>> {
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
            let u = self.upload_all(&r)?;
            ev.push(format!(
                "the owner uploaded {}: {}",
                r.label,
                u.describe(r.envelope.len())
            ));
            if matches!(u, Upload::Done { .. }) {
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

    fn unauthenticated_reset(&mut self) -> Result<Check> {
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
        self.smp.wait_up(Duration::from_secs(5))?;
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

    fn consent_power_cut(&mut self) -> Result<Check> {
        let mut ev = Vec::new();
        let st = self.consent_held(&mut ev)?;
        if st != Some(UpdateState::Postponed) {
            // A lock that takes no consent fails check 2 (or 12); one that
            // installs at once has nothing to keep.
            return Ok(check(
                19,
                Status::Skip,
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
            installed = run
                .as_ref()
                .is_some_and(|s| s.confirmed && s.hash.as_slice() == r.hash().as_slice());
            ev.push(format!(
                "the owner unlocks, no new consent: the lock runs {}",
                describe_slot(run.as_ref())
            ));
            if installed {
                self.expect.push(super::Expect::Confirmed(r.sequence));
                self.current = Some(r);
            }
        }
        Ok(if !cut {
            check(
                19,
                Status::Skip,
                "the power cut did not fire (no flash write followed it)",
                ev,
            )
        } else if kept && installed {
            check(
                19,
                Status::Pass,
                "consent survived the power cut and the update installed without asking again",
                ev,
            )
        } else if kept {
            check(
                19,
                Status::Fail,
                "consent survived the power cut but the update did not install once the bolt was unlocked",
                ev,
            )
        } else {
            check(
                19,
                Status::Fail,
                "the owner's consent was lost in the power cut: write consent to flash before answering it",
                ev,
            )
        })
    }
}
