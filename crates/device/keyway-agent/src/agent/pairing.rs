//! Pairing (ids 11 and 12): the PBKDF parameters, `Pake1`/`Pake2` and
//! `Pake3`/`Pake4` against the store's SPAKE2+ verifier, bound to the
//! peer that began the run (see the [agent doc](super)).

use super::*;

/// A `StoredVerifier` from the store's copy (`None`: not the channel's
/// salt length, so not a verifier the channel made).
pub(super) fn stored_verifier(v: &Verifier) -> Option<StoredVerifier> {
    if v.salt().len() != SALT_LEN {
        return None;
    }
    let mut b = [0u8; VERIFIER_LEN];
    b[..32].copy_from_slice(v.w0());
    b[32..64].copy_from_slice(v.l());
    b[64..64 + SALT_LEN].copy_from_slice(v.salt());
    b[64 + SALT_LEN..].copy_from_slice(&v.iterations().to_le_bytes());
    StoredVerifier::from_bytes(&b).ok()
}

/// The store's copy of a channel verifier.
pub fn store_verifier(v: &StoredVerifier) -> Verifier {
    let b = v.to_bytes();
    let mut w0 = [0u8; 32];
    w0.copy_from_slice(&b[..32]);
    let mut l = [0u8; 32];
    l.copy_from_slice(&b[32..64]);
    // A 16-byte salt always fits the store's 32.
    Verifier::new(w0, l, &b[64..64 + SALT_LEN], v.iterations()).unwrap_or_else(|| {
        unreachable!("SALT_LEN is at most MAX_SALT");
    })
}

const _: () = assert!(SALT_LEN <= store::MAX_SALT);

impl<F: NorFlash, const N: usize> Agent<F, N> {
    pub(super) fn verifier(&self) -> Option<StoredVerifier> {
        self.store.state().verifier().and_then(stored_verifier)
    }

    #[inline(never)]
    pub(super) fn pake_params(&self, hdr: &Header, out: &mut [u8]) -> usize {
        let Some(v) = self.verifier() else {
            return refuse_frame(out, hdr, Refusal::NotProvisioned, true);
        };
        let params = v.params();
        ok_frame(
            out,
            hdr,
            &Response::PakeParams(keyway_group::PakeParams { msg: &params }),
        )
    }

    /// The peer the pairing run is bound to, if the run is still live.
    pub(super) fn run_peer(&self, now_ms: u64) -> Option<PeerId> {
        self.run.peer.and_then(|(p, started)| {
            (now_ms.saturating_sub(started) <= self.config.pairing_timeout_ms).then_some(p)
        })
    }

    pub(super) fn guard_refusal(e: keyway_channel::Error) -> Option<Refusal> {
        match e {
            keyway_channel::Error::Backoff { retry_in_ms } => Some(Refusal::RateLimited {
                retry_s: retry_in_ms.div_ceil(1000),
            }),
            keyway_channel::Error::LockedOut => Some(Refusal::PairingLockedOut),
            _ => None,
        }
    }

