//! The control channel: one JSON object per line in, one JSON object per
//! line out, the protocol of `keyway-lock`'s control socket (so
//! `keyway-lock ctl SOCKET ACTION` drives the emulated lock as it drives
//! the simulated one). It stands for the lock's hardware: the button,
//! the keypad, the door and tamper sensors, the battery, the label, and a
//! power cut after N flash operations (a test hook).
//!
//! ```text
//! {"cmd":"presence","seconds":60}     {"cmd":"presence-close"}   {"cmd":"long-press"}
//! {"cmd":"keypad","pin":"1234"}       {"cmd":"lock"}             {"cmd":"unlock"}
//! {"cmd":"door","state":"open"}       {"cmd":"tamper","state":"on"}
//! {"cmd":"battery","level":3300}      {"cmd":"setup-code"}       {"cmd":"status"}
//! {"cmd":"cut-power","after_ops":N}   {"cmd":"cut-power","mid_upload":B}  (B or null: halfway)
//! {"cmd":"mechanical-key"}
//! ```
//!
//! Hand-written, not `serde_json`: that needs a heap. [`parse`] reads
//! exactly this: a flat object whose values are strings without escapes,
//! unsigned integers, `null` or booleans; every length is bounded by the
//! line buffer the caller owns; anything else is a typed [`LineError`].
//! [`Answer`] writes the reply into a caller's buffer.

use core::fmt::Write as _;

/// The longest control line the lock reads (longer lines are refused).
pub const LINE_MAX: usize = 256;

/// A control command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Command<'a> {
    /// The button pressed: the presence window opens (`seconds` is the
    /// simulator's; the lock's window has its configured length).
    Presence {
        /// Seconds asked for.
        seconds: Option<u64>,
    },
    /// Close the presence window.
    PresenceClose,
    /// The button held 10 s.
    LongPress,
    /// A PIN typed on the keypad.
    Keypad {
        /// The digits.
        pin: &'a str,
    },
    /// Lock the bolt (an owner's command at the lock).
    Lock,
    /// Withdraw the bolt.
    Unlock,
    /// The key turned in the cylinder.
    MechanicalKey,
    /// The door sensor.
    Door {
        /// Open (else closed).
        open: bool,
    },
    /// The tamper switch.
    Tamper {
        /// Tripped (else cleared).
        on: bool,
    },
    /// A battery reading.
    Battery {
        /// Millivolts.
        mv: u16,
    },
    /// The label's setup code.
    SetupCode,
    /// Cut the power after this many more flash operations.
    CutPower {
        /// Erases and writes from now.
        after_ops: u64,
    },
    /// Cut the power at the first flash operation once the upload in
    /// progress passes byte `at` (`None`: half its length).
    CutMidUpload {
        /// The byte offset (`null` in the line: halfway).
        at: Option<u64>,
    },
    /// The state of the lock.
    Status,
    /// Write the audit log's signed export as the host file
    /// `exports/NAME` beside the flash file (for `keyway log verify`).
    LogExport {
        /// A plain file name: letters, digits, `.`, `_`, `-`, not starting
        /// with `.`, at most 64 bytes.
        name: &'a str,
    },
}

/// Whether `name` is a plain file name (no path, no `..`).
pub fn plain_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// Why a control line was refused (answered `{"ok":false,"error":...}`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LineError {
    /// Not the JSON this parser reads; what was expected.
    Syntax(&'static str),
    /// A field is missing or of the wrong type: its name and what it
    /// must be.
    Field(&'static str, &'static str),
    /// `cmd` names no command.
    Unknown,
}

impl LineError {
    /// The error as the answer's text.
    pub fn text(&self) -> (&'static str, &'static str) {
        match self {
            LineError::Syntax(w) => ("not JSON: ", w),
            LineError::Field(name, what) => (name, what),
            LineError::Unknown => (
                "unknown cmd: ",
                "presence, presence-close, long-press, keypad, lock, unlock, mechanical-key, door, tamper, battery, setup-code, cut-power, status, log-export",
            ),
        }
    }
}

/// A JSON value of a control line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Value<'a> {
    Str(&'a str),
    Num(u64),
    Bool(bool),
    Null,
}

