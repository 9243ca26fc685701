//! `keyway device pair --setup-code`, and owner key ids as the command
//! line takes them.

use super::*;

/// `pair --setup-code`: pairs the owner key by the lock's setup code and
/// records the lock's device key in the owner key's paired-lock file.
pub(super) fn pair_with_code<T: Transport>(
    a: &DeviceArgs,
    c: &mut Client<T>,
    code: &str,
    name: Option<&str>,
    out: &mut dyn Write,
) -> Result<JsonValue> {
    let Some(k) = &a.owner_key else {
        bail!(
            "pair --setup-code needs --owner-key: the key to pair (make one with `keyway keygen NAME`)"
        );
    };
    let code = keyway_channel::SetupCode::parse(code.trim()).map_err(|e| {
        anyhow::anyhow!(
            "--setup-code {:?}: {e}: give the 8 digits on the lock's label",
            terminal::line(code)
        )
    })?;
    let name = name.unwrap_or("");
    if name.len() > keyway_channel::pairing::NAME_MAX {
        bail!(
            "--name: at most {} bytes",
            keyway_channel::pairing::NAME_MAX
        );
    }
    let mut file = paired_locks(a, c)?.context("pair --setup-code needs --owner-key")?;
    let r = c.pair_with_code(&code, name).map_err(|e| {
        // Decided on the typed refusal, never on the lock's words.
        if e.wrong_setup_code() {
            anyhow::Error::new(e).context(
                "the setup code does not match this lock's: re-read the label and try again (the lock counts wrong codes and makes you wait after 3)",
            )
        } else if e.not_supported() {
            anyhow::Error::new(e).context(
                "this lock does not pair by setup code (no secure channel): it is not a lock this client can own",
            )
        } else {
            e.into()
        }
    })?;
    let paired = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    file.insert(PairedLockRecord {
        target: a.target.clone(),
        device_key: r.device_key,
        name: (!name.is_empty()).then(|| name.to_owned()),
        paired,
    });
    file.save()
        .with_context(|| "the lock paired this key, but its record could not be saved: pair again once the file can be written")?;
    let lock_id = keyway_channel::key_id(&r.device_key);
    if !a.json {
        writeln!(
            out,
            "paired {} (key id {}) with the lock whose device key id is {}; the lock has {} owner(s)\nrecorded in {}: owner commands to {} now run in a session",
            k.display(),
            hex(&r.key_id),
            hex(&lock_id),
            r.owners,
            file.path.display(),
            a.target
        )?;
    }
    Ok(json!({
        "command": "pair",
        "key_id": hex(&r.key_id),
        "owners": r.owners,
        "device_key": hex(&r.device_key),
        "device_key_id": hex(&lock_id),
        "record": file.path,
    }))
}

/// A key id as `owners` prints it: 16 hex digits (either case).
pub(super) fn parse_key_id(s: &str) -> Result<[u8; 8]> {
    let bad = || {
        anyhow::anyhow!(
            "KEYID {:?}: give the owner's key id as 16 hex digits, as `keyway device owners` prints it",
            terminal::line(s)
        )
    };
    if s.len() != 16 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(bad());
    }
    let mut id = [0u8; 8];
    for (i, b) in id.iter_mut().enumerate() {
        *b = u8::from_str_radix(s.get(2 * i..2 * i + 2).ok_or_else(bad)?, 16).map_err(|_| bad())?;
    }
    Ok(id)
}
