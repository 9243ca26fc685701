//! Records: the requests and responses of an established session.
//!
//! ```text
//! request  (client -> lock): sid u32 LE || counter u64 LE || AEAD_c2l(lock time estimate u64 LE || payload) || tag[16]
//!          nonce = counter, AAD = "Q" || sid || counter
//! response (lock -> client): sid u32 LE || AEAD_l2c(status u8 || lock clock u64 LE || payload) || tag[16]
//!          nonce = the request's counter, AAD = "R" || sid || request counter
//! ```
//!
//! Nonces are 4 zero bytes then the 64-bit counter, little-endian; each
//! direction has its own key, so the same counter never meets the same key
//! twice: request counters start at 1 and only grow, and the lock answers
//! each accepted counter at most once (counter 0 is `msg4`, the answer to
//! the handshake).
//!
//! * **Replay.** The lock accepts a request only if its counter is greater
//!   than the last one accepted ([`Error::Replay`]).
//! * **Answers are bound to their request.** A response is sealed with the
//!   request's counter as nonce and in its AAD; the client opens it only
//!   against the counter it is waiting for, so a forged, altered, replayed
//!   or mismatched answer is [`Error::Forged`] at the client, never a
//!   success.
//! * **Freshness.** Every response carries the lock's monotonic clock
//!   (ms). Every request carries the client's estimate of that clock: the
//!   last lock time it authenticated plus the time its own clock says has
//!   passed since. The lock refuses a request whose estimate is more than
//!   `freshness_ms` (5 s by default, the order of Matter's timed
//!   interactions) behind its clock, or more than `future_slack_ms` ahead,
//!   as [`Error::Stale`], and answers it with an authenticated
//!   [`ResponseStatus::Stale`] carrying its clock. A request held back by
//!   an attacker and played 20 s later is therefore refused; the client,
//!   re-synced by that answer, sends a new request with a new counter.
//!   (Refinement of "echo the last lock time seen": echoing the plain last
//!   value would make every request after 5 s of idleness stale; the
//!   estimate measures the request's own age.)

use crate::crypto::{self, TAG};
use crate::{Error, exact};

/// Request overhead: session id, counter, clock estimate, tag.
pub const REQUEST_OVERHEAD: usize = 4 + 8 + 8 + TAG;
/// Response overhead: session id, status, clock, tag.
pub const RESPONSE_OVERHEAD: usize = 4 + 1 + 8 + TAG;
/// `msg4`: the response to counter 0, with no payload.
pub const MSG4_LEN: usize = RESPONSE_OVERHEAD;

/// The status byte of a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ResponseStatus {
    /// The request was accepted and executed; the payload is the answer.
    Ok = 0,
    /// The request was stale and was not executed; the response carries
    /// the lock's clock. Send a new request.
    Stale = 1,
}

impl ResponseStatus {
    fn from_byte(b: u8) -> Result<Self, Error> {
        match b {
            0 => Ok(Self::Ok),
            1 => Ok(Self::Stale),
            other => Err(Error::Unsupported(other)),
        }
    }
}

fn request_aad(sid: u32, counter: u64) -> [u8; 13] {
    let mut a = [0u8; 13];
    a[0] = b'Q';
    a[1..5].copy_from_slice(&sid.to_le_bytes());
    a[5..].copy_from_slice(&counter.to_le_bytes());
    a
}

fn response_aad(sid: u32, counter: u64) -> [u8; 13] {
    let mut a = request_aad(sid, counter);
    a[0] = b'R';
    a
}

/// The session id a request or response names (its first 4 bytes).
pub fn session_id_of(msg: &[u8]) -> Result<u32, Error> {
    let head: &[u8; 4] = msg
        .get(..4)
        .and_then(|h| h.try_into().ok())
        .ok_or(Error::Length {
            expected: 4,
            actual: msg.len(),
        })?;
    Ok(u32::from_le_bytes(*head))
}

/// A request the lock opened: who sent it, and where its payload is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opened {
    /// The session it came in.
    pub session: u32,
    /// The owner that session authenticated.
    pub owner: crate::KeyId,
    /// Its counter; pass it to the response.
    pub counter: u64,
    /// Where the payload lies in the buffer the request was opened in.
    pub payload: core::ops::Range<usize>,
}

/// Lock: opens a request in place. Checks, in this order: length, counter
/// above `last` (replay), authenticity, then freshness. On success, and
/// on [`Error::Stale`], the counter counts as used (the caller moves
/// `last`): returns `(counter, estimate, payload range)`.
pub(crate) fn lock_open_request(
    key: &[u8; 32],
    sid: u32,
    last: u64,
    buf: &mut [u8],
) -> Result<(u64, u64, core::ops::Range<usize>), Error> {
    if buf.len() < REQUEST_OVERHEAD {
        return Err(Error::Length {
            expected: REQUEST_OVERHEAD,
            actual: buf.len(),
        });
    }
    let counter = u64::from_le_bytes(*exact::<8>(&buf[4..12])?);
    if counter <= last {
        return Err(Error::Replay { counter, last });
    }
    let end = buf.len() - TAG;
    let tag = *exact::<TAG>(&buf[end..])?;
    crypto::open(
        key,
        counter,
        &request_aad(sid, counter),
        &mut buf[12..end],
        &tag,
    )?;
    let estimate = u64::from_le_bytes(*exact::<8>(&buf[12..20])?);
    Ok((counter, estimate, 20..end))
}

