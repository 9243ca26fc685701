//! Which envelope of a release to send to a lock: the delta whose base it
//! runs, else the full image.

use std::fmt;

use crate::keys::hex;

/// The first four bytes of a digest in hex, as the owner sees it.
fn short(d: &[u8; 32]) -> String {
    hex(&d[..4])
}

/// The envelope [`choose`] picked and why (its `Display` is the sentence
/// for the owner; a client decides on the variant, never the words).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Choice {
    /// A delta whose base is the image the lock runs.
    Delta {
        /// Its index in the envelopes given.
        index: usize,
        /// Its size in bytes.
        bytes: usize,
        /// The running image's SHA-256 (the delta's base).
        running: [u8; 32],
    },
    /// The full image: no delta was given, or none applies to the running
    /// image.
    Full {
        /// Its index in the envelopes given.
        index: usize,
        /// Its size in bytes.
        bytes: usize,
        /// The running image's SHA-256.
        running: [u8; 32],
        /// The bases of the deltas given (empty: none was).
        delta_bases: Vec<[u8; 32]>,
    },
}

impl Choice {
    /// The index of the chosen envelope.
    pub fn index(&self) -> usize {
        match self {
            Choice::Delta { index, .. } | Choice::Full { index, .. } => *index,
        }
    }
}

impl fmt::Display for Choice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Choice::Delta { bytes, running, .. } => write!(
                f,
                "the delta ({bytes} bytes): the lock runs its base {}…",
                short(running)
            ),
            Choice::Full {
                bytes, delta_bases, ..
            } if delta_bases.is_empty() => {
                write!(f, "the full image ({bytes} bytes): no delta was given")
            }
            Choice::Full {
                bytes,
                running,
                delta_bases,
                ..
            } => write!(
                f,
                "the full image ({bytes} bytes): the lock runs {}…, the delta applies to {}",
                short(running),
                bases(delta_bases)
            ),
        }
    }
}

/// The deltas' bases, shortened and joined.
fn bases(b: &[[u8; 32]]) -> String {
    b.iter()
        .map(|d| format!("{}…", short(d)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Why [`choose`] could not pick an envelope.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChooseError {
    /// An envelope does not decode (the lock would refuse it too).
    #[error("envelope {number}: {}", crate::describe::describe(.error))]
    Envelope {
        /// Its position among those given, from 1.
        number: usize,
        /// The verifier's error.
        error: keyway_suit::Error,
    },
    /// Only deltas, none of them from the running image.
    #[error(
        "no envelope fits: the lock runs {}…, the deltas apply to {}, and no full image was given; \
         give the release's full image too",
        short(.running),
        bases(.delta_bases)
    )]
    NoFit {
        /// The running image's SHA-256.
        running: [u8; 32],
        /// The bases of the deltas given.
        delta_bases: Vec<[u8; 32]>,
    },
}

/// Which of several envelopes of one release to send to a lock whose
/// running image has SHA-256 `running` (the Keyway group status's
/// `image`): a delta whose base is the running image, else a full image.
/// The envelopes are only inspected here (structure and digests); the
/// lock verifies the one it receives.
pub fn choose(envelopes: &[&[u8]], running: &[u8; 32]) -> Result<Choice, ChooseError> {
    let mut full = None;
    let mut delta_bases = Vec::new();
    for (index, env) in envelopes.iter().enumerate() {
        let e = keyway_suit::inspect_envelope(env).map_err(|error| ChooseError::Envelope {
            number: index + 1,
            error,
        })?;
        match e.delta {
            Some(d) if d.base_digest == running => {
                return Ok(Choice::Delta {
                    index,
                    bytes: env.len(),
                    running: *running,
                });
            }
            Some(d) => delta_bases.push(*d.base_digest),
            None if full.is_none() => full = Some(index),
            None => {}
        }
    }
    match full {
        Some(index) => Ok(Choice::Full {
            index,
            bytes: envelopes[index].len(),
            running: *running,
            delta_bases,
        }),
        None => Err(ChooseError::NoFit {
            running: *running,
            delta_bases,
        }),
    }
}
