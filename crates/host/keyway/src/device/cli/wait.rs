//! After an upload: wait for the lock to run the release, postpone it
//! (consent), refuse it, or time out, as text ([`UpdateOutcome`]) and typed
//! ([`Waited`], what the hub decides on).

use super::*;

/// How an update ended.
#[derive(Debug, Clone)]
pub struct UpdateOutcome {
    /// `running`, `postponed`, `refused` or `timeout`.
    pub state: &'static str,
    /// In words.
    pub message: String,
}

/// How an update ended, typed ([`wait_for`]): what the hub decides on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Waited {
    /// The image runs, confirmed.
    Running {
        /// Its version.
        version: String,
        /// Its slot.
        slot: u64,
    },
    /// The lock's policy postponed the install; it installs by itself
    /// once the reason clears.
    Postponed {
        /// Why, typed (`None`: a lock that reports it only in words).
        why: Option<keyway_smp::keyway_group::Postponement>,
        /// Why, in the lock's words (for people).
        reason: String,
    },
    /// The lock no longer holds the upload (refused, or the trial failed
    /// and it rolled back), or the owner refused it.
    Refused {
        /// In words.
        message: String,
    },
    /// No outcome within the time given.
    TimedOut,
}

/// The pending update's state and its typed postponement from a status
/// body (`None`: nothing pending).
pub(super) fn pending_state(
    body: &[u8],
) -> std::result::Result<
    Option<(
        keyway_smp::keyway_group::UpdateState,
        Option<keyway_smp::keyway_group::Postponement>,
        String,
    )>,
    DeviceError,
> {
    use keyway_smp::Message as _;
    let st =
        keyway_smp::keyway_group::Status::decode(body).map_err(|e| DeviceError::Malformed {
            what: "status".into(),
            why: e.to_string(),
        })?;
    Ok(st.update.map(|u| {
        (
            u.state,
            u.why,
            u.reason.map(terminal::line).unwrap_or_default(),
        )
    }))
}

/// Polls the lock every `poll` until the image `sha` runs confirmed, or
/// the pending update is postponed or refused, or `limit` passes; shared
/// by `keyway device update --wait` and the hub's link. A lock that is
/// rebooting does not answer: that is waited out. `note` hears each new
/// pending state (`awaiting-consent`, `installing`).
pub fn wait_for<T: Transport>(
    c: &mut Client<T>,
    sha: &[u8; 32],
    limit: Duration,
    poll: Duration,
    note: &mut dyn FnMut(keyway_smp::keyway_group::UpdateState),
) -> std::result::Result<Waited, DeviceError> {
    use keyway_smp::keyway_group::UpdateState as S;
    let start = Instant::now();
    let mut last_note = None;
    loop {
        match c.image_state() {
            Ok(images) => {
                if let Some(i) = images.iter().find(|i| i.hash == sha[..])
                    && i.active
                    && i.confirmed
                {
                    return Ok(Waited::Running {
                        version: i.version.clone(),
                        slot: i.slot,
                    });
                }
                if !images.iter().any(|i| i.hash == sha[..]) {
                    return Ok(Waited::Refused {
                        message: "the lock no longer holds the upload: it refused it or the trial failed and it rolled back".into(),
                    });
                }
            }
            Err(DeviceError::Transport { .. }) => {}
            Err(e) => return Err(e),
        }
        let pending = match c.status_body() {
            Ok(b) => pending_state(&b)?,
            // Rebooting, or a lock without the group (or, without a
            // session, status is for owners): the image state decides.
            Err(DeviceError::Transport { .. }) => None,
            Err(e) if e.not_supported() || (e.access_denied() && !c.sealed()) => None,
            Err(e) => return Err(e),
        };
        if let Some((state, why, reason)) = pending {
            match state {
                S::Postponed => return Ok(Waited::Postponed { why, reason }),
                S::Refused => {
                    return Ok(Waited::Refused {
                        message: format!(
                            "the owner refused the update{}",
                            if reason.is_empty() {
                                String::new()
                            } else {
                                format!(": {reason}")
                            }
                        ),
                    });
                }
                s if last_note != Some(s) => {
                    note(s);
                    last_note = Some(s);
                }
                _ => {}
            }
        }
        if start.elapsed() >= limit {
            return Ok(Waited::TimedOut);
        }
        std::thread::sleep(poll);
    }
}

/// Polls the lock until the image `sha` runs confirmed, or the pending
/// update is postponed or refused, or `limit` passes ([`wait_for`], in
/// words).
pub fn wait_outcome<T: Transport>(
    c: &mut Client<T>,
    sha: &[u8; 32],
    limit: Duration,
    err: &mut dyn Write,
) -> Result<UpdateOutcome> {
    let waited = wait_for(c, sha, limit, Duration::from_millis(200), &mut |s| {
        let _ = writeln!(err, "waiting: update {}", s.as_str());
    })?;
    Ok(match waited {
        Waited::Running { version, slot } => UpdateOutcome {
            state: "running",
            message: format!("the lock runs {version} (slot {slot}), confirmed"),
        },
        Waited::Postponed { reason, .. } => UpdateOutcome {
            state: "postponed",
            message: format!(
                "postponed: {}; the lock installs by itself once that holds",
                reason.strip_prefix("postponed: ").unwrap_or(&reason)
            ),
        },
        Waited::Refused { message } => UpdateOutcome {
            state: "refused",
            message,
        },
        Waited::TimedOut => UpdateOutcome {
            state: "timeout",
            message: format!(
                "no outcome after {} s: the update still waits for consent or for its install",
                limit.as_secs()
            ),
        },
    })
}
