//! The scorecard in three forms: a terminal table, JSON, and a
//! self-contained HTML page (inline CSS, no scripts, no external
//! resources; every text from the lock or the files is escaped: for the
//! terminal by [`crate::terminal`], for HTML by [`escape`], which also
//! replaces the characters [`crate::terminal::is_unsafe`] names).

use std::fmt::Write as _;

use keyway_hub::web::html::esc;
use serde_json::{Value, json};

use super::{Check, Report, Status};
use crate::terminal::line;

impl Status {
    /// `PASS`, `FAIL`, `SKIP` or `N/A` (not applicable on the transport).
    pub fn word(self) -> &'static str {
        match self {
            Status::Pass => "PASS",
            Status::Fail => "FAIL",
            Status::Skip => "SKIP",
            Status::NotApplicable => "N/A",
        }
    }

    /// The HTML class of the status cell.
    fn class(self) -> &'static str {
        match self {
            Status::NotApplicable => "NA",
            s => s.word(),
        }
    }
}

/// The terminal table: one line per check, its evidence indented below.
pub fn table(r: &Report) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "keyway audit of {} ({}), started {}",
        line(&r.target),
        line(&r.lock),
        utc(r.started_unix)
    );
    let _ = writeln!(s);
    let _ = writeln!(s, " #  {:<42} {:<6} summary", "check", "result");
    let _ = writeln!(s, "{}", "-".repeat(100));
    for c in &r.checks {
        let _ = writeln!(
            s,
            "{:>2}  {:<42} {:<6} {}",
            c.number,
            c.title,
            c.status.word(),
            line(&c.summary)
        );
        for e in &c.evidence {
            let _ = writeln!(s, "    {:<42}        · {}", "", line(e));
        }
        if !c.figures.is_empty() {
            let _ = writeln!(s, "    {:<42}        · figures: {}", "", figures(c));
        }
    }
    let _ = writeln!(s, "{}", "-".repeat(100));
    let (p, f, k) = r.counts();
    let na = r.not_applicable();
    let _ = writeln!(
        s,
        "{p} PASS, {f} FAIL, {k} SKIP, {na} N/A in {:.1} s",
        r.wall_ms as f64 / 1000.0
    );
    s
}

/// Unix seconds as `YYYY-MM-DD HH:MM:SS UTC` (proleptic Gregorian).
pub fn utc(unix: u64) -> String {
    format!("{} UTC", keyway_vendor::log::utc_date_time(unix))
}

