//! `keyway device update`: choose the envelope the lock can take (full or
//! a delta from what it runs), upload it with a progress bar, and hand
//! over to [`super::wait`] for the outcome.

use super::*;

/// An envelope `update` may upload.
#[derive(Debug, Clone)]
pub struct Candidate {
    /// Where it was read from.
    pub path: PathBuf,
    /// The file.
    pub bytes: Vec<u8>,
    /// Its SHA-256: the image hash the lock reports once it holds it.
    pub sha: [u8; 32],
}

impl Candidate {
    /// Reads `path`.
    pub fn load(path: &Path) -> Result<Candidate> {
        let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        let sha = Sha256::digest(&bytes).into();
        Ok(Candidate {
            path: path.to_owned(),
            bytes,
            sha,
        })
    }
}

/// Chooses which candidate to upload, and says why: among those the lock
/// does not already hold (by the image state's hashes) and that are newer
/// (by manifest sequence) than every candidate it holds in a bootable slot
/// (an older release would replace a newer pending one), a delta whose base
/// is the lock's running image (`running`: the Keyway group status's
/// `image`), else a full image (`keyway_vendor::delta::choose`). Without
/// `running` (a lock without the Keyway group), the first full image.
pub fn select_envelope(
    candidates: &[Candidate],
    images: &[ImageSlot],
    running: Option<&[u8; 32]>,
) -> Result<(usize, String)> {
    let held_slot = |c: &Candidate| images.iter().find(|i| i.hash == c.sha);
    let held = |c: &Candidate| held_slot(c).is_some();
    let sequence = |c: &Candidate| {
        keyway_suit::inspect_envelope(&c.bytes)
            .ok()
            .map(|i| i.manifest.sequence)
    };
    let newest_held = candidates
        .iter()
        .filter(|c| held_slot(c).is_some_and(|i| i.bootable))
        .filter_map(sequence)
        .max();
    let older = |c: &Candidate| newest_held.is_some_and(|h| sequence(c).is_some_and(|s| s <= h));
    let fresh: Vec<usize> = (0..candidates.len())
        .filter(|&i| !held(&candidates[i]) && !older(&candidates[i]))
        .collect();
    if fresh.is_empty() {
        // Say where and how: an old release left in the inactive slot
        // (below the floor, not bootable) is "held" too, and the owner
        // needs a newer one, not a retry.
        let held_as = |c: &Candidate| {
            images.iter().find(|i| i.hash == c.sha).map_or_else(
                || c.path.display().to_string(),
                |i| {
                    let state = if i.active {
                        "running"
                    } else if i.pending {
                        "pending for the next boot"
                    } else if i.bootable {
                        "bootable, not armed"
                    } else {
                        "not bootable: refused by the lock's checks (an older release?)"
                    };
                    format!(
                        "{} in slot {} ({}, {state})",
                        c.path.display(),
                        i.slot,
                        i.version
                    )
                },
            )
        };
        let names = |keep: &dyn Fn(&Candidate) -> bool| {
            candidates
                .iter()
                .filter(|c| keep(c))
                .map(held_as)
                .collect::<Vec<_>>()
                .join(", ")
        };
        let older = names(&|c| !held(c));
        bail!(
            "the lock already holds {}: nothing to upload{}",
            names(&held),
            if older.is_empty() {
                String::new()
            } else {
                format!(" ({older}: older than what it holds)")
            }
        );
    }
    let bytes: Vec<&[u8]> = fresh.iter().map(|&i| &candidates[i].bytes[..]).collect();
    if let Some(r) = running {
        let choice = keyway_vendor::delta::choose(&bytes, r)?;
        return Ok((fresh[choice.index()], choice.to_string()));
    }
    let full = bytes
        .iter()
        .position(|b| keyway_suit::inspect_envelope(b).is_ok_and(|e| e.delta.is_none()));
    Ok((
        fresh[full.unwrap_or(0)],
        "the lock does not name its running image: the first full image".to_owned(),
    ))
}

/// Whether the lock refused a delta's head because it applies to another
/// image than the one the lock runs: Keyway's typed refusal
/// `DeltaWrongBase` (`kw-rc` 7), never the reason's words. The full image
/// is the one to send then (if it is bad too, the lock refuses it with its
/// own reason).
pub(super) fn refused_delta_base(e: &DeviceError) -> bool {
    matches!(
        e.refusal(),
        Some(keyway_smp::Refusal::DeltaWrongBase { .. })
    )
}

