//! The owner session the checked and `quiet` builds run (steps 1 to 11
//! of the crate documentation), one frame at a time through the lock's
//! `Agent::handle`, each step metered. Apart from `main.rs` so that each
//! file holds one job: the harness (fixtures, meter rows, verdict) there,
//! the scenario here.

use super::*;

/// The owner session; returns the export's length (in `export`).
#[inline(never)]
pub(crate) fn session(flash: &RefCell<Flash>, export: &mut [u8], m: &mut Meter) -> usize {
    use chacha20::ChaCha20Rng;
    use chacha20::rand_core::SeedableRng;
    use keyway_agent::agent::{Event, OUT_LEN};
    use keyway_agent::limits::PeerId;
    use keyway_device::boot::{Boot, Reason};
    use keyway_device::journal::TrialState;
    use keyway_suit::DeviceIdentity;
    use lock::{Lock, Shared};

    // Every fixture stays in the image, as in the baseline: the code
    // figure (this build minus the baseline) then holds no fixture bytes,
    // also none the `quiet` build would otherwise drop (the host's bytes
    // that only the checks read).
    core::hint::black_box(&fixture::ALL);
    let seed: [u8; 32] = must("device seed", fixture::DEVICE_SEED.try_into());
    let identity = DeviceIdentity::new(
        must("vendor id", fixture::VENDOR_ID.try_into()),
        must("class id", fixture::CLASS_ID.try_into()),
    );
    let rng = ChaCha20Rng::seed_from_u64;
    let owner_peer = PeerId(OWNER_PEER);
    let wrong_peer = PeerId(WRONG_PEER);
    say!(
        "lock state: Lock {} B (Agent<_, {}> {} B: store, sessions, pairing, limits; Shell {} B: Journal {} B, AuditLog {} B, Installer {} B, TrustAnchors {} B, head buffer {} B; ChaCha20Rng {} B); flash {} KiB outside",
        core::mem::size_of::<Lock>(),
        lock::SESSIONS,
        core::mem::size_of::<keyway_agent::agent::Agent<Shared, { lock::SESSIONS }>>(),
        core::mem::size_of::<lock::Shell>(),
        core::mem::size_of::<keyway_device::journal::Journal<Shared>>(),
        core::mem::size_of::<keyway_audit::AuditLog<Shared>>(),
        core::mem::size_of::<keyway_device::install::Installer<Shared>>(),
        core::mem::size_of::<keyway_suit::TrustAnchors>(),
        lock::HEAD_MAX,
        core::mem::size_of::<ChaCha20Rng>(),
        FLASH_LEN / 1024
    );

    let io = &mut Radio {
        m,
        rx: [0u8; RX_MAX],
        out: [0u8; OUT_LEN],
    };

    // 1. Power on, from the flash as the factory programmed it (build.rs:
    // v1 in slot 0, confirmed; the pairing verifier in the owner store).
    let mut lock_ram: Option<Lock> = None;
    must(
        "power on",
        Lock::open_into(
            &mut lock_ram,
            &flash_map::MAP,
            lock_core::lock::Shared(flash),
            fixture::ROOT_KEY,
            identity,
            seed,
            rng(LOCK_RNG_SEED),
            0,
        ),
    );
    let Some(lk) = lock_ram.as_mut() else {
        fail("power on")
    };
    // The door stands unlocked through the session (the bolt sensor's
    // reading, no motor): the owners' default setting installs a consented
    // update only while the bolt is withdrawn, else postpones it.
    lk.shell.latch.bolt = keyway_smp::keyway_group::Bolt::Unlocked;
    {
        let s = lk.journal_state();
        check!(
            s.active_slot == 0
                && s.trial == TrialState::Confirmed
                && s.floor == Some(1)
                && agent(lk).state().verifier().is_some()
                && agent(lk).state().owner_count() == 0,
            "the factory image: v1 active and confirmed in slot 0, a verifier, no owner",
        );
    }
    say!("ok factory: v1 (seq 1) in slot 0, confirmed; verifier stored; no owner");

    // 2. Boot v1 (a reset: the agent and the stores reopened).
    let r = io.m.step("reset + boot v1 (boot::boot, VerifiedSlot)", || {
        lk.reset(seed, rng(LOCK_RNG_SEED), 1)?;
        lk.boot(0)
    });
    let b = must("boot v1", r);
    check!(
        b.decision.boot == Boot::Slot(0)
            && b.decision.reason == Reason::Active
            && b.running.map(|i| i.sequence) == Some(1),
        "boot v1: slot 0, active, sequence 1",
    );
    say!("ok boot: Slot(0) (Active), running seq 1");

    // 3. Pairing: the button opens the presence window; first someone
    // else with a wrong code (refused, counted in the store), then the
    // owner with the right one. Every frame goes through Agent::handle.
    let now = LOCK_NOW_MS - 3_000;
    must(
        "button",
        io.m.step("button: presence window", || lk.button(now)),
    );
    let now = LOCK_NOW_MS - 2_000;
    io.pake1(
        "pair, wrong code: Pake1 -> Pake2",
        lk,
        wrong_peer,
        now,
        fixture::PAKE1W,
        fixture::PAKE2W,
    );
    let o = io.step(
        "pair, wrong code: Pake3 refused (counted)",
        lk,
        wrong_peer,
        now,
        fixture::PAKE3W,
    );
    #[cfg(not(feature = "quiet"))]
    check!(
        matches!(client::answer(io.answer(&o), "pake3 refusal"),
            keyway_smp::Answer::Err(e) if e.refusal == Some(keyway_smp::Refusal::BadSetupCode))
            && agent(lk).state().wrong_codes() == 1
            && agent(lk).state().owner_count() == 0,
        "a wrong setup code must be refused, counted in the store, and pair no one",
    );
    say!("ok wrong code: refused (BadSetupCode), counted in the owner store (1), no owner");
    let now = LOCK_NOW_MS - 1_000;
    io.pake1(
        "pair: Pake1 -> Pake2 (SPAKE2+)",
        lk,
        owner_peer,
        now,
        fixture::PAKE1,
        fixture::PAKE2,
    );
    let o = io.step(
        "pair: Pake3 -> Pake4 (owner stored, logged)",
        lk,
        owner_peer,
        now,
        fixture::PAKE3,
    );
    let Event::OwnerPaired { key_id: owner_id } = o.event else {
        fail("pairing: no owner paired")
    };
    #[cfg(not(feature = "quiet"))]
    {
        check!(
            matches!(client::answer(io.answer(&o), "pake4"),
                keyway_smp::Answer::Ok(keyway_smp::Response::PakeFinish(a))
                    if a.msg == fixture::PAKE4 && a.key_id == owner_id),
            "Pake4 differs from the host's"
        );
        let owner_key = keyway_channel::SigningKey::from_bytes(&OWNER_SEED);
        let s = agent(lk).state();
        let stored = s.owner(&owner_id);
        check!(
            s.owner_count() == 1
                && stored.is_some_and(|o| {
                    *o.key() == owner_key.verifying_key().to_bytes()
                        && o.name() == NAME
                        && o.paired_by() == keyway_agent::store::PairedBy::SetupCode
                }),
            "the paired owner must be in the owner store",
        );
        check!(
            s.wrong_codes() == 0 && !agent(lk).window_open(now),
            "a right code clears the wrong-code count and closes the window",
        );
        hprint!("ok pair: owner \"{}\", key id ", NAME);
        for b in owner_id {
            hprint!("{:02x}", b);
        }
        hprintln!(", stored; Pake2, Pake4 as on the host");
    }

    // 4. Session.
    #[allow(unused_mut, clippy::let_unit_value)] // the `quiet` build has no client
    let mut client = handshake(io, lk, owner_peer, LOCK_NOW_MS, owner_id, &FIRST);
    say!("ok session: msg2, msg4 as on the host");

    // 5. Upload, 6. release notes, 7. consent.
    let records = Records(fixture::SESSION1).count();
    let chunks = records - 2;
    let total = fixture::V2.len() as u64;
    let mut row = Row::new("upload: SMP frames in session records");
    let mut plain = Records(fixture::SESSION1_PLAIN);
    for (k, rec) in Records(fixture::SESSION1).enumerate() {
        let now = LOCK_NOW_MS + request_offset_ms(k);
        let p = plain.next().unwrap_or(&[]);
        #[cfg(not(feature = "quiet"))]
        client.seal(k, p, rec);
        let o = if k < chunks {
            io.deliver(&mut row, false, lk, owner_peer, now, rec)
        } else if k == chunks {
            print_row(&row);
            check!(
                lk.shell
                    .pending
                    .as_ref()
                    .is_some_and(|p| p.slot == 1 && p.sequence == 2 && p.matched),
                "the upload must be complete, verified and pending in slot 1"
            );
            say!(
                "ok upload: {} B in {} chunks of {} B",
                total,
                chunks,
                UPLOAD_CHUNK
            );
            // A replayed upload record: refused by the channel, nothing
            // changes.
            let first = Records(fixture::SESSION1).next().unwrap_or(&[]);
            let journal_before = *lk.journal_state();
            let o = lk.handle(owner_peer, now, recv(&mut io.rx, first), &mut io.out);
            core::hint::black_box(o);
            #[cfg(not(feature = "quiet"))]
            check!(
                matches!(client::answer(io.answer(&o), "replay"),
                    keyway_smp::Answer::Err(e) if e.refusal == Some(keyway_smp::Refusal::RecordRefused))
                    && *lk.journal_state() == journal_before,
                "a replayed upload record must be refused and change nothing",
            );
            say!(
                "ok replay: the first upload record again is refused (RecordRefused), nothing changed"
            );
            io.step(
                "release notes (served; consent needs them)",
                lk,
                owner_peer,
                now,
                rec,
            )
        } else {
            io.step("consent (stored, slot 1 armed)", lk, owner_peer, now, rec)
        };
        check!(o.len > 0, "no answer");
        #[cfg(not(feature = "quiet"))]
        {
            let a = client.open(k, io.answer(&o));
            let want_off = (((k + 1) * UPLOAD_CHUNK) as u64).min(total);
            let ok = if k < chunks {
                matches!(a, keyway_smp::Answer::Ok(keyway_smp::Response::Upload(u))
                    if u.off == want_off && u.matched == (k + 1 == chunks).then_some(true))
            } else if k == chunks {
                let ok = matches!(a, keyway_smp::Answer::Ok(keyway_smp::Response::Notes(n))
                    if n.sequence == 2 && n.version == "1.2.0" && n.notes.contains("release 2"));
                if ok {
                    say!("ok notes: v1.2.0 (seq 2), its release notes served to the owner");
                }
                ok
            } else {
                matches!(a, keyway_smp::Answer::Ok(keyway_smp::Response::Consent(c))
                    if c.update.is_some_and(|u| u.sequence == 2 && u.state == keyway_smp::keyway_group::UpdateState::Installing))
                    && o.event
                        == (Event::Consent {
                            accept: true,
                            by: owner_id,
                        })
            };
            if !ok {
                #[cfg(feature = "verbose")]
                hprintln!("FAIL: request {}: {:?}", k, a);
                hprintln!("FAIL: request {}", k);
                fail("unexpected answer");
            }
        }
    }
    {
        // The owner's consent (the answer and the event above) armed the
        // install at once (the bolt is withdrawn), which spends it: the
        // store holds none, so a trial that reverts waits for a new one.
        check!(
            agent(lk).state().consent().is_none()
                && lk.journal_state().trial == TrialState::Pending { slot: 1 },
            "consent spent by arming, slot 1 pending",
        );
    }
    say!(
        "ok consent: given for seq 2 by the owner, spent by arming; journal Pending {{ slot: 1 }}"
    );

    // 8. Reboot, 9. confirm.
    let now = LOCK_NOW_2_MS - 1_000;
    let r =
        io.m.step("reboot: reset + boot::boot starts the trial", || {
            lk.reset(seed, rng(LOCK_RNG_SEED_2), 2)?;
            lk.boot(now)
        });
    let b = must("reboot", r);
    check!(
        b.decision.boot == Boot::Slot(1)
            && matches!(b.decision.reason, Reason::StartTrial { slot: 1, .. })
            && b.running.map(|i| i.sequence) == Some(2),
        "reboot: the trial of slot 1 (seq 2)",
    );
    check!(
        agent(lk).state().owner(&owner_id).is_some() && agent(lk).state().consent().is_none(),
        "the owner must survive the reboot, and the spent consent stay spent",
    );
    say!(
        "ok reboot: Slot(1) (StartTrial {{ slot: 1 }}), running seq 2; owner reopened from the flash, no consent"
    );
    let r =
        io.m.step("confirm (self-test passed)", || lk.confirm(now, 2));
    let slot = must("confirm", r);
    let s = *lk.journal_state();
    check!(
        slot == 1
            && s.trial == TrialState::Confirmed
            && s.floor == Some(2)
            && agent(lk).state().consent().is_none(),
        "confirm: slot 1 confirmed, floor 2, no consent",
    );
    say!("ok confirm: slot 1, floor 2, no consent");

    // 10. A new session.
    #[allow(unused_mut, clippy::let_unit_value)] // the `quiet` build has no client
    let mut client = handshake(io, lk, owner_peer, LOCK_NOW_2_MS, owner_id, &AGAIN);
    say!("ok session after the reboot: msg2, msg4 as on the host");

    // 11. The log export.
    let mut row = Row::new("log export: SMP frames in session records");
    let mut len = 0usize;
    let mut plain = Records(fixture::SESSION2_PLAIN);
    let mut done = false;
    for (k, rec) in Records(fixture::SESSION2).enumerate() {
        let now = LOCK_NOW_2_MS + request_offset_ms(k);
        let p = plain.next().unwrap_or(&[]);
        #[cfg(not(feature = "quiet"))]
        client.seal(k, p, rec);
        let o = if done {
            io.step(
                "log request past the end (SMP error answer)",
                lk,
                owner_peer,
                now,
                rec,
            )
        } else {
            io.deliver(&mut row, false, lk, owner_peer, now, rec)
        };
        check!(o.len > 0, "no answer to a log request");
        core::hint::black_box(o);
        if done {
            #[cfg(not(feature = "quiet"))]
            {
                let a = client.open(k, io.answer(&o));
                check!(
                    matches!(a, keyway_smp::Answer::Err(e) if e.rc == Some(keyway_smp::MgmtErr::Inval as u64)),
                    "a log request past the end must get an SMP error body with rc 3 (EINVAL)",
                );
            }
            say!("ok refusal: a log request past the end gets an SMP error answer (rc 3)");
            break;
        }
        // The client's side: the data out of the sealed answer. The
        // quiet build has no client: it reads the export's progress from
        // the lock instead (the same requests, the same answers).
        #[cfg(not(feature = "quiet"))]
        {
            let a = client.open(k, io.answer(&o));
            let keyway_smp::Answer::Ok(keyway_smp::Response::Log(rsp)) = a else {
                fail("log answer")
            };
            check!(
                rsp.off == len as u64
                    && !rsp.data.is_empty()
                    && len + rsp.data.len() <= export.len(),
                "log chunks in order",
            );
            export[len..len + rsp.data.len()].copy_from_slice(rsp.data);
            len += rsp.data.len();
            done = len as u64 >= rsp.len;
        }
        #[cfg(feature = "quiet")]
        {
            let (pos, total) = lk.export_progress();
            len = pos as usize;
            done = pos >= total;
        }
        if done {
            print_row(&row);
        }
    }
    check!(done, "the export must end within the recorded requests");
    #[cfg(not(feature = "quiet"))]
    {
        check_export(&export[..len], lk, seed);
        say!(
            "ok log export: {} B; head signed by the device over the chain head ({} events)",
            len,
            lk.shell.log.next_seq()
        );
    }
    len
}

