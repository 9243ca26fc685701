//! The answer frames the agent writes: successes, SMP errors and typed
//! refusals, each with the SMP code it travels with.

use super::*;

pub(super) fn verdict_secs(v: Verdict) -> u64 {
    match v {
        Verdict::Allowed => 0,
        Verdict::Limited { retry_after_ms } => retry_after_ms.div_ceil(1000),
    }
}

/// The SMP code a refusal travels with.
pub(super) fn rc_of(r: &Refusal) -> MgmtErr {
    match r {
        Refusal::RateLimited { .. } | Refusal::PairingBusy | Refusal::SessionsFull => MgmtErr::Busy,
        Refusal::UnknownSession
        | Refusal::UnknownOwner
        | Refusal::NothingPending
        | Refusal::NotProvisioned
        | Refusal::NoPairing
        | Refusal::NoExport => MgmtErr::NoEnt,
        Refusal::OwnersFull | Refusal::NotesNotOffered => MgmtErr::BadState,
        _ => MgmtErr::AccessDenied,
    }
}

/// The SMP code a frame the header check refused is answered with.
pub(super) fn frame_rc(e: &FrameError) -> MgmtErr {
    match e {
        FrameError::TooLong { .. } => MgmtErr::MsgSize,
        FrameError::TooNew { .. } => MgmtErr::TooNew,
        _ => MgmtErr::Inval,
    }
}

/// Writes an error answer to `hdr` into `out`; 0 if it does not fit.
pub(super) fn error_frame(
    out: &mut [u8],
    hdr: &Header,
    rc: MgmtErr,
    refusal: Option<Refusal>,
    typed: bool,
) -> usize {
    let refusal = refusal.filter(|_| typed);
    let body = keyway_smp::ErrorRsp {
        rc: Some(rc as u64),
        group: None,
        rsn: Some(refusal.map_or(rc.words(), |r| r.words())),
        refusal,
    };
    keyway_smp::answer_frame(out, hdr, |w| body.encode(w)).unwrap_or(0)
}

pub(super) fn refuse_frame(out: &mut [u8], hdr: &Header, r: Refusal, typed: bool) -> usize {
    error_frame(out, hdr, rc_of(&r), Some(r), typed)
}

pub(super) fn ok_frame(out: &mut [u8], hdr: &Header, rsp: &Response<'_>) -> usize {
    keyway_smp::answer_frame(out, hdr, |w| rsp.encode(w)).unwrap_or(0)
}