struct Cursor<'a> {
    s: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn ws(&mut self) {
        while self.at < self.s.len() && matches!(self.s[self.at], b' ' | b'\t' | b'\r' | b'\n') {
            self.at += 1;
        }
    }
    fn peek(&mut self) -> Option<u8> {
        self.ws();
        self.s.get(self.at).copied()
    }
    fn eat(&mut self, c: u8, what: &'static str) -> Result<(), LineError> {
        if self.peek() == Some(c) {
            self.at += 1;
            Ok(())
        } else {
            Err(LineError::Syntax(what))
        }
    }
    fn string(&mut self) -> Result<&'a str, LineError> {
        self.eat(b'"', "a string")?;
        let from = self.at;
        while let Some(&c) = self.s.get(self.at) {
            match c {
                b'"' => {
                    self.at += 1;
                    return core::str::from_utf8(&self.s[from..self.at - 1])
                        .map_err(|_| LineError::Syntax("UTF-8 text"));
                }
                b'\\' => return Err(LineError::Syntax("a string without escapes")),
                0..0x20 => return Err(LineError::Syntax("no control characters in strings")),
                _ => self.at += 1,
            }
        }
        Err(LineError::Syntax("a closing quote"))
    }
    fn word(&mut self, w: &[u8]) -> bool {
        if self.s[self.at..].starts_with(w) {
            self.at += w.len();
            true
        } else {
            false
        }
    }
    fn value(&mut self) -> Result<Value<'a>, LineError> {
        match self.peek() {
            Some(b'"') => self.string().map(Value::Str),
            Some(b'0'..=b'9') => {
                let mut n: u64 = 0;
                while let Some(d @ b'0'..=b'9') = self.s.get(self.at).copied() {
                    n = n
                        .checked_mul(10)
                        .and_then(|n| n.checked_add(u64::from(d - b'0')))
                        .ok_or(LineError::Syntax("a number below 2^64"))?;
                    self.at += 1;
                }
                Ok(Value::Num(n))
            }
            _ if self.word(b"null") => Ok(Value::Null),
            _ if self.word(b"true") => Ok(Value::Bool(true)),
            _ if self.word(b"false") => Ok(Value::Bool(false)),
            _ => Err(LineError::Syntax(
                "a string, an unsigned integer, null, true or false",
            )),
        }
    }
}

/// The fields a command reads.
const KEYS: [&str; 8] = [
    "cmd",
    "seconds",
    "pin",
    "state",
    "level",
    "after_ops",
    "mid_upload",
    "path",
];

/// Parses one control line.
pub fn parse<'a>(line: &'a [u8]) -> Result<Command<'a>, LineError> {
    if line.len() > LINE_MAX {
        return Err(LineError::Syntax("a line of at most 256 bytes"));
    }
    let mut c = Cursor { s: line, at: 0 };
    let mut vals: [Option<Value<'a>>; 8] = [None; 8];
    c.eat(b'{', "an object")?;
    if c.peek() == Some(b'}') {
        c.at += 1;
    } else {
        loop {
            let key = c.string()?;
            c.eat(b':', "a colon")?;
            let v = c.value()?;
            if let Some(i) = KEYS.iter().position(|k| *k == key) {
                vals[i] = Some(v);
            }
            match c.peek() {
                Some(b',') => c.at += 1,
                Some(b'}') => {
                    c.at += 1;
                    break;
                }
                _ => return Err(LineError::Syntax("a comma or a closing brace")),
            }
        }
    }
    if c.peek().is_some() {
        return Err(LineError::Syntax("nothing after the object"));
    }
    let [cmd, seconds, pin, state, level, after_ops, mid_upload, path] = vals;
    let Some(Value::Str(cmd)) = cmd else {
        return Err(LineError::Field("cmd", ": the command, a string"));
    };
    let num = |v: Option<Value<'_>>| match v {
        Some(Value::Num(n)) => Some(n),
        _ => None,
    };
    let text = |v: Option<Value<'a>>| match v {
        Some(Value::Str(s)) => Some(s),
        _ => None,
    };
    Ok(match cmd {
        "presence" => Command::Presence {
            seconds: num(seconds),
        },
        "presence-close" => Command::PresenceClose,
        "long-press" => Command::LongPress,
        "keypad" => Command::Keypad {
            pin: text(pin).ok_or(LineError::Field("pin", ": a string of digits"))?,
        },
        "lock" => Command::Lock,
        "unlock" => Command::Unlock,
        "mechanical-key" => Command::MechanicalKey,
        "door" => match text(state) {
            Some("open") => Command::Door { open: true },
            Some("closed") => Command::Door { open: false },
            _ => return Err(LineError::Field("state", ": \"open\" or \"closed\"")),
        },
        "tamper" => match text(state) {
            Some("on") => Command::Tamper { on: true },
            Some("off") => Command::Tamper { on: false },
            _ => return Err(LineError::Field("state", ": \"on\" or \"off\"")),
        },
        "battery" => Command::Battery {
            mv: num(level)
                .and_then(|l| u16::try_from(l).ok())
                .ok_or(LineError::Field("level", ": millivolts, 0-65535"))?,
        },
        "setup-code" => Command::SetupCode,
        "cut-power" => match (mid_upload, num(after_ops)) {
            (Some(Value::Null), _) => Command::CutMidUpload { at: None },
            (Some(Value::Num(at)), _) => Command::CutMidUpload { at: Some(at) },
            (None, Some(after_ops)) => Command::CutPower { after_ops },
            _ => {
                return Err(LineError::Field(
                    "after_ops",
                    ": flash operations from now, or mid_upload: a byte (null: halfway)",
                ));
            }
        },
        "status" => Command::Status,
        "log-export" => Command::LogExport {
            name: text(path)
                .filter(|n| plain_name(n))
                .ok_or(LineError::Field(
                    "path",
                    ": a plain file name (letters, digits, . _ -; no path)",
                ))?,
        },
        _ => return Err(LineError::Unknown),
    })
}