/// Whether an envelope's payload is a delta patch.
pub(super) fn is_delta(envelope: &[u8]) -> bool {
    keyway_suit::inspect_envelope(envelope).is_ok_and(|i| i.delta.is_some())
}

/// The running image's SHA-256 from the Keyway group status (`image`);
/// `None` on a lock without the group, in recovery, or (status is for
/// owners) without an owner key: then the full image goes.
pub(super) fn running_image<T: Transport>(
    c: &mut Client<T>,
) -> std::result::Result<Option<[u8; 32]>, DeviceError> {
    match c.running_image() {
        Ok(i) => Ok(i),
        Err(e) if e.not_supported() || (e.access_denied() && !c.sealed()) => Ok(None),
        Err(e) => Err(e),
    }
}

/// What [`push_update`] uploaded.
#[derive(Debug, Clone)]
pub struct PushReport {
    /// The candidate uploaded (an index into the candidates).
    pub chosen: usize,
    /// Why that one, in words.
    pub why: String,
    /// The upload.
    pub upload: UploadReport,
    /// The lock refused the delta first chosen for its base
    /// ([`keyway_smp::Refusal::DeltaWrongBase`]) and the full image went.
    pub fell_back: bool,
}

/// Why [`push_update`] uploaded nothing (typed: the hub decides on the
/// variant).
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    /// No candidate fits: the lock holds them (or newer ones), or none
    /// applies to it ([`select_envelope`]'s sentence).
    #[error("{0}")]
    NothingToUpload(String),
    /// The lock refused the delta for its base and no full image was
    /// among the candidates.
    #[error("uploading {name} (give the full image too, to fall back to it): {error}")]
    NoFullImage {
        /// The delta's name.
        name: String,
        /// The lock's refusal.
        error: DeviceError,
    },
    /// A call failed (the lock's typed refusal, the channel, the link).
    #[error("{context}: {error}")]
    Device {
        /// What was being done.
        context: String,
        /// The client's typed error.
        error: DeviceError,
    },
}

/// The update's upload, shared by `keyway device update` and the hub's
/// link: reads the lock's image state and running image, picks the
/// candidate ([`select_envelope`]: a delta for the running image, else a
/// full image), uploads it with `progress(done, total)`, and falls back
/// to a full image when the lock refuses the delta for its base (its
/// typed `DeltaWrongBase`, never its words): then `progress` starts again
/// from 0 with the full image's total.
pub fn push_update<T: Transport>(
    c: &mut Client<T>,
    candidates: &[Candidate],
    progress: &mut dyn FnMut(u64, u64),
) -> std::result::Result<PushReport, PushError> {
    let device = |context: &str| {
        let context = context.to_owned();
        move |error| PushError::Device { context, error }
    };
    let images = c.image_state().map_err(device("reading the image state"))?;
    let running = running_image(c).map_err(device("reading the running image"))?;
    let (chosen, why) = select_envelope(candidates, &images, running.as_ref())
        .map_err(|e| PushError::NothingToUpload(format!("{e:#}")))?;
    let pick = &candidates[chosen];
    match c.upload(&pick.bytes, progress) {
        Ok(upload) => Ok(PushReport {
            chosen,
            why,
            upload,
            fell_back: false,
        }),
        // The lock refused the delta for its base (its image changed since
        // the status, or it names no image): fall back to a full image.
        Err(e) if is_delta(&pick.bytes) && refused_delta_base(&e) => {
            let full = candidates
                .iter()
                .position(|c| !images.iter().any(|i| i.hash == c.sha) && !is_delta(&c.bytes));
            let Some(full) = full else {
                return Err(PushError::NoFullImage {
                    name: pick.path.display().to_string(),
                    error: e,
                });
            };
            let why = format!("the lock refused the delta ({e}); falling back to the full image");
            let pick = &candidates[full];
            let upload = c
                .upload(&pick.bytes, progress)
                .map_err(device(&format!("uploading {}", pick.path.display())))?;
            Ok(PushReport {
                chosen: full,
                why,
                upload,
                fell_back: true,
            })
        }
        Err(error) => Err(PushError::Device {
            context: format!("uploading {}", pick.path.display()),
            error,
        }),
    }
}

pub(super) fn progress_bar(len: u64, json: bool) -> indicatif::ProgressBar {
    if json || !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::with_draw_target(
        Some(len),
        indicatif::ProgressDrawTarget::stderr(),
    );
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "upload {bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
    ) {
        bar.set_style(style);
    }
    bar
}

