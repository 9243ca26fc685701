//! Locates the pieces of an envelope that the negative cases corrupt.
//!
//! This is deliberately NOT the verifier's decoder: a handful of lines that
//! walk the outer map of `107({ key: bstr, ... })` (FORMAT.md) and return
//! where the manifest (key 3) and the integrated payload ("#firmware") lie,
//! so the test can flip a byte inside each.

use core::ops::Range;

pub struct Layout {
    /// Key 2: the authentication wrapper.
    pub auth: Range<usize>,
    pub manifest: Range<usize>,
    pub payload: Range<usize>,
}

/// Reads one CBOR head at `*i`: returns (major type, argument).
fn head(b: &[u8], i: &mut usize) -> Option<(u8, u64)> {
    let ib = *b.get(*i)?;
    *i += 1;
    let (major, info) = (ib >> 5, ib & 0x1f);
    let n = match info {
        0..=23 => return Some((major, info as u64)),
        24 => 1,
        25 => 2,
        26 => 4,
        27 => 8,
        _ => return None, // indefinite lengths are not used (FORMAT.md)
    };
    let bytes = b.get(*i..*i + n)?;
    *i += n;
    Some((major, bytes.iter().fold(0u64, |a, &x| (a << 8) | x as u64)))
}

pub fn layout(env: &[u8]) -> Option<Layout> {
    let mut i = 0;
    if head(env, &mut i)? != (6, 107) {
        return None;
    }
    let (major, entries) = head(env, &mut i)?;
    if major != 5 {
        return None;
    }
    let (mut auth, mut manifest, mut payload) = (None, None, None);
    for _ in 0..entries {
        // Key: an integer (major 0/1) or a text string (major 3).
        let (km, kv) = head(env, &mut i)?;
        let key_text = if km == 3 {
            let t = env.get(i..i + kv as usize)?;
            i += kv as usize;
            Some(t)
        } else {
            None
        };
        // Value: every member of the envelope is a byte string.
        let (vm, len) = head(env, &mut i)?;
        if vm != 2 {
            return None;
        }
        let r = i..i + len as usize;
        i = r.end;
        if km == 0 && kv == 2 {
            auth = Some(r);
        } else if km == 0 && kv == 3 {
            manifest = Some(r);
        } else if key_text == Some(b"#firmware") {
            payload = Some(r);
        }
    }
    if i > env.len() {
        return None;
    }
    Some(Layout {
        auth: auth?,
        manifest: manifest?,
        payload: payload?,
    })
}

/// Index (into the envelope) of a manifest byte whose change keeps the
/// manifest well-formed but changes what it says: the low byte of the
/// sequence number (FORMAT.md: the manifest map starts `{1: 1, 2: sequence`).
/// A verifier can then only reject it because the manifest digest or the
/// signature no longer matches — not because the decoder stumbled.
pub fn sequence_byte(env: &[u8], l: &Layout) -> Option<usize> {
    let m = env.get(l.manifest.clone())?;
    let mut i = 0;
    let (major, _) = head(m, &mut i)?; // the manifest map
    if major != 5 || head(m, &mut i)? != (0, 1) || head(m, &mut i)? != (0, 1) {
        return None;
    }
    if head(m, &mut i)? != (0, 2) {
        return None;
    }
    let (major, _) = head(m, &mut i)?; // sequence: uint; i is now past it
    if major != 0 {
        return None;
    }
    Some(l.manifest.start + i - 1)
}