/// A JSON answer written into a caller's buffer: `{"ok":true,...}` then
/// `\n`. Text values are written as given (the lock's own constants and
/// digits; never a received string).
pub struct Answer<'b> {
    buf: &'b mut [u8],
    len: usize,
    overflow: bool,
    /// An object was just opened: its first field has no comma.
    opened: bool,
}

impl core::fmt::Write for Answer<'_> {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        let end = self.len + s.len();
        match self.buf.get_mut(self.len..end) {
            Some(dst) => {
                dst.copy_from_slice(s.as_bytes());
                self.len = end;
                Ok(())
            }
            None => {
                self.overflow = true;
                Err(core::fmt::Error)
            }
        }
    }
}

impl<'b> Answer<'b> {
    /// Starts `{"ok":OK`.
    pub fn new(buf: &'b mut [u8], ok: bool) -> Self {
        let mut a = Answer {
            buf,
            len: 0,
            overflow: false,
            opened: false,
        };
        let _ = write!(a, "{{\"ok\":{ok}");
        a
    }
    /// The answer to a refused line.
    pub fn error(buf: &'b mut [u8], e: LineError) -> Self {
        let (a, b) = e.text();
        let mut w = Answer::new(buf, false);
        let _ = write!(w, ",\"error\":\"{a}{}\"", Escaped(b));
        w
    }
    /// Writes a field's key (after a comma unless it is the first field
    /// of an object just opened).
    fn key(&mut self, key: &str) {
        let comma = if core::mem::take(&mut self.opened) {
            ""
        } else {
            ","
        };
        let _ = write!(self, "{comma}\"{key}\":");
    }
    /// A text field (`value` escaped for JSON).
    pub fn str(mut self, key: &str, value: &str) -> Self {
        self.key(key);
        let _ = write!(self, "\"{}\"", Escaped(value));
        self
    }
    /// A number field.
    pub fn num(mut self, key: &str, value: u64) -> Self {
        self.key(key);
        let _ = write!(self, "{value}");
        self
    }
    /// A boolean field.
    pub fn bool(mut self, key: &str, value: bool) -> Self {
        self.key(key);
        let _ = write!(self, "{value}");
        self
    }
    /// A field whose value is raw JSON the caller wrote (e.g. `null`).
    pub fn raw(mut self, key: &str, json: &str) -> Self {
        self.key(key);
        let _ = write!(self, "{json}");
        self
    }
    /// Opens an object field `key`: the fields up to [`Answer::close`]
    /// are its own (as `keyway-lock`'s `"lock": {...}`).
    pub fn open(mut self, key: &str) -> Self {
        self.key(key);
        let _ = write!(self, "{{");
        self.opened = true;
        self
    }
    /// Closes the object [`Answer::open`] began.
    pub fn close(mut self) -> Self {
        self.opened = false;
        let _ = write!(self, "}}");
        self
    }
    /// Closes the object and the line; the bytes to send (an answer too
    /// long for the buffer becomes an error answer).
    pub fn finish(mut self) -> &'b [u8] {
        if self.overflow || writeln!(self, "}}").is_err() {
            const TOO_LONG: &[u8] = b"{\"ok\":false,\"error\":\"answer too long\"}\n";
            let n = TOO_LONG.len().min(self.buf.len());
            self.buf[..n].copy_from_slice(&TOO_LONG[..n]);
            return &self.buf[..n];
        }
        &self.buf[..self.len]
    }
}

/// Text escaped for a JSON string.
struct Escaped<'s>(&'s str);