/// One recorded session handshake: msg1 to msg4 (the client's frames,
/// the host's answers), the client's seed, the two rows' names and what a
/// failure says.
struct Handshake {
    msgs: [&'static [u8]; 4],
    seed: u64,
    rows: [&'static str; 2],
    what: &'static str,
}

/// Step 4's handshake.
const FIRST: Handshake = Handshake {
    msgs: [fixture::MSG1, fixture::MSG2, fixture::MSG3, fixture::MSG4],
    seed: CLIENT_HS_SEED,
    rows: [
        "session: msg1 -> msg2",
        "session: msg3 -> msg4 (owner from the store)",
    ],
    what: "the session must open for the owner",
};

/// Step 10's, after the reboot.
const AGAIN: Handshake = Handshake {
    msgs: [
        fixture::MSG1B,
        fixture::MSG2B,
        fixture::MSG3B,
        fixture::MSG4B,
    ],
    seed: CLIENT_HS_SEED_2,
    rows: ["session again: msg1 -> msg2", "session again: msg3 -> msg4"],
    what: "the session must open for the owner (after the reboot)",
};

/// The `quiet` build has no client.
#[cfg(feature = "quiet")]
type Client = ();
#[cfg(not(feature = "quiet"))]
use client::Client;

/// A session handshake with the owner at `now` (msg1 -> msg2, msg3 ->
/// msg4, each a measured row): the session must open for the owner; the
/// checked build's client checks the lock's messages against the host's
/// and returns in the session.
fn handshake(
    io: &mut Radio,
    lk: &mut lock::Lock,
    peer: keyway_agent::limits::PeerId,
    now: u64,
    owner: keyway_agent::store::KeyId,
    h: &Handshake,
) -> Client {
    let [msg1, msg2, msg3, msg4] = h.msgs;
    let o = io.step(h.rows[0], lk, peer, now, msg1);
    check!(o.len > 0, "no answer to msg1");
    #[cfg(not(feature = "quiet"))]
    let hs = client::handshake1(
        h.seed,
        msg1,
        io.answer(&o),
        msg2,
        &agent(lk).device_public_key(),
        msg3,
    );
    let o = io.step(h.rows[1], lk, peer, now, msg3);
    check!(
        o.event == keyway_agent::agent::Event::SessionOpened { owner },
        h.what
    );
    #[cfg(not(feature = "quiet"))]
    return client::handshake3(hs, io.answer(&o), msg4);
    #[cfg(feature = "quiet")]
    let _ = (msg2, msg4);
}

/// Whether the lock's answer is a Pake2 with the host's message `want`.
#[cfg(not(feature = "quiet"))]
/// The lock's agent (it runs once the lock is powered on).
fn agent<'l, 'a>(
    lk: &'l lock::Lock<'a>,
) -> &'l keyway_agent::agent::Agent<lock::Shared<'a>, { lock::SESSIONS }> {
    lk.agent().unwrap_or_else(|| fail("no agent"))
}

/// The radio's receive buffer and the agent's answer buffer, and the
/// meter that measures every delivery.
struct Radio<'m> {
    m: &'m mut Meter,
    rx: [u8; RX_MAX],
    out: [u8; keyway_agent::agent::OUT_LEN],
}

#[cfg(not(feature = "baseline"))]
impl Radio<'_> {
    /// Delivers one received frame to the lock (its event loop's one call
    /// site), measured into `row` (printed as its own row if `print`).
    #[inline(never)]
    fn deliver(
        &mut self,
        row: &mut Row,
        print: bool,
        lk: &mut lock::Lock,
        peer: keyway_agent::limits::PeerId,
        now: u64,
        frame: &[u8],
    ) -> keyway_agent::agent::Outcome {
        let (rx, out) = (&mut self.rx, &mut self.out);
        let o = self
            .m
            .call(row, || lk.handle(peer, now, recv(rx, frame), out));
        if print {
            print_row(row);
        }
        o
    }

