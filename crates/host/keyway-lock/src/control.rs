//! The control socket: one JSON object per line, one JSON answer per line.
//! It stands for the lock's hardware (its button, for now).
//!
//! ```text
//! {"cmd": "presence"}                 press the button: the presence window opens for the
//!                                      lock's configured length (the answer's presence_seconds;
//!                                      a running lock's agent ignores "seconds", which only the
//!                                      bare test `Server` reads, at most 3600)
//! {"cmd": "presence-close"}            close it
//! {"cmd": "long-press"}                the button held 10 s (with the window open: allows a factory reset)
//! {"cmd": "cut-power", "after_ops": N} cut the power during the Nth flash operation from now
//! {"cmd": "cut-power", "mid_upload": B} cut it once the upload passes byte B (null or absent B: halfway)
//! {"cmd": "status"}                    running slot, journal state, presence, upload,
//!                                      bolt, door, battery, tamper, keypad lockout,
//!                                      profile, flash_ops (operations so far),
//!                                      power_cuts (cuts that fired, for the audit)
//! {"cmd": "keypad", "pin": "1234"}     a PIN on the keypad
//! {"cmd": "lock"} / {"cmd": "unlock"}  the owner's commands
//! {"cmd": "mechanical-key"}            the key turned in the cylinder (the bolt changes over)
//! {"cmd": "door", "state": "open"}     the door sensor: "open" or "closed"
//! {"cmd": "tamper", "state": "on"}     the tamper sensor: "on" or "off"
//! {"cmd": "battery", "level": 3300}    a battery reading in millivolts
//! {"cmd": "log-export", "path": "F"}   writes the audit log's export file (for `keyway log verify`)
//!                                      as STATE/exports/F; F is a plain file name
//! {"cmd": "setup-code"}                the setup code, read off the lock's label:
//!                                      {"ok": true, "setup_code": "1234-5670"}
//! ```
//!
//! The socket stands in for the lock's hardware, so it is as private as
//! the hardware: the shell makes a Unix socket mode 0600 and serves TCP
//! only on loopback unless told otherwise (`--control-insecure-any-address`),
//! and `log-export` writes only inside the state directory (an absolute
//! path, a `/`, `..` or a symbolic link is refused:
//! [`crate::state::StateDir::write_export`]).
//!
//! What each command did goes to the audit log (queued on the device; the
//! shell stamps and writes it after the line). `keyway-lock ctl SOCKET
//! ACTION [ARGS]` builds these lines from words ([`action_line`]).

use serde_json::{Value, json};

use crate::lock::{Bolt, Door, Keypad};
use crate::server::{Server, UploadCut};

/// Answers one control line at `now_ms`; the audit log's wall clock is
/// `now_ms / 1000` (tests). No state directory: `log-export` is refused.
/// The shell uses [`handle_line_in`].
pub fn handle_line(server: &mut Server, line: &str, now_ms: u64) -> Value {
    handle(server, line, now_ms, now_ms / 1000, None)
}

fn secs(ms: u64) -> u64 {
    ms.div_ceil(1000)
}

/// Answers one control line at `now_ms` (monotonic) and `rtc` (wall-clock
/// seconds, for the audit log's export head). No state directory:
/// `log-export` is refused.
pub fn handle_line_at(server: &mut Server, line: &str, now_ms: u64, rtc: u64) -> Value {
    handle(server, line, now_ms, rtc, None)
}

/// As [`handle_line_at`], for the lock whose state directory is `state`:
/// `log-export` writes into its `exports/` folder.
pub fn handle_line_in(
    server: &mut Server,
    line: &str,
    now_ms: u64,
    rtc: u64,
    state: &crate::state::StateDir,
) -> Value {
    handle(server, line, now_ms, rtc, Some(state))
}