/// Lock: seals a response to request `counter` into `out`; returns its
/// length.
pub(crate) fn lock_seal_response(
    key: &[u8; 32],
    sid: u32,
    counter: u64,
    status: ResponseStatus,
    now_ms: u64,
    payload: &[u8],
    out: &mut [u8],
) -> Result<usize, Error> {
    let len = RESPONSE_OVERHEAD + payload.len();
    if out.len() < len {
        return Err(Error::BufferTooSmall {
            needed: len,
            actual: out.len(),
        });
    }
    out[..4].copy_from_slice(&sid.to_le_bytes());
    out[4] = status as u8;
    out[5..13].copy_from_slice(&now_ms.to_le_bytes());
    out[13..13 + payload.len()].copy_from_slice(payload);
    let end = len - TAG;
    let tag = crypto::seal(key, counter, &response_aad(sid, counter), &mut out[4..end]);
    out[end..len].copy_from_slice(&tag);
    Ok(len)
}

/// The owner's client's side of an established session.
#[derive(Clone)]
pub struct ClientSession {
    sid: u32,
    c2l: [u8; 32],
    l2c: [u8; 32],
    next_counter: u64,
    outstanding: Option<u64>,
    /// The last lock clock authenticated, and the client's clock then.
    sync: Option<(u64, u64)>,
}

impl Drop for ClientSession {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.c2l);
        zeroize::Zeroize::zeroize(&mut self.l2c);
    }
}

impl core::fmt::Debug for ClientSession {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("ClientSession")
            .field("sid", &self.sid)
            .field("next_counter", &self.next_counter)
            .finish_non_exhaustive()
    }
}

/// A response the client opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientResponse {
    /// The lock's clock in the response (ms).
    pub lock_time_ms: u64,
    /// Where the payload lies in the buffer the response was opened in.
    pub payload: core::ops::Range<usize>,
}

impl ClientSession {
    /// A session after `msg3`, waiting for `msg4` (the answer to counter 0).
    pub(crate) fn new(sid: u32, c2l: [u8; 32], l2c: [u8; 32]) -> Self {
        Self {
            sid,
            c2l,
            l2c,
            next_counter: 1,
            outstanding: Some(0),
            sync: None,
        }
    }

    /// The session id the lock assigned.
    pub fn session_id(&self) -> u32 {
        self.sid
    }

    /// The client's estimate of the lock's clock at `local_now_ms`.
    pub fn lock_time_estimate(&self, local_now_ms: u64) -> u64 {
        match self.sync {
            Some((lock, local)) => lock.saturating_add(local_now_ms.saturating_sub(local)),
            None => 0,
        }
    }

    /// Seals `payload` as the next request into `out`; returns
    /// `(counter, length)`. One request is outstanding at a time: a new
    /// one abandons the previous (its answer will then fail to open).
    pub fn seal_request(
        &mut self,
        local_now_ms: u64,
        payload: &[u8],
        out: &mut [u8],
    ) -> Result<(u64, usize), Error> {
        let len = REQUEST_OVERHEAD + payload.len();
        if out.len() < len {
            return Err(Error::BufferTooSmall {
                needed: len,
                actual: out.len(),
            });
        }
        let counter = self.next_counter;
        self.next_counter = counter.checked_add(1).ok_or(Error::CounterExhausted)?;
        out[..4].copy_from_slice(&self.sid.to_le_bytes());
        out[4..12].copy_from_slice(&counter.to_le_bytes());
        out[12..20].copy_from_slice(&self.lock_time_estimate(local_now_ms).to_le_bytes());
        out[20..20 + payload.len()].copy_from_slice(payload);
        let end = len - TAG;
        let tag = crypto::seal(
            &self.c2l,
            counter,
            &request_aad(self.sid, counter),
            &mut out[12..end],
        );
        out[end..len].copy_from_slice(&tag);
        self.outstanding = Some(counter);
        Ok((counter, len))
    }

    /// Opens the answer to the outstanding request in place. Anything that
    /// does not authenticate as the lock's answer to exactly that request
    /// is [`Error::Forged`] and leaves the request outstanding (the real
    /// answer may still come). An authenticated `Stale` re-syncs the clock
    /// and is [`Error::StaleAtLock`]: the request was not executed.
    pub fn open_response(
        &mut self,
        local_now_ms: u64,
        buf: &mut [u8],
    ) -> Result<ClientResponse, Error> {
        let counter = self.outstanding.ok_or(Error::NoRequestOutstanding)?;
        if buf.len() < RESPONSE_OVERHEAD {
            return Err(Error::Length {
                expected: RESPONSE_OVERHEAD,
                actual: buf.len(),
            });
        }
        if session_id_of(buf)? != self.sid {
            return Err(Error::Forged);
        }
        let end = buf.len() - TAG;
        let tag = *exact::<TAG>(&buf[end..])?;
        crypto::open(
            &self.l2c,
            counter,
            &response_aad(self.sid, counter),
            &mut buf[4..end],
            &tag,
        )?;
        self.outstanding = None;
        let status = ResponseStatus::from_byte(buf[4])?;
        let lock_time_ms = u64::from_le_bytes(*exact::<8>(&buf[5..13])?);
        self.sync = Some((lock_time_ms, local_now_ms));
        match status {
            ResponseStatus::Ok => Ok(ClientResponse {
                lock_time_ms,
                payload: 13..end,
            }),
            ResponseStatus::Stale => Err(Error::StaleAtLock),
        }
    }
}
