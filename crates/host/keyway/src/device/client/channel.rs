//! The owner's secure channel at the client: pairing by setup code, the
//! session handshake, and sealed requests (see the module doc of
//! [`super`] for the protocol and its resend rules).

use super::*;

/// The secure channel's state at the client.
pub(super) struct Channel {
    /// The owner key as the channel signs with it.
    pub(super) owner: keyway_channel::SigningKey,
    /// The lock's device key from pairing: set, every call runs sealed.
    pub(super) lock_key: Option<[u8; 32]>,
    /// The session, once a handshake finished.
    pub(super) session: Option<ClientSession>,
    pub(super) rng: ChaCha20Rng,
    pub(super) clock: Clock,
    pub(super) counts: ChannelCounts,
}

/// What the channel did so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ChannelCounts {
    /// Handshakes finished.
    pub handshakes: u64,
    /// Sealed requests whose answer opened.
    pub sealed: u64,
    /// Requests sent again after the lock's authenticated stale status.
    pub stale_resends: u64,
    /// Handshakes run again after the lock's `UnknownSession`.
    pub session_restarts: u64,
    /// Requests sent anew after the lock's `RecordRefused` (a lost answer
    /// and the transport's resend of the same record).
    pub record_resends: u64,
}

impl std::fmt::Debug for Channel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Channel")
            .field(
                "lock_key",
                &self.lock_key.map(|k| keyway_vendor::keys::hex(&k)),
            )
            .field("session", &self.session)
            .field("counts", &self.counts)
            .finish_non_exhaustive()
    }
}

/// What pairing with the setup code learnt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PairingReport {
    /// The lock's device Ed25519 public key, authenticated by the code.
    pub device_key: [u8; 32],
    /// The owner's key id as the lock stored it.
    pub key_id: [u8; 8],
    /// Owners the lock has now.
    pub owners: u64,
}

/// The bytes a sealed request adds around its inner frame: the outer
/// header, the `{"rec": bstr}` wrapping (map head, key, a 3-byte bstr
/// head) and the record's overhead.
pub(super) const SEALED_OUTER: usize = keyway_smp::HEADER_LEN + 8 + REQUEST_OVERHEAD;
/// The longest inner request frame the lock opens (keyway-agent's
/// `MAX_SEALED_REQUEST`).
pub const MAX_SEALED_REQUEST: usize = MAX_BODY - 8 - REQUEST_OVERHEAD;

impl<T: Transport> Client<T> {
    pub(super) fn channel_mut(&mut self, what: &str) -> Result<&mut Channel, DeviceError> {
        self.channel.as_mut().ok_or_else(|| DeviceError::Usage {
            what: what.to_owned(),
            why: "the secure channel needs the owner key (--owner-key)".into(),
        })
    }

    /// Pairs this owner key with the lock by its setup code (the lock's
    /// presence window must be open): SPAKE2+ proves both sides hold the
    /// code, then the owner's key and `name` go to the lock and the lock's
    /// device key comes back, both sealed under the PAKE's keys. Keep
    /// [`PairingReport::device_key`] (the paired-lock file) and pass it to
    /// [`Client::with_paired_lock`].
    ///
    /// A wrong code is the lock's typed refusal [`Refusal::BadSetupCode`]
    /// (kw-rc 15): the client sees the lock's confirmation fail, and sends
    /// a `pake3` that cannot confirm so that the lock ends the run at once
    /// (the person may retry right away, from any address); if the lock
    /// does not answer that with kw-rc 15, the error is the client's own
    /// [`keyway_channel::Error::WrongCode`]. Either way
    /// [`DeviceError::wrong_setup_code`] holds.
    pub fn pair_with_code(
        &mut self,
        code: &SetupCode,
        name: &str,
    ) -> Result<PairingReport, DeviceError> {
        const WHAT: &str = "pair";
        let owner_pk = self.channel_mut(WHAT)?.owner.verifying_key().to_bytes();
        let b = self.call_plain(WHAT, &Request::PakeParams)?;
        let params: keyway_group::PakeParams = typed(WHAT, &b)?;
        let ch = self.channel_mut(WHAT)?;
        let (mut pairing, pake1) =
            ClientPairing::start(code, params.msg, &mut ch.rng).map_err(|error| {
                DeviceError::Channel {
                    what: WHAT.into(),
                    error,
                }
            })?;
        let b = self.call_plain(
            WHAT,
            &Request::PakeStart(keyway_group::PakeStart { msg: &pake1 }),
        )?;
        let pake2: keyway_group::PakeStartRsp = typed(WHAT, &b)?;
        let mut pake3 = [0u8; PAKE3_LEN];
        match pairing.pake2(pake2.msg, &owner_pk, name, &mut pake3) {
            Ok(()) => {}
            Err(keyway_channel::Error::WrongCode) => {
                // End the lock's run: a pake3 that cannot confirm.
                self.channel_mut(WHAT)?.rng.fill_bytes(&mut pake3);
                let end = self.call_plain(
                    WHAT,
                    &Request::PakeFinish(keyway_group::PakeFinish { msg: &pake3 }),
                );
                return Err(match end {
                    Err(e) if e.refusal() == Some(Refusal::BadSetupCode) => e,
                    _ => DeviceError::Channel {
                        what: WHAT.into(),
                        error: keyway_channel::Error::WrongCode,
                    },
                });
            }
            Err(error) => {
                return Err(DeviceError::Channel {
                    what: WHAT.into(),
                    error,
                });
            }
        }
        let b = self.call_plain(
            WHAT,
            &Request::PakeFinish(keyway_group::PakeFinish { msg: &pake3 }),
        )?;
        let done: keyway_group::PakeFinishRsp = typed(WHAT, &b)?;
        let lock = pairing
            .pake4(done.msg)
            .map_err(|error| DeviceError::Channel {
                what: WHAT.into(),
                error,
            })?;
        let mine = keyway_channel::key_id(&owner_pk);
        same_key_id(WHAT, "pairing", &done.key_id, "this owner key is", &mine)?;
        Ok(PairingReport {
            device_key: lock.device_public_key,
            key_id: done.key_id,
            owners: done.owners,
        })
    }

