//! How `keyway device` prints a lock's answers as text: owners, maps,
//! release notes (every text from the lock through [`crate::terminal`]).

use super::*;

/// The owners as a table: key id, when paired (UTC), name; the key the
/// client signed with is marked.
pub(super) fn print_owners(
    owners: &[OwnerInfo],
    me: Option<[u8; 8]>,
    out: &mut dyn Write,
) -> Result<()> {
    writeln!(out, "{:<16}  {:<19}  NAME", "KEY ID", "PAIRED (UTC)")?;
    for o in owners {
        let paired = o
            .paired
            .map_or_else(|| "unknown".to_owned(), keyway_vendor::log::utc_date_time);
        let name = if o.name.is_empty() {
            "-".to_owned()
        } else {
            terminal::line(&o.name)
        };
        let mine = if me == Some(o.key_id) {
            "  (this key)"
        } else {
            ""
        };
        writeln!(out, "{}  {paired:<19}  {name}{mine}", hex(&o.key_id))?;
    }
    writeln!(out, "{} owner(s)", owners.len())?;
    Ok(())
}

pub(super) fn with_command(name: &str, mut v: JsonValue) -> JsonValue {
    if let Some(o) = v.as_object_mut() {
        o.insert("command".into(), JsonValue::from(name));
    }
    v
}

pub(super) fn smp_get<'a>(m: &'a Map, k: &str) -> Option<&'a ciborium::Value> {
    keyway_vendor::smp::get(m, k)
}

/// A text field of the lock's answer, made safe to print (one line).
pub(super) fn text(m: &Map, k: &str) -> Option<String> {
    keyway_vendor::smp::get_text(m, k)
        .ok()
        .flatten()
        .map(terminal::line)
}

/// ` (REASON)` for an update summary with a `reason`, without a repeated
/// "postponed: ".
pub(super) fn reason_suffix(m: &Map) -> String {
    text(m, "reason")
        .map(|r| format!(" ({})", r.strip_prefix("postponed: ").unwrap_or(&r)))
        .unwrap_or_default()
}

pub(super) fn uint(m: &Map, k: &str) -> Option<u64> {
    keyway_vendor::smp::get_u64(m, k).ok().flatten()
}

/// `key: value` lines; text values without quotes.
pub(super) fn print_map(m: &Map, out: &mut dyn Write) -> Result<()> {
    for (k, v) in map_to_json(m).as_object().into_iter().flatten() {
        match v {
            JsonValue::String(t) => writeln!(out, "{}: {}", terminal::line(k), terminal::line(t))?,
            v => writeln!(out, "{}: {v}", terminal::line(k))?,
        }
    }
    Ok(())
}

pub(super) fn print_notes(n: &Map, out: &mut dyn Write) -> Result<()> {
    writeln!(
        out,
        "pending update {} (sequence {}), {}{}",
        text(n, "version").unwrap_or_else(|| "?".into()),
        uint(n, "sequence").map_or_else(|| "?".into(), |s| s.to_string()),
        text(n, "state").unwrap_or_else(|| "?".into()),
        text(n, "reason")
            .map(|r| format!(": {r}"))
            .unwrap_or_default()
    )?;
    if let Some(ciborium::Value::Array(cves)) = smp_get(n, "cves") {
        for c in cves {
            if let Some(m) = c.as_map() {
                writeln!(
                    out,
                    "fixes {} ({})",
                    text(m, "id").unwrap_or_else(|| "?".into()),
                    text(m, "severity").unwrap_or_else(|| "?".into())
                )?;
            }
        }
    }
    if let Some(b) = uint(n, "min_battery_mwh") {
        writeln!(out, "needs {b} mWh of battery to install")?;
    }
    if let Ok(Some(notes)) = keyway_vendor::smp::get_text(n, "notes") {
        writeln!(out, "\n{}", terminal::printable(notes, Newlines::Keep))?;
    }
    Ok(())
}
