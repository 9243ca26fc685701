//! Sessions (ids 13, 14, 15): the SIGMA-I handshake with a paired
//! owner's key and the sealed records that carry an owner's requests
//! (see the [agent doc](super)).

use super::*;

impl<F: NorFlash, const N: usize> Agent<F, N> {
    #[inline(never)]
    pub(super) fn session_start<R: CryptoRng + ?Sized>(
        &mut self,
        ctx: Ctx,
        rng: &mut R,
        hdr: &Header,
        msg1: &[u8],
        out: &mut [u8],
    ) -> usize {
        // Its own msg1 again while that handshake waits for msg3: the
        // answer was lost or late, so the same msg2, the handshake kept.
        let (peer, sid, sent1, sent2) = &self.hs_sent;
        if *peer == ctx.peer
            && msg1 == sent1
            && self.handshakes.get((*sid & 0xff) as usize) == Some(&Some((*peer, *sid)))
        {
            return ok_frame(
                out,
                hdr,
                &Response::SessionStart(keyway_group::SessionStartRsp { msg: sent2 }),
            );
        }
        // One unfinished handshake per peer: its new one replaces its old.
        for h in self.handshakes.iter_mut() {
            if let Some((p, sid)) = *h
                && p == ctx.peer
            {
                if !self.table.is_session(sid, ctx.now.ms) {
                    self.table.close(sid);
                }
                *h = None;
            }
        }
        let mut msg2 = [0u8; keyway_channel::handshake::MSG2_LEN];
        match self
            .table
            .handshake1(ctx.now.ms, rng, &self.device_key, msg1, &mut msg2)
        {
            Ok(sid) => {
                if let Some(h) = self.handshakes.get_mut((sid & 0xff) as usize) {
                    *h = Some((ctx.peer, sid));
                }
                // (`handshake1` took exactly `MSG1_LEN` bytes.)
                if let Ok(m) = <[u8; MSG1_LEN]>::try_from(msg1) {
                    self.hs_sent = (ctx.peer, sid, m, msg2);
                }
                ok_frame(
                    out,
                    hdr,
                    &Response::SessionStart(keyway_group::SessionStartRsp { msg: &msg2 }),
                )
            }
            Err(keyway_channel::Error::Busy) => refuse_frame(out, hdr, Refusal::SessionsFull, true),
            Err(_) => error_frame(out, hdr, MgmtErr::Inval, None, false),
        }
    }

    #[inline(never)]
    pub(super) fn session_finish(
        &mut self,
        ctx: Ctx,
        hdr: &Header,
        msg3: &[u8],
        out: &mut [u8],
    ) -> Outcome {
        let mut msg4 = [0u8; MSG4_LEN];
        let owners = self.store.state();
        let result = self.table.handshake3(
            ctx.now.ms,
            msg3,
            |kid| owners.owner(kid).map(|o| *o.key()),
            &mut msg4,
        );
        let (len, event) = match result {
            Ok((sid, owner)) => {
                if let Some(h) = self.handshakes.get_mut((sid & 0xff) as usize) {
                    *h = None;
                }
                (
                    ok_frame(
                        out,
                        hdr,
                        &Response::SessionFinish(keyway_group::SessionFinishRsp { msg: &msg4 }),
                    ),
                    Event::SessionOpened { owner },
                )
            }
            Err(keyway_channel::Error::Refused) => (
                refuse_frame(out, hdr, Refusal::NotAuthorized, true),
                Event::None,
            ),
            Err(
                keyway_channel::Error::UnknownSession | keyway_channel::Error::UnexpectedMessage,
            ) => (
                refuse_frame(out, hdr, Refusal::UnknownSession, true),
                Event::None,
            ),
            Err(_) => (
                error_frame(out, hdr, MgmtErr::Inval, None, false),
                Event::None,
            ),
        };
        Outcome { len, event }
    }