/// A check's figures on one line: `name value, …`.
fn figures(c: &Check) -> String {
    c.figures
        .iter()
        .map(|(k, v)| format!("{k} {v:.1}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The JSON form's name and version: a field is added under the same
/// version, a change of meaning or a removal gets a new one.
pub const JSON_FORMAT: &str = "keyway-audit/1";

/// The JSON form: `format`, `target`, `lock`, `started_unix`, `wall_ms`,
/// the `pass`/`fail`/`skip`/`not_applicable` counts (a check's `status`
/// is `PASS`, `FAIL`, `SKIP` or `N/A`), `checks` (each `number`, `id`,
/// `title`, `status`, `summary`, `evidence`, `figures`) and `files`.
pub fn json(r: &Report) -> Value {
    let (p, f, k) = r.counts();
    json!({
        "format": JSON_FORMAT,
        "target": r.target,
        "lock": r.lock,
        "started_unix": r.started_unix,
        "wall_ms": r.wall_ms,
        "pass": p,
        "fail": f,
        "skip": k,
        "not_applicable": r.not_applicable(),
        "checks": r.checks.iter().map(check_json).collect::<Vec<_>>(),
        "files": r.files,
    })
}

fn check_json(c: &Check) -> Value {
    json!({
        "number": c.number,
        "id": c.id,
        "title": c.title,
        "status": c.status.word(),
        "summary": c.summary,
        "evidence": c.evidence,
        "figures": c.figures.iter().map(|(k, v)| (k.clone(), json!(v))).collect::<serde_json::Map<_, _>>(),
    })
}

/// Escapes text for HTML element content and attribute values: the hub's
/// [`esc`], then every [`crate::terminal::is_unsafe`] character but a
/// newline or a tab as U+FFFD's character reference.
pub fn escape(text: &str) -> String {
    esc(text).replace(
        |c| crate::terminal::is_unsafe(c) && c != '\n' && c != '\t',
        "&#65533;",
    )
}

const CSS: &str = "body{font-family:system-ui,sans-serif;margin:2em auto;max-width:70em;color:#222;padding:0 1em}\
h1{font-size:1.5em}table{border-collapse:collapse;width:100%}\
th,td{border-bottom:1px solid #ddd;padding:.4em .6em;text-align:left;vertical-align:top}\
th{background:#f4f4f4}.PASS{color:#fff;background:#2a7a2a}.FAIL{color:#fff;background:#b02020}\
.SKIP{color:#222;background:#e8c547}.NA{color:#222;background:#c8c8c8}.st{font-weight:bold;text-align:center;width:4em}\
ul{margin:.3em 0;padding-left:1.2em}li{font-family:ui-monospace,monospace;font-size:.85em;white-space:pre-wrap}\
.sum{margin:1em 0;font-size:1.1em}";

/// The self-contained HTML page.
pub fn html(r: &Report) -> String {
    let (p, f, k) = r.counts();
    let na = r.not_applicable();
    let mut s = String::new();
    let _ = write!(
        s,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>Keyway audit: {}</title><style>{CSS}</style></head><body>\n",
        escape(&r.target)
    );
    let _ = writeln!(
        s,
        "<h1>Keyway audit: test with the router unplugged</h1>\n\
         <p>Target <b>{}</b>, lock <b>{}</b>, started {}, {} s.</p>\n\
         <p class=\"sum\"><span class=\"PASS\">&nbsp;{p} PASS&nbsp;</span> \
         <span class=\"FAIL\">&nbsp;{f} FAIL&nbsp;</span> \
         <span class=\"SKIP\">&nbsp;{k} SKIP&nbsp;</span> \
         <span class=\"NA\">&nbsp;{na} N/A&nbsp;</span></p>",
        escape(&r.target),
        escape(&r.lock),
        utc(r.started_unix),
        r.wall_ms as f64 / 1000.0
    );
    s.push_str("<table><tr><th>#</th><th>Check</th><th>Result</th><th>Evidence</th></tr>\n");
    for c in &r.checks {
        let (w, cls) = (c.status.word(), c.status.class());
        let _ = write!(
            s,
            "<tr id=\"check-{}\"><td>{}</td><td>{}</td><td class=\"st {cls}\">{w}</td><td><b>{}</b><ul>",
            c.number,
            c.number,
            escape(c.title),
            escape(&c.summary)
        );
        for e in &c.evidence {
            let _ = write!(s, "<li>{}</li>", escape(e));
        }
        if !c.figures.is_empty() {
            let _ = write!(s, "<li>figures: {}</li>", escape(&figures(c)));
        }
        s.push_str("</ul></td></tr>\n");
    }
    s.push_str("</table>\n");
    if !r.files.is_empty() {
        keyway_hub::web::html::list(&mut s, "<h2>Files</h2>", r.files.iter().map(|f| escape(f)));
        s.push('\n');
    }
    s.push_str(
        "<p>PASS: the lock did what the check requires, with the evidence shown. \
         FAIL: it did not; the evidence says what was sent and what the lock answered. \
         SKIP: the check could not run, and says why.</p>\n</body></html>\n",
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(evidence: &str) -> Report {
        Report {
            target: "udp:127.0.0.1:1337".into(),
            lock: "<lock>".into(),
            started_unix: 0,
            wall_ms: 1234,
            files: vec![],
            checks: vec![Check {
                number: 3,
                id: "trust-anchors",
                title: "Local trust anchors",
                status: Status::Fail,
                summary: "a <script> & 'quote'".into(),
                evidence: vec![evidence.into()],
                figures: vec![("p50_ms".into(), 1.5)],
            }],
        }
    }

    /// A not-applicable check is its own outcome in all three forms,
    /// counted apart from PASS, FAIL and SKIP, with its reason.
    #[test]
    fn not_applicable_is_shown_and_counted_apart() {
        let mut r = report("e");
        r.checks[0].status = Status::NotApplicable;
        r.checks[0].summary = "not applicable on a serial line: no network".into();
        assert_eq!(r.counts(), (0, 0, 0));
        let t = table(&r);
        assert!(t.contains("N/A    not applicable on a serial line"), "{t}");
        assert!(t.contains("0 PASS, 0 FAIL, 0 SKIP, 1 N/A"), "{t}");
        let j = json(&r);
        assert_eq!(j["checks"][0]["status"], "N/A");
        assert_eq!(j["not_applicable"], 1);
        assert_eq!((j["pass"].clone(), j["fail"].clone()), (0.into(), 0.into()));
        let h = html(&r);
        assert!(h.contains("class=\"st NA\">N/A</td>"), "{h}");
        assert!(h.contains("1 N/A"), "{h}");
    }

    #[test]
    fn html_escapes_lock_text_and_loads_nothing_external() {
        let hostile = "</li></ul><script>alert(\"x\")</script><img src=http://evil/x> \u{7}";
        let page = html(&report(hostile));
        assert!(!page.contains("<script"), "{page}");
        assert!(!page.contains("<img"), "{page}");
        assert!(
            page.contains(
                "&lt;/li&gt;&lt;/ul&gt;&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;"
            )
        );
        assert!(page.contains("a &lt;script&gt; &amp; &#39;quote&#39;"));
        assert!(page.contains("&lt;lock&gt;"));
        assert!(!page.contains('\u{7}'));
        // Only the page's own tags, so nothing from the lock became markup,
        // and nothing is fetched (no src, href, import or url()).
        let allowed = [
            "!DOCTYPE", "html", "head", "meta", "title", "style", "body", "h1", "h2", "p", "b",
            "span", "table", "tr", "th", "td", "ul", "li",
        ];
        for tag in page.split('<').skip(1) {
            let name: String = tag
                .trim_start_matches('/')
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '!')
                .collect();
            assert!(allowed.contains(&name.as_str()), "tag <{name}> in {page}");
            let inside = tag.split('>').next().unwrap_or("");
            for attr in ["src=", "href=", "action="] {
                assert!(!inside.contains(attr), "{attr} in <{inside}>");
            }
        }
        for fetch in ["@import", "url("] {
            assert!(!page.contains(fetch), "{fetch} in {page}");
        }
        assert!(page.contains("class=\"st FAIL\""));
    }

    /// The files the audit read are listed after the checks, each escaped
    /// like lock text.
    #[test]
    fn html_lists_files_escaped() {
        let mut r = report("e");
        r.files = vec!["a<b>.cbor".into(), "bell\u{7}".into()];
        let page = html(&r);
        assert!(
            page.contains(
                "</table>\n<h2>Files</h2><ul><li>a&lt;b&gt;.cbor</li><li>bell&#65533;</li></ul>\n<p>PASS:"
            ),
            "{page}"
        );
        assert!(!html(&report("e")).contains("<h2>Files</h2>"));
    }

    #[test]
    fn table_and_json_carry_every_check() {
        let r = report("sent x, answered y");
        let t = table(&r);
        assert!(t.contains(" 3  Local trust anchors"), "{t}");
        assert!(t.contains("FAIL"));
        assert!(t.contains("· sent x, answered y"));
        assert!(t.contains("0 PASS, 1 FAIL, 0 SKIP"));
        let j = json(&r);
        assert_eq!(j["checks"][0]["status"], "FAIL");
        assert_eq!(j["checks"][0]["figures"]["p50_ms"], 1.5);
        assert_eq!(j["fail"], 1);
        assert_eq!(j["format"], "keyway-audit/1");
        assert_eq!(j["checks"][0]["id"], "trust-anchors");
        assert!(t.contains("figures: p50_ms 1.5"), "{t}");
        assert!(html(&r).contains("figures: p50_ms 1.5"));
    }

    #[test]
    fn utc_dates() {
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00:00 UTC");
        assert_eq!(utc(1_709_251_199), "2024-02-29 23:59:59 UTC");
        assert_eq!(utc(4_107_542_400), "2100-03-01 00:00:00 UTC");
    }

    /// A lock's text carrying terminal escape sequences (which could
    /// repaint a FAIL as PASS) is printed inert in the table.
    #[test]
    fn table_neutralises_terminal_escapes_from_the_lock() {
        let r = report("\u{1b}[1A\u{1b}[2K 3 PASS\r");
        let t = table(&r);
        assert!(!t.contains('\u{1b}') && !t.contains('\r'), "{t:?}");
        assert!(t.contains("\\u{1b}[1A"), "{t}");
    }

    /// A right-to-left override from the lock would show the scorecard's
    /// text reversed: the table escapes it and the page replaces it (the
    /// report's own sanitizer printed it as it was).
    #[test]
    fn table_and_page_neutralise_bidi_overrides_from_the_lock() {
        let r = report("FAIL \u{202e}SSAP\u{202c} \u{2067}x\u{2069} \u{200f}");
        let t = table(&r);
        let page = html(&r);
        for c in ['\u{202e}', '\u{202c}', '\u{2067}', '\u{2069}', '\u{200f}'] {
            assert!(!t.contains(c), "{t:?}");
            assert!(!page.contains(c), "{page:?}");
        }
        assert!(t.contains("\\u{202e}SSAP"), "{t}");
    }
}