fn handle(
    server: &mut Server,
    line: &str,
    now_ms: u64,
    rtc: u64,
    state_dir: Option<&crate::state::StateDir>,
) -> Value {
    let v: Value = match serde_json::from_str(line) {
        Ok(v) => v,
        Err(e) => return json!({"ok": false, "error": format!("not JSON: {e}")}),
    };
    server.tick(now_ms);
    let state = |k: &str| v.get(k).and_then(Value::as_str);
    let cmd = v.get("cmd").and_then(Value::as_str);
    let (latch, device) = server.mechanism_mut();
    let events = match cmd {
        Some("keypad") => {
            let Some(pin) = v.get("pin").and_then(Value::as_str) else {
                return json!({"ok": false, "error": "\"pin\" (a string of digits) is missing"});
            };
            let (k, events) = latch.keypad(pin, now_ms);
            for e in events {
                device.note(e);
            }
            return match k {
                Keypad::Unlocked => json!({"ok": true, "result": "unlocked"}),
                Keypad::Wrong {
                    consecutive,
                    lockout_ms,
                } => json!({
                    "ok": true,
                    "result": "wrong-pin",
                    "consecutive": consecutive,
                    "lockout_seconds": lockout_ms.map(secs),
                }),
                Keypad::LockedOut { remaining_ms } => json!({
                    "ok": true,
                    "result": "locked-out",
                    "lockout_seconds": secs(remaining_ms),
                }),
            };
        }
        Some("lock") => latch.owner(true, now_ms),
        Some("unlock") => latch.owner(false, now_ms),
        Some("mechanical-key") => latch.mechanical_key(now_ms),
        Some("door") => match state("state") {
            Some("open") => latch.door_sensor(Door::Open, now_ms),
            Some("closed") => latch.door_sensor(Door::Closed, now_ms),
            _ => return json!({"ok": false, "error": "\"state\": \"open\" or \"closed\""}),
        },
        Some("tamper") => match state("state") {
            Some("on") => latch.tamper_sensor(true, now_ms),
            Some("off") => latch.tamper_sensor(false, now_ms),
            _ => return json!({"ok": false, "error": "\"state\": \"on\" or \"off\""}),
        },
        Some("battery") => {
            let Some(mv) = v
                .get("level")
                .and_then(Value::as_u64)
                .and_then(|l| u16::try_from(l).ok())
            else {
                return json!({"ok": false, "error": "\"level\": the battery voltage in millivolts (0-65535)"});
            };
            latch.battery(mv, now_ms)
        }
        // Reading the label: the code `keyway-lock provision` printed.
        Some("setup-code") => return setup_code(state_dir),
        Some("log-export") => {
            let Some(name) = state("path") else {
                return json!({"ok": false, "error": "\"path\" (the export's file name) is missing"});
            };
            let Some(dir) = state_dir else {
                return json!({"ok": false, "error": "log-export: this lock has no state directory to write into"});
            };
            return match device.export_audit(rtc) {
                Ok(bytes) => match dir.write_export(name, &bytes) {
                    Ok(path) => json!({"ok": true, "path": path, "bytes": bytes.len()}),
                    Err(e) => json!({"ok": false, "error": e.to_string()}),
                },
                Err(e) => json!({"ok": false, "error": e}),
            };
        }
        _ => Vec::new(),
    };
    let logged = events.len();
    for e in events {
        device.note(e);
    }
    match cmd {
        Some("lock" | "unlock" | "mechanical-key" | "door" | "tamper" | "battery") => {
            json!({"ok": true, "events": logged, "lock": lock_status(server, now_ms)})
        }
        _ => other(server, &v, now_ms),
    }
}

/// The answer to `setup-code`: the code as the label prints it.
fn setup_code(state_dir: Option<&crate::state::StateDir>) -> Value {
    let Some(dir) = state_dir else {
        return json!({"ok": false, "error": "setup-code: this lock has no state directory (no label)"});
    };
    match dir.setup_code() {
        Ok(Some(code)) => json!({"ok": true, "setup_code": code.to_string()}),
        Ok(None) => json!({
            "ok": false,
            "error": "setup-code: this lock has no setup code (provisioned before setup codes, or by the library): provision it again with `keyway-lock provision --force`",
        }),
        Err(e) => json!({"ok": false, "error": format!("setup-code: {e:#}")}),
    }
}

fn lock_status(server: &Server, now_ms: u64) -> Value {
    let l = server.mechanism();
    json!({
        "bolt": match l.bolt() { Bolt::Locked => "locked", Bolt::Unlocked => "unlocked" },
        "door": match l.door() { Door::Open => "open", Door::Closed => "closed" },
        "battery_mv": l.battery_mv(),
        "tamper": l.tamper(),
        "failed_pins": l.failures(),
        "lockout_seconds": l.lockout_remaining(now_ms).map(secs),
        "relock_seconds": l.relock_remaining(now_ms).map(secs),
    })
}

