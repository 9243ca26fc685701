//! The control socket: one JSON object per line, one JSON answer per line.
//! It stands for the lock's hardware (its button, for now).
//!
//! ```text
//! {"cmd": "presence", "seconds": 60}   hold the button: open the presence window
//! {"cmd": "presence-close"}            close it
//! {"cmd": "cut-power", "after_ops": N} cut the power during the Nth flash operation from now
//! {"cmd": "status"}                    running slot, journal state, presence, upload
//! ```

use serde_json::{Value, json};

use crate::server::Server;

/// Answers one control line at `now_ms`.
pub fn handle_line(server: &mut Server, line: &str, now_ms: u64) -> Value {
    let v: Value = match serde_json::from_str(line) {
        Ok(v) => v,
        Err(e) => return json!({"ok": false, "error": format!("not JSON: {e}")}),
    };
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
        Some("cut-power") => {
            let Some(n) = v.get("after_ops").and_then(Value::as_u64) else {
                return json!({"ok": false, "error": "\"after_ops\" (flash operations from now) is missing"});
            };
            server.lock_mut().plan_power_cut(n, now_ms);
            json!({"ok": true, "after_ops": n})
        }
        Some("status") => {
            let s = server.lock().state();
            json!({
                "ok": true,
                "running_slot": server.lock().running(),
                "journal": format!("{s:?}"),
                "presence_open": server.presence_open(now_ms),
                "upload": server.upload().map(|u| format!("{u:?}")),
            })
        }
        Some(other) => {
            json!({"ok": false, "error": format!("unknown cmd {other:?}: presence, presence-close, cut-power, status")})
        }
        None => json!({"ok": false, "error": "\"cmd\" is missing"}),
    }
}
