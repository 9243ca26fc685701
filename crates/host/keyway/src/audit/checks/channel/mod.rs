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
//! On a serial line (`serial:PATH`) there is one peer: the attacker is
//! a client with no owner key that opens the same line (someone at the
//! lock's port), which is what 13, 14, 16 and 18 need; 17's subject is
//! another peer's chunks joining the owner's upload, and on one line
//! every client is the owner's peer, so it is NOT APPLICABLE there.
//! The audit's own owner, paired by the setup code, is the victim; the
//! man in the middle is [`Tap`], a transport around the owner's that can
//! record, hold back or alter frames. Verdicts rest on what the lock does
//! (the bolt as the owner's authenticated `status` reports it, the
//! owners, the slots, the update's typed state), never on its words.

use std::time::Duration;

use anyhow::{Result, anyhow};
use ciborium::Value;
use keyway_smp::keyway_group::{Bolt, UpdateState};
use keyway_vendor::keys::{Algorithm, SigningKey};
use keyway_vendor::smp::{self, Op, group, text};
use serde_json::json;

use super::{Session, describe_slot, fail, pass, runs_confirmed, skip};

mod pairing;
mod replay;
mod upload;
use crate::audit::Check;
use crate::audit::link::{Answer, Smp, UploadOutcome};
use crate::device::{Client, Stats, TargetTransport, Transport, TransportError};

/// A man in the middle on the owner's link: records the last request
/// frame, and on demand holds a request back (the owner sees no answer)
/// or alters the answer's last byte.
#[derive(Debug)]
pub(super) struct Tap {
    inner: TargetTransport,
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
                peer: self.inner.peer(),
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
fn verdict(n: u8, failures: &[String], pass_summary: &str, fix: &str, ev: Vec<String>) -> Check {
    if failures.is_empty() {
        pass(n, pass_summary, ev)
    } else {
        fail(n, format!("{}: {fix}", failures.join("; ")), ev)
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
            if n == 17 && self.serial {
                out.push(super::not_applicable(
                    n,
                    "not applicable on a serial line: one line carries one peer, so there is no other peer whose chunks could join the owner's upload (anyone on the line is the owner's link; see 13, 16 and 18 for a client without the owner's key)",
                ));
                continue;
            }
            if let Some(what) = hardware
                && self.control.is_none()
            {
                out.push(skip(
                    n,
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

    /// A new peer with no owner key: another UDP socket (on a serial
    /// line, the same line opened again by a client without the key).
    fn stranger(&self) -> Result<Smp> {
        Smp::connect(&self.addr)
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
        let inner = TargetTransport::connect(&self.addr)?.with_retry(Duration::from_millis(700), 3);
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
}