impl core::fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        for c in self.0.chars() {
            match c {
                '"' => f.write_str("\\\"")?,
                '\\' => f.write_str("\\\\")?,
                c if (c as u32) < 0x20 => write!(f, "\\u{:04x}", c as u32)?,
                c => f.write_char(c)?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_lines_keyway_lock_ctl_sends() {
        assert_eq!(
            parse(br#"{"cmd":"presence","seconds":30}"#),
            Ok(Command::Presence { seconds: Some(30) })
        );
        assert_eq!(
            parse(br#"{"seconds":30,"cmd":"presence"}"#),
            Ok(Command::Presence { seconds: Some(30) })
        );
        assert_eq!(
            parse(br#"{"cmd":"keypad","pin":"1234"}"#),
            Ok(Command::Keypad { pin: "1234" })
        );
        assert_eq!(
            parse(br#"{"cmd": "battery", "level": 3300}"#),
            Ok(Command::Battery { mv: 3300 })
        );
        assert_eq!(
            parse(br#"{"after_ops":7,"cmd":"cut-power"}"#),
            Ok(Command::CutPower { after_ops: 7 })
        );
        assert_eq!(
            parse(br#"{"cmd":"cut-power","mid_upload":4096}"#),
            Ok(Command::CutMidUpload { at: Some(4096) })
        );
        assert_eq!(
            parse(br#"{"cmd":"cut-power","mid_upload":null}"#),
            Ok(Command::CutMidUpload { at: None })
        );
        assert_eq!(parse(br#"{"cmd":"status"}"#), Ok(Command::Status));
        assert_eq!(
            parse(br#"{"cmd":"log-export","path":"audit.bin"}"#),
            Ok(Command::LogExport { name: "audit.bin" })
        );
    }

    #[test]
    fn log_export_takes_plain_names_only() {
        for bad in ["../flash.bin", "/etc/passwd", "a/b", ".hidden", ""] {
            let line = [br#"{"cmd":"log-export","path":""#, bad.as_bytes(), br#""}"#].concat();
            assert!(
                matches!(parse(&line), Err(LineError::Field("path", _))),
                "{bad}"
            );
        }
    }

    #[test]
    fn refuses_bad_lines_with_a_reason() {
        assert_eq!(parse(b"status"), Err(LineError::Syntax("an object")));
        assert!(matches!(
            parse(br#"{"cmd":"x\"y"}"#),
            Err(LineError::Syntax(_))
        ));
        assert_eq!(parse(br#"{"cmd":"fly"}"#), Err(LineError::Unknown));
        assert!(matches!(
            parse(br#"{"cmd":"battery","level":70000}"#),
            Err(LineError::Field("level", _))
        ));
        assert!(matches!(
            parse(br#"{"cmd":"presence","seconds":99999999999999999999999}"#),
            Err(LineError::Syntax(_))
        ));
        assert!(matches!(parse(&[b'{'; 300]), Err(LineError::Syntax(_))));
        assert!(matches!(
            parse(br#"{"cmd":"status"} x"#),
            Err(LineError::Syntax(_))
        ));
        assert!(matches!(
            parse(br#"{"cmd":"status""#),
            Err(LineError::Syntax(_))
        ));
    }

    #[test]
    fn answers_one_json_line() {
        let mut buf = [0u8; 64];
        let a = Answer::new(&mut buf, true)
            .str("setup_code", "1234-5670")
            .finish();
        assert_eq!(a, b"{\"ok\":true,\"setup_code\":\"1234-5670\"}\n");
        let mut small = [0u8; 16];
        let a = Answer::new(&mut small, true)
            .str("k", "a long value")
            .finish();
        assert!(a.starts_with(b"{\"ok\":false"));
    }

    /// `keyway audit` reads the sensors as `keyway-lock` answers them, in
    /// a `lock` object (`v["lock"]["tamper"]`, check 7).
    #[test]
    fn nested_objects_read_as_keyway_lock_answers() {
        let mut buf = [0u8; 128];
        let a = Answer::new(&mut buf, true)
            .open("lock")
            .str("bolt", "locked")
            .bool("tamper", true)
            .close()
            .num("n", 1)
            .finish();
        assert_eq!(
            core::str::from_utf8(a),
            Ok("{\"ok\":true,\"lock\":{\"bolt\":\"locked\",\"tamper\":true},\"n\":1}\n")
        );
        let mut buf = [0u8; 64];
        let a = Answer::new(&mut buf, true).open("lock").close().finish();
        assert_eq!(a, b"{\"ok\":true,\"lock\":{}}\n");
    }
}