/// `keyway device update` on `c`: picks the candidate (a delta for the
/// running image, else a full image; back to the full image if the lock
/// refuses the delta for its base), uploads it with a progress bar, and
/// with `--install`/`--wait` asks for the test boot and waits. Returns the
/// command's JSON summary.
pub fn update<T: Transport>(
    c: &mut Client<T>,
    u: &UpdateArgs,
    json: bool,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<JsonValue> {
    let candidates = u
        .envelopes
        .iter()
        .map(|p| Candidate::load(p))
        .collect::<Result<Vec<_>>>()?;
    let bar = progress_bar(0, json);
    let start = Instant::now();
    let pushed = push_update(c, &candidates, &mut |done, total| {
        bar.set_length(total);
        bar.set_position(done);
    })?;
    let (why, report, pick) = (pushed.why, pushed.upload, &candidates[pushed.chosen]);
    bar.finish_and_clear();
    let secs = start.elapsed().as_secs_f64();
    if !json {
        writeln!(out, "chose {}: {why}", pick.path.display())?;
        writeln!(
            out,
            "uploaded {} ({} bytes{}) in {:.1} s, {} requests; image hash {}",
            pick.path.display(),
            report.len,
            if report.resumed_from > 0 {
                format!(", resumed at byte {}", report.resumed_from)
            } else {
                String::new()
            },
            secs,
            report.requests,
            hex(&pick.sha)
        )?;
    }
    let mut v = json!({
        "command": "update",
        "envelope": pick.path,
        "bytes": report.len,
        "resumed_from": report.resumed_from,
        "requests": report.requests,
        "seconds": secs,
        "hash": hex(&pick.sha),
        "chosen_because": why,
    });
    // The pending update as the Keyway group sees it (absent on a lock
    // without it).
    let pending = pending_update(c)?;
    if let Some(p) = &pending {
        if !json {
            writeln!(
                out,
                "pending: {}{}",
                text(p, "state").unwrap_or_else(|| "?".into()),
                reason_suffix(p)
            )?;
        }
        v["pending"] = map_to_json(p);
    }
    let mut postponed = None;
    if u.install {
        match c.image_test(&pick.sha) {
            Ok(_) => {
                // An owner's test boot (in a session) is its consent: the
                // lock resets into it by itself. A test in the presence
                // window only arms it, as MCUboot's does: the reset the
                // window allows once boots it.
                if !c.sealed() {
                    c.reset()?;
                }
                if !json {
                    writeln!(out, "test boot requested; the lock resets")?;
                }
            }
            // Consent given, but the lock's state does not allow the
            // install now (the bolt, the battery): it installs later.
            Err(DeviceError::Refused { rc: 6, reason, .. }) => {
                if !json {
                    writeln!(out, "{reason}")?;
                }
                postponed = Some(reason);
            }
            Err(e) => return Err(e.into()),
        }
    } else if !u.wait && !json {
        writeln!(
            out,
            "next: `keyway device --owner-key OWNER.key notes`, then `keyway device --owner-key OWNER.key consent accept` (or --install while the lock's presence window is open)"
        )?;
    }
    if let Some(reason) = postponed {
        v["outcome"] = JsonValue::from("postponed");
        v["message"] = JsonValue::from(reason);
    } else if u.wait {
        let outcome = wait_outcome(c, &pick.sha, Duration::from_secs(u.wait_seconds), err)?;
        if !json {
            writeln!(out, "{}", outcome.message)?;
        }
        v["outcome"] = JsonValue::from(outcome.state);
        v["message"] = JsonValue::from(outcome.message.clone());
        if matches!(outcome.state, "refused" | "timeout") {
            bail!("{}", outcome.message);
        }
    }
    Ok(v)
}

/// The Keyway group's pending-update summary, or `None` on a lock without
/// the group, without a pending update, or (status is for owners) without
/// an owner key.
pub(super) fn pending_update<T: Transport>(c: &mut Client<T>) -> Result<Option<Map>> {
    match c.status() {
        Ok(s) => Ok(match smp_get(&s, "update") {
            Some(ciborium::Value::Map(m)) => Some(m.clone()),
            _ => None,
        }),
        Err(e) if e.not_supported() || (e.access_denied() && !c.sealed()) => Ok(None),
        Err(e) => Err(e.into()),
    }
}
