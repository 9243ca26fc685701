//! Text from a lock or a file, made safe to print: the one sanitizer every
//! command uses before it shows text it did not write itself (a lock's
//! refusal reason, owner names, release notes, the audit's evidence).
//!
//! A lock in radio range may be an attacker's. Text it sends could carry
//! a terminal escape sequence (rewrite the screen, hide a refusal, fake a
//! PASS) or a Unicode bidirectional control that shows the characters in
//! another order than they are (U+202E, the right-to-left override,
//! shows "evil\u{202e}txt.exe" as "evilexe.txt").
//! [`printable`] shows every such character as a visible `\u{..}` escape
//! instead:
//!
//! * the C0 controls (U+0000–U+001F), DEL (U+007F) and the C1 controls
//!   (U+0080–U+009F): `char::is_control`;
//! * the bidirectional controls: the embeddings and overrides
//!   (U+202A–U+202E), the isolates (U+2066–U+2069), the marks LRM, RLM
//!   (U+200E, U+200F) and ALM (U+061C).
//!
//! Only line breaks and tabs may stay, where the caller asks for them
//! ([`Newlines::Keep`], release notes). The HTML report uses [`is_unsafe`]
//! for the same set.

use std::fmt::Write as _;

/// Whether line breaks and tabs stay in [`printable`]'s output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Newlines {
    /// Shown as escapes: the text is one line (a name, a reason).
    Escape,
    /// Kept: the text is a block of lines (release notes).
    Keep,
}

/// A character [`printable`] never prints as it is: a C0 or C1 control,
/// DEL, or a Unicode bidirectional control.
pub fn is_unsafe(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{200e}' | '\u{200f}' | '\u{061c}'
        )
}

/// `text`, safe to print on a terminal: every [`is_unsafe`] character is
/// shown as a `\u{..}` escape; with [`Newlines::Keep`], `\n` and `\t` stay.
pub fn printable(text: &str, newlines: Newlines) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        let kept = newlines == Newlines::Keep && matches!(c, '\n' | '\t');
        if is_unsafe(c) && !kept {
            let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
        } else {
            out.push(c);
        }
    }
    out
}

/// [`printable`] for one line of text ([`Newlines::Escape`]).
pub fn line(text: &str) -> String {
    printable(text, Newlines::Escape)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every bidirectional control is escaped. The two sanitizers this one
    /// replaced failed it: the audit report's escaped none of them, the
    /// device client's missed the marks (U+200E, U+200F, U+061C).
    #[test]
    fn bidi_controls_are_escaped() {
        let bidi = [
            '\u{202a}', '\u{202b}', '\u{202c}', '\u{202d}', '\u{202e}', '\u{2066}', '\u{2067}',
            '\u{2068}', '\u{2069}', '\u{200e}', '\u{200f}', '\u{061c}',
        ];
        for c in bidi {
            let text = format!("evil{c}txt.exe");
            for mode in [Newlines::Escape, Newlines::Keep] {
                let shown = printable(&text, mode);
                assert!(
                    !shown.contains(c),
                    "U+{:04X} printed as is: {shown:?}",
                    u32::from(c)
                );
                assert_eq!(shown, format!("evil\\u{{{:x}}}txt.exe", u32::from(c)));
            }
        }
    }

    #[test]
    fn c0_c1_and_del_are_escaped() {
        assert_eq!(line("a\x1b[2Jb"), "a\\u{1b}[2Jb");
        assert_eq!(line("\x00\x7f\u{85}\u{9f}"), "\\u{0}\\u{7f}\\u{85}\\u{9f}");
        assert_eq!(line("a\tb\nc"), "a\\u{9}b\\u{a}c");
    }

    #[test]
    fn newlines_and_tabs_stay_only_when_kept() {
        assert_eq!(printable("a\tb\nc\x07", Newlines::Keep), "a\tb\nc\\u{7}");
        assert_eq!(printable("a\r\n", Newlines::Keep), "a\\u{d}\n");
    }

    #[test]
    fn ordinary_text_is_unchanged() {
        let text = "Schloß 🔒 — «ok» עברית";
        assert_eq!(line(text), text);
    }
}