    /// A sealed record: its answer, and whether it opened under a
    /// session's key (an owner's traffic, not charged to the peer).
    // Kept out of `handle` so its buffers are on the stack only on
    // this path (the paths' frames are not merged into one).
    #[inline(never)]
    pub(super) fn sealed<D: Device>(
        &mut self,
        ctx: Ctx,
        device: &mut D,
        hdr: &Header,
        rec: &[u8],
        out: &mut [u8],
    ) -> (Outcome, bool) {
        // The record is opened in place here, and the answer sealed here
        // after the request in it has run.
        let mut space = [0u8; MAX_BODY];
        let Some(buf) = space.get_mut(..rec.len()) else {
            return (Outcome::refused(out, hdr, Refusal::RecordRefused), false);
        };
        buf.copy_from_slice(rec);
        let now = ctx.now.ms;
        let opened = match self.table.open_request(now, buf) {
            Ok(o) => o,
            Err(keyway_channel::Error::Stale { .. }) => {
                // Authenticated "stale": the client re-syncs and sends a
                // new request; this one did not run.
                let sid = session_id_of(rec).unwrap_or(0);
                let counter = rec
                    .get(4..12)
                    .and_then(|c| c.try_into().ok())
                    .map_or(0, u64::from_le_bytes);
                let mut sealed = [0u8; RESPONSE_OVERHEAD];
                let len = match self.table.seal_response(
                    now,
                    sid,
                    counter,
                    ResponseStatus::Stale,
                    &[],
                    &mut sealed,
                ) {
                    Ok(n) => ok_frame(
                        out,
                        hdr,
                        &Response::Sealed(keyway_group::Sealed { msg: &sealed[..n] }),
                    ),
                    Err(_) => refuse_frame(out, hdr, Refusal::RecordRefused, true),
                };
                return (Outcome::answer(len), true);
            }
            Err(keyway_channel::Error::UnknownSession) => {
                return (Outcome::refused(out, hdr, Refusal::UnknownSession), false);
            }
            Err(_) => {
                return (Outcome::refused(out, hdr, Refusal::RecordRefused), false);
            }
        };
        if self.store.state().owner(&opened.owner).is_none() {
            self.table.close_owner(&opened.owner);
            return (Outcome::refused(out, hdr, Refusal::UnknownSession), false);
        }
        // The inner request: a whole SMP frame, run as the owner.
        // Its answer is written into `out` first (no third buffer), sealed
        // from there into the buffer the request was in (no longer
        // needed), then framed back into `out`.
        let who = Authority::Owner(opened.owner);
        let payload = buf.get(opened.payload.clone()).unwrap_or(&[]);
        let limit = out.len().min(MAX_SEALED_ANSWER);
        let (n, event) = match out.get_mut(..limit) {
            Some(o) => self.inner(ctx, device, payload, who, o),
            None => (0, Event::None),
        };
        let answer = out.get(..n).unwrap_or(&[]);
        let len = match self.table.seal_response(
            now,
            opened.session,
            opened.counter,
            ResponseStatus::Ok,
            answer,
            &mut space,
        ) {
            Ok(m) => ok_frame(
                out,
                hdr,
                &Response::Sealed(keyway_group::Sealed {
                    msg: space.get(..m).unwrap_or(&[]),
                }),
            ),
            Err(_) => refuse_frame(out, hdr, Refusal::RecordRefused, true),
        };
        // An owner removed (perhaps the sender itself) loses its sessions
        // once the answer is sealed.
        if let Event::OwnerRemoved { key_id, .. } = event {
            self.table.close_owner(&key_id);
        }
        (Outcome { len, event }, true)
    }

    /// Runs a request frame that came sealed; writes its answer frame.
    #[inline(never)]
    pub(super) fn inner<D: Device>(
        &mut self,
        ctx: Ctx,
        device: &mut D,
        frame: &[u8],
        who: Authority,
        out: &mut [u8],
    ) -> (usize, Event) {
        let (hdr, body) = match split_request(frame, MAX_BODY) {
            Ok(v) => v,
            Err((Some(h), e)) => {
                return (error_frame(out, &h, frame_rc(&e), None, false), Event::None);
            }
            Err((None, _)) => return (0, Event::None),
        };
        let req = match Request::decode(hdr.op, hdr.group, hdr.id, body) {
            Ok(r) => r,
            Err(RequestError::NotSupported { .. }) => {
                return (
                    error_frame(out, &hdr, MgmtErr::NotSup, None, false),
                    Event::None,
                );
            }
            Err(RequestError::Body(_)) => {
                return (
                    error_frame(out, &hdr, MgmtErr::Inval, None, false),
                    Event::None,
                );
            }
        };
        if let Err(d) = permits(need(hdr.op, hdr.group, hdr.id), who, false) {
            return (self.denied(out, &hdr, &req, d), Event::None);
        }
        let call = Authorized {
            request: &req,
            by: who,
        };
        let o = self.command(ctx, device, &hdr, call, out);
        (o.len, o.event)
    }
}
