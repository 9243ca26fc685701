//! Which envelope of a release to send to a lock: the delta whose base it
//! runs, else the full image.

use anyhow::{Result, bail};

/// Which of several envelopes of one release to send to a lock whose
/// running image has SHA-256 `running` (the Keyway group status's
/// `image`): a delta whose base is the running image, else a full image.
/// Returns the index into `envelopes` and the reason, for the owner. The
/// envelopes are only inspected here (structure and digests); the lock
/// verifies the one it receives.
pub fn choose(envelopes: &[&[u8]], running: &[u8; 32]) -> Result<(usize, String)> {
    let short = |d: &[u8]| crate::keys::hex(d.get(..4).unwrap_or(d));
    let mut full = None;
    let mut other_bases = Vec::new();
    for (i, env) in envelopes.iter().enumerate() {
        let e = keyway_suit::inspect_envelope(env).map_err(|e| {
            anyhow::anyhow!("envelope {}: {}", i + 1, crate::describe::describe(&e))
        })?;
        match e.delta {
            Some(d) if d.base_digest == running => {
                return Ok((
                    i,
                    format!(
                        "the delta ({} bytes): the lock runs its base {}…",
                        env.len(),
                        short(running)
                    ),
                ));
            }
            Some(d) => other_bases.push(format!("{}…", short(d.base_digest))),
            None if full.is_none() => full = Some(i),
            None => {}
        }
    }
    let Some(i) = full else {
        bail!(
            "no envelope fits: the lock runs {}…, the deltas apply to {}, and no full image was given",
            short(running),
            other_bases.join(", ")
        );
    };
    let why = if other_bases.is_empty() {
        "no delta was given".to_owned()
    } else {
        format!(
            "the lock runs {}…, the delta applies to {}",
            short(running),
            other_bases.join(", ")
        )
    };
    Ok((
        i,
        format!("the full image ({} bytes): {why}", envelopes[i].len()),
    ))
}