fn other(server: &mut Server, v: &Value, now_ms: u64) -> Value {
    match v.get("cmd").and_then(Value::as_str) {
        Some("presence") => {
            let secs = v.get("seconds").and_then(Value::as_u64).unwrap_or(60);
            if secs > 3600 {
                return json!({"ok": false, "error": "seconds: at most 3600"});
            }
            server.open_presence(now_ms, secs * 1000);
            json!({"ok": true, "presence_seconds": secs})
        }
        Some("presence-close") => {
            server.close_presence();
            json!({"ok": true})
        }
        Some("long-press") => {
            server.long_press(now_ms);
            json!({"ok": true, "presence_open": server.presence_open(now_ms)})
        }
        Some("cut-power") if v.get("mid_upload").is_some() => {
            let at = match v.get("mid_upload") {
                Some(Value::Null) | None => None,
                Some(b) => match b.as_u64() {
                    Some(b) => Some(b),
                    None => {
                        return json!({"ok": false, "error": "\"mid_upload\": a byte offset, or null for halfway"});
                    }
                },
            };
            server.cut_power_mid_upload(at.map_or(UploadCut::Halfway, UploadCut::AtByte));
            json!({"ok": true, "mid_upload": at})
        }
        Some("cut-power") => {
            let Some(n) = v.get("after_ops").and_then(Value::as_u64) else {
                return json!({"ok": false, "error": "\"after_ops\" (flash operations from now) or \"mid_upload\" (a byte, or null: halfway) is missing"});
            };
            server.core_mut().plan_power_cut(n, now_ms);
            json!({"ok": true, "after_ops": n})
        }
        Some("status") => {
            let s = server.core().state();
            json!({
                "ok": true,
                "running_slot": server.core().running(),
                "journal": format!("{s:?}"),
                "presence_open": server.presence_open(now_ms),
                "upload": server.upload().map(|u| format!("{u:?}")),
                "lock": lock_status(server, now_ms),
                "model": server.model().name,
                "profile": server.core().profile.name(),
                "flash_ops": server.core().flash().ops(),
                "power_cuts": server.core().flash().cut_log().len(),
                "pending_update": server.pending().map(|p| json!({
                    "sequence": p.sequence,
                    "version": p.version,
                    "slot": p.slot,
                })),
            })
        }
        Some(other) => {
            json!({"ok": false, "error": format!("unknown cmd {other:?}: presence, presence-close, long-press, cut-power, status, keypad, lock, unlock, mechanical-key, door, tamper, battery, log-export, setup-code")})
        }
        None => json!({"ok": false, "error": "\"cmd\" is missing"}),
    }
}

/// The JSON line for `keyway-lock ctl`'s words, e.g. `["presence", "30"]`,
/// `["keypad", "1234"]`, `["cut-power", "--mid-upload"]`; an error names
/// what is wrong.
pub fn action_line(words: &[String]) -> Result<String, String> {
    let w: Vec<&str> = words.iter().map(String::as_str).collect();
    let num = |s: &str, what: &str| {
        s.parse::<u64>()
            .map_err(|_| format!("{what}: {s:?} is not a number"))
    };
    let v = match w.as_slice() {
        ["presence"] => json!({"cmd": "presence"}),
        ["presence", s] => json!({"cmd": "presence", "seconds": num(s, "presence SECONDS")?}),
        ["presence-close"] => json!({"cmd": "presence-close"}),
        ["long-press"] => json!({"cmd": "long-press"}),
        ["keypad", pin] => json!({"cmd": "keypad", "pin": pin}),
        ["lock"] => json!({"cmd": "lock"}),
        ["unlock"] => json!({"cmd": "unlock"}),
        ["mechanical-key"] => json!({"cmd": "mechanical-key"}),
        ["door", s @ ("open" | "closed")] => json!({"cmd": "door", "state": s}),
        ["tamper", s @ ("on" | "off")] => json!({"cmd": "tamper", "state": s}),
        ["battery", mv] => json!({"cmd": "battery", "level": num(mv, "battery MV")?}),
        ["cut-power", "--after-ops", n] => {
            json!({"cmd": "cut-power", "after_ops": num(n, "--after-ops N")?})
        }
        ["cut-power", "--mid-upload"] => json!({"cmd": "cut-power", "mid_upload": null}),
        ["cut-power", "--mid-upload", b] => {
            json!({"cmd": "cut-power", "mid_upload": num(b, "--mid-upload BYTE")?})
        }
        // A file name: the lock writes STATE/exports/NAME and answers
        // its path.
        ["log-export", name] => json!({"cmd": "log-export", "path": name}),
        ["status"] => json!({"cmd": "status"}),
        ["setup-code"] => json!({"cmd": "setup-code"}),
        _ => {
            return Err(format!(
                "unknown action {:?}: presence [SECONDS], presence-close, long-press, keypad PIN, lock, unlock, \
                 mechanical-key, door open|closed, tamper on|off, battery MV, \
                 cut-power --after-ops N | --mid-upload [BYTE], log-export NAME, status, setup-code",
                w.join(" ")
            ));
        }
    };
    Ok(v.to_string())
}