    /// Opens a session with the paired lock (ids 13, 14): the lock proves
    /// the device key learnt at pairing, the owner proves its key. Calls
    /// open one when they need it; this opens a new one now.
    pub fn open_session(&mut self) -> Result<(), DeviceError> {
        const WHAT: &str = "session";
        let ch = self.channel_mut(WHAT)?;
        let Some(lock_key) = ch.lock_key else {
            return Err(DeviceError::Usage {
                what: WHAT.into(),
                why: "no paired lock: pair with the setup code first".into(),
            });
        };
        ch.session = None;
        let (hs, msg1) = ClientHandshake::start(&mut ch.rng);
        let b = self.call_plain(
            WHAT,
            &Request::SessionStart(keyway_group::SessionStart { msg: &msg1 }),
        )?;
        let msg2: keyway_group::SessionStartRsp = typed(WHAT, &b)?;
        let ch = self.channel_mut(WHAT)?;
        let mut msg3 = [0u8; MSG3_LEN];
        let channel_err = |error| DeviceError::Channel {
            what: WHAT.into(),
            error,
        };
        let mut session = hs
            .msg2(msg2.msg, &lock_key, &ch.owner, &mut msg3)
            .map_err(channel_err)?;
        let b = self.call_plain(
            WHAT,
            &Request::SessionFinish(keyway_group::SessionFinish { msg: &msg3 }),
        )?;
        let msg4: keyway_group::SessionFinishRsp = typed(WHAT, &b)?;
        let mut msg4 = msg4.msg.to_vec();
        let ch = self.channel_mut(WHAT)?;
        let now = (ch.clock)();
        session.open_response(now, &mut msg4).map_err(channel_err)?;
        ch.session = Some(session);
        ch.counts.handshakes += 1;
        Ok(())
    }

    /// [`Client::exchange`] sealed: the inner `frame` goes as a record in
    /// the session (opened first if there is none), and only a record that
    /// opens as the lock's answer to it counts; its inner frame is then
    /// checked like a plain answer. The lock's stale status sends it once
    /// more with a new counter; its `UnknownSession` refusal opens a new
    /// session and sends it once more; its `RecordRefused` refusal (the
    /// transport resent a record whose answer was lost) sends it once more
    /// with a new counter. Any other plain answer is an error.
    pub(super) fn sealed_exchange(&mut self, out: &Outgoing<'_>) -> Result<Vec<u8>, DeviceError> {
        out.fits(MAX_SEALED_REQUEST, "the room in a sealed record")?;
        let (what, frame) = (out.what, out.frame.as_slice());
        let channel_err = |error| DeviceError::Channel {
            what: what.to_owned(),
            error,
        };
        let mut stale_resend = true;
        let mut new_session = true;
        let mut record_resend = true;
        loop {
            if self.channel_mut(what)?.session.is_none() {
                self.open_session()?;
            }
            let ch = self.channel_mut(what)?;
            let now = (ch.clock)();
            let Some(session) = ch.session.as_mut() else {
                continue;
            };
            let mut rec = vec![0u8; frame.len() + REQUEST_OVERHEAD];
            let (_, n) = session
                .seal_request(now, frame, &mut rec)
                .map_err(channel_err)?;
            rec.truncate(n);
            let outer =
                match self.call_plain(what, &Request::Sealed(keyway_group::Sealed { msg: &rec })) {
                    Ok(b) => b,
                    Err(e) if e.refusal() == Some(Refusal::UnknownSession) && new_session => {
                        // The lock restarted or the session expired: nothing ran.
                        new_session = false;
                        let ch = self.channel_mut(what)?;
                        ch.session = None;
                        ch.counts.session_restarts += 1;
                        continue;
                    }
                    Err(e) if e.refusal() == Some(Refusal::RecordRefused) && record_resend => {
                        // The lock took this record for a replay: over UDP, the
                        // transport's resend of a record whose answer was lost
                        // (the first copy ran). Send it anew, once, with a new
                        // counter: owner commands set a state, so running one
                        // twice leaves the state the owner asked for.
                        record_resend = false;
                        self.channel_mut(what)?.counts.record_resends += 1;
                        continue;
                    }
                    Err(e) => return Err(e),
                };
            let sealed: keyway_group::Sealed = typed(what, &outer)?;
            let mut rec = sealed.msg.to_vec();
            let ch = self.channel_mut(what)?;
            let now = (ch.clock)();
            let Some(session) = ch.session.as_mut() else {
                continue;
            };
            let opened = match session.open_response(now, &mut rec) {
                Ok(o) => o,
                Err(keyway_channel::Error::StaleAtLock) if stale_resend => {
                    // Authenticated: the lock did not run it; the clock is
                    // re-synced and a new counter goes.
                    stale_resend = false;
                    ch.counts.stale_resends += 1;
                    continue;
                }
                Err(e) => return Err(channel_err(e)),
            };
            ch.counts.sealed += 1;
            let inner = rec.get(opened.payload).unwrap_or(&[]);
            return out.check(inner);
        }
    }
}