    #[inline(never)]
    pub(super) fn pake_start<R: CryptoRng + ?Sized>(
        &mut self,
        ctx: Ctx,
        rng: &mut R,
        hdr: &Header,
        pake1: &[u8],
        out: &mut [u8],
    ) -> Outcome {
        let Some(verifier) = self.verifier() else {
            return Outcome::refused(out, hdr, Refusal::NotProvisioned);
        };
        if self.store.state().owner_count() >= MAX_OWNERS {
            return Outcome::refused(out, hdr, Refusal::OwnersFull);
        }
        let again = match self.run_peer(ctx.now.ms) {
            Some(p) if p != ctx.peer => {
                return Outcome::refused(out, hdr, Refusal::PairingBusy);
            }
            // Its own Pake1 again: the answer was lost, not a new guess.
            Some(_) => pake1 == self.pake_sent.0,
            None => false,
        };
        let mut event = Event::None;
        if !again {
            if let Err(e) = self.guard.check(ctx.now.ms) {
                let r = Self::guard_refusal(e).unwrap_or(Refusal::PairingLockedOut);
                return Outcome::refused(out, hdr, r);
            }
            let before = self.guard.failures();
            let result = self.run.pake.pake1(
                &verifier,
                &mut self.guard,
                ctx.now.ms,
                rng,
                pake1,
                &mut self.pake_sent.1,
            );
            self.run.peer = None;
            if let Err(e) = result {
                return match Self::guard_refusal(e) {
                    Some(r) => Outcome::refused(out, hdr, r),
                    None => Outcome::answer(error_frame(out, hdr, MgmtErr::Inval, None, false)),
                };
            }
            // The attempt is charged: make it durable before the guess can
            // be tested against Pake2.
            if self.guard.failures() > before
                && self.store.record_wrong_code(&mut self.flash).is_err()
            {
                self.run.pake = LockPairing::new();
                return Outcome::answer(error_frame(out, hdr, MgmtErr::Unknown, None, false));
            }
            self.run.peer = Some((ctx.peer, ctx.now.ms));
            // (`pake1` took exactly `PAKE1_LEN` bytes.)
            if let Ok(p) = <[u8; PAKE1_LEN]>::try_from(pake1) {
                self.pake_sent.0 = p;
            }
            event = Event::PairingAttempt {
                failures: self.guard.failures(),
            };
        }
        let msg = &self.pake_sent.1;
        let len = ok_frame(
            out,
            hdr,
            &Response::PakeStart(keyway_group::PakeStartRsp { msg }),
        );
        Outcome { len, event }
    }

    #[inline(never)]
    pub(super) fn pake_finish(
        &mut self,
        ctx: Ctx,
        hdr: &Header,
        pake3: &[u8],
        out: &mut [u8],
    ) -> Outcome {
        match self.run_peer(ctx.now.ms) {
            Some(p) if p == ctx.peer => {}
            Some(_) => {
                return Outcome::refused(out, hdr, Refusal::PairingBusy);
            }
            None => {
                self.run = Run {
                    pake: LockPairing::new(),
                    peer: None,
                };
                return Outcome::refused(out, hdr, Refusal::NoPairing);
            }
        }
        let mut pake4 = [0u8; PAKE4_LEN];
        let result = self.run.pake.pake3(
            &mut self.guard,
            pake3,
            &self.device_key.verifying_key().to_bytes(),
            &mut pake4,
        );
        self.run.peer = None;
        let owner = match result {
            Ok(o) => o,
            Err(e) => {
                let r = match e {
                    keyway_channel::Error::WrongCode => Refusal::BadSetupCode,
                    _ => Refusal::NotAuthorized,
                };
                return Outcome::refused(out, hdr, r);
            }
        };
        let paired = self.store.pair(
            &mut self.flash,
            &owner.public_key,
            owner.name(),
            ctx.now.time,
            PairedBy::SetupCode,
        );
        let key_id = match paired {
            Ok(id) => id,
            Err(store::Error::OwnersFull) => {
                return Outcome::refused(out, hdr, Refusal::OwnersFull);
            }
            Err(store::Error::KeyIdTaken { .. }) => {
                return Outcome::refused(out, hdr, Refusal::NotAuthorized);
            }
            Err(_) => return Outcome::answer(error_frame(out, hdr, MgmtErr::Unknown, None, false)),
        };
        // The count is back to zero in the guard; the store follows (a
        // failure here only leaves a stricter count for the next boot).
        let _ = self.store.clear_wrong_codes(&mut self.flash);
        self.close_window();
        let len = ok_frame(
            out,
            hdr,
            &Response::PakeFinish(keyway_group::PakeFinishRsp {
                msg: &pake4,
                key_id,
                owners: self.store.state().owner_count() as u64,
            }),
        );
        Outcome {
            len,
            event: Event::OwnerPaired { key_id },
        }
    }
}