    /// [`Radio::deliver`] as its own row, `name`, printed.
    fn step(
        &mut self,
        name: &'static str,
        lk: &mut lock::Lock,
        peer: keyway_agent::limits::PeerId,
        now: u64,
        frame: &[u8],
    ) -> keyway_agent::agent::Outcome {
        self.deliver(&mut Row::new(name), true, lk, peer, now, frame)
    }

    /// A pairing's Pake1 from `peer` (step `name`): the lock must answer
    /// with the host's Pake2, `pake2`.
    fn pake1(
        &mut self,
        name: &'static str,
        lk: &mut lock::Lock,
        peer: keyway_agent::limits::PeerId,
        now: u64,
        pake1: &[u8],
        pake2: &[u8],
    ) {
        let o = self.step(name, lk, peer, now, pake1);
        check!(o.len > 0, "no answer to Pake1");
        #[cfg(not(feature = "quiet"))]
        check!(
            matches!(client::answer(self.answer(&o), "pake2"),
                keyway_smp::Answer::Ok(keyway_smp::Response::PakeStart(a)) if a.msg == pake2),
            "Pake2 differs from the host's"
        );
    }

    /// The lock's answer that gave `o`.
    fn answer(&self, o: &keyway_agent::agent::Outcome) -> &[u8] {
        &self.out[..o.len]
    }
}

/// The frame as the radio received it, in the lock's receive buffer.
#[cfg(not(feature = "baseline"))]
fn recv<'a>(rx: &'a mut [u8; RX_MAX], frame: &[u8]) -> &'a [u8] {
    let Some(to) = rx.get_mut(..frame.len()) else {
        fail("a recorded frame is larger than RX_MAX")
    };
    to.copy_from_slice(frame);
    to
}
